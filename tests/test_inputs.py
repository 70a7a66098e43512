"""The canonical inputs made once per run: written, reused, handed to cells and checked there."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from frameworks import inputs
from frameworks.models import get_model
from frameworks.result import Result
from frameworks.verify import compute_reference, verification_input
from frameworks.weights import generate_weights
from tests.conftest import run_predict

LENET = get_model("lenet5")


@pytest.fixture(autouse=True)
def nothing_handed():
    yield
    inputs._handed = None


def test_a_smaller_batch_is_a_prefix_of_a_larger_one() -> None:
    """What lets one stored reference serve every batch size of a run."""
    for spec in (LENET, get_model("mobilenet_v1")):
        assert np.array_equal(verification_input(spec, 4, 0)[:2], verification_input(spec, 2, 0))
    assert np.array_equal(compute_reference(LENET, 4, 0)[:3], compute_reference(LENET, 3, 0))


def test_written_once_reused_and_remade_when_damaged(tmp_path: Path) -> None:
    directory, sha = inputs.write_inputs(tmp_path, LENET, 0, 8)
    manifest = json.loads((directory / inputs.MANIFEST).read_text())
    assert manifest["batch"] == 8 and set(manifest["files"]) == {
        *(f"{k}.npy" for k in LENET.tensors()),
        "reference.npy",
    }
    assert all((directory / name).stat().st_mode & 0o777 == 0o644 for name in manifest["files"]), "cells can read"
    stamp = (directory / "conv1.weight.npy").stat().st_mtime_ns
    assert inputs.write_inputs(tmp_path, LENET, 0, 4) == (directory, sha), "a batch it covers: reused"
    assert (directory / "conv1.weight.npy").stat().st_mtime_ns == stamp
    (directory / "fc1.bias.npy").write_bytes(b"damaged")
    assert inputs.write_inputs(tmp_path, LENET, 0, 8) == (directory, sha), "made again, to the same bytes"
    assert (directory / "fc1.bias.npy").read_bytes() != b"damaged"


def test_handed_inputs_are_the_generated_ones(tmp_path: Path) -> None:
    directory, sha = inputs.write_inputs(tmp_path, LENET, 0, 4)
    inputs.hand(str(directory), sha)
    handed = inputs.handed_weights(LENET, 0)
    assert handed is not None and all(np.array_equal(handed[k], v) for k, v in generate_weights(LENET, 0).items())
    assert np.array_equal(inputs.handed_reference(LENET, 2, 0), compute_reference(LENET, 2, 0))
    assert inputs.handed_weights(LENET, 1) is None, "another seed: not these inputs"
    with pytest.raises(inputs.InputsMismatch, match="holds 4 images, batch 5 needs more"):
        inputs.handed_reference(LENET, 5, 0)


def _predict(directory: Path, sha: str, *extra: str) -> Result:
    args = ["--framework", "numpy", "--model", "lenet5", "--iterations", "3", "--min-time", "0",
            "--max-time", "0", *extra]  # fmt: skip
    proc = run_predict(sys.executable, *args, "--inputs", str(directory), "--inputs-sha256", sha)
    return Result.from_json(proc.stdout.strip().splitlines()[-1])


def test_a_cell_on_handed_inputs_is_verified_as_before(tmp_path: Path) -> None:
    directory, sha = inputs.write_inputs(tmp_path, LENET, 0, 4)
    result = _predict(directory, sha)
    plain = Result.from_json(run_predict(sys.executable, "--framework", "numpy", "--model", "lenet5",
                                         "--iterations", "3", "--min-time", "0", "--max-time", "0").stdout)  # fmt: skip
    assert result.status == "ok" and result.verified and result.max_error == plain.max_error
    sweep = _predict(directory, sha, "--scenario", "throughput", "--batches", "1", "4")
    assert sweep.status == "ok" and all(p.verified for p in sweep.points), "the points got the inputs too"


def test_a_damaged_or_foreign_input_fails_the_cell(tmp_path: Path) -> None:
    directory, sha = inputs.write_inputs(tmp_path, LENET, 0, 1)
    wrong = _predict(directory, "0" * 64)
    assert wrong.status == "failed" and "the runner made 0000000000000000" in (wrong.error or "")
    weights = directory / "conv2.weight.npy"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    damaged = _predict(directory, sha)
    assert damaged.status == "failed" and "conv2.weight.npy has sha256" in (damaged.error or "")


def test_predict_wants_both_flags(tmp_path: Path) -> None:
    proc = run_predict(sys.executable, "--framework", "numpy", "--model", "lenet5", "--inputs", str(tmp_path))
    assert proc.returncode == 2 and "--inputs and --inputs-sha256 go together" in proc.stderr
