"""Validation without a build (the CUDA images on a machine without a GPU): the Dockerfile check plus
a ``pip install --dry-run`` resolve of the pins on the host, with a cache of successful resolves."""

from __future__ import annotations

import dataclasses
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from ..catalog import ImageSpec
from .context import build_args
from .dockerfile import check_dockerfile
from .errors import ImageValidationError
from .pip import PipSettings, host_pip_settings, matching_wheels, platforms


@dataclass(frozen=True)
class Resolved:
    name: str
    version: str
    url: str


@dataclass(frozen=True)
class Validation:
    image: str
    stages: int
    packages: list[Resolved]
    cached: bool = False  # the resolve was taken from the cache (same spec hash, within its lifetime)


def resolve_command(image: ImageSpec, pip: PipSettings, target: Path, report: Path, links: Path) -> list[str]:
    """``pip install --dry-run`` for the image's Python and platform: resolves the pins and all their
    dependencies from metadata (PEP 658), downloading no wheel that the index describes."""
    command = [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet"]
    command += ["--target", str(target), "--report", str(report), "--only-binary=:all:"]
    command += ["--python-version", image.python, "--implementation", "cp"]
    for platform in platforms(image.release):
        command += ["--platform", platform]
    if pip.cert:
        command += ["--cert", str(pip.cert)]
    if pip.index_url:
        command += ["--index-url", pip.index_url]
    for url in pip.extra_index_urls:
        command += ["--extra-index-url", url]
    command += ["--find-links", str(links), *image.requirements]
    return command


def resolve_requirements(image: ImageSpec, pip: PipSettings | None = None, timeout: float = 600) -> list[Resolved]:
    """What the build stage's pip would install, resolved on the host with the same inputs (the
    http(s) indexes, the CA bundle and the matching local wheels, not the host's pip config)."""
    settings = pip if pip is not None else host_pip_settings()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env.update(PIP_CONFIG_FILE=os.devnull, PIP_DISABLE_PIP_VERSION_CHECK="1")
    with tempfile.TemporaryDirectory(prefix="dlbench-resolve-") as tmp:
        links = Path(tmp) / "wheels"
        links.mkdir()
        for wheel in matching_wheels(image, settings.find_links):
            (links / wheel.name).symlink_to(wheel)
        report = Path(tmp) / "report.json"
        command = resolve_command(image, settings, Path(tmp) / "target", report, links)
        try:
            proc = subprocess.run(command, capture_output=True, text=True, env=env, timeout=timeout, check=False)
        except subprocess.TimeoutExpired:
            raise ImageValidationError(f"{image.name}: resolving the pins took more than {timeout:.0f}s") from None
        if proc.returncode != 0:
            errors = [line for line in proc.stderr.splitlines() if line.startswith("ERROR")] or ["?"]
            raise ImageValidationError(f"{image.name}: pins do not resolve: {errors[-1]}")
        data = json.loads(report.read_text(encoding="utf-8"))
    return [
        Resolved(i["metadata"]["name"], i["metadata"]["version"], i["download_info"]["url"]) for i in data["install"]
    ]


def default_validation_cache() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "dlbench" / "validated"


VALIDATION_CACHE = default_validation_cache()
VALIDATION_TTL_S = 24 * 3600  # an index changes slowly; a day-old resolve of the same pins still stands


def validate_image(
    image: ImageSpec,
    *,
    pip: PipSettings | None = None,
    resolve: bool = True,
    cache: Path | None = VALIDATION_CACHE,
) -> Validation:
    """Check what can be checked without building: the Dockerfile (parse, args, stages) and that the
    pins and their dependencies resolve for the image's Python on manylinux x86_64 (its release's
    glibc). For the CUDA images on a machine with no GPU, where downloading gigabytes of CUDA wheels
    would be pointless.

    A resolve takes 20 s to 2 min: a successful one is kept in ``cache`` (a directory; None: no cache)
    and reused for a day while the image's spec hash is unchanged.
    """
    settings = pip if pip is not None else host_pip_settings()
    parsed = check_dockerfile(image, build_args(image, None, settings))
    if not resolve:
        return Validation(image.name, len(parsed.stages), [])
    stamp = cache / f"{image.name}-{image.spec_hash()}.json" if cache else None
    packages = _cached_resolve(stamp)
    if packages is not None:
        return Validation(image.name, len(parsed.stages), packages, cached=True)
    packages = resolve_requirements(image, settings)
    if stamp is not None:
        stamp.parent.mkdir(parents=True, exist_ok=True)
        stamp.write_text(json.dumps([dataclasses.asdict(p) for p in packages]), encoding="utf-8")
    return Validation(image.name, len(parsed.stages), packages)


def _cached_resolve(stamp: Path | None) -> list[Resolved] | None:
    if stamp is None or not stamp.is_file() or time.time() - stamp.stat().st_mtime > VALIDATION_TTL_S:
        return None
    try:
        return [Resolved(**p) for p in json.loads(stamp.read_text(encoding="utf-8"))]
    except (ValueError, TypeError):
        return None


def describe(validation: Validation) -> str:
    """One line per validated image, for the CLI."""
    names = " ".join(f"{p.name}=={p.version}" for p in validation.packages)
    cached = " (cached resolve)" if validation.cached else ""
    return f"{validation.image}: Dockerfile ok ({validation.stages} stages); resolves {len(validation.packages)} " \
        f"packages{cached}: {shlex.quote(names)}"  # fmt: skip
