"""OpenVINO, Apache TVM and ONNX Runtime's OpenVINO EP beyond output equivalence: what they build and run.

``test_equivalence`` proves the numbers; these tests pin down what makes a timing mean what the
report says: the spec's ONNX graph imported as it is, the precision the compiled model really
computes in (OpenVINO's ``auto`` picks bf16 where the CPU has it, and must say so), the latency
hint and the threads set and read back, the target TVM really compiled for, how its kernels were
scheduled (untuned, the default CPU rules, a tuning database of this machine or none),
that every node of the OpenVINO EP's session runs on OpenVINO, and clear errors.

Each of the three lives in an environment of its own (``tests.conftest.framework_python``: the
runner's venv of its image), so every test runs in a fresh subprocess of that interpreter; thread
counts are read once per process there too.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from frameworks.models import get_model
from frameworks.result import Result
from tests.conftest import REPO_ROOT, assert_short_facts, require_framework, run_predict

pytestmark = pytest.mark.framework

CPUS = len(os.sched_getaffinity(0))
CPUS_ONLINE = os.cpu_count()  # the scheduled modes' num-cores: the machine's, not the cpuset's
MARK = "RESULT "
PROBE_ENV = ("OMP_NUM_THREADS", "TVM_NUM_THREADS")  # set by the probes themselves, never inherited
QUICK = ("--iterations", "3", "--warmup", "1", "--min-time", "0", "--max-time", "0")

PRELUDE = """
import json, sys
import numpy as np
from frameworks.backends.registry import BuildOptions, load_backend
from frameworks.backends.numpy_backend import reference_forward
from frameworks.models import get_model
from frameworks.verify import compare
from frameworks.weights import canonical_weights, make_input

def emit(obj):
    print("RESULT " + json.dumps(obj), flush=True)

def build(framework, model, mode, threads=1, batch=1, seed=0):
    spec = get_model(model)
    backend = load_backend(framework)
    built = backend.build(spec, canonical_weights(spec, seed), BuildOptions(mode, threads=threads, batch=batch))
    return spec, backend, built

def error_on(spec, built, batch, seed=5):
    x = make_input(spec, batch, np.random.default_rng(seed))
    out = built.forward(x)
    assert out.dtype == np.float32 and out.shape == (batch, spec.classes), (out.dtype, out.shape)
    return compare(out, reference_forward(spec, canonical_weights(spec, 0), x), spec.tolerance).max_error
"""


def _probe(framework: str, mode: str, code: str, env: dict[str, str] | None = None) -> dict:
    """Run ``code`` in a fresh interpreter of the framework's environment; the object it ``emit``s."""
    python = require_framework(framework, mode)
    clean = {k: v for k, v in os.environ.items() if k not in PROBE_ENV}
    proc = subprocess.run(
        [python, "-c", PRELUDE + code],
        cwd=REPO_ROOT, env={**clean, **(env or {})}, capture_output=True, text=True, timeout=900, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = [line for line in proc.stdout.splitlines() if line.startswith(MARK)]
    assert lines, proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads(lines[-1][len(MARK) :])


def _predict(framework: str, mode: str, model: str = "lenet5", *args: str) -> Result:
    proc = run_predict(require_framework(framework, mode), "--framework", framework, "--model", model,
                       "--mode", mode, *QUICK, *args)  # fmt: skip
    assert proc.stdout.strip(), proc.stderr[-3000:]
    return Result.from_json(proc.stdout.strip().splitlines()[-1])


# --- OpenVINO -------------------------------------------------------------------------------


@pytest.mark.parametrize(("threads", "expected"), [(1, 1), (0, CPUS)])
def test_openvino_f32_compiles_float32_for_latency_on_the_threads_asked(threads, expected):
    out = _probe("openvino", "f32", f"""
spec, backend, built = build("openvino", "mobilenet_v1", "f32", threads={threads})
emit({{"facts": backend.build_facts(), "threads": built.threads, "counts": [built.params, built.buffers],
       "version": backend.version()}})
""")  # fmt: skip
    facts = out["facts"]
    assert_short_facts(facts)
    assert facts["openvino"] == out["version"] and facts["openvino"].startswith("2026.")
    assert facts["inference_precision"] == "f32" and facts["precision_hint"] == "f32 (forced)"
    assert facts["performance_hint"] == "LATENCY" and facts["execution_devices"] == "CPU"
    assert out["threads"] == expected and facts["inference_threads"] == str(expected)
    assert facts["in_effect"] == "OpenVINO CPU plugin, f32" and facts["cpu_plugin"].startswith("openvino_intel_cpu")
    spec = get_model("mobilenet_v1")
    assert out["counts"] == [spec.params, spec.buffers]


def test_openvino_auto_runs_the_plugins_default_precision_as_the_hardware_implies():
    """``auto`` leaves the precision to the plugin: bf16 exactly where the CPU plugin states BF16 among
    its capabilities, and then the output is outside float32's tolerance."""
    out = _probe(
        "openvino",
        "auto",
        """
spec, backend, built = build("openvino", "lenet5", "auto")
emit({"facts": backend.build_facts(), "error": error_on(spec, built, 1)})
""",
    )
    facts = out["facts"]
    assert facts["precision_hint"] == "plugin default"
    assert facts["inference_precision"] == facts["default_precision"], "auto ran another precision than the default"
    bf16 = "BF16" in facts["capabilities"].split(",")
    assert facts["inference_precision"] == ("bf16" if bf16 else "f32")
    assert facts["in_effect"] == f"OpenVINO CPU plugin, {facts['inference_precision']}"
    tolerance = get_model("lenet5").tolerance
    assert (out["error"] > tolerance) if bf16 else (out["error"] <= tolerance), out["error"]


def test_openvino_auto_through_predict_is_unverified_with_its_precision_where_bf16():
    result = _predict("openvino", "auto")
    assert result.status == "ok" and result.build is not None
    precision = result.build["inference_precision"]
    if precision == "f32":
        assert result.verified
        return
    assert precision == "bf16" and result.verified is False, "a bf16 cell passed at float32 tolerance"
    assert result.warnings[0].startswith("output does not match the reference")
    assert "the compiled model computes in bf16, not float32" in result.warnings[0]


def test_openvino_f32_through_predict_is_verified_and_reads_its_threads_back():
    result = _predict("openvino", "f32", "lenet5", "--threads", "1")
    assert result.status == "ok" and result.verified and result.threads_in_use == 1
    assert result.build is not None and result.build["inference_precision"] == "f32"


def test_openvino_counts_its_own_constants_and_a_missing_weight_fails_the_build():
    out = _probe(
        "openvino",
        "f32",
        """
from frameworks.backends.onnx_graph import checked_bytes
backend = load_backend("openvino")
spec = get_model("mobilenet_v1")
weights = canonical_weights(spec)
counts = backend.count_params(backend.core().read_model(checked_bytes(spec, weights)[0]))
del weights["dw3_bn.var"]
try:
    backend.build(spec, weights, BuildOptions("f32"))
    missing = None
except KeyError as exc:
    missing = str(exc)
emit({"counts": list(counts), "missing": missing})
""",
    )
    spec = get_model("mobilenet_v1")
    assert out["counts"] == [spec.params, spec.buffers]
    assert out["missing"] is not None and "dw3_bn.var" in out["missing"]


def test_openvino_compiles_a_static_batch_and_matches_the_reference_on_two_images():
    out = _probe(
        "openvino",
        "f32",
        """
spec, backend, built = build("openvino", "lenet5", "f32", batch=2, seed=0)
emit({"error": error_on(spec, built, 2)})
""",
    )
    assert out["error"] <= 1e-4


def test_openvino_rejects_an_unknown_mode_and_a_gpu():
    out = _probe(
        "openvino",
        "f32",
        """
backend = load_backend("openvino")
spec = get_model("lenet5")
errors = []
for options in (BuildOptions("eager"), BuildOptions("f32", device="cuda")):
    try:
        backend.build(spec, canonical_weights(spec), options)
    except ValueError as exc:
        errors.append(str(exc))
emit({"errors": errors, "cuda": backend.cuda_available()})
""",
    )
    assert out["cuda"] is False and len(out["errors"]) == 2
    assert "valid modes: f32, auto" in out["errors"][0]
    assert "unknown device 'cuda'; valid devices: cpu" in out["errors"][1]


# --- Apache TVM -----------------------------------------------------------------------------


def test_tvm_compiles_untuned_for_this_cpu_and_says_so():
    out = _probe(
        "tvm",
        "untuned",
        """
spec, backend, built = build("tvm", "lenet5", "untuned")
emit({"facts": backend.build_facts(), "version": backend.version(), "counts": [built.params, built.buffers]})
""",
    )
    facts = out["facts"]
    assert_short_facts(facts)
    assert facts["tvm"] == out["version"] and facts["tvm"].startswith("0.2")
    assert facts["tuning"].startswith("none: untuned")
    cpu, target = facts["mcpu_native"].split()[0], json.loads(facts["target"])
    assert cpu != "generic" and target["kind"] == "llvm" and target["mcpu"] == cpu, "not this CPU's LLVM target"
    assert facts["parallel_launches"] == "0", "an untuned build parallelizes no loop"
    assert int(facts["llvm"]) >= 15 and facts["in_effect"] == "TVM LLVM codegen (untuned)"
    spec = get_model("lenet5")
    assert out["counts"] == [spec.params, spec.buffers]


@pytest.mark.parametrize("threads", [1, 2])
def test_tvm_pool_threads_are_set_and_read_back(threads):
    out = _probe("tvm", "untuned", f"""
spec, backend, built = build("tvm", "lenet5", "untuned", threads={threads})
emit({{"threads": built.threads, "facts": backend.build_facts()}})
""")  # fmt: skip
    assert out["threads"] == threads and out["facts"]["pool_threads"] == str(threads)
    assert out["facts"]["TVM_NUM_THREADS"] == str(threads)


def test_tvm_imports_the_onnx_graph_as_native_relax_ops():
    out = _probe(
        "tvm",
        "untuned",
        """
import collections, re
backend = load_backend("tvm")
spec = get_model("mobilenet_v1")
module, params = backend.import_onnx(spec, canonical_weights(spec), 2)
text = module.script()
emit({"ops": collections.Counter(re.findall(r"R\\.(nn\\.[a-z_0-9]+)\\(", text)),
      "dw1": [line.strip() for line in text.splitlines() if "dw1.weight" in line or "dw1_weight" in line][-1],
      "counts": list(backend.count_params(module, params)),
      "names": [backend._name(v) for v in backend._param_vars(module)]})
""",
    )
    assert out["ops"] == {"nn.conv2d": 27, "nn.batch_norm": 27, "nn.relu": 27, "nn.softmax": 1}
    assert "groups=32" in out["dw1"] and "strides=[1, 1]" in out["dw1"] and "(2, 32, 112, 112)" in out["dw1"]
    spec = get_model("mobilenet_v1")
    assert out["counts"] == [spec.params, spec.buffers]
    assert out["names"] == list(spec.tensors()), "one parameter per canonical tensor, in the spec's order"


def test_tvm_on_a_batch_of_two():
    out = _probe(
        "tvm",
        "untuned",
        """
spec, backend, built = build("tvm", "lenet5", "untuned", batch=2)
emit({"error": error_on(spec, built, 2)})
""",
    )
    assert out["error"] <= 1e-4


def test_tvm_through_predict():
    result = _predict("tvm", "untuned", "lenet5", "--threads", "1")
    assert result.status == "ok" and result.verified and result.threads_in_use == 1
    assert result.build is not None and result.build["tvm"] == result.version


def test_tvm_rejects_an_unknown_mode_and_a_gpu():
    out = _probe(
        "tvm",
        "untuned",
        """
backend = load_backend("tvm")
spec = get_model("lenet5")
errors = []
for options in (BuildOptions("autotvm"), BuildOptions("untuned", device="cuda")):
    try:
        backend.build(spec, canonical_weights(spec), options)
    except ValueError as exc:
        errors.append(str(exc))
emit({"errors": errors})
""",
    )
    assert "valid modes: tuned, default, untuned" in out["errors"][0]
    assert "unknown device 'cuda'; valid devices: cpu" in out["errors"][1]


def test_tvm_default_mode_applies_the_default_cpu_rules_and_parallelizes():
    out = _probe("tvm", "default", """
spec, backend, built = build("tvm", "lenet5", "default", threads=2)
emit({"facts": backend.build_facts(), "error": error_on(spec, built, 1)})
""")  # fmt: skip
    facts = out["facts"]
    assert_short_facts(facts)
    assert facts["tuning"] == "none: default CPU rules (dlight GEMV, Reduction); conv2d unscheduled"
    assert int(facts["parallel_launches"]) > 0, "the default rules parallelize the matrix-vector kernels"
    assert json.loads(facts["target"])["num-cores"] == CPUS_ONLINE and "tuned_kernels" not in facts
    assert facts["offload"] == "none: no dnnl, cblas or mkl function in this TVM's registry"
    assert out["error"] <= 1e-4


def test_tvm_tuned_without_a_database_for_this_cpu_says_so_and_runs_the_default_schedule(tmp_path):
    out = _probe("tvm", "tuned", """
spec, backend, built = build("tvm", "lenet5", "tuned", threads=2)
emit({"facts": backend.build_facts(), "error": error_on(spec, built, 1)})
""", env={"DLBENCH_TVM_TUNING": str(tmp_path)})  # fmt: skip
    facts = out["facts"]
    assert_short_facts(facts)
    assert facts["tuned_kernels"] == "0: no database"
    assert facts["tuning"].startswith("no database ") and facts["tuning"].endswith(": default CPU rules instead")
    assert facts["in_effect"] == "TVM LLVM codegen, default schedule (no tuning database for this CPU)"
    assert out["error"] <= 1e-4


@pytest.mark.slow
def test_tvm_tune_then_tuned_build_applies_every_kernel_of_the_database(tmp_path):
    """``runner tune tvm`` for real (MetaSchedule on this machine, 2 trials a kernel): the tuned build finds
    the database by this CPU's fingerprint and target, takes every LeNet-5 kernel from it, and is verified."""
    require_framework("tvm", "tuned")
    proc = subprocess.run(
        [sys.executable, "-m", "runner", "tune", "tvm", "--trials", "2", "--models", "lenet5", "--out", str(tmp_path)],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=900, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    folders = [p for p in tmp_path.iterdir() if p.is_dir()]
    assert len(folders) == 1 and not (folders[0] / "logs").exists(), folders
    record = json.loads((folders[0] / "tuning.json").read_text())
    assert record["models"]["lenet5"]["trials_per_task"] == 2 and record["models"]["lenet5"]["tasks"] == 9
    out = _probe("tvm", "tuned", """
spec, backend, built = build("tvm", "lenet5", "tuned", threads=2)
emit({"facts": backend.build_facts(), "error": error_on(spec, built, 1)})
""", env={"DLBENCH_TVM_TUNING": str(tmp_path)})  # fmt: skip
    facts = out["facts"]
    assert_short_facts(facts)
    assert facts["tuned_kernels"] == "9 of 9 kernels from the database", facts
    assert facts["tuning"] == f"MetaSchedule database {folders[0].name}"
    assert facts["tuned_trials"].startswith("2 trials per kernel, 9 kernels")
    assert facts["tuned_with"] == f"TVM {record['tvm']}, CPU fingerprint {record['fingerprint']}"
    assert facts["target"] == record["target"] and int(facts["parallel_launches"]) > 0
    assert out["error"] <= 1e-4


# --- ONNX Runtime's OpenVINO execution provider ---------------------------------------------


def test_ort_openvino_ep_runs_every_node_on_openvino_in_float32():
    out = _probe(
        "onnxruntime",
        "openvino",
        """
import json as _json
backend = load_backend("onnxruntime")
spec = get_model("mobilenet_v1")
options = BuildOptions("openvino", threads=1)
session = backend.make_session(backend.to_onnx(spec, canonical_weights(spec)).SerializeToString(), options)
so = session.get_session_options()
emit({"providers": session.get_providers(), "fallback": so.get_session_config_entry(backend.NO_CPU_FALLBACK),
      "level": so.graph_optimization_level.name, "facts": backend.build_facts(),
      "threads": backend.session_threads(session, "openvino"), "config": backend.openvino_config(1)})
""",
    )
    assert out["providers"][0] == "OpenVINOExecutionProvider"
    assert out["fallback"] == "1", "CPU fallback is on: nodes could run on ONNX Runtime's own kernels"
    assert out["level"] == "ORT_DISABLE_ALL", "OpenVINO gets the graph as written, as the openvino backend does"
    assert out["config"] == {"CPU": {"INFERENCE_PRECISION_HINT": "f32", "PERFORMANCE_HINT": "LATENCY",
                                     "INFERENCE_NUM_THREADS": "1"}}  # fmt: skip
    facts = out["facts"]
    assert_short_facts(facts)
    assert facts["session_providers"].startswith("OpenVINOExecutionProvider") and facts["in_effect"] == "OpenVINO EP"
    assert "OpenVINOExecutionProvider" in facts["providers"] and facts["openvino_threads_requested"] == "1"
    assert out["threads"] is None and "threads_unreported" in facts, "a count the EP never reported"


def test_ort_openvino_ep_through_predict():
    result = _predict("onnxruntime", "openvino", "lenet5", "--threads", "1")
    assert result.status == "ok" and result.verified, result.error
    assert result.build is not None and result.build["in_effect"] == "OpenVINO EP"
    assert result.threads == 1 and result.threads_in_use is None


def test_ort_openvino_image_still_runs_the_cpu_provider_for_the_other_modes():
    out = _probe(
        "onnxruntime",
        "openvino",
        """
spec, backend, built = build("onnxruntime", "lenet5", "session", batch=2)
emit({"facts": backend.build_facts(), "error": error_on(spec, built, 2)})
""",
    )
    assert out["facts"]["session_providers"] == "CPUExecutionProvider" and "in_effect" not in out["facts"]
    assert out["error"] <= 1e-4
