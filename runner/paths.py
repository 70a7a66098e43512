"""Where the runner keeps what outlives a run: local virtualenvs, the canonical inputs, wall-time history."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """The runner's cache: local virtualenvs, the canonical inputs."""
    return Path(os.environ.get("DLBENCH_CACHE") or Path.home() / ".cache" / "dlbench")


def inputs_root() -> Path:
    return cache_dir() / "inputs"


def history_path() -> Path:
    return cache_dir() / "walls.json"
