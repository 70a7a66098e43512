"""DeepSparse in its image: the three models match the spec and the reference, and its sparse kernels are its own word.

DeepSparse 1.8.0 (its last release) needs Python < 3.12, onnx < 1.15 and NumPy < 2, so it lives in an image of
its own (``dlbench/deepsparse``). These tests run there, through ``tests/image_python.py`` (this checkout's
``frameworks/`` mounted read-only over the image's copy, sealed like a cell): ``python -m frameworks.check`` for
the three models in one process, and ``python -m frameworks.predict`` for what the build facts say.

``sparse_kernels`` is read from DeepSparse's debug analysis (the layers it compiled to its ``ks_``,
kernel-sparse, kernels): 90%-pruned LeNet-5 must have some, and the dense LeNet-5 none; either way round
fails. CI builds every CPU image (``.ci/setup``); a missing image or engine fails there and skips elsewhere.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from frameworks.backends.registry import IN_EFFECT, SPARSE_KERNELS
from frameworks.models import MODELS, get_model
from frameworks.result import Result
from tests.checks import check_in
from tests.conftest import IN_CI, assert_short_facts, run_predict
from tests.image_python import image_python

pytestmark = [pytest.mark.framework, pytest.mark.docker, pytest.mark.slow]

IMAGE = "deepsparse"
FRAMEWORK, MODE = "deepsparse", "engine"
SEED = 3  # fresh weights and inputs, as tests/test_equivalence.py uses: not the benchmarks' seed
QUICK = ("--iterations", "1", "--warmup", "0", "--min-time", "0", "--max-time", "0")
# "3 of 5 layers on ks_ kernels: fc1 0.95, ..." / "0 of 4 layers on ks_ (kernel-sparse) kernels; ..."
SPARSE = re.compile(r"^(?P<sparse>\d+) of (?P<layers>\d+) layers on ks_ ")

_CHECKS: list[tuple[dict[tuple[str, str], dict[str, Any]], str]] = []


def _python() -> str:
    """The image's ``python`` as a host executable; a missing image or engine skips (fails in CI)."""
    python = image_python(IMAGE)
    if python is None:
        message = (f"dlbench/{IMAGE} is not built or no engine answers (python -m runner build cpu-deepsparse; "
                   "CI builds every CPU image)")  # fmt: skip
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    return python


def _reports() -> tuple[dict[tuple[str, str], dict[str, Any]], str]:
    """Every model checked in one container (one import of DeepSparse), the first time a test asks: the
    reports by (mode, model), and the process's stderr."""
    if not _CHECKS:
        _CHECKS.append(check_in(_python(), FRAMEWORK, [MODE], list(MODELS), SEED))
    return _CHECKS[0]


@pytest.mark.parametrize("model", list(MODELS))
def test_matches_spec_and_reference_in_image(model: str) -> None:
    reports, stderr = _reports()
    report = reports.get((MODE, model))
    assert report is not None, f"no report for {model} from the image's check process:\n{stderr[-3000:]}"
    assert "error" not in report, report["error"]
    spec = get_model(model)
    assert (report["params"], report["buffers"]) == (spec.params, spec.buffers), "counts differ from the spec"
    assert report["max_error"] <= report["tolerance"] == spec.tolerance, (
        f"max relative error {report['max_error']:.3g} > {report['tolerance']:g}"
    )
    assert report["verified"]


def _predict(*args: str) -> list[Result]:
    proc = run_predict(_python(), "--framework", FRAMEWORK, "--model", "lenet5", "--mode", MODE, "--threads", "1",
                       *QUICK, *args)  # fmt: skip
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    assert proc.returncode == 0 and lines, proc.stderr[-3000:]
    return [Result.from_json(line) for line in lines]


def test_pruned_lenet5_runs_sparse_kernels_by_deepsparses_own_analysis_and_the_dense_one_none() -> None:
    dense, pruned = _predict("--transforms", "none", "prune", "--sparsities", "0.9")
    assert pruned.transform is not None and pruned.transform.name == "prune" and dense.transform is None
    for result in (dense, pruned):
        assert result.status == "ok" and result.verified, result.error
        assert result.build is not None and result.build[IN_EFFECT] == "DeepSparse"
        assert_short_facts(result.build)
        assert result.threads_in_use == 1 and result.build["analysis_threads"] == "1"
        assert result.build["instruction_set"], "neither the banner nor the engine named an instruction set"
    facts = pruned.build or {}
    found = SPARSE.match(facts[SPARSE_KERNELS])
    assert found and int(found["sparse"]) > 0, f"90% pruned, yet DeepSparse says: {facts[SPARSE_KERNELS]}"
    assert "fc1" in facts[SPARSE_KERNELS] and "ks_gevm_be" in facts["sparse_kernel_kinds"]
    facts = dense.build or {}
    found = SPARSE.match(facts[SPARSE_KERNELS])
    assert found and found["sparse"] == "0", f"dense weights, yet DeepSparse says: {facts[SPARSE_KERNELS]}"
    assert facts["kernel_sparsity"] == f"0 in all {found['layers']} layers" and "sparse_kernel_kinds" not in facts
