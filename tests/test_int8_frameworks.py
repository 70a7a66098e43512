"""The native int8 toolchains of TFLite and torch, one LeNet-5 cell each through the real harness.

A cell is int8 only where the framework itself says an int8 kernel ran (``int8_kernels``, read from the
interpreter's graph or oneDNN's verbose log): these pin that down on the trained LeNet-5, calibrated on
Fashion-MNIST training images, and that its int8 test accuracy stays within a point of float32's.
"""

from __future__ import annotations

import pytest

from frameworks.backends.registry import INT8_KERNELS
from frameworks.harness import CellRequest, run_cell
from frameworks.scenarios import get_scenario
from frameworks.transforms import TransformPoint
from frameworks.transforms.int8 import Int8Config

pytestmark = [pytest.mark.framework, pytest.mark.slow]

FLOAT_ACCURACY = 0.8745  # LeNet-5's float32 Fashion-MNIST test accuracy with the trained weights
ACCURACY_MARGIN = 0.01
# framework -> (its int8 mode, the modules its toolchain needs)
CELLS = {"tflite": ("xnnpack", ("tensorflow", "ai_edge_litert")), "torch": ("compile", ("torch", "torchao"))}


@pytest.mark.parametrize("framework", sorted(CELLS))
def test_lenet5_native_int8_runs_int8_kernels(framework: str) -> None:
    """A short latency cell: ok, int8 kernels named by the framework, verified, accuracy within a point."""
    mode, modules = CELLS[framework]
    for module in modules:
        pytest.importorskip(module)
    config = get_scenario("latency").config(iterations=20, warmup=2, min_time=0.2, max_time=0.2)
    point = TransformPoint("int8", Int8Config(100, "native", "minmax"))
    result = run_cell(CellRequest(framework, "lenet5", mode, threads=2, transform=point), "latency", config)
    assert result.status == "ok", result.error
    kernels = result.build.get(INT8_KERNELS, "")
    assert kernels and not kernels.startswith("none"), kernels
    assert result.verified, (result.max_error, result.tolerance)
    assert result.accuracy is not None
    assert abs(result.accuracy - FLOAT_ACCURACY) <= ACCURACY_MARGIN, result.accuracy


@pytest.mark.parametrize("framework", sorted(CELLS))
def test_percentile_cells_are_skipped_with_the_reason(framework: str) -> None:
    """Neither toolchain offers a percentile calibrator: such a cell is skipped before anything is built."""
    mode, modules = CELLS[framework]
    for module in modules:
        pytest.importorskip(module)
    config = get_scenario("latency").config(iterations=2, warmup=0, min_time=0.0, max_time=0.0)
    point = TransformPoint("int8", Int8Config(8, "native", "percentile"))
    result = run_cell(CellRequest(framework, "lenet5", mode, threads=1, transform=point), "latency", config)
    assert result.status == "skipped"
    assert "calibrator=minmax" in (result.error or "")
