"""The JAX, TFLite (LiteRT) and PaddlePaddle backends beyond output equivalence.

``test_equivalence`` proves the numbers; these tests pin down what makes a timing mean what the
report says: native ops in the framework's own terms, the mode really in effect (a lazily compiled
XLA executable, a float32 flatbuffer delegated whole to XNNPACK, a Paddle Inference predictor),
threads really set and read back, build facts that agree with what runs (XLA's kernels from the
compiled HLO, oneDNN kernels seen executing or not), and clear errors.

Settings read once per process (XLA's thread pool, Paddle's flags) are tested in fresh
subprocesses. Paddle lives in an environment of its own, so every Paddle test runs in a subprocess
of that environment's interpreter (``tests.conftest.framework_python``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from functools import lru_cache

import numpy as np
import pytest

from frameworks.backends.registry import IN_EFFECT, BuildOptions, load_backend
from frameworks.models import BN_EPS, BatchNorm, ModelSpec, ReLU, get_model
from frameworks.weights import canonical_weights
from tests.conftest import REPO_ROOT, assert_matches_reference, assert_short_facts, require_framework, run_predict

pytestmark = pytest.mark.framework

CPUS = len(os.sched_getaffinity(0))
MARK = "RESULT "
# Variables a probe sets itself: never inherited from the shell (or from a backend run in this process).
PROBE_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "PJRT_NPROC", "NPROC", "XLA_FLAGS", "FLAGS_use_onednn",
             "FLAGS_use_mkldnn", "ONEDNN_VERBOSE", "DNNL_VERBOSE")  # fmt: skip

PRELUDE = """
import json, sys, warnings
import numpy as np
from frameworks.backends.registry import BuildOptions, load_backend
from frameworks.models import get_model
from frameworks.weights import canonical_weights

def emit(obj):
    sys.stdout.flush()
    print("RESULT " + json.dumps(obj), flush=True)

def caught_warnings(call):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = call()
    return result, [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
"""


def _probe(python: str, code: str, *args: str, env: dict[str, str] | None = None) -> tuple[dict, str]:
    """Run ``code`` in a fresh ``python`` from the repository root; its ``emit``ted object and its stdout."""
    clean = {k: v for k, v in os.environ.items() if k not in PROBE_ENV}
    proc = subprocess.run(
        [python, "-c", PRELUDE + code, *args],
        cwd=REPO_ROOT, env={**clean, **(env or {})}, capture_output=True, text=True, timeout=900, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = [line for line in proc.stdout.splitlines() if line.startswith(MARK)]
    assert lines, proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads(lines[-1][len(MARK) :]), proc.stdout


def _build(backend, model: str, mode: str, seed: int = 0, **options):
    """In-process builds use threads=0 (every CPU), as ``check_cell`` does: XLA's pool is sized once per process."""
    spec = get_model(model)
    return backend.build(spec, canonical_weights(spec, seed), BuildOptions(mode, **{"threads": 0, **options}))


# --- JAX ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def jb():
    require_framework("jax")
    pytest.importorskip("jax", reason="jax is not installed here")
    return load_backend("jax")


def test_jax_build_facts(jb):
    import jax
    import jaxlib

    _build(jb, "lenet5", "jit").forward(np.zeros((1, 3, 32, 32), np.float32))
    facts = jb.build_facts()
    assert_short_facts(facts)
    assert facts["jax"] == jb.version() == jax.__version__ and facts["jaxlib"] == jaxlib.__version__
    assert facts["XLA_FLAGS"] == (os.environ.get("XLA_FLAGS") or "unset")
    assert (facts["precision"], facts["x64"], facts["platform"]) == ("HIGHEST", "False", "cpu")
    assert facts["pool_threads"] == str(jb.pool_threads()) and int(facts["pool_threads"]) >= 1
    assert facts[IN_EFFECT] and "xla_kernels" in facts


JAX_THREADS = """
threads = int(sys.argv[1])
b = load_backend("jax")
before = b.build_facts()
spec = get_model("lenet5")
w = canonical_weights(spec)
built, first = caught_warnings(lambda: b.build(spec, w, BuildOptions("jit", threads=threads)))
built.forward(np.zeros((1, *spec.input_shape), np.float32))
again, other = caught_warnings(lambda: b.build(spec, w, BuildOptions("jit", threads=threads + 1)))
import os
emit({"before": sorted(before), "threads": built.threads, "again": again.threads, "first": first, "other": other,
      "facts": b.build_facts(), "pool": b.pool_threads(), "env": os.environ.get("PJRT_NPROC")})
"""


@lru_cache(maxsize=4)
def _jax_threads(threads: int) -> dict:
    result, _ = _probe(sys.executable, JAX_THREADS, str(threads))
    return result


@pytest.mark.parametrize("threads", sorted({1, CPUS}))
def test_jax_threads_are_set_before_the_backends_start_and_read_back(jb, threads):
    result = _jax_threads(threads)
    assert "pool_threads" not in result["before"], "reading the facts first must not start the backends"
    assert result["threads"] == result["pool"] == threads and result["env"] == str(threads)
    assert result["first"] == []
    facts = result["facts"]
    assert (facts["PJRT_NPROC"], facts["pool_threads"]) == (str(threads), str(threads))
    # the pool is sized once: a later request for another count keeps it, says so, and reports it
    assert result["again"] == threads and facts["threads_requested"] == str(threads + 1)
    assert len(result["other"]) == 1 and f"started with {threads} XLA:CPU threads" in result["other"][0]


def test_jax_jit_compiles_lazily_once_for_the_cell_shape(jb):
    built = _build(jb, "lenet5", "jit", batch=2)
    net = jb._last["net"]
    jitted = net["jitted"]
    assert jitted._cache_size() == 0 and jb.kernel_facts() == {}, "nothing is compiled before the first call"
    x = np.zeros((2, 3, 32, 32), np.float32)
    built.forward(x), built.forward(x + 1)
    assert jitted._cache_size() == 1
    assert jb.kernel_facts()[IN_EFFECT]
    assert jitted._cache_size() == 1, "reading the kernels looks the executable up, it compiles nothing new"


def test_jax_network_is_lax_ops_in_the_canonical_layout(jb):
    import jax

    spec = get_model("mobilenet_v1")
    weights = canonical_weights(spec)
    tree = jb.to_tree(spec, weights, jax.devices("cpu")[0])
    assert jb.count_params(tree) == (spec.params, spec.buffers)
    assert set(tree["state"]) == {k for k in weights if k.endswith((".mean", ".var"))}
    assert np.array_equal(np.asarray(tree["params"]["dw1.weight"]), weights["dw1.weight"])  # OIHW as is
    assert np.array_equal(np.asarray(tree["params"]["fc.weight"]), weights["fc.weight"])  # (out, in) as is
    text = jax.jit(jb.network(spec)).lower(tree, np.zeros((1, *spec.input_shape), np.float32)).as_text()
    convs = [line for line in text.splitlines() if "stablehlo.convolution" in line]
    assert len(convs) == 27 and text.count("stablehlo.dot_general") == 1
    assert all("[b, f, 0, 1]x[o, i, 0, 1]->[b, f, 0, 1]" in c and "precision HIGHEST" in c for c in convs)
    assert sum("feature_group_count = 1 :" in c for c in convs) == 14  # 13 depthwise convolutions, 14 others
    assert "pad = [[1, 1], [1, 1]]" in convs[0] and "stride = [2, 2]" in convs[0]  # conv0: explicit padding
    lenet = get_model("lenet5")
    lowered = jax.jit(jb.network(lenet)).lower(jb.to_tree(lenet, canonical_weights(lenet), jax.devices("cpu")[0]),
                                               np.zeros((1, *lenet.input_shape), np.float32)).as_text()  # fmt: skip
    assert lowered.count("stablehlo.reduce_window") == 2 and "stablehlo.maximum" in lowered


def test_jax_batch_norm_uses_its_four_tensors(jb):
    """BN_EPS and the running statistics, computed per call (no folding at build)."""
    import jax

    spec = ModelSpec("bn", "BN", (2, 3, 3), (BatchNorm("bn"), ReLU("relu")))
    rng = np.random.default_rng(0)
    weights = {"bn.gamma": np.float32([1.5, 0.5]), "bn.beta": np.float32([0.1, -0.2]),
               "bn.mean": np.float32([0.3, -0.1]), "bn.var": np.float32([0.8, 1.2])}  # fmt: skip
    x = rng.standard_normal((1, 2, 3, 3)).astype(np.float32)
    got = np.asarray(jax.jit(jb.network(spec))(jb.to_tree(spec, weights, jax.devices("cpu")[0]), x))
    c = (slice(None), None, None)
    want = (x - weights["bn.mean"][c]) / np.sqrt(weights["bn.var"][c] + BN_EPS) * weights["bn.gamma"][c]
    np.testing.assert_allclose(got, np.maximum(want + weights["bn.beta"][c], 0), rtol=1e-6, atol=1e-6)


HLO = """HloModule m
%fused_computation (param_0: f32[1,8,8,4], param_1: f32[3,3,4,4]) -> f32[1,8,8,4] {
  ROOT %convolution.1 = f32[1,8,8,4]{3,2,1,0} convolution(%param_0, %param_1), window={size=3x3}
}
%fused_pool (param_0.1: f32[1,4,8,8]) -> f32[1,4,4,4] {
  ROOT %reduce-window = f32[1,4,4,4]{3,2,1,0} reduce-window(%param_0.1, %c), window={size=1x1x2x2}
}
ENTRY %main (a: f32[1,8,8,4], w: f32[3,3,4,4], d: f32[4,10]) -> f32[1,10] {
  %ynn_fusion = f32[1,8,8,4]{3,2,1,0} fusion(%a, %w), kind=kCustom, calls=%fused_computation, backend_config={"fusion_config":{"kind":"__ynn_fusion"}}
  %ynn_fusion.1 = f32[1,4,4,4]{3,2,1,0} fusion(%t), kind=kCustom, calls=%fused_pool, backend_config={"fusion_config":{"kind":"__ynn_fusion"}}
  %convolution.2 = f32[1,8,8,4]{3,2,1,0} convolution(%ynn_fusion, %w), window={size=3x3}
  %cudnn-conv = (f32[1,4,8,8]{3,2,1,0}, u8[0]{0}) custom-call(%a, %w), custom_call_target="__cudnn$convForward"
  %cublas = (f32[1,10]{1,0}, s8[0]{0}) custom-call(%b, %d), custom_call_target="__cublas$gemm"
  ROOT %dot.1 = f32[1,10]{1,0} dot(%b, %d), lhs_contracting_dims={1}, rhs_contracting_dims={0}
}
"""  # noqa: E501


def test_jax_hlo_kernels_name_the_library_of_every_convolution_and_dot(jb):
    found = jb.hlo_kernels(HLO)
    assert found == Counter({("YNNPACK", "conv"): 1, ("Eigen", "conv"): 1, ("cuDNN", "conv"): 1,
                             ("cuBLAS", "dot"): 1, ("Eigen", "dot"): 1})  # fmt: skip
    assert jb.hlo_kernels("HloModule empty\n") == Counter()


def test_jax_in_effect_is_what_the_compiled_executable_calls(jb):
    _build(jb, "mobilenet_v1", "jit").forward(np.zeros((1, 3, 224, 224), np.float32))
    facts = jb.kernel_facts()
    hlo = jb._last["net"]["hlo"]  # the compiled executable's HLO, kept by kernel_facts
    libraries = facts[IN_EFFECT].split("+")
    kinds = {"YNNPACK": '"kind":"__ynn_fusion"', "XNNPACK": '"kind":"__xnn_fusion"'}
    for library in libraries:
        assert library == "Eigen" or kinds[library] in hlo, (library, facts)
    assert set(libraries) == {lib for lib, _ in jb.hlo_kernels(hlo)}
    ops = Counter()
    for (_, op), n in jb.hlo_kernels(hlo).items():
        ops[op] += n
    assert ops == Counter({"conv": 27, "dot": 1}), "every convolution and the dense layer are accounted for"


@pytest.mark.parametrize(("options", "error"), [
    (BuildOptions("eager", threads=0), "valid modes: jit"),
    (BuildOptions("jit", device="tpu", threads=0), "valid devices: cpu, cuda"),
])  # fmt: skip
def test_jax_rejects_an_unknown_mode_or_device(jb, options, error):
    spec = get_model("lenet5")
    with pytest.raises(ValueError, match=error):
        jb.build(spec, canonical_weights(spec), options)


def test_jax_cuda_without_a_gpu_is_a_clear_error(jb):
    if jb.cuda_available():
        pytest.skip("a GPU is available here")
    with pytest.raises(RuntimeError, match="CUDA requested but no GPU is available to JAX"):
        _build(jb, "lenet5", "jit", device="cuda")


def test_jax_forward_on_a_batch_of_two(jb):
    assert_matches_reference(_build(jb, "lenet5", "jit", seed=5, batch=2).forward, "lenet5")


@pytest.mark.slow
def test_jax_predicts_with_its_threads_and_kernels_recorded(jb):
    proc = run_predict(sys.executable, "--framework", "jax", "--model", "lenet5", "--mode", "jit", "--threads", "1",
                       "--iterations", "3", "--warmup", "1", "--min-time", "0",
                       "--max-time", "0", "--output", "-")  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["status"] == "ok" and result["verified"] and result["points"][0]["threads_in_use"] == 1
    build = result["build"]
    assert build["pool_threads"] == "1" and build[IN_EFFECT] and "xla_kernels" in build


# --- TFLite (LiteRT) ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def lb():
    require_framework("tflite")
    pytest.importorskip("ai_edge_litert", reason="ai-edge-litert is not installed here")
    pytest.importorskip("tensorflow", reason="tensorflow is not installed here")
    return load_backend("tflite")


@lru_cache(maxsize=2)
def _flatbuffer(model: str, batch: int = 1) -> bytes:
    from frameworks.backends import tensorflow_backend

    spec = get_model(model)
    keras_model = tensorflow_backend.to_keras(spec, canonical_weights(spec))
    return load_backend("tflite").convert(keras_model, (batch, *spec.input_shape))  # type: ignore[attr-defined]


def _flatbuffer_tensors(flatbuffer: bytes) -> tuple[list[tuple[str, int, list[int], bool]], Counter]:
    """(name, type, shape, holds data) of every tensor, and the operator codes in use."""
    from ai_edge_litert import schema_py_generated as schema

    model = schema.Model.GetRootAsModel(flatbuffer, 0)
    graph = model.Subgraphs(0)
    tensors = []
    for t in range(graph.TensorsLength()):
        tensor = graph.Tensors(t)
        buffer = model.Buffers(tensor.Buffer()) if tensor.Buffer() > 0 else None
        data = buffer is not None and (buffer.DataLength() > 0 or buffer.Size() > 0)
        shape = [int(d) for d in tensor.ShapeAsNumpy()] if tensor.ShapeLength() else []
        tensors.append((tensor.Name().decode(), int(tensor.Type()), shape, data))
    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    ops = Counter()
    for i in range(graph.OperatorsLength()):
        code = model.OperatorCodes(graph.Operators(i).OpcodeIndex())
        ops[names[max(code.BuiltinCode(), code.DeprecatedBuiltinCode())]] += 1
    return tensors, ops


@pytest.mark.slow
def test_tflite_build_facts_and_whole_graph_delegation(lb):
    built = _build(lb, "mobilenet_v1", "xnnpack")
    facts = lb.build_facts()
    assert_short_facts(facts)
    import ai_edge_litert
    import tensorflow as tf

    assert facts["interpreter"] == f"ai_edge_litert {ai_edge_litert.__version__}" == f"ai_edge_litert {lb.version()}"
    assert facts["converter"] == f"tensorflow {tf.__version__}" and facts["op_resolver"] == "BUILTIN"
    assert (facts["delegate_partitions"], facts["delegated_whole_graph"], facts[IN_EFFECT]) == ("1", "True", "XNNPACK")
    spec = get_model("mobilenet_v1")
    assert (built.params, built.buffers) == (spec.params, spec.buffers)
    assert facts["flatbuffer_constants"] == str(lb.folded_constants(spec))


@pytest.mark.slow
def test_tflite_flatbuffer_is_float32_static_and_holds_every_weight(lb):
    from ai_edge_litert import schema_py_generated as schema

    expected_ops = {
        "lenet5": {"CONV_2D": 2, "MAX_POOL_2D": 2, "FULLY_CONNECTED": 3},
        "mobilenet_v1": {"CONV_2D": 14, "DEPTHWISE_CONV_2D": 13, "FULLY_CONNECTED": 1},
    }
    for model, ops_expected in expected_ops.items():
        spec = get_model(model)
        tensors, ops = _flatbuffer_tensors(_flatbuffer(model))
        assert {t for _, t, _, _ in tensors} <= {schema.TensorType.FLOAT32, schema.TensorType.INT32}, "no int8/fp16"
        assert tensors[0][2] == [1, *spec.input_shape], "a static input: the cell's batch, NCHW"
        assert {op: ops[op] for op in ops_expected} == ops_expected
        assert ops["TRANSPOSE"] == 1 and ops["SOFTMAX"] == 1 and "DEQUANTIZE" not in ops
        constants = sum(int(np.prod(s)) for _, t, s, data in tensors if data and t == schema.TensorType.FLOAT32)
        assert constants == lb.flatbuffer_constants(_flatbuffer(model)) == lb.folded_constants(spec)
    lenet = get_model("lenet5")
    assert lb.folded_constants(lenet) == lenet.params, "no batch norm: the flatbuffer holds the spec's tensors"
    mobilenet = get_model("mobilenet_v1")
    channels = sum(shape[0] for layer, shape, _ in mobilenet.walk() if isinstance(layer, BatchNorm))
    assert lb.folded_constants(mobilenet) == mobilenet.params + mobilenet.buffers - 3 * channels


def test_tflite_folding_is_only_claimed_where_it_is_known(lb):
    spec = ModelSpec("bn", "BN", (2, 3, 3), (ReLU("relu"), BatchNorm("bn")))
    with pytest.raises(ValueError, match="bn: the folding is only known for a batch norm after a convolution"):
        lb.folded_constants(spec)


def test_tflite_a_flatbuffer_missing_weights_fails_the_build(lb, monkeypatch):
    monkeypatch.setattr(lb, "flatbuffer_constants", lambda flatbuffer: 62006 - 120)
    with pytest.raises(RuntimeError, match=r"the flatbuffer holds 61886 float32 constants; .* has 62006"):
        _build(lb, "lenet5", "xnnpack")


def test_tflite_xnnpack_is_the_delegate_and_takes_the_whole_graph(lb):
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    flatbuffer = _flatbuffer("lenet5")
    plain = Interpreter(
        model_content=flatbuffer, experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    )
    plain.allocate_tensors()
    assert lb.delegation(plain) == [] and not lb.whole_graph(plain, [])
    delegated, _ = lb.make_interpreter(flatbuffer, 1)
    partitions = lb.delegation(delegated)
    assert len(partitions) == 1 and lb.whole_graph(delegated, partitions)
    assert not lb.whole_graph(delegated, partitions * 2)
    assert lb.in_effect(0) == "TFLite builtin kernels" and lb.in_effect(2).startswith("XNNPACK (2 partitions)")


TFLITE_THREADS = """
threads = int(sys.argv[1])
b = load_backend("tflite")
built = b.build(get_model("lenet5"), canonical_weights(get_model("lenet5")), BuildOptions("xnnpack", threads=threads))
built.forward(np.zeros((1, 3, 32, 32), np.float32))
emit({"threads": built.threads, "facts": b.build_facts()})
"""


@pytest.mark.parametrize("threads", sorted({1, 2, CPUS}))
@pytest.mark.slow
def test_tflite_threads_are_read_back_from_the_threads_xnnpack_made(lb, threads):
    result, _ = _probe(sys.executable, TFLITE_THREADS, str(threads))
    assert result["threads"] == threads
    assert (result["facts"]["threads_requested"], result["facts"]["xnnpack_threads"]) == (str(threads), str(threads))


@pytest.mark.parametrize(("options", "error"), [
    (BuildOptions("graph", threads=0), "valid modes: xnnpack"),
    (BuildOptions("xnnpack", device="cuda", threads=0), "valid devices: cpu"),
])  # fmt: skip
def test_tflite_rejects_an_unknown_mode_or_device(lb, options, error):
    spec = get_model("lenet5")
    with pytest.raises(ValueError, match=error):
        lb.build(spec, canonical_weights(spec), options)


def test_tflite_forward_on_a_batch_of_two(lb):
    assert_matches_reference(_build(lb, "lenet5", "xnnpack", seed=5, batch=2).forward, "lenet5")


@pytest.mark.slow
def test_tflite_predict_keeps_the_converters_chatter_off_stdout(lb):
    proc = run_predict(sys.executable, "--framework", "tflite", "--model", "lenet5", "--iterations", "3",
                       "--warmup", "1", "--min-time", "0", "--max-time", "0", "--output", "-")  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    (line,) = [line for line in proc.stdout.splitlines() if line.strip()]
    result = json.loads(line)
    assert result["status"] == "ok" and result["verified"] and result["build"][IN_EFFECT] == "XNNPACK"


# --- PaddlePaddle (its own environment) ----------------------------------------------------------


@pytest.fixture(scope="module")
def pd_python() -> str:
    return require_framework("paddle")


PD_RUN = """
mode, threads = sys.argv[1], int(sys.argv[2])
b = load_backend("paddle")
spec = get_model("lenet5")
built = b.build(spec, canonical_weights(spec), BuildOptions(mode, threads=threads))
sys.stdout.flush()
print("---FORWARD---", flush=True)
built.forward(np.zeros((1, *spec.input_shape), np.float32))
emit({"threads": built.threads, "facts": b.build_facts(), "counts": [built.params, built.buffers]})
"""


@lru_cache(maxsize=8)
def _paddle_run(python: str, mode: str, onednn: str, threads: int = 1) -> tuple[dict, str]:
    """A fresh Paddle with ``FLAGS_use_onednn`` as a variant sets it: LeNet-5 built, then run once with
    oneDNN's verbose log on; the result and what oneDNN logged during the run."""
    result, stdout = _probe(python, PD_RUN, mode, str(threads), env={"FLAGS_use_onednn": onednn, "ONEDNN_VERBOSE": "1"})
    return result, stdout.split("---FORWARD---", 1)[1]


def test_paddle_build_facts(pd_python):
    result, _ = _paddle_run(pd_python, "static", "0")
    facts = result["facts"]
    assert_short_facts(facts)
    assert facts["paddle"].startswith("3.") and facts["with_mkl"] == "ON" and facts["cuda"] == "False"
    assert facts["compiled_with_onednn"] == "True" and facts["FLAGS_use_onednn"] == "False"
    assert (facts["mode"], facts["ir_optim"]) == ("static", "True")


@pytest.mark.parametrize("mode", ["dynamic", "static"])
@pytest.mark.parametrize("onednn", ["0", "1"])
def test_paddle_onednn_fact_follows_the_flag_and_what_runs(pd_python, mode, onednn):
    """``in_effect`` is oneDNN exactly when oneDNN convolutions are seen executing: in the static mode
    when Paddle's flag asks for it (the predictor's configuration read back agrees), never in the
    dynamic graph, whose kernels on NCHW tensors are Paddle's own on MKL whatever the flag says."""
    result, run_log = _paddle_run(pd_python, mode, onednn)
    facts = result["facts"]
    assert facts["FLAGS_use_onednn"] == str(onednn == "1")
    ran = "exec,cpu,convolution" in run_log
    assert ran == (facts[IN_EFFECT] == "oneDNN") == (facts["onednn_in_use"] == "True")
    if mode == "static":
        assert facts["onednn_enabled"] == str(onednn == "1") and ran == (onednn == "1")
    else:
        assert facts[IN_EFFECT] == "MKL" and not ran


@pytest.mark.parametrize("mode", ["dynamic", "static"])
@pytest.mark.parametrize("threads", sorted({1, CPUS}))
def test_paddle_threads_are_set_and_read_back(pd_python, mode, threads):
    result, _ = _paddle_run(pd_python, mode, "0", threads)
    facts = result["facts"]
    assert result["threads"] == threads and facts["threads_requested"] == str(threads)
    if mode == "dynamic":
        assert facts["mkl_threads"] == str(threads)
    else:
        assert facts["cpu_math_library_num_threads"] == str(threads)


PD_NETWORK = """
import os, tempfile
b = load_backend("paddle")
spec = get_model("mobilenet_v1")
w = canonical_weights(spec)
model = b.to_layer(spec, w)
layers = dict(model.named_children())
dw1, conv0, fc = layers["dw1"], layers["conv0"], layers["fc"]
bns = [l for l in layers.values() if type(l).__name__ == "BatchNorm2D"]
before = set(os.listdir(tempfile.gettempdir()))
predictor, config = b.make_predictor(model, (1, *spec.input_shape), 1)
left = [n for n in set(os.listdir(tempfile.gettempdir())) - before if n.startswith("dlbench-paddle-")]
emit({
    "types": [type(l).__name__ for l in layers.values()],
    "dw1": [dw1._groups, list(dw1._stride), dw1._padding, dw1.bias is None, dw1._data_format],
    "conv0": [conv0._groups, list(conv0._stride), conv0._padding],
    "bn": sorted({(bn._epsilon, bn._use_global_stats, bn.training) for bn in bns}),
    "fc": [list(fc.weight.shape), bool(np.array_equal(fc.weight.numpy(), w["fc.weight"].T))],
    "bn_var": bool(np.array_equal(layers["conv0_bn"]._variance.numpy(), w["conv0_bn.var"])),
    "counts": list(b.count_params(model)),
    "predictor": isinstance(predictor, __import__("paddle").inference.Predictor),
    "inputs": predictor.get_input_names(), "left": left,
})
"""


def test_paddle_network_is_native_layers_and_static_is_a_predictor(pd_python):
    result, _ = _probe(pd_python, PD_NETWORK)
    spec = get_model("mobilenet_v1")
    types = result["types"]
    assert types[:3] == ["Conv2D", "BatchNorm2D", "ReLU"] and types.count("BatchNorm2D") == 27
    assert types[-3:] == ["Sequential", "Linear", "Softmax"]  # global average pool + flatten, dense, softmax
    assert result["dw1"] == [32, [1, 1], 1, True, "NCHW"]  # depthwise: groups == channels, no bias
    assert result["conv0"] == [1, [2, 2], 1]
    assert result["bn"] == [[BN_EPS, True, False]]
    assert result["fc"] == [[1024, 1000], True]  # Paddle's Linear is (in, out): the canonical weight transposed
    assert result["bn_var"] and result["counts"] == [spec.params, spec.buffers]
    assert result["predictor"] is True and result["inputs"] == ["x"]
    assert result["left"] == [], "the saved program is removed once the predictor has loaded it"


PD_ERRORS = """
b = load_backend("paddle")
spec = get_model("lenet5")
errors = {}
cases = {"mode": BuildOptions("jit", threads=1), "device": BuildOptions("static", "cuda", threads=1)}
for label, options in cases.items():
    try:
        b.build(spec, canonical_weights(spec), options)
        errors[label] = None
    except Exception as exc:
        errors[label] = [type(exc).__name__, str(exc)]
emit(errors)
"""


def test_paddle_rejects_an_unknown_mode_or_device(pd_python):
    result, _ = _probe(pd_python, PD_ERRORS)
    assert result["mode"] == ["ValueError", "unknown paddle mode 'jit'; valid modes: dynamic, static"]
    assert result["device"] == ["ValueError", "unknown device 'cuda'; valid devices: cpu"]


PD_CHECK = """
from frameworks.check import check_cell
from dataclasses import asdict
emit([asdict(check_cell("paddle", m, "static", seed=3)) for m in sys.argv[1:]])
"""


@pytest.mark.slow
def test_paddle_onednn_static_mode_is_the_same_network(pd_python):
    """The oneDNN variant's cells: parameter counts and outputs of all three models, as ``test_equivalence``
    checks the default (oneDNN off) ones."""
    reports, _ = _probe(pd_python, PD_CHECK, "lenet5", "mobilenet_v1", "vgg16", env={"FLAGS_use_onednn": "1"})
    for report in reports:
        assert report["params"] == report["spec_params"] and report["buffers"] == report["spec_buffers"], report
        assert report["verified"] and report["max_error"] <= report["tolerance"], report


@pytest.mark.slow
def test_paddle_predicts_in_its_own_environment(pd_python):
    proc = run_predict(pd_python, "--framework", "paddle", "--model", "lenet5", "--mode", "static",
                       "--iterations", "3", "--warmup", "1", "--min-time", "0",
                       "--max-time", "0", "--threads", "1")  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["status"] == "ok" and result["verified"] and result["framework"] == "paddle"
    assert result["points"][0]["threads_in_use"] == 1 and result["params"] == get_model("lenet5").params
    assert result["build"][IN_EFFECT] == "MKL"  # FLAGS_use_onednn unset: Paddle's default is off
