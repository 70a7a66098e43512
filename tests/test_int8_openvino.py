"""OpenVINO's int8 cells: the project's QDQ graph and NNCF's own quantization, each proved by the executed graph.

OpenVINO lives in an environment of its own (``tests.conftest.framework_python``: the runner's venv of its
image, which holds NNCF), so every test runs in a fresh subprocess of that interpreter, as in
``test_backends_openvino_tvm``. No test assumes int8 is faster: that depends on the CPU.
"""

from __future__ import annotations

import json
import os
import re
import subprocess

import pytest

from tests.conftest import REPO_ROOT, require_framework

pytestmark = pytest.mark.framework

MARK = "RESULT "
PROBE_ENV = ("OMP_NUM_THREADS", "TVM_NUM_THREADS")  # set by the probes themselves, never inherited
FLOAT32_ACCURACY = 0.8745  # the committed trained LeNet-5 (frameworks/trained/lenet5-fashion-mnist.json)

PRELUDE = """
import json
from frameworks.harness import CellRequest, run_cell
from frameworks.scenarios import get_scenario
from frameworks.transforms import TransformPoint
from frameworks.transforms.int8 import Int8Config

def emit(obj):
    print("RESULT " + json.dumps(obj), flush=True)

def cell(model, mode, calibration, toolchain, calibrator):
    config = get_scenario("latency").config(iterations=5, warmup=1, min_time=0.05, max_time=0.05)
    point = TransformPoint("int8", Int8Config(calibration, toolchain, calibrator))
    r = run_cell(CellRequest("openvino", model, mode, threads=1, transform=point), "latency", config)
    return {"status": r.status, "error": r.error, "verified": r.verified, "max_error": r.max_error,
            "tolerance": r.tolerance, "accuracy": r.accuracy, "build": r.build}
"""


def _probe(code: str) -> dict:
    """Run ``code`` in a fresh interpreter of OpenVINO's environment; the object it ``emit``s."""
    python = require_framework("openvino", "f32")
    clean = {k: v for k, v in os.environ.items() if k not in PROBE_ENV}
    proc = subprocess.run(
        [python, "-c", PRELUDE + code],
        cwd=REPO_ROOT, env=clean, capture_output=True, text=True, timeout=900, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = [line for line in proc.stdout.splitlines() if line.startswith(MARK)]
    assert lines, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert len(lines) == len(proc.stdout.splitlines()), "something besides the result wrote to stdout"
    return json.loads(lines[-1][len(MARK) :])


@pytest.mark.parametrize(
    ("toolchain", "calibrator"), [("qdq", "minmax"), ("native", "minmax"), ("native", "percentile")]
)
def test_openvino_lenet5_int8_runs_int8_kernels_and_keeps_its_accuracy(toolchain: str, calibrator: str) -> None:
    """LeNet-5's convolutions and dense layers execute in i8/u8 (the executed graph says so; with one thread the
    plugin may fuse fc2 and fc3 into a float snippet, which the proof lists as float), the output passes its
    check (the int8 reference for qdq, float64 for native) and test accuracy is within one point."""
    out = _probe(f'emit(cell("lenet5", "f32", 100, "{toolchain}", "{calibrator}"))')
    assert out["status"] == "ok", out["error"]
    kernels = out["build"]["int8_kernels"]
    assert not kernels.startswith("none"), kernels
    int8, _, floats = kernels.partition("; float: ")
    # both convolutions in i8/u8: one group ("Convolution x2 (u8 ...)"), or one per precision where the plugin
    # picks i8 for the first (AMX on an Intel Xeon: "Convolution x1 (i8 brgconv_avx512_amx_i8), Convolution x1 (u8 ...")
    convs = re.findall(r"Convolution x(\d) \([iu]8 ", int8)
    assert sum(int(n) for n in convs) == 2 and re.search(r"FullyConnected x\d \([iu]8 ", int8), kernels
    # all three dense layers accounted for: int8 FullyConnected nodes, or matmuls the plugin fused into a snippet
    dense = re.findall(r"(?:FullyConnected|MatMul in Subgraph) x(\d)", kernels)
    assert sum(int(n) for n in dense) == 3 and "Convolution" not in floats, kernels
    assert out["verified"] and out["max_error"] <= out["tolerance"], (out["max_error"], out["tolerance"])
    assert abs(out["accuracy"] - FLOAT32_ACCURACY) <= 0.01, out["accuracy"]
    assert out["build"]["inference_precision"] == "f32"  # the f32 hint holds the float parts; int8 still runs
    how = out["build"]["int8_model"]
    assert how.startswith("the project's QDQ graph") if toolchain == "qdq" else how.startswith("nncf "), how
    if toolchain == "native":
        assert ("quantiles" in how) == (calibrator == "percentile"), how
    assert int(out["build"]["model_bytes"]) > 0


def test_openvino_int8_proof_reads_a_float_model_as_none() -> None:
    """The proof reads the executed graph's precisions, not the request: the float model compiles to float
    kernels, and then the proof starts with "none" (a skipped cell, never int8)."""
    out = _probe("""
from frameworks.backends.onnx_graph import checked_bytes
from frameworks.backends.registry import load_backend
from frameworks.models import get_model
from frameworks.weights import canonical_weights
backend = load_backend("openvino")
spec = get_model("lenet5")
model = backend.core().read_model(checked_bytes(spec, canonical_weights(spec, 0))[0])
model.reshape({"input": [1, *spec.input_shape]})
compiled = backend.core().compile_model(model, "CPU", backend.compile_config("f32", 1))
emit({"proof": backend.int8_layers(compiled, model)})
""")  # fmt: skip
    proof = out["proof"]
    assert proof.startswith("none: every conv and dense node ran in float"), proof
    assert "Convolution x2 (f32 " in proof, proof
