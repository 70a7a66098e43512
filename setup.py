"""The build hook an installed wheel needs: the repository files the runner reads that live outside its packages.

``docker/`` (the catalog, the Dockerfiles) cannot be installed under its own name: ``docker`` in
site-packages is the Docker SDK. So the wheel carries them in ``runner/_repo/`` under their repository
names (``runner.source.repo_path`` finds them there), with ``build-info.json``: the commit the wheel was
built from, which ``runner.provenance`` records instead of asking git about whatever holds the install.
Everything else is in ``pyproject.toml``; an editable install reads the checkout itself and copies nothing.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent
PACKAGED = Path("runner") / "_repo"  # runner.source.PACKAGED
EXTRAS = Path("docker") / "build-extras"  # the user's CA bundle and wheels go there: only its README ships


def repo_files() -> list[Path]:
    """The repository-relative files the wheel carries: ``docker/`` (less local build extras) and the compose file."""
    files = [p.relative_to(HERE) for p in sorted((HERE / "docker").rglob("*")) if p.is_file()]
    files = [p for p in files if EXTRAS not in p.parents or p == EXTRAS / "README.md"]
    return [*files, Path("docker-compose.yml")]


def _git(*args: str) -> str:
    return subprocess.run(["git", "-C", str(HERE), *args], capture_output=True, text=True, timeout=30,
                          check=True).stdout.strip()  # fmt: skip


def commit() -> str | None:
    """The checkout's commit (``+dirty`` when tracked files differ), or None outside a git checkout."""
    try:
        head = _git("rev-parse", "HEAD")
        dirty = _git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return None
    return head + ("+dirty" if dirty else "")


class BuildPy(build_py):
    """``build_py`` plus the copies under ``runner/_repo/`` (not for editable installs: they read the checkout)."""

    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return
        target = Path(self.build_lib) / PACKAGED
        shutil.rmtree(target, ignore_errors=True)  # a stale build/ must not ship files the repository dropped
        for name in repo_files():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(HERE / name, target / name)
        (target / "build-info.json").write_text(json.dumps({"commit": commit()}) + "\n", encoding="utf-8")


setup(cmdclass={"build_py": BuildPy})
