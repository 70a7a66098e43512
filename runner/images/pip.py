"""The host's pip settings and the local wheels an image takes: what the build stage's pip (and the
no-build resolve) may use from the host, and the Python and platforms the images' pip accepts."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from ..catalog import ImageSpec
from .errors import ImageValidationError

PYTHON_VERSION = "3.11"  # the default release's (bookworm's); an image's own is ``ImageSpec.python``
# Each Debian release's glibc minor version (2.36, 2.31): the newest manylinux tag its pip accepts.
GLIBC_MINOR: dict[str, int] = {"bookworm": 36, "bullseye": 31}


def platforms(release: str = "bookworm") -> tuple[str, ...]:
    """The manylinux tags pip accepts on ``release`` (its glibc and every older one down to 2.17)."""
    return (
        *(f"manylinux_2_{minor}_x86_64" for minor in range(GLIBC_MINOR[release], 16, -1)),
        "manylinux2014_x86_64",
        "manylinux2010_x86_64",
        "manylinux1_x86_64",
        "linux_x86_64",
    )


PLATFORMS = platforms()


# --- the host's pip settings -----------------------------------------------------------------


@dataclass(frozen=True)
class PipSettings:
    """What the build stage's pip needs from the host's pip: CA bundle, indexes, local wheels."""

    cert: Path | None = None
    index_url: str | None = None  # http(s) only: file:// indexes do not exist in the container
    extra_index_urls: tuple[str, ...] = ()
    find_links: tuple[Path, ...] = ()  # local directories; their matching wheels are copied


def host_pip_settings(python: str = sys.executable) -> PipSettings:
    """The host's pip configuration (``pip config list``, then PIP_* variables, which win)."""
    values = _pip_config_values(python)
    values.update({k[4:].lower().replace("_", "-"): v for k, v in os.environ.items() if k.startswith("PIP_")})
    cert = values.get("cert")
    index = values.get("index-url")
    return PipSettings(
        cert=Path(cert) if cert and Path(cert).is_file() else None,
        index_url=index if index and _is_http(index) else None,
        extra_index_urls=tuple(u for u in values.get("extra-index-url", "").split() if _is_http(u)),
        find_links=tuple(p for p in (_local_dir(u) for u in values.get("find-links", "").split()) if p),
    )


def _pip_config_values(python: str) -> dict[str, str]:
    """``pip config list`` as {option: value}; ``install.x`` and ``global.x`` both become ``x``."""
    try:
        out = subprocess.run(
            [python, "-m", "pip", "config", "list"], capture_output=True, text=True, timeout=60, check=False
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return {}
    values: dict[str, str] = {}
    for line in out.splitlines():
        match = re.match(r"^(?:[^.=]*)\.([a-z0-9-]+)='(.*)'$", line.strip())
        if match and not line.startswith(":env:"):
            values[match.group(1)] = match.group(2)
    return values


def _is_http(url: str) -> bool:
    return url.startswith(("http://", "https://"))


def _local_dir(location: str) -> Path | None:
    path = Path(location.removeprefix("file://"))
    return path if path.is_dir() else None


# --- local wheels ------------------------------------------------------------------------------


def matching_wheels(image: ImageSpec, find_links: Iterable[Path]) -> list[Path]:
    """The local wheels that satisfy one of the image's pins and install on its Python.

    Only the pinned packages themselves (the CPU torch build exists only as a local wheel); their
    dependencies come from the index. A CUDA image never takes a ``+cpu`` build.
    """
    from packaging.requirements import InvalidRequirement, Requirement
    from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename

    try:
        pins = {canonicalize_name(r.name): r.specifier for r in map(Requirement, image.requirements)}
    except InvalidRequirement as exc:
        raise ImageValidationError(f"{image.name}: bad requirement: {exc}") from None
    found: dict[str, Path] = {}
    for directory in find_links:
        for wheel in sorted(directory.glob("*.whl")):
            try:
                name, version, _, tags = parse_wheel_filename(wheel.name)
            except InvalidWheelFilename:
                continue
            if name not in pins or not pins[name].contains(version, prereleases=True):
                continue
            if image.device == "cuda" and "cpu" in (version.local or ""):
                continue
            if any(_installable(tag.interpreter, tag.abi, tag.platform, image) for tag in tags):
                found.setdefault(wheel.name, wheel)
    return [found[n] for n in sorted(found)]


def _installable(interpreter: str, abi: str, platform: str, image: ImageSpec) -> bool:
    """Whether a wheel tag installs on the image's Python and Debian release."""
    cp = "cp" + image.python.replace(".", "")
    return (
        interpreter in (cp, "py3", "py2.py3", "cp3") or (interpreter.startswith("cp3") and abi == "abi3")
    ) and abi in (cp, "abi3", "none") and (platform == "any" or platform in platforms(image.release))  # fmt: skip
