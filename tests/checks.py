"""Equivalence checks shared by the tests: one process per environment, not one per cell.

A framework that lives in an environment of its own (a virtualenv, or a Debian bullseye image through
``tests/image_python.py``) is checked by ``python -m frameworks.check`` with every mode of that
environment at once, per model, the first time a test asks for one of those cells: the framework is
imported, and the model's weights and float64 reference made, once a session instead of once a cell
(per model, so that a tier that leaves VGG-16 out never computes it). Each test still gets its own
cell's report and makes every assertion it made before. A framework this interpreter has is checked
in-process (``check_cell``), as before.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest

from frameworks.backends.registry import FRAMEWORKS
from frameworks.check import CheckReport, check_cell
from tests.conftest import REPO_ROOT, framework_python, require_framework, unavailable_mode

TIMEOUT_S = 3000
_RUNS: dict[tuple[str, str, str, int], tuple[dict[tuple[str, str], dict[str, Any]], str]] = {}


def shared_check(framework: str, mode: str, model: str, seed: int) -> CheckReport:
    """The check of one cell: in-process here, else from its environment's one shared process."""
    python = require_framework(framework, mode)
    if python == sys.executable:
        return check_cell(framework, model, mode, seed=seed)
    key = (python, framework, model, seed)
    if key not in _RUNS:
        modes = [m for m in FRAMEWORKS[framework].modes
                 if not unavailable_mode(framework, m) and framework_python(framework, m) == python]  # fmt: skip
        _RUNS[key] = check_in(python, framework, modes, [model], seed)
    lines, stderr = _RUNS[key]
    line = lines.get((mode, model))
    if line is None:
        pytest.fail(f"{framework} {mode} {model}: no report from its environment's check process:\n{stderr[-3000:]}")
    if "error" in line:
        pytest.fail(f"{framework} {mode} {model}: {line['error']}")
    return CheckReport(**line)


def check_in(python: str, framework: str, modes: list[str], models: list[str],
             seed: int) -> tuple[dict[tuple[str, str], dict[str, Any]], str]:  # fmt: skip
    """``python -m frameworks.check`` for every mode x model in one process: its lines by (mode, model), and
    its stderr (what a missing line's test shows)."""
    args = ["--framework", framework, "--model", *models, "--mode", *modes, "--seed", str(seed)]
    proc = subprocess.run([python, "-m", "frameworks.check", *args], cwd=REPO_ROOT, capture_output=True, text=True,
                          timeout=TIMEOUT_S, check=False)  # fmt: skip
    return parse_lines(proc.stdout), proc.stderr


def parse_lines(stdout: str) -> dict[tuple[str, str], dict[str, Any]]:
    """The JSON lines ``frameworks.check`` printed (a framework may log other lines before them)."""
    lines = [json.loads(text) for text in stdout.splitlines() if text.startswith("{")]
    return {(line["mode"], line["model"]): line for line in lines}
