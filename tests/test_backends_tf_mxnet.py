"""The TensorFlow and MXNet backends beyond output equivalence: what they build and how they run it.

``test_equivalence`` proves the numbers; these tests pin down what makes a timing mean what the
report says: native layers in the framework's layout, the mode really in effect (tf.function /
XLA, hybridized Gluon), threads really set, build facts that agree with what the framework does
(oneDNN kernels seen executing, or not), and clear errors.

Settings read once per process (threads, ``TF_ENABLE_ONEDNN_OPTS``, ``MXNET_MKLDNN_ENABLED``) are
tested in fresh subprocesses. MXNet lives in an environment of its own, so every MXNet test runs
in a subprocess of that environment's interpreter (``tests.conftest.framework_python``).
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from functools import lru_cache

import numpy as np
import pytest

from frameworks.backends.registry import BuildOptions, load_backend
from frameworks.models import BN_EPS, get_model
from frameworks.weights import canonical_weights
from tests.conftest import REPO_ROOT, assert_matches_reference, assert_short_facts, require_framework, run_predict

pytestmark = pytest.mark.framework

CPUS = len(os.sched_getaffinity(0))
MARK = "RESULT "
# Variables a probe sets itself: never inherited from the shell running the tests.
PROBE_ENV = ("OMP_NUM_THREADS", "TF_ENABLE_ONEDNN_OPTS", "MXNET_MKLDNN_ENABLED", "MXNET_CPU_WORKER_NTHREADS")

PRELUDE = """
import json, sys, warnings
import numpy as np
from frameworks.backends.registry import BuildOptions, load_backend
from frameworks.models import get_model
from frameworks.weights import canonical_weights

def emit(obj):
    print("RESULT " + json.dumps(obj), flush=True)

def thread_warnings(build):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        build()
    return [str(w.message) for w in caught if "threads" in str(w.message)]
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


# --- TensorFlow -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tfb():
    pytest.importorskip("tensorflow", reason="tensorflow is not installed here")
    return load_backend("tensorflow")


def _build_tf(tfb, model: str, mode: str = "eager", seed: int = 0, **options):
    """In-process builds use threads=0 (every CPU), as ``check_cell`` does: TF's pools are fixed once per process."""
    spec = get_model(model)
    return tfb.build(spec, canonical_weights(spec, seed), BuildOptions(mode, **{"threads": 0, **options}))


TF_PROBE = """
import tensorflow as tf
b = load_backend("tensorflow")
spec = get_model("lenet5")
w = canonical_weights(spec)
built = b.build(spec, w, BuildOptions("eager", threads=1))
built.forward(np.zeros((1, *spec.input_shape), np.float32))
first = [tf.config.threading.get_intra_op_parallelism_threads(), tf.config.threading.get_inter_op_parallelism_threads()]
same = thread_warnings(lambda: b.build(spec, w, BuildOptions("eager", threads=1)))
other = thread_warnings(lambda: b.build(spec, w, BuildOptions("eager", threads=2)))
emit({"facts": b.build_facts(), "first": first, "same": same, "other": other,
      "intra_after": tf.config.threading.get_intra_op_parallelism_threads()})
"""


@lru_cache(maxsize=4)
def _tf_probe(onednn: str | None) -> tuple[dict, str]:
    """A fresh TensorFlow: lenet5 built with 1 thread and run with oneDNN's verbose log on, then rebuilt."""
    env = {"ONEDNN_VERBOSE": "1", **({"TF_ENABLE_ONEDNN_OPTS": onednn} if onednn is not None else {})}
    return _probe(sys.executable, TF_PROBE, env=env)


def test_tf_build_facts(tfb):
    import tensorflow as tf
    from tensorflow.python.util import _pywrap_util_port

    facts = tfb.build_facts()
    assert_short_facts(facts)
    assert facts["tensorflow"] == tfb.version() == tf.__version__
    assert facts["onednn_enabled"] == str(bool(_pywrap_util_port.IsMklEnabled()))
    assert facts["TF_ENABLE_ONEDNN_OPTS"] == os.environ.get("TF_ENABLE_ONEDNN_OPTS", "unset")
    assert facts["xla_built"] == "True"
    info = tf.sysconfig.get_build_info()
    assert facts["is_cuda_build"] == str(info.get("is_cuda_build"))
    if info.get("is_cuda_build"):
        assert facts["tf32"] == "False" and {"cuda", "cudnn"} <= facts.keys()


@pytest.mark.slow
@pytest.mark.parametrize("onednn", ["0", "1", None], ids=["onednn-0", "onednn-1", "onednn-unset"])
def test_tf_onednn_fact_follows_the_env_and_what_runs(tfb, onednn):
    """The fact is TensorFlow's own switch, and it is true: oneDNN convolutions execute exactly when it says so.

    (TensorFlow's matmul uses oneDNN's gemm either way, so convolutions are what tell.)
    """
    result, stdout = _tf_probe(onednn)
    facts = result["facts"]
    assert facts["TF_ENABLE_ONEDNN_OPTS"] == (onednn or "unset")
    if onednn == "0":
        assert facts["onednn_enabled"] == "False"
    elif onednn == "1" and platform.machine() == "x86_64":
        assert facts["onednn_enabled"] == "True"
    assert ("primitive,exec,cpu,convolution" in stdout) == (facts["onednn_enabled"] == "True")


@pytest.mark.slow
def test_tf_threads_are_set_before_the_runtime_starts(tfb):
    result, _ = _tf_probe(None)
    assert result["first"] == [1, 1]  # intra-op as requested, inter-op 1
    assert result["same"] == []  # asking again for what is in effect is fine
    assert len(result["other"]) == 1 and "already fixed" in result["other"][0]
    assert result["intra_after"] == 1
    facts = result["facts"]
    assert (facts["threads_requested"], facts["intra_op_threads"], facts["inter_op_threads"]) == ("2", "1", "1")


TF_ZERO_PROBE = """
import tensorflow as tf
spec = get_model("lenet5")
load_backend("tensorflow").build(spec, canonical_weights(spec), BuildOptions("eager", threads=0))
emit([tf.config.threading.get_intra_op_parallelism_threads(), tf.config.threading.get_inter_op_parallelism_threads()])
"""


@pytest.mark.slow
def test_tf_threads_zero_means_every_cpu(tfb):
    """In a fresh process: this one's TensorFlow may have started already (the TFLite tests convert with it)."""
    result, _ = _probe(sys.executable, TF_ZERO_PROBE)
    assert result == [CPUS, 1]


@pytest.mark.parametrize(("options", "error"), [
    (BuildOptions("jit", threads=0), "valid modes: eager, graph, xla"),
    (BuildOptions("eager", device="tpu", threads=0), "valid devices: cpu, cuda"),
])  # fmt: skip
def test_tf_rejects_an_unknown_mode_or_device(tfb, options, error):
    spec = get_model("lenet5")
    with pytest.raises(ValueError, match=error):
        tfb.build(spec, canonical_weights(spec), options)


def test_tf_cuda_without_a_gpu_is_a_clear_error(tfb):
    if tfb.cuda_available():
        pytest.skip("a GPU is available here")
    with pytest.raises(RuntimeError, match="CUDA requested but no GPU is available to TensorFlow"):
        _build_tf(tfb, "lenet5", device="cuda")


def test_tf_model_is_native_nhwc_layers(tfb):
    import keras

    spec = get_model("mobilenet_v1")
    weights = canonical_weights(spec)
    model = tfb.to_keras(spec, weights)
    layers = {layer.name: layer for layer in model.layers}
    first = model.layers[0]
    assert isinstance(first, keras.layers.Permute) and tuple(first.dims) == (2, 3, 1)
    dw1, conv0 = layers["dw1"], layers["conv0"]
    # stride 1, 3x3, pad 1: exactly Keras's "same"; strided: the explicit symmetric padding inside the op
    assert type(dw1) is keras.layers.DepthwiseConv2D and not dw1.use_bias and dw1.padding == "same"
    assert tuple(dw1.strides) == (1, 1)
    dw2 = layers["dw2"]
    assert type(dw2) is tfb.PaddedDepthwiseConv2D and dw2.pad == 1 and tuple(dw2.strides) == (2, 2)
    assert type(conv0) is tfb.PaddedConv2D and conv0.pad == 1 and tuple(conv0.strides) == (2, 2)
    assert not any(isinstance(layer, keras.layers.ZeroPadding2D) for layer in model.layers)  # no copy per pad
    assert type(layers["pw1"]) is keras.layers.Conv2D and layers["pw1"].padding == "valid"  # 1x1: no pad
    assert model.output_shape == (None, 1000)
    bns = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert len(bns) == 27 and all(bn.epsilon == BN_EPS for bn in bns)
    assert isinstance(layers["avgpool"], keras.layers.GlobalAveragePooling2D)
    assert isinstance(layers["fc"], keras.layers.Dense) and isinstance(layers["softmax"], keras.layers.Softmax)
    assert tfb.count_params(model) == (spec.params, spec.buffers)
    *_, mean, var = layers["conv0_bn"].get_weights()
    assert np.array_equal(mean, weights["conv0_bn.mean"]) and np.array_equal(var, weights["conv0_bn.var"])
    assert np.array_equal(dw1.get_weights()[0][:, :, 5, 0], weights["dw1.weight"][5, 0])
    assert np.array_equal(conv0.get_weights()[0][:, :, 1, 7], weights["conv0.weight"][7, 1])


@pytest.mark.parametrize(("depthwise", "bias"), [(False, True), (False, False), (True, False), (True, True)],
                         ids=["conv-bias", "conv", "depthwise", "depthwise-bias"])  # fmt: skip
def test_tf_padding_inside_the_op_is_zero_padding_then_valid(tfb, depthwise, bias):
    """A strided conv with its padding inside the op computes exactly ZeroPadding2D + 'valid' (the
    lowering it replaced), forward in every mode and backward, on odd and even sizes; Keras's
    strided 'same' does not on even sizes (MobileNet's: it pads bottom/right only), so it is not used.
    A depthwise conv with a bias keeps ZeroPadding2D: TF's graph mode aborts on it otherwise."""
    import keras
    import tensorflow as tf

    from frameworks.models import Conv

    rng = np.random.default_rng(3)
    for size in (9, 10):
        layer = Conv("c", out=4, kernel=3, stride=2, pad=1, depthwise=depthwise, bias=bias)
        cin = 4 if depthwise else 3
        x = tf.constant(rng.standard_normal((2, size, size, cin)).astype(np.float32))
        native = tfb._layers(layer, (cin, size, size))
        kinds = [type(n) for n in native]
        if depthwise and bias:
            assert kinds == [keras.layers.ZeroPadding2D, keras.layers.DepthwiseConv2D]
        else:
            assert kinds == [tfb.PaddedDepthwiseConv2D if depthwise else tfb.PaddedConv2D]
        args = {"use_bias": bias}
        valid = (keras.layers.DepthwiseConv2D(3, 2, padding="valid", **args) if depthwise
                 else keras.layers.Conv2D(4, 3, 2, padding="valid", **args))  # fmt: skip
        same = (keras.layers.DepthwiseConv2D(3, 2, padding="same", **args) if depthwise
                else keras.layers.Conv2D(4, 3, 2, padding="same", **args))  # fmt: skip
        explicit = keras.Sequential([keras.Input(x.shape[1:]), keras.layers.ZeroPadding2D(1), valid])
        ours = keras.Sequential([keras.Input(x.shape[1:]), *native])
        same_model = keras.Sequential([keras.Input(x.shape[1:]), same])
        tensors = [rng.standard_normal(w.shape).astype(np.float32) for w in valid.get_weights()]
        for net in (valid, native[-1], same):
            net.set_weights(tensors)
        want = explicit(x).numpy()
        assert ours.output_shape == explicit.output_shape
        for mode in ("eager", "graph", "xla"):
            got = tfb.make_runner(ours, mode, tuple(x.shape))(x).numpy()
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5, err_msg=mode)
        if size % 2 == 0:  # 'same' pads bottom/right only here (on odd sizes it is symmetric): other windows
            assert not np.allclose(same_model(x).numpy(), want, atol=1e-3)
        with tf.GradientTape(persistent=True) as tape:
            tape.watch(x)
            a, b = tf.reduce_sum(explicit(x) ** 2), tf.reduce_sum(ours(x) ** 2)
        np.testing.assert_allclose(tape.gradient(b, x).numpy(), tape.gradient(a, x).numpy(), rtol=1e-4, atol=1e-4)
        grads = zip(
            tape.gradient(a, valid.trainable_weights), tape.gradient(b, native[-1].trainable_weights), strict=True
        )
        for ga, gb in grads:
            np.testing.assert_allclose(gb.numpy(), ga.numpy(), rtol=1e-4, atol=1e-4)


def test_tf_dense_rows_follow_keras_flatten_order(tfb):
    """Keras flattens NHWC as H, W, C; the permuted kernel gives the canonical C, H, W product exactly."""
    rng = np.random.default_rng(0)
    c, h, w, out = 3, 4, 5, 6
    weight = rng.standard_normal((out, c * h * w)).astype(np.float32)
    x = rng.standard_normal((c, h, w)).astype(np.float32)
    canonical = x.reshape(-1) @ weight.T
    keras_order = x.transpose(1, 2, 0).reshape(-1) @ tfb.dense_kernel(weight, (c, h, w))
    np.testing.assert_allclose(keras_order, canonical, rtol=1e-5)
    assert np.array_equal(tfb.dense_kernel(weight, None), weight.T)
    assert tfb.conv_kernel(np.zeros((8, 1, 3, 3)), depthwise=True).shape == (3, 3, 8, 1)
    assert tfb.conv_kernel(np.zeros((8, 2, 3, 5)), depthwise=False).shape == (3, 5, 2, 8)


def test_tf_modes_are_what_they_say(tfb):
    """eager: a plain Python call; graph: a tf.function of native ops, traced once for one fixed shape;
    xla: the same with jit_compile, which XLA really compiles (it yields HLO)."""
    import tensorflow as tf

    spec = get_model("lenet5")
    model = tfb.to_keras(spec, canonical_weights(spec))
    shape = (2, *spec.input_shape)
    x = tf.zeros(shape)
    eager = tfb.make_runner(model, "eager", shape)
    assert not isinstance(eager, tf.types.experimental.PolymorphicFunction)
    for mode in ("graph", "xla"):
        runner = tfb.make_runner(model, mode, shape)
        assert isinstance(runner, tf.types.experimental.PolymorphicFunction)
        assert runner._jit_compile is (mode == "xla")  # no public getter for the flag
        runner(x), runner(x + 1)
        assert runner.experimental_get_tracing_count() == 1
        ops = {op.type for op in runner.get_concrete_function().graph.get_operations()}
        assert {"Transpose", "Conv2D", "Relu", "MaxPool", "MatMul", "Softmax"} <= ops, ops
        with pytest.raises(TypeError):
            runner(tf.zeros((3, *spec.input_shape)))  # fixed signature: no silent retrace
    hlo = tfb.make_runner(model, "xla", shape).experimental_get_compiler_ir(x)(stage="hlo")
    assert "HloModule" in hlo and "convolution" in hlo


@pytest.mark.parametrize("mode", ["eager", "graph", "xla"])
def test_tf_forward_on_a_batch_of_two(tfb, mode):
    assert_matches_reference(_build_tf(tfb, "lenet5", mode, seed=5, batch=2).forward, "lenet5")


# --- MXNet (its own environment) ------------------------------------------------------------


@pytest.fixture(scope="module")
def mx_python() -> str:
    return require_framework("mxnet")


def test_mxnet_backend_module_imports_without_mxnet():
    """The registry may import the module anywhere; MXNet itself loads only when first used (threads first)."""
    code = "import sys, frameworks.backends.mxnet_backend as m; print('RESULT', 'mxnet' in sys.modules)"
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=True)
    assert proc.stdout.strip() == "RESULT False"


@pytest.mark.parametrize(("compiled", "env", "expected"), [
    (True, None, True), (True, "1", True), (True, "true", True), (True, "0", False), (True, " False ", False),
    (False, "1", False), (False, None, False),
])  # fmt: skip
def test_mxnet_mkldnn_switch_is_parsed_as_mxnet_does(compiled, env, expected):
    from frameworks.backends import mxnet_backend

    assert mxnet_backend.mkldnn_in_use(compiled, env) is expected


MX_PROBE = """
threads = int(sys.argv[1])
b = load_backend("mxnet")
spec = get_model("lenet5")
w = canonical_weights(spec)
built = b.build(spec, w, BuildOptions("hybrid", threads=threads))  # first use: loads MXNet
import mxnet as mx
built.forward(np.zeros((1, *spec.input_shape), np.float32))
facts = b.build_facts()
other = int(facts["omp_threads"]) + 1
warned = thread_warnings(lambda: b.build(spec, w, BuildOptions("hybrid", threads=other)))
emit({"facts": facts, "version": mx.__version__, "numpy": np.__version__, "warned": warned,
      "features": {f: mx.runtime.Features().is_enabled(f) for f in b.FEATURES}, "after": b.build_facts()})
"""


@pytest.mark.parametrize(("threads", "expected"), [(1, 1), (0, CPUS)])
def test_mxnet_facts_and_threads_read_at_load(mx_python, threads, expected):
    """OMP_NUM_THREADS is set before MXNet loads (unset, MXNet would take half the CPUs); a later
    different request cannot change it, and says so."""
    result, _ = _probe(mx_python, MX_PROBE, str(threads))
    facts = result["facts"]
    assert_short_facts(facts)
    assert facts["mxnet"] == result["version"] == "1.9.1" and result["numpy"] == "1.23.5"
    assert all(facts[f.lower()] == str(on) for f, on in result["features"].items())
    assert facts["MXNET_MKLDNN_ENABLED"] == "unset" and facts["mkldnn_in_use"] == facts["mkldnn"]
    assert facts["cpu_worker_threads"] == "1"
    assert (facts["OMP_NUM_THREADS"], facts["omp_threads"], facts["threads_requested"]) == (str(expected),) * 3
    assert len(result["warned"]) == 1 and f"loaded with {expected} OpenMP threads" in result["warned"][0]
    assert result["after"]["omp_threads"] == str(expected)
    assert result["after"]["threads_requested"] == str(expected + 1)


@pytest.mark.skipif(platform.machine() != "x86_64" or CPUS < 2, reason="MXNet halves the CPU count on x86 only")
def test_mxnet_loaded_elsewhere_first_keeps_its_own_default(mx_python):
    """Imported before the backend with OMP_NUM_THREADS unset, MXNet takes half the CPUs: reported, and warned."""
    code = """
import mxnet
b = load_backend("mxnet")
spec = get_model("lenet5")
warned = thread_warnings(lambda: b.build(spec, canonical_weights(spec), BuildOptions("hybrid", threads=0)))
emit({"facts": b.build_facts(), "warned": warned})
"""
    result, _ = _probe(mx_python, code)
    facts = result["facts"]
    assert facts["OMP_NUM_THREADS"] == "unknown: mxnet imported elsewhere first"
    assert facts["omp_threads"] == str(CPUS >> 1) and facts["threads_requested"] == str(CPUS)
    assert len(result["warned"]) == 1


@pytest.mark.parametrize("enabled", ["1", "0"])
def test_mxnet_mkldnn_fact_follows_the_env_and_what_runs(mx_python, enabled):
    """``mkldnn_in_use`` is true exactly when oneDNN convolutions are seen executing."""
    env = {"MXNET_MKLDNN_ENABLED": enabled, "DNNL_VERBOSE": "1", "MXNET_STORAGE_FALLBACK_LOG_VERBOSE": "0"}
    result, stdout = _probe(mx_python, MX_PROBE, "0", env=env)
    facts = result["facts"]
    assert facts["MXNET_MKLDNN_ENABLED"] == enabled
    assert facts["mkldnn_in_use"] == str(enabled == "1" and facts["mkldnn"] == "True")
    assert ("dnnl_verbose,exec,cpu,convolution" in stdout) == (facts["mkldnn_in_use"] == "True")


MX_MODES = """
from frameworks.backends.numpy_backend import reference_forward
from frameworks.verify import compare
from frameworks.weights import make_input

b = load_backend("mxnet")
mx = b.mxnet_module(0)
spec = get_model("lenet5")
w = canonical_weights(spec, 5)
errors = {}
for label, options in {"mode": BuildOptions("graph", threads=0), "device": BuildOptions("hybrid", "tpu", threads=0),
                       "cuda": BuildOptions("hybrid", "cuda", threads=0)}.items():
    try:
        b.build(spec, w, options)
        errors[label] = None
    except Exception as exc:
        errors[label] = [type(exc).__name__, str(exc)]
x = make_input(spec, 2, np.random.default_rng(5))
reference = reference_forward(spec, w, x)
modes = {}
for mode in b.FRAMEWORK.modes:
    net = b.make_net(spec, w, mode, mx.cpu())
    state = {"active": net._active, "flags": dict(net._flags), "cached_before": net._cached_op is not None}
    net(mx.nd.array(x))
    state["cached_after"] = net._cached_op is not None
    y = b.build(spec, w, BuildOptions(mode, threads=0, batch=2)).forward(x)
    state.update(dtype=str(y.dtype), shape=list(y.shape), error=compare(y, reference, 1e-4).max_error)
    modes[mode] = state
emit({"errors": errors, "cuda_available": b.cuda_available(), "modes": modes})
"""


def test_mxnet_modes_are_what_they_say_and_errors_are_clear(mx_python):
    result, _ = _probe(mx_python, MX_MODES)
    errors = result["errors"]
    assert errors["mode"] == ["ValueError", "unknown mxnet mode 'graph'; valid modes: imperative, hybrid"]
    assert errors["device"] == ["ValueError", "unknown device 'tpu'; valid devices: cpu, cuda"]
    if not result["cuda_available"]:
        assert errors["cuda"][0] == "RuntimeError"
        assert errors["cuda"][1].startswith("CUDA requested but no GPU is available to MXNet")
    imperative, hybrid = result["modes"]["imperative"], result["modes"]["hybrid"]
    assert not imperative["active"] and not imperative["cached_after"]
    assert hybrid["active"] and hybrid["flags"]["static_alloc"] and hybrid["flags"]["static_shape"]
    assert not hybrid["cached_before"] and hybrid["cached_after"]  # the cached graph is built on the first call
    for state in (imperative, hybrid):
        assert state["dtype"] == "float32" and state["shape"] == [2, 10] and state["error"] <= 1e-4


MX_BLOCKS = """
b = load_backend("mxnet")
mx = b.mxnet_module(0)
spec = get_model("mobilenet_v1")
w = canonical_weights(spec)
net = b.to_gluon(spec, w, mx.cpu())
blocks = {net[i].prefix.rstrip("_"): net[i] for i in range(len(net))}
params = net.collect_params()
def kw(name, *keys):
    return [str(blocks[name]._kwargs[k]) for k in keys]
def same(param, key):
    return bool(np.array_equal(params[param].data().asnumpy(), w[key]))
emit({
    "types": [type(blk).__name__ for blk in blocks.values()],
    "names": list(blocks),
    "dw1": kw("dw1", "num_group", "kernel", "stride", "pad", "no_bias", "layout"),
    "conv0": kw("conv0", "num_group", "stride", "pad"),
    "bn": [kw(n, "eps", "use_global_stats", "fix_gamma") for n, blk in blocks.items() if n.endswith("_bn")],
    "dw1_weight": [list(params["dw1_weight"].shape), same("dw1_weight", "dw1.weight")],
    "bn_var": same("conv0_bn_running_var", "conv0_bn.var"),
    "fc": [list(params["fc_weight"].shape), same("fc_weight", "fc.weight")],
    "counts": list(b.count_params(net)),
})
"""


def test_mxnet_network_is_native_gluon_blocks(mx_python):
    result, _ = _probe(mx_python, MX_BLOCKS)
    spec = get_model("mobilenet_v1")
    types = result["types"]
    assert types[:3] == ["Conv2D", "BatchNorm", "Activation"] and types.count("BatchNorm") == 27
    assert types[-4:] == ["GlobalAvgPool2D", "Flatten", "Dense", "HybridLambda"]
    assert result["names"][:2] == ["conv0", "conv0_bn"]
    assert result["dw1"] == ["32", "(3, 3)", "(1, 1)", "(1, 1)", "True", "NCHW"]  # depthwise: groups == channels
    assert result["conv0"] == ["1", "(2, 2)", "(1, 1)"]
    assert result["bn"] and all(bn == [str(BN_EPS), "True", "False"] for bn in result["bn"])
    assert result["dw1_weight"] == [[32, 1, 3, 3], True]
    assert result["bn_var"] and result["fc"] == [[1000, 1024], True]  # dense (out, in): the canonical layout as is
    assert result["counts"] == [spec.params, spec.buffers]


@pytest.mark.slow
def test_mxnet_predicts_in_its_own_environment(mx_python):
    """The whole predict path (harness, stats, result) runs under MXNet's NumPy 1.23."""
    proc = run_predict(mx_python, "--framework", "mxnet", "--model", "lenet5", "--mode", "hybrid",
                       "--iterations", "3", "--warmup", "1")  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["status"] == "ok" and result["verified"] and result["framework"] == "mxnet"
    assert result["build"]["omp_threads"] == str(CPUS) and result["params"] == get_model("lenet5").params


def test_mxnet_cuda_through_predict_exits_2(mx_python):
    result, _ = _probe(mx_python, "b = load_backend('mxnet')\nemit(b.cuda_available())")
    if result:
        pytest.skip("a GPU is available to MXNet here")
    proc = run_predict(mx_python, "--framework", "mxnet", "--model", "lenet5", "--device", "cuda")
    assert proc.returncode == 2 and "CUDA requested but mxnet sees no GPU" in proc.stderr
