"""TFLite (LiteRT): the TensorFlow lowering converted to a float32 ``.tflite`` flatbuffer, run by
LiteRT's interpreter with the XNNPACK delegate.

Modes:
- ``xnnpack``: the interpreter's builtin kernels with its default delegate, XNNPACK, which takes
  over every node it supports when the tensors are allocated; ``num_threads`` is the cell's count;
- ``sparse`` (pruned weights only: the ``prune`` transform): converted with
  ``Optimize.EXPERIMENTAL_SPARSITY``, which stores sparse weights sparse in the flatbuffer. Whether a
  sparse kernel runs is read from the interpreter's own graph: a weight the converter could not keep in
  a form TFLite's sparse kernels take (unstructured zeros; those kernels take 1x4 blocks) comes back
  through a ``DENSIFY`` op before its layer, and XNNPACK's own sparse inference is not offered on x86
  CPUs with AVX. Without a sparse weight left at run time the cell is skipped with what the graph holds.

The int8 transform (``toolchain=native`` only, ``calibrator=minmax`` only: the converter calibrates with
its own min/max ranges and offers no percentile) runs in ``xnnpack``: TensorFlow's full-integer
post-training quantization of the same Keras model (``Optimize.DEFAULT``, a representative dataset of the
cell's calibration images, ``TFLITE_BUILTINS_INT8`` ops only, float32 input and output so the harness feeds
floats). Which int8 kernels ran is read from the interpreter's graph after XNNPACK took its partitions
(``int8_kernels``): each compute op by its input tensor's type, and by who runs it (XNNPACK or a builtin).

Conversion happens in ``build``, in the cell's own process: ``tensorflow_backend.to_keras`` (the
Keras model the TensorFlow column times, with its NCHW-to-NHWC ``Permute`` and its permuted dense
rows) is wrapped for the cell's one batch size, so that the flatbuffer has a static input shape,
and converted by ``TFLiteConverter.from_keras_model`` with no optimisation: no quantisation, no
float16 (``supported_types`` float32 only), so every weight stays float32. Conversion is not part
of the first inference (the harness times that as the interpreter's first ``invoke``).

What runs, as the interpreter states it: after allocation its graph has ``DELEGATE`` nodes;
``in_effect`` is "XNNPACK" when one delegate node takes the model's input and produces its output
(the whole network delegated), otherwise the partitions are named.

Counts: parameters and running statistics are counted through Keras's API on the model that was
converted. The converter folds each batch norm into the convolution before it (one bias vector
where the spec has gamma, beta, mean and var), so the flatbuffer's own float32 constant tensors
cannot give the spec's split; they are counted too (fact ``flatbuffer_constants``) and ``build``
checks their total against the spec with exactly that folding (``folded_constants``): a converter
that dropped a weight fails the cell. LeNet-5 and VGG-16 have no batch norm: there the flatbuffer
count is the spec's.

Threads: XNNPACK runs on a pthreadpool of ``num_threads - 1`` workers plus the calling thread,
made when the delegate is applied. The interpreter has no getter, so the count is read back as the
threads that appeared in ``/proc/self/task`` during allocation under the caller's name (the workers
inherit it; TensorFlow names its own threads), plus the caller.
"""

from __future__ import annotations

import contextlib
import gc
import os
import sys
from collections.abc import Callable, Iterator
from typing import Any

import ai_edge_litert
import keras
import numpy as np
import tensorflow as tf
from ai_edge_litert import schema_py_generated as schema
from ai_edge_litert.interpreter import Interpreter, OpResolverType

from ..environment import thread_count
from ..models import BatchNorm, Conv, Layer, ModelSpec
from . import tensorflow_backend
from .registry import IN_EFFECT, INT8_KERNELS, SPARSE_KERNELS, BuildOptions, Built, Forward, FrameworkInfo

FRAMEWORK = FrameworkInfo(
    name="tflite",
    title="TFLite (LiteRT)",
    import_name="ai_edge_litert",
    modes=("xnnpack", "sparse"),
    devices=("cpu",),
    transform_modes=(("sparse", "prune"),),
    transforms=("int8 toolchain=native calibrator=minmax",),
)
DENSIFY_OP = "DENSIFY"
RESOLVER = OpResolverType.BUILTIN  # builtin kernels plus the default delegate (XNNPACK)
DELEGATE_OP = "DELEGATE"

# Facts of the last build: the flatbuffer, the delegation, the threads.
_state: dict[str, str] = {}


def version() -> str:
    return str(ai_edge_litert.__version__)


def cuda_available() -> bool:
    return False


def build_facts() -> dict[str, str]:
    """The interpreter and the converter that made its flatbuffer, and what the last build delegated."""
    facts = {
        "interpreter": f"ai_edge_litert {version()}",
        "converter": f"tensorflow {tf.__version__}",
        "op_resolver": RESOLVER.name,
        "weights": "float32 (no quantisation, no float16)",
    }  # an int8 build says otherwise in _state
    facts.update(_state)
    return facts


def build(spec: ModelSpec, weights: dict[str, np.ndarray], options: BuildOptions) -> Built:
    FRAMEWORK.check(options)
    model = tensorflow_backend.to_keras(spec, weights)
    params, buffers = tensorflow_backend.count_params(model)
    int8 = options.transform == "int8"
    calibration = np.asarray(options.data["calibration"], dtype=np.float32) if int8 else None
    flatbuffer = convert(model, (options.batch, *spec.input_shape), sparse=options.mode == "sparse",
                         calibration=calibration)  # fmt: skip
    del model
    constants = flatbuffer_constants(flatbuffer)
    expected = folded_constants(spec)
    # sparse storage keeps fewer values (said below); int8 ones are int8 and int32 constants, counted by the proof
    if constants != expected and options.mode != "sparse" and not int8:
        raise RuntimeError(f"the flatbuffer holds {constants} float32 constants; the spec folded as the "
                           f"converter folds it has {expected}")  # fmt: skip
    interpreter, threads = make_interpreter(flatbuffer, thread_count(options.threads))
    partitions = delegation(interpreter)
    whole = whole_graph(interpreter, partitions)
    _state.clear()
    _state.update({
        "flatbuffer_bytes": str(len(flatbuffer)),
        "flatbuffer_constants": str(constants),
        "delegate_partitions": str(len(partitions)),
        "delegated_whole_graph": str(whole),
        "threads_requested": str(thread_count(options.threads)),
        "xnnpack_threads": str(threads),
        IN_EFFECT: "XNNPACK" if whole else in_effect(len(partitions)),
    })  # fmt: skip
    if options.mode == "sparse":
        _state[SPARSE_KERNELS] = sparse_weights(interpreter, flatbuffer)
    if int8:
        _state.update({
            INT8_KERNELS: int8_kernels(interpreter),
            "int8_model": ("tf.lite.TFLiteConverter full-integer post-training quantization: Optimize.DEFAULT, "
                           "TFLITE_BUILTINS_INT8, its min/max calibration on the representative dataset, "
                           "int8 weights and activations, float32 input and output"),
            "model_bytes": str(len(flatbuffer)),
            "weights": "int8 (full-integer quantization, int32 biases)",
        })  # fmt: skip
    return Built(_forward(interpreter), params=params, buffers=buffers, threads=threads)


def convert(
    model: keras.Model, input_shape: tuple[int, ...], *, sparse: bool = False, calibration: np.ndarray | None = None
) -> bytes:
    """The Keras model as a float32 TFLite flatbuffer with a static input of ``input_shape``; with
    ``calibration`` images (N, C, H, W), fully int8-quantized by the converter, calibrated on them.

    The converter saves the model to a temporary SavedModel first and prints what it captured:
    that goes to stderr, so that stdout keeps only the cell's result.
    """
    inputs = keras.Input(batch_shape=input_shape, dtype="float32")
    fixed = keras.Model(inputs, model(inputs), name=f"{model.name}_batch{input_shape[0]}")
    converter = tf.lite.TFLiteConverter.from_keras_model(fixed)
    converter.optimizations = [tf.lite.Optimize.EXPERIMENTAL_SPARSITY] if sparse else []
    converter.target_spec.supported_types = [tf.float32]
    if calibration is not None:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = representative_dataset(calibration, input_shape[0])
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.target_spec.supported_types = []
        converter.inference_input_type = tf.float32  # the harness feeds floats: QUANTIZE and DEQUANTIZE at the ends
        converter.inference_output_type = tf.float32
    with contextlib.redirect_stdout(sys.stderr):
        return bytes(converter.convert())


def representative_dataset(images: np.ndarray, batch: int) -> Callable[[], Iterator[list[np.ndarray]]]:
    """The converter's calibration input: the images in NCHW as the model takes them (its first layer permutes),
    one per yield at batch 1; at a larger batch, batches of consecutive images (the input shape is static)."""

    def batches() -> Iterator[list[np.ndarray]]:
        for start in range(0, images.shape[0], batch):
            chunk = images[start : start + batch]
            if chunk.shape[0] < batch:  # the last, short batch: completed from the first images
                chunk = np.concatenate([chunk, np.resize(images, (batch - chunk.shape[0], *images.shape[1:]))])
            yield [np.ascontiguousarray(chunk, dtype=np.float32)]

    return batches


# The ops that do a network's arithmetic (the others move, reshape or convert values).
COMPUTE_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "AVERAGE_POOL_2D", "MEAN", "MAX_POOL_2D",
               "SOFTMAX", "ADD", "MUL", "RELU", "RELU6")  # fmt: skip
# The int8 proof needs a quantized product: a convolution or a dense layer.
PRODUCT_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")
INT_TYPES = ("int8", "uint8")


def int8_kernels(interpreter: Interpreter) -> str:
    """Which compute ops ran on int8 tensors, and in what (XNNPACK's partitions or TFLite's builtin kernels), from
    the interpreter's graph after delegation: "XNNPACK: CONV_2D x2 (int8), ...; builtin: SOFTMAX x1 (int8)";
    "none: ..." when no convolution or dense layer takes an int8 input."""
    ops = interpreter._get_ops_details()
    types = {int(t["index"]): np.dtype(t["dtype"]).name for t in interpreter.get_tensor_details()}
    delegated = delegated_ops(ops)
    counts: dict[tuple[str, str, str], int] = {}
    for op in ops:
        name = op["op_name"]
        if name not in COMPUTE_OPS:
            continue
        first = types.get(int(op["inputs"][0]), "?")
        key = ("XNNPACK" if int(op["index"]) in delegated else "builtin", name, first)
        counts[key] = counts.get(key, 0) + 1
    quantized = [k for k in counts if k[2] in INT_TYPES]
    floats = ", ".join(f"{name} x{n} ({dtype}, {who})" for (who, name, dtype), n in counts.items()
                       if dtype not in INT_TYPES)  # fmt: skip
    if not any(name in PRODUCT_OPS for _, name, _ in quantized):
        return f"none: no convolution or dense op takes an int8 input ({floats or 'no compute op'}; TFLite interpreter)"
    parts = []
    for runner in ("XNNPACK", "builtin"):
        mine = ", ".join(f"{name} x{counts[(who, name, dtype)]} ({dtype})" for who, name, dtype in quantized
                         if who == runner)  # fmt: skip
        if mine:
            parts.append(f"{runner}: {mine}")
    tail = f"; float: {floats}" if floats else ""
    return f"{'; '.join(parts)}{tail} (TFLite interpreter graph)"


def delegated_ops(ops: list[dict[str, Any]]) -> set[int]:
    """The indices of the original nodes a delegate node replaced: walking back from each delegate's outputs
    through their producers until its inputs (the graph keeps replaced nodes; the Python API has no plan)."""
    producer = {int(t): op for op in ops if op["op_name"] != DELEGATE_OP for t in op["outputs"]}
    taken: set[int] = set()
    for node in ops:
        if node["op_name"] != DELEGATE_OP:
            continue
        boundary = {int(t) for t in node["inputs"]}
        pending = [int(t) for t in node["outputs"]]
        while pending:
            tensor = pending.pop()
            op = producer.get(tensor)
            if tensor in boundary or op is None or int(op["index"]) in taken:
                continue
            taken.add(int(op["index"]))
            pending.extend(int(t) for t in op["inputs"] if int(t) >= 0)
    return taken


def sparse_weights(interpreter: Interpreter, flatbuffer: bytes) -> str:
    """What the interpreter's graph says of sparse weights: those a builtin kernel reads sparse (TFLite's
    sparse FULLY_CONNECTED), or "none" with the DENSIFY ops that make each dense before its layer runs."""
    ops = interpreter._get_ops_details()
    stored = sparse_tensors(flatbuffer)
    densify = {int(i) for op in ops if op["op_name"] == DENSIFY_OP for i in op["inputs"]}
    direct = {int(i): op["op_name"] for op in ops if op["op_name"] not in (DENSIFY_OP, DELEGATE_OP)
              for i in op["inputs"]}  # fmt: skip
    live = [f"{stored[i]} ({direct[i]})" for i in stored if i in direct and i not in densify]
    if live:
        return f"{len(live)} of {len(stored)} sparse-stored weight(s) read sparse: {', '.join(live)}"
    return (f"none: {len(stored)} weight(s) stored sparse in the {len(flatbuffer)}-byte flatbuffer; "
            f"{len(densify & set(stored))} of them go through a DENSIFY op that makes them dense before their "
            "layer runs, and no builtin kernel reads one sparse")  # fmt: skip


def sparse_tensors(flatbuffer: bytes) -> dict[int, str]:
    """The flatbuffer's tensors that carry sparsity parameters (stored sparse), by index."""
    model = schema.ModelT.InitFromPackedBuf(flatbuffer, 0)
    graph = model.subgraphs[0]
    return {i: (t.name.decode() if isinstance(t.name, bytes) else str(t.name))
            for i, t in enumerate(graph.tensors) if t.sparsity is not None}  # fmt: skip


def flatbuffer_constants(flatbuffer: bytes) -> int:
    """Elements of the float32 tensors whose data the flatbuffer itself holds (weights, folded biases)."""
    model = schema.Model.GetRootAsModel(flatbuffer, 0)
    total = 0
    for s in range(model.SubgraphsLength()):
        graph = model.Subgraphs(s)
        for t in range(graph.TensorsLength()):
            tensor = graph.Tensors(t)
            buffer = model.Buffers(tensor.Buffer()) if tensor.Buffer() > 0 else None
            has_data = buffer is not None and (buffer.DataLength() > 0 or buffer.Size() > 0)
            if has_data and tensor.Type() == schema.TensorType.FLOAT32:
                total += int(np.prod(tensor.ShapeAsNumpy())) if tensor.ShapeLength() else 1
    return total


def folded_constants(spec: ModelSpec) -> int:
    """The spec's tensors as the converter stores them: a batch norm after a convolution folded into
    it (the kernel scaled, one bias vector: the convolution's own if it had one, else a new one)."""
    total = spec.params + spec.buffers
    previous: Layer | None = None
    for layer, shape_in, _ in spec.walk():
        if isinstance(layer, BatchNorm):
            channels = shape_in[0]
            if not isinstance(previous, Conv):
                raise ValueError(f"{layer.name}: the folding is only known for a batch norm after a convolution")
            total -= 4 * channels if previous.bias else 3 * channels
        previous = layer
    return total


def make_interpreter(flatbuffer: bytes, threads: int) -> tuple[Interpreter, int]:
    """The interpreter with XNNPACK applied and tensors allocated; and the threads XNNPACK made, plus the caller."""
    gc.collect()  # an interpreter of an earlier build ending now would hide threads made here
    before = unnamed_threads()
    interpreter = Interpreter(model_content=flatbuffer, num_threads=threads, experimental_op_resolver_type=RESOLVER)
    interpreter.allocate_tensors()
    return interpreter, len(unnamed_threads() - before) + 1


def unnamed_threads() -> set[str]:
    """This process's threads that carry the calling thread's name, as pthreadpool's workers do.

    TensorFlow's own threads (the converter's, started lazily) are named ``tf_...``: they never count.
    """
    own = _comm("/proc/thread-self/comm")
    return {task for task in os.listdir("/proc/self/task") if _comm(f"/proc/self/task/{task}/comm") == own}


def _comm(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8") as comm:
            return comm.read().strip()
    except OSError:  # the thread ended while listing
        return None


def delegation(interpreter: Interpreter) -> list[dict[str, Any]]:
    """The interpreter's delegate nodes (each one runs a partition of the graph in XNNPACK)."""
    return [op for op in interpreter._get_ops_details() if op["op_name"] == DELEGATE_OP]


def whole_graph(interpreter: Interpreter, partitions: list[dict[str, Any]]) -> bool:
    """One delegate node that takes the model's input and produces its output: nothing runs outside it."""
    if len(partitions) != 1:
        return False
    (node,) = partitions
    inputs = {int(d["index"]) for d in interpreter.get_input_details()}
    outputs = {int(d["index"]) for d in interpreter.get_output_details()}
    return inputs <= {int(i) for i in node["inputs"]} and outputs <= {int(o) for o in node["outputs"]}


def in_effect(partitions: int) -> str:
    """What runs when XNNPACK did not take the whole graph."""
    return f"XNNPACK ({partitions} partitions) + TFLite kernels" if partitions else "TFLite builtin kernels"


def _forward(interpreter: Interpreter) -> Forward:
    (given,) = interpreter.get_input_details()
    (produced,) = interpreter.get_output_details()
    source, sink = int(given["index"]), int(produced["index"])

    def forward(x: np.ndarray) -> np.ndarray:
        interpreter.set_tensor(source, np.ascontiguousarray(x, dtype=np.float32))  # copies into the interpreter
        interpreter.invoke()
        return interpreter.get_tensor(sink)  # a copy of the output  # type: ignore[no-any-return]

    return forward
