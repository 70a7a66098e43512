"""The variant catalog (``docker/catalog.toml``): typed, validated, hashed.

It is the single source of truth: images are built from its ``images`` entries, compose
services are generated from its ``variants``, and the runner enumerates cells from both.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import tomllib

from frameworks.backends.registry import DEVICES, FRAMEWORKS

from .base_image import DEFAULT_RELEASE, RELEASES

REPO_ROOT = Path(__file__).resolve().parent.parent
CATALOG_PATH = REPO_ROOT / "docker" / "catalog.toml"
CATALOG_SCHEMA = 1
_NAME = re.compile(r"^[a-z0-9][a-z0-9-]*$")


class CatalogError(ValueError):
    """A malformed catalog: the message names the file and the offending entry."""


@dataclass(frozen=True)
class ImageSpec:
    name: str
    dockerfile: str  # relative to the repository root
    framework: str
    device: str
    requirements: tuple[str, ...]
    apt: tuple[str, ...] = ()
    base_image: str = "python:3.11-slim"
    build_args: dict[str, str] = field(default_factory=dict)
    release: str = DEFAULT_RELEASE  # the Debian release the image is built on (its Debian-built base)
    python: str = RELEASES[DEFAULT_RELEASE]  # that release's python3: the interpreter pip installs for

    @property
    def tag(self) -> str:
        return f"dlbench/{self.name}:latest"

    def spec_hash(self) -> str:
        """Hash of this entry plus the files baked into the image: a changed hash means rebuild."""
        digest = hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode())
        for path in sorted(baked_files(self)):
            digest.update(str(path.relative_to(REPO_ROOT)).encode())
            digest.update(path.read_bytes())
        return digest.hexdigest()[:16]


def baked_files(image: ImageSpec) -> list[Path]:
    """The repository files an image is built from: its Dockerfile and ``frameworks/`` (no bytecode).

    The build context (``runner.images.context``) holds exactly these, so the hash covers what is baked in.
    """
    files = [REPO_ROOT / image.dockerfile]
    files += [p for p in (REPO_ROOT / "frameworks").rglob("*") if "__pycache__" not in p.parts and p.suffix != ".pyc"]
    return [p for p in files if p.is_file()]


@dataclass(frozen=True)
class Variant:
    name: str  # <device>-<framework>[-<build>]
    image: ImageSpec
    modes: tuple[str, ...]
    env: dict[str, str] = field(default_factory=dict)
    # The exact error of the attempt to make this variant, when it cannot be made here (a package with
    # no build for the image's Python): the variant stays in the matrix, its cells skipped with it.
    unavailable: str | None = None

    @property
    def framework(self) -> str:
        return self.image.framework

    @property
    def device(self) -> str:
        return self.image.device

    @property
    def unavailable_reason(self) -> str | None:
        """Why every cell of this variant is skipped, as the skipped results and the report say it."""
        return f"unavailable: {self.unavailable}" if self.unavailable else None


@dataclass(frozen=True)
class Catalog:
    images: dict[str, ImageSpec]
    variants: dict[str, Variant]

    def variant(self, name: str) -> Variant:
        """Look a variant up; an unknown name lists the valid ones."""
        try:
            return self.variants[name]
        except KeyError:
            raise CatalogError(f"unknown variant {name!r}; valid variants: {', '.join(self.variants)}") from None

    def select(self, names: list[str] | None = None, device: str | None = None) -> list[Variant]:
        chosen = [self.variant(n) for n in names] if names else list(self.variants.values())
        return [v for v in chosen if device is None or v.device == device]


def load_catalog(path: Path = CATALOG_PATH) -> Catalog:
    """Read and validate the catalog; every problem is a one-line ``CatalogError``."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CatalogError(f"{path}: catalog not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise CatalogError(f"{path}: not valid TOML: {exc}") from None
    return parse_catalog(data, str(path))


def parse_catalog(data: dict[str, Any], where: str = "catalog") -> Catalog:
    if data.get("schema") != CATALOG_SCHEMA:
        raise CatalogError(f"{where}: schema must be {CATALOG_SCHEMA}, got {data.get('schema')!r}")
    unknown = sorted(set(data) - {"schema", "defaults", "images", "variants"})
    if unknown:
        raise CatalogError(f"{where}: unknown top-level key(s) {', '.join(unknown)}")
    defaults = _table(data.get("defaults", {}), f"{where}: defaults")
    images = {
        n: _image(n, _table(t, f"{where}: images.{n}"), defaults, where) for n, t in _entries(data, "images", where)
    }
    variants = {
        n: _variant(n, _table(t, f"{where}: variants.{n}"), images, where) for n, t in _entries(data, "variants", where)
    }
    if not variants:
        raise CatalogError(f"{where}: no variants")
    return Catalog(images, variants)


def _entries(data: dict[str, Any], key: str, where: str) -> list[tuple[str, Any]]:
    table = _table(data.get(key, {}), f"{where}: {key}")
    for name in table:
        if not _NAME.match(name):
            raise CatalogError(f"{where}: {key}.{name}: names are lower-case letters, digits and dashes")
    return list(table.items())


def _table(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise CatalogError(f"{where} must be a table")
    return value


def _strings(value: Any, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise CatalogError(f"{where} must be a list of strings")
    return tuple(value)


def _string_map(value: Any, where: str) -> dict[str, str]:
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise CatalogError(f"{where} must be a table of strings")
    return dict(value)


def _require(table: dict[str, Any], key: str, where: str) -> Any:
    if key not in table:
        raise CatalogError(f"{where}: missing {key!r}")
    return table[key]


def _image(name: str, t: dict[str, Any], defaults: dict[str, Any], where: str) -> ImageSpec:
    at = f"{where}: images.{name}"
    allowed = {"dockerfile", "framework", "device", "requirements", "apt", "base_image", "build_args"}
    allowed |= {"release", "python"}
    extra = sorted(set(t) - allowed)
    if extra:
        raise CatalogError(f"{at}: unknown key(s) {', '.join(extra)}")
    framework = _require(t, "framework", at)
    if framework not in FRAMEWORKS:
        raise CatalogError(f"{at}: unknown framework {framework!r}; valid frameworks: {', '.join(FRAMEWORKS)}")
    device = _require(t, "device", at)
    if device not in DEVICES:
        raise CatalogError(f"{at}: unknown device {device!r}; valid devices: {', '.join(DEVICES)}")
    requirements = _strings(_require(t, "requirements", at), f"{at}.requirements")
    for req in requirements:
        if "==" not in req:
            raise CatalogError(f"{at}: requirement {req!r} is not pinned (use ==)")
    dockerfile = _require(t, "dockerfile", at)
    if not (REPO_ROOT / dockerfile).is_file():
        raise CatalogError(f"{at}: dockerfile {dockerfile!r} not found")
    release, python = _release(t, defaults, at)
    return ImageSpec(
        name=name,
        dockerfile=dockerfile,
        framework=framework,
        device=device,
        requirements=requirements,
        apt=_strings(t.get("apt", []), f"{at}.apt"),
        base_image=str(t.get("base_image", defaults.get("base_image", "python:3.11-slim"))),
        build_args=_string_map(t.get("build_args", {}), f"{at}.build_args"),
        release=release,
        python=python,
    )


def _release(t: dict[str, Any], defaults: dict[str, Any], at: str) -> tuple[str, str]:
    """The image's Debian release and Python: the entry's, else the defaults', else bookworm's.

    The Python must be the release's own ``python3``: the Debian-built base has that one only, and
    an image has to build on either base.
    """
    release = t.get("release", defaults.get("release", DEFAULT_RELEASE))
    if release not in RELEASES:
        raise CatalogError(f"{at}: unknown release {release!r}; valid releases: {', '.join(RELEASES)}")
    python = t.get("python", defaults.get("python", RELEASES[release]))
    if python != RELEASES[release]:
        raise CatalogError(f"{at}: python {python!r} is not {release}'s python3 ({RELEASES[release]})")
    return release, python


def _variant(name: str, t: dict[str, Any], images: dict[str, ImageSpec], where: str) -> Variant:
    at = f"{where}: variants.{name}"
    extra = sorted(set(t) - {"image", "modes", "env", "unavailable"})
    if extra:
        raise CatalogError(f"{at}: unknown key(s) {', '.join(extra)}")
    image_name = _require(t, "image", at)
    if image_name not in images:
        raise CatalogError(f"{at}: unknown image {image_name!r}; valid images: {', '.join(images)}")
    image = images[image_name]
    if not name.startswith(f"{image.device}-{image.framework}"):
        raise CatalogError(
            f"{at}: name must be <device>-<framework>[-<build>], i.e. start with {image.device}-{image.framework}"
        )
    modes = _strings(_require(t, "modes", at), f"{at}.modes")
    valid = FRAMEWORKS[image.framework].modes
    for mode in modes:
        if mode not in valid:
            raise CatalogError(f"{at}: unknown mode {mode!r} for {image.framework}; valid modes: {', '.join(valid)}")
    unavailable = t.get("unavailable")
    if unavailable is not None and not (isinstance(unavailable, str) and unavailable.strip()):
        raise CatalogError(f"{at}.unavailable must be the attempt's error, a non-empty string")
    return Variant(name, image, modes, _string_map(t.get("env", {}), f"{at}.env"), unavailable)
