"""MXNet's own int8 path (``contrib.quantization.quantize_net`` on oneDNN), proved by the quantized symbol graph.

MXNet lives in an environment of its own (``tests.conftest.framework_python``), so each test runs in a fresh
subprocess of that interpreter, with MKLDNN switched on or off as the two variants run it. No test assumes
int8 is faster: that depends on the CPU.
"""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from tests.conftest import REPO_ROOT, require_framework

pytestmark = pytest.mark.framework

MARK = "RESULT "
FLOAT32_ACCURACY = 0.8745  # the committed trained LeNet-5 (frameworks/trained/lenet5-fashion-mnist.json)

CELL = """
import json
from frameworks.harness import CellRequest, run_cell
from frameworks.scenarios import get_scenario
from frameworks.transforms import TransformPoint
from frameworks.transforms.int8 import Int8Config

config = get_scenario("latency").config(iterations=5, warmup=1, min_time=0.05, max_time=0.05)
point = TransformPoint("int8", Int8Config(100, "native", "minmax"))
r = run_cell(CellRequest("mxnet", "lenet5", "{mode}", threads=1, transform=point), "latency", config)
print("RESULT " + json.dumps({{"status": r.status, "error": r.error, "verified": r.verified,
                              "accuracy": r.accuracy, "build": r.build}}), flush=True)
"""


def _cell(mode: str, mkldnn: str) -> dict:
    python = require_framework("mxnet")
    env = {**os.environ, "MXNET_MKLDNN_ENABLED": mkldnn, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([python, "-c", CELL.format(mode=mode)], cwd=REPO_ROOT, env=env, capture_output=True,
                          text=True, timeout=900, check=False)  # fmt: skip
    lines = [line for line in proc.stdout.splitlines() if line.startswith(MARK)]
    assert proc.returncode == 0 and lines, proc.stderr[-3000:]
    return json.loads(lines[-1][len(MARK) :])


def test_mxnet_hybrid_quantizes_lenet5_to_onednn_int8_and_keeps_its_accuracy() -> None:
    out = _cell("hybrid", "1")
    assert out["status"] == "ok", out["error"]
    kernels = out["build"]["int8_kernels"]
    assert not kernels.startswith("none") and "(int8)" in kernels, kernels
    assert out["verified"] and abs(out["accuracy"] - FLOAT32_ACCURACY) <= 0.01, (out["verified"], out["accuracy"])
    assert out["build"]["int8_model"].startswith("mxnet.contrib.quantization.quantize_net")


@pytest.mark.parametrize(("mode", "mkldnn", "why"), [("imperative", "1", "imperative mode runs float ops"),
                                                     ("hybrid", "0", "oneDNN is off")])  # fmt: skip
def test_mxnet_without_int8_kernels_is_a_skipped_cell_with_the_reason(mode: str, mkldnn: str, why: str) -> None:
    out = _cell(mode, mkldnn)
    assert out["status"] == "skipped" and "no int8 kernel ran" in out["error"] and why in out["error"], out["error"]
