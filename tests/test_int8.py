"""The int8 transform: the NumPy quantizer, the one QDQ graph and its int8 reference, ONNX Runtime's two
toolchains, the kernel proof, and bad input. No test assumes int8 is faster: that depends on the CPU."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest

from frameworks.backends.numpy_backend import reference_forward
from frameworks.harness import CellRequest, run_cell
from frameworks.models import get_model
from frameworks.options import transform_points
from frameworks.quantization import (
    WEIGHT_QMAX,
    affine,
    fake_quant,
    fold_batch_norm,
    from_arrays,
    int8_reference,
    quantize,
    quantized_tensors,
    to_arrays,
)
from frameworks.scenarios import get_scenario
from frameworks.transforms import TransformPoint, get_transform
from frameworks.transforms.int8 import Int8Config
from frameworks.verify import compare, verification_input
from frameworks.weights import generate_weights, make_input

FLOAT32_ACCURACY = 0.8745  # the committed trained LeNet-5 (frameworks/trained/lenet5-fashion-mnist.json)


def _point(calibration: int = 32, toolchain: str = "qdq", calibrator: str = "minmax") -> TransformPoint:
    return TransformPoint("int8", Int8Config(calibration, toolchain, calibrator))


def test_batch_norm_folds_into_the_convolution_exactly() -> None:
    spec = get_model("mobilenet_v1")
    weights = generate_weights(spec, 0)
    folded_spec, folded = fold_batch_norm(spec, weights)
    assert not any(type(layer).__name__ == "BatchNorm" for layer in folded_spec.layers)
    x = verification_input(spec, 1, 0)
    assert compare(reference_forward(folded_spec, folded, x), reference_forward(spec, weights, x), 1e-4).verified


def test_activation_ranges_hold_zero_and_weights_use_seven_bits() -> None:
    assert affine(0.0, 2.55) == (pytest.approx(0.01), 0)  # a ReLU output: zero point at the bottom
    scale, zero = affine(-1.0, 1.0)
    assert 0 < zero < 255 and fake_quant(np.zeros(1), scale, zero)[0] == 0  # zero is exact
    spec = get_model("lenet5")
    params = quantize(spec, generate_weights(spec, 0), make_input(spec, 4, np.random.default_rng(0)), "minmax")
    for key in params.weight_scales:
        q = params.weight_int8(key)
        assert q.dtype == np.int8 and int(np.abs(q).max()) == WEIGHT_QMAX  # each channel's largest weight
    assert next(name for name, _ in quantized_tensors(params.spec)) == "input"


def test_scales_round_trip_through_arrays() -> None:
    spec = get_model("lenet5")
    weights = generate_weights(spec, 0)
    params = quantize(spec, weights, make_input(spec, 4, np.random.default_rng(0)), "percentile")
    again = from_arrays(spec, weights, to_arrays(params))
    assert again.digest() == params.digest()


@pytest.mark.framework
@pytest.mark.parametrize("model", ["lenet5", "mobilenet_v1"])
def test_onnx_runtime_runs_the_qdq_graph_as_the_int8_reference_says(model: str) -> None:
    """The fused int8 kernels' output is within REFERENCE_STEPS logit steps of the NumPy int8 reference; a graph
    written with one wrong scale is not (the check can fail)."""
    ort = pytest.importorskip("onnxruntime")
    from frameworks.backends.onnx_graph import to_qdq

    made = get_transform("int8").apply(get_model(model), 0, Int8Config(16))
    params = from_arrays(made.network, made.weights, made.arrays)
    x = verification_input(made.network, 2, 0)
    reference = int8_reference(params, x)
    from frameworks.quantization import reference_tolerance

    tolerance = reference_tolerance(params, reference)

    def run(p: object) -> np.ndarray:
        session = ort.InferenceSession(to_qdq(p).SerializeToString(), providers=["CPUExecutionProvider"])
        return session.run(None, {"input": x})[0]

    assert compare(run(params), reference, tolerance).verified
    name = [n for n, how in quantized_tensors(params.spec) if how == "calibrated"][1]
    scale, zero = params.activations[name]
    wrong = replace(params, activations={**params.activations, name: (scale / 8, zero)})  # saturates
    assert not compare(run(wrong), reference, tolerance).verified


def _cell(mode: str, point: TransformPoint, model: str = "lenet5"):
    config = get_scenario("latency").config(iterations=5, warmup=1, min_time=0.05, max_time=0.05)
    return run_cell(CellRequest("onnxruntime", model, mode, threads=1, transform=point), "latency", config)


@pytest.mark.framework
@pytest.mark.parametrize(
    ("toolchain", "calibrator"), [("qdq", "minmax"), ("native", "minmax"), ("native", "percentile")]
)
def test_onnx_runtime_int8_cells_say_which_kernels_ran(toolchain: str, calibrator: str) -> None:
    pytest.importorskip("onnxruntime")
    result = _cell("session", _point(100, toolchain, calibrator))
    assert result.status == "ok", result.error
    assert result.verified and result.accuracy is not None
    assert abs(result.accuracy - FLOAT32_ACCURACY) <= 0.01  # within one point of float32
    kernels = result.build["int8_kernels"]
    assert "QLinearConv x2" in kernels and "QGemm x3" in kernels, kernels
    assert result.transform is not None and result.transform.config["toolchain"] == toolchain
    assert result.transform.facts["calibration_images"].startswith("100 Fashion-MNIST training images")


@pytest.mark.framework
def test_a_graph_run_as_float_ops_is_never_an_int8_result() -> None:
    pytest.importorskip("onnxruntime")
    result = _cell("disabled", _point(16))
    assert result.status == "skipped" and result.points == ()
    assert "no int8 kernel ran" in (result.error or "") and "Conv x2" in (result.error or "")


def test_toolchains_default_to_both_and_each_value_is_a_cell() -> None:
    points = transform_points({"transforms": "int8", "calibration_sizes": "1 10"})
    assert [(p.config.calibration, p.config.toolchain) for p in points] == [  # type: ignore[attr-defined]
        (1, "qdq"), (1, "native"), (10, "qdq"), (10, "native")]  # fmt: skip
    assert points[0].label() == "int8 calibration=1 toolchain=qdq calibrator=minmax"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--calibration-sizes", "0"], "--calibration-sizes must be at least 1, got 0"),
        (["--toolchains", "tensorrt"], "--toolchains: unknown toolchain 'tensorrt'; valid: qdq, native"),
        (["--calibrators", "entropy"], "--calibrators: unknown calibrator 'entropy'; valid: minmax, percentile"),
    ],
)
def test_bad_int8_input_is_one_line_and_exit_2(args: list[str], message: str) -> None:
    command = [sys.executable, "-m", "frameworks.predict", "--framework", "numpy", "--model", "lenet5",
               "--transforms", "int8", *args]  # fmt: skip
    proc = subprocess.run(command, capture_output=True, text=True, check=False)
    assert proc.returncode == 2 and proc.stderr.strip() == f"error: {message}"


def test_a_framework_without_int8_is_a_skipped_cell_with_the_reason() -> None:
    command = [sys.executable, "-m", "frameworks.predict", "--framework", "numpy", "--model", "lenet5",
               "--transforms", "int8", "--toolchains", "qdq", "--calibration-sizes", "4", "--output", "-"]  # fmt: skip
    proc = subprocess.run(command, capture_output=True, text=True, check=False)
    cell = json.loads(proc.stdout.strip().splitlines()[-1])
    assert cell["status"] == "skipped" and "numpy does not run the int8 transform" in cell["error"]


def test_calibration_beyond_the_dataset_fails_the_cell_with_one_line() -> None:
    with pytest.raises(ValueError, match="--calibration-sizes 70000: Fashion-MNIST has 60000 training images"):
        get_transform("int8").apply(get_model("lenet5"), 0, Int8Config(70000))
    with pytest.raises(ValueError, match="vgg16 calibrates on at most 1783 images"):
        get_transform("int8").apply(get_model("vgg16"), 0, Int8Config(5000))


@pytest.mark.framework
def test_without_vnni_onnx_runtime_quantizes_with_the_seven_bit_weights_its_docs_advise(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The path a CPU without VNNI takes (AVX2 only), taken here whatever this CPU has: reduce_range, said in
    the cell, int8 kernels, the accuracy within a point."""
    pytest.importorskip("onnxruntime")
    from frameworks import environment

    monkeypatch.setattr(environment, "has_vnni", lambda: False)
    result = _cell("session", _point(100, "native"))
    assert result.status == "ok" and result.verified, result.error
    assert "reduce_range=True (no VNNI on this CPU)" in result.build["int8_model"]
    assert result.accuracy is not None and abs(result.accuracy - FLOAT32_ACCURACY) <= 0.01
