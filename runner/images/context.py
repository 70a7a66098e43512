"""The build context: the build args and labels an image is built with, and the tarball holding only
what the Dockerfile copies (``frameworks/``, the Dockerfile and ``docker/build-extras/``). Its mtimes
are fixed, so an unchanged file keeps the classic builder's COPY cache."""

from __future__ import annotations

import io
import os
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from ..catalog import ImageSpec, baked_sources
from ..source import repo_path
from .pip import PipSettings, matching_wheels

LABEL_HASH = "dlbench.spec-hash"
LABEL_IMAGE = "dlbench.image"
LABEL_BASE = "dlbench.base-image"
LABEL_BASE_ID = "dlbench.base-id"
EXTRAS_DIR = "docker/build-extras"  # in the context and in the repository (README only, for compose)
CA_NAME = "ca-bundle.crt"
CONTEXT_MTIME = 946684800  # fixed, so an unchanged file keeps the classic builder's COPY cache


# --- build arguments and labels ------------------------------------------------------------------


def catalog_build_args(image: ImageSpec, base_image: str | None = None) -> dict[str, str]:
    """The build args the catalog determines: shared by the runner's builds and docker-compose.yml."""
    args = {
        "BASE_IMAGE": base_image or image.base_image,
        "REQUIREMENTS": " ".join(image.requirements),
        "APT_PACKAGES": " ".join(image.apt),
        "FRAMEWORK": image.framework,
        "DEVICE": image.device,
        "IMAGE_NAME": image.name,
    }
    args.update(image.build_args)
    return args


def build_args(image: ImageSpec, base_image: str | None, pip: PipSettings) -> dict[str, str]:
    """Catalog build args plus the host's http(s) package indexes (read by the build stage only)."""
    args = catalog_build_args(image, base_image)
    if pip.index_url:
        args["INDEX_URL"] = pip.index_url
    if pip.extra_index_urls:
        args["EXTRA_INDEX_URL"] = " ".join(pip.extra_index_urls)
    return args


def image_labels(image: ImageSpec, base_image: str, base_id: str | None) -> dict[str, str]:
    labels = {LABEL_HASH: image.spec_hash(), LABEL_IMAGE: image.name, LABEL_BASE: base_image}
    if base_id:
        labels[LABEL_BASE_ID] = base_id
    return labels


# --- the build context ---------------------------------------------------------------------------


def context_files(image: ImageSpec) -> dict[str, Path]:
    """Repository files the Dockerfile copies, {name in the context: path}: the files the spec hash covers."""
    files = baked_sources(image)
    readme = repo_path(f"{EXTRAS_DIR}/README.md")
    if readme.is_file():
        files[f"{EXTRAS_DIR}/README.md"] = readme
    return files


def extra_files(image: ImageSpec, pip: PipSettings) -> dict[str, Path]:
    """Build-stage-only inputs: the host's CA bundle and the local wheels matching the pins."""
    files: dict[str, Path] = {}
    if pip.cert:
        files[f"{EXTRAS_DIR}/{CA_NAME}"] = pip.cert
    for wheel in matching_wheels(image, pip.find_links):
        files[f"{EXTRAS_DIR}/wheels/{wheel.name}"] = wheel
    return files


def write_context(image: ImageSpec, out: IO[bytes], pip: PipSettings | None = None) -> list[str]:
    """Write the build context tarball to ``out``; returns its file names (sorted)."""
    files = {**context_files(image), **extra_files(image, pip or PipSettings())}
    with tarfile.open(fileobj=out, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for name in _with_parents(sorted(files)):
            if name in files:
                _add_file(tar, name, files[name])
            else:
                _add_dir(tar, name)
    return sorted(files)


def build_context(image: ImageSpec, pip: PipSettings | None = None) -> bytes:
    """The build context as bytes (builds stream it from a temporary file instead)."""
    buffer = io.BytesIO()
    write_context(image, buffer, pip)
    return buffer.getvalue()


def _with_parents(names: list[str]) -> Iterator[str]:
    seen: set[str] = set()
    for name in names:
        parts = name.split("/")
        for depth in range(1, len(parts) + 1):
            entry = "/".join(parts[:depth])
            if entry not in seen:
                seen.add(entry)
                yield entry


def _add_file(tar: tarfile.TarFile, name: str, path: Path) -> None:
    info = tarfile.TarInfo(name)
    info.size = path.stat().st_size
    info.mode = 0o755 if os.access(path, os.X_OK) else 0o644
    info.mtime = CONTEXT_MTIME
    with path.open("rb") as data:
        tar.addfile(info, data)


def _add_dir(tar: tarfile.TarFile, name: str) -> None:
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE
    info.mode = 0o755
    info.mtime = CONTEXT_MTIME
    tar.addfile(info)
