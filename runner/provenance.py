"""Which code made a run: the project's version and git commit, recorded in run.json (pyperf-style
metadata), so a figure can be traced to the source that measured it."""

from __future__ import annotations

import subprocess
from importlib import metadata
from pathlib import Path

from .catalog import REPO_ROOT
from .source import built_commit, installed

PROJECT = "dlbench-matrix"
NOT_A_CHECKOUT = "not a git checkout"


def project_version() -> str | None:
    """The installed distribution's version (None where the project runs uninstalled from a copy)."""
    try:
        return metadata.version(PROJECT)
    except metadata.PackageNotFoundError:
        return None


def project_commit(root: Path = REPO_ROOT) -> str:
    """The checkout's commit, ``+dirty`` when tracked files differ from it; ``NOT_A_CHECKOUT`` elsewhere.

    An installed wheel says the commit it was built from: asking git there would name whatever repository
    happens to hold the environment (a venv inside some clone), not the code that runs.
    """
    if root == REPO_ROOT and installed():
        return built_commit() or NOT_A_CHECKOUT
    try:
        head = _git(root, "rev-parse", "HEAD")
        dirty = _git(root, "status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.CalledProcessError, subprocess.TimeoutExpired):
        return NOT_A_CHECKOUT
    return head + ("+dirty" if dirty else "")


def provenance() -> tuple[str | None, str]:
    return project_version(), project_commit()


def _git(root: Path, *args: str) -> str:
    done = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, timeout=30, check=True)
    return done.stdout.strip()
