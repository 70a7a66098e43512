"""Where the project's own files are, in a checkout and in an installed wheel alike.

The runner reads files that are not Python modules: the catalog and the Dockerfiles under ``docker/``,
``docker-compose.yml``, and ``frameworks/`` as a whole (baked into images, run by the local launcher).
In a checkout they sit in the repository. A wheel cannot install ``docker/`` under its own name (the
Docker SDK owns the ``docker`` package in site-packages), so ``setup.py`` copies those files into
``runner/_repo/`` with their repository-relative names, plus ``build-info.json`` (the commit the
wheel was built from). ``repo_path("docker/catalog.toml")`` finds either, never the current directory.

A file is named here by its path relative to the repository root, in both layouts: those names go
into the images' spec hash and build context, so a wheel builds the very images a checkout of the
same commit builds.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

SOURCE_ROOT = Path(__file__).resolve().parent.parent  # the directory holding frameworks/, runner/, reports/
PACKAGED = Path(__file__).resolve().parent / "_repo"  # an installed wheel's copy of the repository's files
BUILD_INFO = "build-info.json"
FRAMEWORKS = "frameworks"
CELL_SOURCES = "sources"  # under the cache: frameworks/ alone, for the local launcher's venvs


def installed() -> bool:
    """True when this is an installed wheel (its repository files packaged), False in a checkout."""
    return (PACKAGED / "docker" / "catalog.toml").is_file()


def asset_root() -> Path:
    """Where the repository's non-package files are: the packaged copy, else the checkout itself."""
    return PACKAGED if installed() else SOURCE_ROOT


def repo_path(name: str) -> Path:
    """The file the repository calls ``name`` (``docker/Dockerfile``, ``frameworks/models.py``)."""
    if name == FRAMEWORKS or name.startswith(f"{FRAMEWORKS}/"):
        return SOURCE_ROOT / name  # a package: where Python imports it from
    return asset_root() / name


def frameworks_files() -> dict[str, Path]:
    """``frameworks/`` as the repository names its files (no bytecode): what images bake in."""
    root = SOURCE_ROOT / FRAMEWORKS
    files = (p for p in root.rglob("*") if "__pycache__" not in p.parts and p.suffix != ".pyc" and p.is_file())
    return {p.relative_to(SOURCE_ROOT).as_posix(): p for p in sorted(files)}


def built_commit() -> str | None:
    """The commit an installed wheel was built from (``build-info.json``); None in a checkout or when unrecorded."""
    try:
        data = json.loads((PACKAGED / BUILD_INFO).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    commit = data.get("commit") if isinstance(data, dict) else None
    return str(commit) if commit else None


@functools.lru_cache(maxsize=1)
def cell_root() -> Path:
    """The directory a local cell runs ``python -m frameworks.predict`` from (its ``sys.path[0]``).

    In a checkout that is the repository root, which holds no third-party package. An installed wheel's
    ``frameworks`` sits in site-packages beside the host's NumPy, which would shadow the venv's own build:
    there the cell runs from a copy of ``frameworks/`` alone, in the cache (one per content, made once).
    """
    if not installed():
        return SOURCE_ROOT
    from .paths import cache_dir

    files = frameworks_files()
    digest = hashlib.sha256()
    for name, path in files.items():
        digest.update(name.encode() + b"\0" + path.read_bytes())
    target = cache_dir() / CELL_SOURCES / digest.hexdigest()[:16]
    if (target / FRAMEWORKS / "__init__.py").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=target.parent))
    for name, path in files.items():
        (staging / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, staging / name)
    try:
        os.rename(staging, target)  # atomic: a concurrent runner sees the whole copy or none
    except OSError:  # another runner made it first
        shutil.rmtree(staging, ignore_errors=True)
    return target
