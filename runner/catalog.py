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
from .source import SOURCE_ROOT, frameworks_files, repo_path

REPO_ROOT = SOURCE_ROOT  # where ``python -m frameworks...`` resolves: the checkout, or an install's site-packages
CATALOG_PATH = repo_path("docker/catalog.toml")  # the checkout's, or the copy an installed wheel carries
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
        for name, path in sorted(baked_sources(self).items()):
            digest.update(name.encode())
            digest.update(path.read_bytes())
        return digest.hexdigest()[:16]


def baked_sources(image: ImageSpec) -> dict[str, Path]:
    """The repository files an image is built from, {repository-relative name: path}: its Dockerfile and
    ``frameworks/`` (no bytecode).

    The build context (``runner.images.context``) holds exactly these under these names, so the hash covers
    what is baked in, and is the same from a checkout and from a wheel built from it.
    """
    files = {image.dockerfile: repo_path(image.dockerfile), **frameworks_files()}
    return {name: path for name, path in files.items() if path.is_file()}


def baked_files(image: ImageSpec) -> list[Path]:
    """The paths of ``baked_sources``."""
    return list(baked_sources(image).values())


@dataclass(frozen=True)
class Variant:
    name: str  # <device>-<framework>[-<build>]
    image: ImageSpec
    modes: tuple[str, ...]
    env: dict[str, str] = field(default_factory=dict)
    # The exact error of the attempt to make this variant, when it cannot be made here (a package with
    # no build for the image's Python): the variant stays in the matrix, its cells skipped with it.
    unavailable: str | None = None
    # Modes the quick and default presets leave out (too slow to time on every run, e.g. TVM untuned): only
    # ``--modes`` naming them or ``--preset full`` plans them. Each is one of ``modes``.
    opt_in_modes: tuple[str, ...] = ()
    best_mode_declared: str | None = None  # the catalog's ``best_mode``; ``best_mode`` says what it defaults to

    @property
    def framework(self) -> str:
        return self.image.framework

    @property
    def device(self) -> str:
        return self.image.device

    @property
    def default_modes(self) -> tuple[str, ...]:
        """The modes the default preset times: every mode but the opt-in ones."""
        return tuple(m for m in self.modes if m not in self.opt_in_modes)

    @property
    def best_mode(self) -> str:
        """The one mode the quick preset times: the catalog's ``best_mode`` (the mode this framework's users
        would deploy: its fastest verified one), else the first of the default modes."""
        return self.best_mode_declared or (self.default_modes or self.modes)[0]

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
    if not repo_path(dockerfile).is_file():
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
    extra = sorted(set(t) - {"image", "modes", "env", "unavailable", "opt_in_modes", "best_mode"})
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
    opt_in = _strings(t.get("opt_in_modes", []), f"{at}.opt_in_modes")
    _check_modes(opt_in, modes, f"{at}.opt_in_modes")
    if opt_in and set(opt_in) >= set(modes):
        raise CatalogError(f"{at}.opt_in_modes: every mode is opt-in; the default matrix needs at least one")
    best = t.get("best_mode")
    if best is not None:
        if not isinstance(best, str):
            raise CatalogError(f"{at}.best_mode must be a string")
        _check_modes((best,), tuple(m for m in modes if m not in opt_in), f"{at}.best_mode")
    env = _string_map(t.get("env", {}), f"{at}.env")
    return Variant(name, image, modes, env, unavailable, opt_in, best)


def _check_modes(chosen: tuple[str, ...], modes: tuple[str, ...], where: str) -> None:
    """Each chosen mode must be one of ``modes`` (which the framework's modes already vouch for)."""
    for mode in chosen:
        if mode not in modes:
            raise CatalogError(f"{where}: {mode!r} is not one of the variant's modes ({', '.join(modes)})")
