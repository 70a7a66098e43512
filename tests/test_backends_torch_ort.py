"""The torch and onnxruntime backends beyond output equivalence: what they build and how they run it.

``test_equivalence`` proves the numbers; these tests pin down the choices that make a timing
mean what the report says: native layers, the mode really in effect, threads really set, an
ONNX graph that is valid and built from the ops the spec names, and clear errors.
"""

from __future__ import annotations

import os
import sys
from types import ModuleType

import numpy as np
import pytest

from frameworks.backends.registry import BuildOptions, load_backend
from frameworks.models import BN_EPS, get_model
from frameworks.result import Result
from frameworks.weights import canonical_weights
from tests.conftest import assert_matches_reference, assert_short_facts, run_predict

pytestmark = pytest.mark.framework

CPUS = len(os.sched_getaffinity(0))


def _backend(framework: str, package: str) -> ModuleType:
    pytest.importorskip(package, reason=f"{framework} is not installed here")
    return load_backend(framework)  # type: ignore[return-value]


@pytest.fixture(scope="module")
def tb() -> ModuleType:
    return _backend("torch", "torch")


@pytest.fixture(scope="module")
def ob() -> ModuleType:
    pytest.importorskip("onnx", reason="onnx is not installed here")
    return _backend("onnxruntime", "onnxruntime")


@pytest.fixture
def restore_torch_threads(tb):
    import torch

    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


# --- torch ----------------------------------------------------------------------------------


def test_torch_build_facts(tb):
    import torch

    facts = tb.build_facts()
    assert_short_facts(facts)
    assert facts["torch"] == tb.version() == torch.__version__
    assert {"blas", "onednn", "openmp", "mkldnn_available", "cpu_capability"} <= facts.keys()
    if torch.version.cuda:
        assert facts["tf32"] == "False" and {"cuda", "cudnn", "cudnn_benchmark"} <= facts.keys()


def test_torch_config_parsing(tb):
    text = (
        "  - Intel(R) oneAPI Math Kernel Library Version 2024.2-Product Build 20240605\n"
        "  - Intel(R) MKL-DNN v3.12.0 (Git Hash 80afa71)\n  - OpenMP 201511 (a.k.a. OpenMP 4.5)\n"
        "  - Build settings: BLAS_INFO=mkl, BUILD_TYPE=Release, USE_CUDA=0,\n"
    )
    assert tb._config_facts(text) == {"blas": "mkl", "mkl": "2024.2", "onednn": "3.12.0", "openmp": "4.5"}
    assert tb._config_facts("nothing known") == {}


@pytest.mark.parametrize("options", [BuildOptions("graph"), BuildOptions("eager", device="tpu")])
def test_torch_rejects_an_unknown_mode_or_device(tb, options):
    spec = get_model("lenet5")
    with pytest.raises(ValueError, match="valid"):
        tb.build(spec, canonical_weights(spec), options)


def test_torch_cuda_without_a_gpu_is_a_clear_error(tb):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is available here")
    assert tb.cuda_available() is False
    spec = get_model("lenet5")
    with pytest.raises(RuntimeError, match="CUDA requested but no GPU is available to torch"):
        tb.build(spec, canonical_weights(spec), BuildOptions("eager", device="cuda"))


def test_torch_cuda_through_predict_exits_2(tb):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is available here")
    proc = run_predict(sys.executable, "--framework", "torch", "--model", "lenet5", "--device", "cuda")
    assert proc.returncode == 2 and "CUDA requested but torch sees no GPU" in proc.stderr


@pytest.mark.parametrize(("threads", "expected"), [(1, 1), (0, CPUS)])
def test_torch_threads_are_set_explicitly(tb, restore_torch_threads, threads, expected):
    import torch

    torch.set_num_threads(3 if expected != 3 else 2)  # something else, as an earlier build might leave it
    spec = get_model("lenet5")
    tb.build(spec, canonical_weights(spec), BuildOptions("eager", threads=threads))
    assert torch.get_num_threads() == expected


def test_torch_eager_module_is_native_layers_in_eval_mode(tb):
    from torch import nn

    spec = get_model("mobilenet_v1")
    model = tb.to_module(spec, canonical_weights(spec))
    assert not model.training and not any(m.training for m in model.modules())
    convs = {name: m for name, m in model.named_children() if isinstance(m, nn.Conv2d)}
    assert convs["dw1"].groups == convs["dw1"].in_channels == 32 and convs["dw1"].bias is None
    assert convs["pw1"].groups == 1 and convs["conv0"].padding == (1, 1) and convs["dw2"].stride == (2, 2)
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert len(bns) == 27 and all(bn.eps == BN_EPS and bn.track_running_stats for bn in bns)
    assert isinstance(model.fc, nn.Linear) and isinstance(model.softmax, nn.Softmax)
    assert tb.count_params(model) == (spec.params, spec.buffers)


def test_torch_weights_are_loaded_in_the_canonical_layout(tb):
    spec = get_model("mobilenet_v1")
    weights = canonical_weights(spec)
    model = tb.to_module(spec, weights)
    np.testing.assert_array_equal(model.dw3.weight.detach().numpy(), weights["dw3.weight"])
    np.testing.assert_array_equal(model.pw3_bn.running_var.numpy(), weights["pw3_bn.var"])
    np.testing.assert_array_equal(model.pw3_bn.weight.detach().numpy(), weights["pw3_bn.gamma"])
    np.testing.assert_array_equal(model.fc.weight.detach().numpy(), weights["fc.weight"])


def test_torch_a_missing_weight_fails_the_build(tb):
    spec = get_model("lenet5")
    weights = canonical_weights(spec)
    del weights["conv2.bias"]
    with pytest.raises(RuntimeError, match=r"conv2\.bias"):
        tb.build(spec, weights, BuildOptions("eager"))


@pytest.mark.parametrize("mode", ["eager", "jit"])
def test_torch_modes_on_a_batch_of_two(tb, mode):
    spec = get_model("lenet5")
    built = tb.build(spec, canonical_weights(spec, 5), BuildOptions(mode, batch=2))
    assert (built.params, built.buffers) == (spec.params, spec.buffers)
    assert_matches_reference(built.forward, "lenet5")


def test_torch_jit_is_traced_and_frozen(tb):
    import torch

    spec = get_model("mobilenet_v1")
    model = tb.to_module(spec, canonical_weights(spec))
    runner = tb.make_runner(model, "jit", (1, *spec.input_shape), torch.device("cpu"))
    assert isinstance(runner, torch.jit.ScriptModule)
    assert not list(runner.named_parameters())  # frozen: weights are constants of the graph
    kinds = {node.kind() for node in runner.graph.nodes()}
    assert "aten::batch_norm" not in kinds  # freezing folded batch norm into the convolutions
    assert kinds & {"aten::conv2d", "aten::_convolution"}


def test_torch_compile_wraps_the_module_and_compiles_on_the_first_call(tb, monkeypatch):
    """With a counting backend in place of inductor: nothing compiles in build, the first forward does."""
    import torch

    graphs = []

    def counting(gm, example_inputs):
        graphs.append(gm)
        return gm.forward

    real_compile = torch.compile
    monkeypatch.setattr(torch, "compile", lambda model: real_compile(model, backend=counting))
    spec = get_model("lenet5")
    built = tb.build(spec, canonical_weights(spec, 5), BuildOptions("compile", batch=2))
    assert graphs == []
    assert_matches_reference(built.forward, "lenet5")
    assert len(graphs) == 1
    model = tb.to_module(spec, canonical_weights(spec))
    assert isinstance(real_compile(model), torch._dynamo.eval_frame.OptimizedModule)


@pytest.mark.slow
def test_torch_through_predict(tb):
    proc = run_predict(
        sys.executable, "--framework", "torch", "--model", "lenet5", "--mode", "jit",
        "--iterations", "3", "--warmup", "1", "--threads", "1",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = Result.from_json(proc.stdout.strip())
    assert result.status == "ok" and result.verified and result.threads == 1
    assert result.build is not None and result.build["torch"] == result.version


# --- onnxruntime ----------------------------------------------------------------------------


def test_ort_build_facts(ob):
    import onnx
    import onnxruntime as ort

    facts = ob.build_facts()
    assert_short_facts(facts)
    assert facts["onnxruntime"] == ob.version() == ort.__version__ and facts["onnx"] == onnx.__version__
    assert facts["opset"] == str(ob.OPSET) and "CPUExecutionProvider" in facts["providers"]
    assert facts["device"] in ("CPU", "GPU") or facts["device"].startswith("GPU")


@pytest.mark.parametrize("model", ["lenet5", "mobilenet_v1"])
def test_ort_graph_is_a_valid_onnx_model(ob, model):
    import onnx

    spec = get_model(model)
    proto = ob.to_onnx(spec, canonical_weights(spec))
    onnx.checker.check_model(proto, full_check=True)  # full: with strict shape inference
    assert [(o.domain, o.version) for o in proto.opset_import] == [("", ob.OPSET)]
    inferred = onnx.shape_inference.infer_shapes(proto, strict_mode=True)
    dims = inferred.graph.output[0].type.tensor_type.shape.dim
    assert [d.dim_param or d.dim_value for d in dims] == ["batch", *spec.output_shape]
    shapes = {init.name: tuple(init.dims) for init in proto.graph.initializer}
    assert shapes == spec.tensors()  # canonical keys and layouts, nothing transposed, nothing missing
    assert ob.count_params(proto) == (spec.params, spec.buffers)


def _nodes(ob, model: str) -> list:
    spec = get_model(model)
    return list(ob.to_onnx(spec, canonical_weights(spec)).graph.node)


def _attrs(node) -> dict:
    from onnx import helper

    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def test_ort_lenet5_op_types(ob):
    nodes = _nodes(ob, "lenet5")
    assert [n.op_type for n in nodes] == [
        "Conv", "Relu", "MaxPool", "Conv", "Relu", "MaxPool", "Flatten",
        "Gemm", "Relu", "Gemm", "Relu", "Gemm", "Softmax",
    ]  # fmt: skip
    gemm, softmax = nodes[7], nodes[-1]
    assert _attrs(gemm) == {"transB": 1} and _attrs(softmax) == {"axis": 1}
    assert _attrs(nodes[2]) == {"kernel_shape": [2, 2], "strides": [2, 2]}


def test_ort_mobilenet_op_types_and_attributes(ob):
    nodes = _nodes(ob, "mobilenet_v1")
    counts: dict[str, int] = {}
    for node in nodes:
        counts[node.op_type] = counts.get(node.op_type, 0) + 1
    assert counts == {
        "Conv": 27, "BatchNormalization": 27, "Relu": 27,
        "GlobalAveragePool": 1, "Flatten": 1, "Gemm": 1, "Softmax": 1,
    }  # fmt: skip
    by_name = {n.name: n for n in nodes}
    dw2, pw2 = _attrs(by_name["dw2"]), _attrs(by_name["pw2"])
    assert dw2["group"] == 64 and dw2["pads"] == [1, 1, 1, 1] and dw2["strides"] == [2, 2]
    assert pw2["group"] == 1 and pw2["pads"] == [0, 0, 0, 0] and len(by_name["pw2"].input) == 2  # no bias
    bn = by_name["dw2_bn"]
    assert list(bn.input[1:]) == [f"dw2_bn.{k}" for k in ("gamma", "beta", "mean", "var")]
    assert _attrs(bn)["epsilon"] == pytest.approx(BN_EPS)


@pytest.mark.parametrize(("threads", "expected"), [(1, 1), (0, CPUS)])
def test_ort_session_threads_and_optimisation(ob, threads, expected):
    import onnxruntime as ort

    spec = get_model("lenet5")
    proto = ob.to_onnx(spec, canonical_weights(spec))
    session = ob.make_session(proto.SerializeToString(), BuildOptions("session", threads=threads))
    options = session.get_session_options()
    assert options.intra_op_num_threads == expected and options.inter_op_num_threads == 1
    assert options.graph_optimization_level == ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    assert session.get_providers()[0] == "CPUExecutionProvider"


def test_ort_rejects_an_unknown_mode(ob):
    spec = get_model("lenet5")
    with pytest.raises(ValueError, match="valid modes: session"):
        ob.build(spec, canonical_weights(spec), BuildOptions("eager"))


@pytest.mark.parametrize(
    ("mode", "level"), [("session", "ORT_ENABLE_ALL"), ("basic", "ORT_ENABLE_BASIC"), ("disabled", "ORT_DISABLE_ALL")]
)
def test_ort_modes_are_graph_optimisation_levels(ob, mode, level):
    """Each mode's session is made with its level, reads it back, and the build facts say so."""
    spec = get_model("mobilenet_v1")
    session = ob.make_session(ob.to_onnx(spec, canonical_weights(spec)).SerializeToString(), BuildOptions(mode))
    assert session.get_session_options().graph_optimization_level.name == level
    assert session.get_providers()[0] == "CPUExecutionProvider"
    facts = ob.build_facts()
    assert facts["graph_optimization"] == level and facts["session_providers"].startswith("CPUExecutionProvider")
    assert "in_effect" not in facts, "ONNX Runtime states no math library for its own CPU kernels"


def test_ort_the_graph_is_the_shared_onnx_lowering(ob):
    """ONNX Runtime, OpenVINO and TVM build from one graph: the backend's is onnx_graph's."""
    from frameworks.backends import onnx_graph

    spec = get_model("lenet5")
    weights = canonical_weights(spec)
    assert ob.to_onnx is onnx_graph.to_onnx and ob.OPSET == onnx_graph.OPSET
    assert ob.to_onnx(spec, weights).SerializeToString() == onnx_graph.checked_bytes(spec, weights)[0]
    assert onnx_graph.checked_bytes(spec, weights)[1:] == (spec.params, spec.buffers)


def test_ort_openvino_mode_without_the_provider_is_a_clear_error(ob):
    import onnxruntime as ort

    if "OpenVINOExecutionProvider" in ort.get_available_providers():
        pytest.skip("this onnxruntime has the OpenVINO provider")
    spec = get_model("lenet5")
    with pytest.raises(RuntimeError, match="the openvino mode needs the OpenVINO execution provider"):
        ob.build(spec, canonical_weights(spec), BuildOptions("openvino"))


def test_ort_cuda_without_the_provider_is_a_clear_error(ob):
    import onnxruntime as ort

    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this onnxruntime has the CUDA provider")
    assert ob.cuda_available() is False
    spec = get_model("lenet5")
    with pytest.raises(RuntimeError, match="CUDA requested but this onnxruntime has no CUDAExecutionProvider"):
        ob.build(spec, canonical_weights(spec), BuildOptions("session", device="cuda"))


def test_ort_on_a_batch_of_two(ob):
    spec = get_model("lenet5")
    built = ob.build(spec, canonical_weights(spec, 5), BuildOptions("session", threads=1, batch=2))
    assert (built.params, built.buffers) == (spec.params, spec.buffers)
    assert_matches_reference(built.forward, "lenet5")
