"""ONNX Runtime: the spec written as an ONNX graph with ``onnx.helper`` and run by an InferenceSession.

The graph is built straight from the spec (no exporter, no torch), so this cell depends on
nothing but ``onnx`` and ``onnxruntime``. Initializers keep the canonical tensor keys, which
makes the parameter count readable from the graph itself.
"""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from ..environment import thread_count
from ..models import BN_EPS, BatchNorm, Conv, Dense, Flatten, GlobalAvgPool, Layer, MaxPool, ModelSpec, ReLU, Softmax
from .registry import BuildOptions, Built, Forward, FrameworkInfo

FRAMEWORK = FrameworkInfo(
    name="onnxruntime",
    title="ONNX Runtime",
    import_name="onnxruntime",
    modes=("session",),
    devices=("cpu", "cuda"),
)
MODES = FRAMEWORK.modes
OPSET = 17
INPUT, OUTPUT = "input", "output"
PROVIDERS = {"cpu": ["CPUExecutionProvider"], "cuda": ["CUDAExecutionProvider", "CPUExecutionProvider"]}
_BUFFER_KINDS = (".mean", ".var")


def version() -> str:
    return str(ort.__version__)


def cuda_available() -> bool:
    return "CUDAExecutionProvider" in ort.get_available_providers()


def build_facts() -> dict[str, str]:
    """Runtime and graph-library versions, what execution providers this build has, the opset used."""
    facts = {
        "onnxruntime": version(),
        "onnx": str(onnx.__version__),
        "opset": str(OPSET),
        "providers": ",".join(ort.get_available_providers()),
        "device": str(ort.get_device()),
    }
    build_info = getattr(ort, "get_build_info", None)  # not in every release
    if build_info is not None:
        facts["build_info"] = str(build_info()).removeprefix("ORT Build Info: ")
    return facts


def build(spec: ModelSpec, weights: dict[str, np.ndarray], options: BuildOptions) -> Built:
    if options.mode not in MODES:
        raise ValueError(f"unknown onnxruntime mode {options.mode!r}; valid modes: {', '.join(MODES)}")
    model = to_onnx(spec, weights)
    params, buffers = count_params(model)
    serialized = model.SerializeToString()  # once (VGG-16 is 550 MB): the checker and the session share it
    del model
    onnx.checker.check_model(serialized)  # a malformed graph fails here with onnx's message, not deep inside ORT
    session = make_session(serialized, options)
    threads = session.get_session_options().intra_op_num_threads  # what the session was made with, read back
    return Built(_forward(session), params=params, buffers=buffers, threads=int(threads))


def session_options(threads: int) -> ort.SessionOptions:
    """Explicit thread counts (0 means every CPU this process may run on), all graph optimisations."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = thread_count(threads)
    options.inter_op_num_threads = 1  # sequential networks: nothing runs across nodes
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return options


def make_session(model: bytes, options: BuildOptions) -> ort.InferenceSession:
    """A session on the requested device's providers; a CUDA request never silently runs on the CPU."""
    if options.device not in PROVIDERS:
        raise ValueError(f"unknown device {options.device!r}; valid devices: {', '.join(PROVIDERS)}")
    if options.device == "cuda" and not cuda_available():
        raise RuntimeError(
            "CUDA requested but this onnxruntime has no CUDAExecutionProvider "
            f"(available: {', '.join(ort.get_available_providers())}); install onnxruntime-gpu"
        )
    providers = PROVIDERS[options.device]
    session = ort.InferenceSession(model, sess_options=session_options(options.threads), providers=providers)
    if session.get_providers()[0] != providers[0]:  # ORT falls back to the CPU silently when CUDA fails to load
        raise RuntimeError(f"{providers[0]} did not load; the session runs on {', '.join(session.get_providers())}")
    return session


def count_params(model: onnx.ModelProto) -> tuple[int, int]:
    """(parameters, batch-norm mean + var) summed over the graph's initializers, by canonical key."""
    sizes = {init.name: int(np.prod(init.dims)) for init in model.graph.initializer}
    buffers = sum(size for name, size in sizes.items() if name.endswith(_BUFFER_KINDS))
    return sum(sizes.values()) - buffers, buffers


def _forward(session: ort.InferenceSession) -> Forward:
    def forward(x: np.ndarray) -> np.ndarray:
        return session.run([OUTPUT], {INPUT: np.ascontiguousarray(x, dtype=np.float32)})[0]

    return forward


# --- the graph ------------------------------------------------------------------------------


def to_onnx(spec: ModelSpec, weights: dict[str, np.ndarray]) -> onnx.ModelProto:
    """The spec as an ONNX model: NCHW input with a symbolic batch, one node (or two) per layer."""
    nodes: list[onnx.NodeProto] = []
    initializers: list[onnx.TensorProto] = []
    current = INPUT
    for index, (layer, shape_in, _) in enumerate(spec.walk()):
        out = OUTPUT if index == len(spec.layers) - 1 else layer.name
        layer_nodes, keys = _lower(layer, current, out, shape_in)
        nodes += layer_nodes
        initializers += [numpy_helper.from_array(np.asarray(weights[key], dtype=np.float32), key) for key in keys]
        current = out
    graph = helper.make_graph(
        nodes,
        spec.name,
        [helper.make_tensor_value_info(INPUT, TensorProto.FLOAT, ["batch", *spec.input_shape])],
        [helper.make_tensor_value_info(OUTPUT, TensorProto.FLOAT, ["batch", *spec.output_shape])],
        initializer=initializers,
    )
    opsets = [helper.make_opsetid("", OPSET)]
    # the lowest IR version for the opset: a newer onnx writes a newer IR than an older runtime reads
    return helper.make_model(
        graph, opset_imports=opsets, ir_version=helper.find_min_ir_version_for(opsets), producer_name="dlbench"
    )


def _lower(layer: Layer, x: str, y: str, shape_in: tuple[int, ...]) -> tuple[list[onnx.NodeProto], list[str]]:
    """ONNX nodes computing ``y`` from ``x`` for one layer, and the canonical keys of its initializers."""
    name = layer.name
    if isinstance(layer, Conv):
        keys = [f"{name}.weight"] + ([f"{name}.bias"] if layer.bias else [])
        node = helper.make_node(
            "Conv", [x, *keys], [y], name=name,
            kernel_shape=[layer.kernel] * 2, strides=[layer.stride] * 2, pads=[layer.pad] * 4, dilations=[1, 1],
            group=shape_in[0] if layer.depthwise else 1,
        )  # fmt: skip
        return [node], keys
    if isinstance(layer, BatchNorm):
        keys = [f"{name}.{kind}" for kind in ("gamma", "beta", "mean", "var")]
        return [helper.make_node("BatchNormalization", [x, *keys], [y], name=name, epsilon=BN_EPS)], keys
    if isinstance(layer, ReLU):
        return [helper.make_node("Relu", [x], [y], name=name)], []
    if isinstance(layer, MaxPool):
        node = helper.make_node(
            "MaxPool", [x], [y], name=name, kernel_shape=[layer.size] * 2, strides=[layer.stride] * 2
        )
        return [node], []
    if isinstance(layer, GlobalAvgPool):
        pooled = f"{name}_pooled"
        return [
            helper.make_node("GlobalAveragePool", [x], [pooled], name=pooled),
            helper.make_node("Flatten", [pooled], [y], name=name, axis=1),
        ], []
    if isinstance(layer, Flatten):
        return [helper.make_node("Flatten", [x], [y], name=name, axis=1)], []  # NCHW: C, H, W order
    if isinstance(layer, Dense):
        keys = [f"{name}.weight", f"{name}.bias"]
        return [helper.make_node("Gemm", [x, *keys], [y], name=name, transB=1)], keys  # weight (out, in) as is
    if isinstance(layer, Softmax):
        return [helper.make_node("Softmax", [x], [y], name=name, axis=1)], []
    raise TypeError(f"onnxruntime backend cannot lower {layer!r}")
