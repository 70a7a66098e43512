"""The spec as an ONNX graph, written with ``onnx.helper``: what every runtime that imports ONNX runs.

ONNX Runtime, OpenVINO (``Core.read_model``) and Apache TVM (the Relax ONNX frontend) all build
their model from this one graph, so the three of them run the same nodes with the same
initializers. The graph is built straight from the spec (no exporter, no torch): this module
depends on ``onnx`` and NumPy only. Initializers keep the canonical tensor keys, which makes the
parameter count readable from the graph itself.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from ..models import BN_EPS, BatchNorm, Conv, Dense, Flatten, GlobalAvgPool, Layer, MaxPool, ModelSpec, ReLU, Softmax
from ..quantization import INPUT as QINPUT
from ..quantization import QuantParams, input_tensors

OPSET = 17
INPUT, OUTPUT = "input", "output"
_BUFFER_KINDS = (".mean", ".var")


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


def checked_bytes(spec: ModelSpec, weights: dict[str, np.ndarray]) -> tuple[bytes, int, int]:
    """The serialized graph, checked by onnx, with its (parameters, buffers) counted from the initializers.

    Serialized once (VGG-16 is 550 MB): the checker and the runtime share the bytes. A malformed
    graph fails here with onnx's message, not deep inside a runtime.
    """
    model = to_onnx(spec, weights)
    params, buffers = count_params(model)
    serialized = model.SerializeToString()
    del model
    onnx.checker.check_model(serialized)
    return serialized, params, buffers


def checked_model(spec: ModelSpec, weights: dict[str, np.ndarray]) -> onnx.ModelProto:
    """The graph as a ModelProto, checked by onnx (for a frontend that takes the proto, not bytes)."""
    model = to_onnx(spec, weights)
    onnx.checker.check_model(model)
    return model


def count_params(model: onnx.ModelProto) -> tuple[int, int]:
    """(parameters, batch-norm mean + var) summed over the graph's initializers, by canonical key."""
    sizes = {init.name: int(np.prod(init.dims)) for init in model.graph.initializer}
    buffers = sum(size for name, size in sizes.items() if name.endswith(_BUFFER_KINDS))
    return sum(sizes.values()) - buffers, buffers


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
    raise TypeError(f"the ONNX lowering cannot lower {layer!r}")


# --- the project's int8 model as one QDQ graph (frameworks.quantization) ------------------------------------


def to_qdq(params: QuantParams) -> onnx.ModelProto:
    """The project's int8 model as a QDQ graph: QuantizeLinear/DequantizeLinear pairs where the NumPy
    quantizer put them, int8 weights and int32 biases as initializers behind a DequantizeLinear each.

    The float ops between the pairs are the spec's own lowering (``_lower``) on the dequantized tensors, so
    a runtime that fuses the pattern runs int8 kernels (QLinearConv, ...) and one that does not runs the same
    arithmetic in float: the graph's meaning is ``quantization.int8_reference`` either way.
    """
    spec = params.spec
    inputs = input_tensors(spec)
    quantized = dict(params.activations)
    nodes: list[onnx.NodeProto] = []
    inits: list[onnx.TensorProto] = []

    def qdq(tensor: str, key: str, out: str) -> None:
        scale, zero = quantized[key]
        names = (f"{out}.scale", f"{out}.zero")
        inits.extend([numpy_helper.from_array(np.array(scale, np.float32), names[0]),
                      numpy_helper.from_array(np.array(zero, np.uint8), names[1])])  # fmt: skip
        nodes.append(helper.make_node("QuantizeLinear", [tensor, *names], [f"{out}_q"], name=f"{out}_q"))
        nodes.append(helper.make_node("DequantizeLinear", [f"{out}_q", *names], [out], name=f"{out}_dq"))

    def dq_param(key: str, values: np.ndarray, scale: np.ndarray) -> str:
        zeros = np.zeros(scale.shape, values.dtype)
        inits.extend([numpy_helper.from_array(values, f"{key}_quantized"),
                      numpy_helper.from_array(scale.astype(np.float32), f"{key}.scale"),
                      numpy_helper.from_array(zeros, f"{key}.zero")])  # fmt: skip
        nodes.append(helper.make_node("DequantizeLinear", [f"{key}_quantized", f"{key}.scale", f"{key}.zero"],
                                      [key], name=f"{key}_dq", axis=0))  # fmt: skip
        return key

    qdq(INPUT, QINPUT, "input_dq")
    current = "input_dq"
    for index, (layer, shape_in, _) in enumerate(spec.walk()):
        last = index == len(spec.layers) - 1
        raw = OUTPUT if last else f"{layer.name}_float"
        layer_nodes, keys = _lower(layer, current, raw, shape_in)
        for key in keys:
            if key.endswith(".weight"):
                dq_param(key, params.weight_int8(key), params.weight_scales[key])
            else:  # the bias: int32 at input scale x weight scale
                name = layer.name
                dq_param(key, params.bias_int32(name, inputs[name]), params.bias_scale(name, inputs[name]))
        nodes += layer_nodes
        current = raw
        if layer.name in quantized and not last:
            qdq(raw, layer.name, f"{layer.name}_dq")
            current = f"{layer.name}_dq"
    graph = helper.make_graph(
        nodes,
        f"{spec.name}_int8",
        [helper.make_tensor_value_info(INPUT, TensorProto.FLOAT, ["batch", *spec.input_shape])],
        [helper.make_tensor_value_info(OUTPUT, TensorProto.FLOAT, ["batch", *spec.output_shape])],
        initializer=inits,
    )
    opsets = [helper.make_opsetid("", OPSET)]
    model = helper.make_model(
        graph, opset_imports=opsets, ir_version=helper.find_min_ir_version_for(opsets), producer_name="dlbench"
    )
    onnx.checker.check_model(model)
    return model
