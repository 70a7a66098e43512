"""Every framework x mode x model computes the spec's network: same parameter count, same output.

These are the tests that make a timing publishable: a cell that passes here measured the same
model with the same weights as every other cell.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from frameworks.backends.registry import FLOAT32, FRAMEWORKS
from frameworks.check import CheckReport, check_cell
from frameworks.models import MODELS
from tests.conftest import REPO_ROOT, require_framework

CELLS = [
    pytest.param(fw.name, mode, model, id=f"{fw.name}-{mode}-{model}", marks=[pytest.mark.framework])
    for fw in FRAMEWORKS.values()
    for mode in fw.modes
    for model in MODELS
]

# Fresh weights and inputs: not the seed the benchmarks use.
SEEDS = (3,)


def _check(framework: str, model: str, mode: str, seed: int) -> CheckReport:
    python = require_framework(framework, mode)
    if python == sys.executable:
        return check_cell(framework, model, mode, seed=seed)
    args = ["--framework", framework, "--model", model, "--mode", mode, "--seed", str(seed)]
    proc = subprocess.run(
        [python, "-m", "frameworks.check", *args],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=1800, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    return CheckReport(**json.loads(proc.stdout.strip().splitlines()[-1]))


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize(("framework", "mode", "model"), CELLS)
def test_matches_spec_and_reference(framework: str, mode: str, model: str, seed: int) -> None:
    report = _check(framework, model, mode, seed)
    assert report.params == report.spec_params, "trainable parameter count differs from the spec"
    assert report.buffers == report.spec_buffers, "batch-norm running statistics differ from the spec"
    if report.precision not in (None, FLOAT32):
        # The framework chose a precision below float32 on this CPU (OpenVINO's auto picks bf16 where the
        # CPU has it): the same network, but float32's tolerance cannot hold, and the cell must say so.
        assert not report.verified, f"{report.precision} passed as float32 (max relative error {report.max_error:.3g})"
        assert report.max_error > report.tolerance
        return
    assert report.max_error <= report.tolerance, f"max relative error {report.max_error:.3g} > {report.tolerance:g}"
    assert report.verified
