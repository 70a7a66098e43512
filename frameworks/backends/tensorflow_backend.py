"""TensorFlow: the spec as a Keras model of native NHWC layers, run eager, as a graph, or XLA-compiled.

Modes:
- ``eager``: ``model(x, training=False)`` called eagerly, op by op;
- ``graph``: the same call wrapped in ``tf.function`` (Grappler-optimised graph);
- ``xla``: ``tf.function(jit_compile=True)``.
Tracing and XLA compilation are lazy: they happen on the first forward, which the harness times
separately as the first inference (as torch's ``compile`` mode does).

Layout: TensorFlow's CPU convolutions want NHWC, so the model takes the canonical NCHW batch and
its first layer is a ``Permute`` to NHWC. The transpose is thus part of the model in every mode
(inside the graph for ``graph``/``xla``, on the device for ``cuda``) and so inside the timed region
equally for all modes. Keras flattens NHWC in H, W, C order: instead of transposing back before
``Flatten`` (an extra op per inference), the rows of the first dense layer after a flatten are
permuted once at build, so the network computes the canonical C, H, W-order product exactly.

Training (``train``): a ``tf.GradientTape`` step (logits, mean sparse softmax cross-entropy, tape
gradients, ``keras.optimizers.SGD`` with momentum) under ``tf.function`` for ``graph``, with
``jit_compile=True`` for ``xla``; traced and compiled on the first step, which the first epoch's
time includes. ``read_weights`` converts the trained Keras weights back to the canonical layout.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from ..environment import thread_count
from ..models import BN_EPS, BatchNorm, Conv, Dense, Flatten, GlobalAvgPool, Layer, MaxPool, ModelSpec, ReLU, Softmax
from .registry import IN_EFFECT, BuildOptions, Built, Forward, FrameworkInfo, TrainOptions

FRAMEWORK = FrameworkInfo(
    name="tensorflow",
    title="TensorFlow",
    import_name="tensorflow",
    modes=("eager", "graph", "xla"),
    devices=("cpu", "cuda"),
    mode_pairs=(("eager", "graph"), ("graph", "xla")),
    train_modes=("graph", "xla"),
    transform_notes=(
        ("int8", "TensorFlow's int8 inference is TFLite's full-integer converter: the tflite variant runs it"),
    ),
)
INTEROP_THREADS = 1  # a sequential network has no inter-op parallelism (torch and onnxruntime get 1 too)

# What the last ``set_threads`` asked for and what TensorFlow runs with (reported by ``build_facts``).
_threads: dict[str, str] = {}


def version() -> str:
    return str(tf.__version__)


def cuda_available() -> bool:
    return bool(tf.config.list_physical_devices("GPU"))


def build_facts() -> dict[str, str]:
    """What this TensorFlow was built with and runs with, as TensorFlow itself states it.

    Reading these does not initialise TensorFlow's runtime, so thread settings made later by
    ``build`` still take effect.
    """
    info = tf.sysconfig.get_build_info()
    facts = {"tensorflow": version(), "keras": str(keras.__version__), "is_cuda_build": str(info.get("is_cuda_build"))}
    facts.update(onednn_facts())
    facts["xla_built"] = str(_util_port().IsBuiltWithXLA())
    if info.get("is_cuda_build"):
        _set_gpu_precision()
        facts["cuda"] = str(info.get("cuda_version", "unknown"))
        facts["cudnn"] = str(info.get("cudnn_version", "unknown"))
        facts["tf32"] = str(tf.config.experimental.tensor_float_32_execution_enabled())
    facts.update(_threads)
    return facts


def _util_port() -> Any:
    from tensorflow.python.util import _pywrap_util_port

    return _pywrap_util_port


def onednn_facts() -> dict[str, str]:
    """oneDNN as requested (``TF_ENABLE_ONEDNN_OPTS``) and as in effect.

    ``IsMklEnabled`` is the check TensorFlow's own kernel registration uses: it reads the variable
    once per process and, when unset, enables oneDNN only on CPUs with AVX-512/AMX-class features.
    """
    enabled = bool(_util_port().IsMklEnabled())
    return {
        "TF_ENABLE_ONEDNN_OPTS": os.environ.get("TF_ENABLE_ONEDNN_OPTS", "unset"),
        "onednn_enabled": str(enabled),
        IN_EFFECT: "oneDNN" if enabled else "Eigen",
    }


def _set_gpu_precision() -> None:
    """Full fp32 on the GPU: TF32 would make cuda cells faster by computing a different network."""
    tf.config.experimental.enable_tensor_float_32_execution(False)


def set_threads(threads: int) -> int:
    """Intra-op threads explicitly (0 means every CPU this process may run on), inter-op 1.

    TensorFlow fixes both pools when its runtime initialises (the first op or variable); a later
    different request raises, so it is kept as a warning and the effective value is recorded.
    Returns the intra-op count in effect.
    """
    count = thread_count(threads)
    try:
        tf.config.threading.set_intra_op_parallelism_threads(count)
        tf.config.threading.set_inter_op_parallelism_threads(INTEROP_THREADS)
    except RuntimeError as exc:  # setting the value already in effect is allowed: only a change gets here
        warnings.warn(f"TensorFlow threads already fixed in this process: {exc}", RuntimeWarning, stacklevel=2)
    effective = tf.config.threading.get_intra_op_parallelism_threads()
    _threads.update(
        threads_requested=str(count),
        intra_op_threads=str(effective),
        inter_op_threads=str(tf.config.threading.get_inter_op_parallelism_threads()),
    )
    return int(effective)


def build(spec: ModelSpec, weights: dict[str, np.ndarray], options: BuildOptions) -> Built:
    FRAMEWORK.check(options)
    threads = set_threads(options.threads)  # first: before any op or variable initialises the runtime
    device = _device(options.device)
    with tf.device(device):
        model = to_keras(spec, weights)
    params, buffers = count_params(model)
    runner = make_runner(model, options.mode, (options.batch, *spec.input_shape))
    return Built(_forward(runner, device), params=params, buffers=buffers, threads=threads)


def _device(name: str) -> str:
    if name == "cuda":
        if not cuda_available():
            build = "a CUDA build" if tf.sysconfig.get_build_info().get("is_cuda_build") else "a CPU-only build"
            raise RuntimeError(f"CUDA requested but no GPU is available to TensorFlow ({build})")
        _set_gpu_precision()
        return "/GPU:0"
    return "/CPU:0"


def to_keras(spec: ModelSpec, weights: dict[str, np.ndarray]) -> keras.Sequential:
    """The spec as named native Keras layers (NHWC after the first ``Permute``), canonical weights loaded."""
    c, h, w = spec.input_shape
    model = keras.Sequential(name=spec.name)
    model.add(keras.Input(shape=(c, h, w), dtype="float32"))
    model.add(keras.layers.Permute((2, 3, 1), name="nchw_to_nhwc"))
    for layer, shape_in, _ in spec.walk():
        for native in _layers(layer, shape_in):
            model.add(native)
    load_weights(model, spec, weights)
    return model


def _layers(layer: Layer, shape_in: tuple[int, ...]) -> list[keras.layers.Layer]:
    """The native layers for one spec layer (a strided padded conv pads inside the op: see ``PaddedConv2D``)."""
    if isinstance(layer, Conv):
        same = same_padding(layer)
        common: dict[str, Any] = {"padding": "same" if same else "valid", "use_bias": layer.bias, "name": layer.name}
        depthwise, conv = keras.layers.DepthwiseConv2D, keras.layers.Conv2D
        if layer.pad and not same and layer.depthwise and layer.bias:
            # TF 2.21's graph mode fuses such a depthwise conv with its bias and aborts the process
            # (tensor_format.h "Invalid index from the dimension"): explicit zero padding instead
            pad = keras.layers.ZeroPadding2D(layer.pad, name=f"{layer.name}_pad")
            return [pad, depthwise(layer.kernel, layer.stride, **common)]
        if layer.pad and not same:
            depthwise, conv, common["pad"] = PaddedDepthwiseConv2D, PaddedConv2D, layer.pad
        if layer.depthwise:
            return [depthwise(layer.kernel, layer.stride, **common)]
        return [conv(layer.out, layer.kernel, layer.stride, **common)]
    if isinstance(layer, BatchNorm):
        return [keras.layers.BatchNormalization(axis=-1, epsilon=BN_EPS, name=layer.name)]
    if isinstance(layer, ReLU):
        return [keras.layers.ReLU(name=layer.name)]
    if isinstance(layer, MaxPool):
        return [keras.layers.MaxPooling2D(layer.size, layer.stride, padding="valid", name=layer.name)]
    if isinstance(layer, GlobalAvgPool):
        return [keras.layers.GlobalAveragePooling2D(name=layer.name)]
    if isinstance(layer, Flatten):
        return [keras.layers.Flatten(name=layer.name)]  # NHWC: H, W, C order (see dense_kernel)
    if isinstance(layer, Dense):
        return [keras.layers.Dense(layer.out, name=layer.name)]
    if isinstance(layer, Softmax):
        return [keras.layers.Softmax(axis=-1, name=layer.name)]
    raise TypeError(f"tensorflow backend cannot lower {layer!r}")


class _ExplicitPadding:
    """Symmetric zero padding passed to the convolution op itself (``tf.nn``'s explicit ``paddings``).

    A strided convolution cannot use Keras's ``same`` (it pads only bottom/right: other windows,
    another computation), and a ``ZeroPadding2D`` before a ``valid`` convolution copies every
    activation into a larger tensor first: measured here, MobileNet v1 in graph mode was 3-4%
    slower that way than with ``same``, and as fast as ``same`` with the padding in the op. The
    weights, their layout and the output are exactly those of the native layer with explicit
    padding (tests prove the outputs equal).
    """

    pad: int

    def paddings(self) -> list[list[int]]:
        return [[0, 0], [self.pad, self.pad], [self.pad, self.pad], [0, 0]]

    def padded_shape(self, input_shape: tuple[Any, ...]) -> tuple[Any, ...]:
        n, h, w, c = input_shape
        return (n, None if h is None else h + 2 * self.pad, None if w is None else w + 2 * self.pad, c)


class PaddedConv2D(_ExplicitPadding, keras.layers.Conv2D):
    """``Conv2D`` (``valid``) with its symmetric padding inside ``tf.nn.conv2d``."""

    def __init__(self, *args: Any, pad: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.pad = pad

    def convolution_op(self, inputs: Any, kernel: Any) -> Any:
        return tf.nn.conv2d(inputs, kernel, strides=[1, *self.strides, 1], padding=self.paddings())

    def compute_output_shape(self, input_shape: Any) -> Any:
        return super().compute_output_shape(self.padded_shape(tuple(input_shape)))


class PaddedDepthwiseConv2D(_ExplicitPadding, keras.layers.DepthwiseConv2D):
    """``DepthwiseConv2D`` (``valid``) with its symmetric padding inside ``tf.nn.depthwise_conv2d``."""

    def __init__(self, *args: Any, pad: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.pad = pad

    def call(self, inputs: Any) -> Any:
        strides = [1, *self.strides, 1]
        outputs = tf.nn.depthwise_conv2d(inputs, self.kernel, strides=strides, padding=self.paddings())
        if self.use_bias:
            outputs = outputs + self.bias
        return outputs if self.activation is None else self.activation(outputs)

    def compute_output_shape(self, input_shape: Any) -> Any:
        return super().compute_output_shape(self.padded_shape(tuple(input_shape)))


def same_padding(conv: Conv) -> bool:
    """Whether the spec's explicit symmetric padding is exactly Keras's ``same``: stride 1 and an odd
    kernel padded by half of it on every side. A strided ``same`` pads asymmetrically, so strided layers
    pass their explicit padding to the op instead (``PaddedConv2D``)."""
    return conv.stride == 1 and conv.kernel % 2 == 1 and conv.pad == conv.kernel // 2 > 0


def load_weights(model: keras.Sequential, spec: ModelSpec, weights: dict[str, np.ndarray]) -> None:
    """Canonical tensors converted to Keras layouts and set layer by layer (a shape mismatch raises)."""
    flattened: tuple[int, ...] | None = None  # the (C, H, W) a Flatten consumed, until the next dense layer
    for layer, shape_in, _ in spec.walk():
        if isinstance(layer, Flatten) and len(shape_in) == 3:
            flattened = shape_in
        if not isinstance(layer, (Conv, BatchNorm, Dense)):
            continue
        w = {key.rsplit(".", 1)[1]: np.asarray(a, dtype=np.float32) for key, a in weights.items()
             if key.rsplit(".", 1)[0] == layer.name}  # fmt: skip
        if isinstance(layer, Dense):
            tensors = [dense_kernel(w["weight"], flattened), w["bias"]]
            flattened = None
        elif isinstance(layer, BatchNorm):
            tensors = [w["gamma"], w["beta"], w["mean"], w["var"]]
        else:
            tensors = [conv_kernel(w["weight"], layer.depthwise)] + ([w["bias"]] if layer.bias else [])
        model.get_layer(layer.name).set_weights(tensors)


def conv_kernel(weight: np.ndarray, depthwise: bool) -> np.ndarray:
    """OIHW to Keras: HWIO for a convolution, (kh, kw, C, 1) for a depthwise one (canonical (C, 1, kh, kw))."""
    return np.ascontiguousarray(weight.transpose(2, 3, 0, 1) if depthwise else weight.transpose(2, 3, 1, 0))


def dense_kernel(weight: np.ndarray, flattened: tuple[int, ...] | None) -> np.ndarray:
    """(out, in) to Keras's (in, out); after a flatten, input rows reordered from C, H, W to Keras's H, W, C."""
    if flattened is not None:
        c, h, w = flattened
        weight = weight.reshape(-1, c, h, w).transpose(0, 2, 3, 1).reshape(weight.shape[0], -1)
    return np.ascontiguousarray(weight.T)


def count_params(model: keras.Model) -> tuple[int, int]:
    """(trainable weights, non-trainable weights: batch-norm moving mean + variance) through Keras's own API."""
    trainable = sum(int(np.prod(v.shape)) for v in model.trainable_weights)
    return trainable, sum(int(np.prod(v.shape)) for v in model.non_trainable_weights)


def make_runner(model: keras.Model, mode: str, input_shape: tuple[int, ...]) -> Callable[[Any], Any]:
    """What the forward calls: the model eagerly, or a ``tf.function`` of it for one fixed input shape.

    The fixed signature makes a different shape an error rather than a silent retrace inside the timed loop.
    """

    def call(x: Any) -> Any:
        return model(x, training=False)

    if mode == "eager":
        return call
    signature = [tf.TensorSpec(input_shape, tf.float32)]
    return tf.function(call, input_signature=signature, jit_compile=mode == "xla")


def _forward(runner: Callable[[Any], Any], device: str) -> Forward:
    def forward(x: np.ndarray) -> np.ndarray:
        with tf.device(device):
            y = runner(tf.convert_to_tensor(np.ascontiguousarray(x, dtype=np.float32)))
            return y.numpy()  # type: ignore[no-any-return]  # .numpy() copies to the host and waits: the fetch is timed

    return forward


# --- training ------------------------------------------------------------------------------------------


def conv_weight(kernel: np.ndarray, depthwise: bool) -> np.ndarray:
    """The inverse of ``conv_kernel``: Keras's HWIO (or depthwise (kh, kw, C, 1)) back to OIHW."""
    return np.ascontiguousarray(kernel.transpose(2, 3, 0, 1) if depthwise else kernel.transpose(3, 2, 0, 1))


def dense_weight(kernel: np.ndarray, flattened: tuple[int, ...] | None) -> np.ndarray:
    """The inverse of ``dense_kernel``: Keras's (in, out) back to (out, in), rows after a flatten back to C, H, W."""
    weight = kernel.T
    if flattened is not None:
        c, h, w = flattened
        weight = weight.reshape(-1, h, w, c).transpose(0, 3, 1, 2).reshape(weight.shape[0], -1)
    return np.ascontiguousarray(weight)


def read_weights(model: keras.Sequential, spec: ModelSpec) -> dict[str, np.ndarray]:
    """The model's weights in the canonical layout and keys (what ``load_weights`` set, read back)."""
    found: dict[str, np.ndarray] = {}
    flattened: tuple[int, ...] | None = None
    for layer, shape_in, _ in spec.walk():
        if isinstance(layer, Flatten) and len(shape_in) == 3:
            flattened = shape_in
        if not isinstance(layer, (Conv, BatchNorm, Dense)):
            continue
        tensors = [np.asarray(t, dtype=np.float32) for t in model.get_layer(layer.name).get_weights()]
        if isinstance(layer, Dense):
            found[f"{layer.name}.weight"] = dense_weight(tensors[0], flattened)
            found[f"{layer.name}.bias"] = tensors[1]
            flattened = None
        elif isinstance(layer, BatchNorm):
            for kind, tensor in zip(("gamma", "beta", "mean", "var"), tensors, strict=True):
                found[f"{layer.name}.{kind}"] = tensor
        else:
            found[f"{layer.name}.weight"] = conv_weight(tensors[0], layer.depthwise)
            if layer.bias:
                found[f"{layer.name}.bias"] = tensors[1]
    return found


class TensorFlowTrainer:
    """The spec's logits network trained by ``tf.GradientTape`` and Keras's SGD, as a ``tf.function``."""

    def __init__(self, spec: ModelSpec, weights: dict[str, np.ndarray], options: TrainOptions) -> None:
        FRAMEWORK.check(options)
        self.threads: int | None = set_threads(options.threads)  # first: before any op initialises the runtime
        self.spec, self.device = spec, _device(options.device)
        xla = options.mode == "xla"
        with tf.device(self.device):
            self.model = to_keras(spec, weights)
            self.optimizer = keras.optimizers.SGD(learning_rate=options.learning_rate, momentum=options.momentum)
            self.optimizer.build(self.model.trainable_variables)  # its variables now, not inside the compiled step
        self.params, _ = count_params(self.model)
        shape = tuple(spec.input_shape)
        batch = [tf.TensorSpec((options.batch, *shape), tf.float32), tf.TensorSpec((options.batch,), tf.int64)]
        self._step = tf.function(self._train_step, input_signature=batch, jit_compile=xla)
        evaluate = [tf.TensorSpec((options.eval_batch, *shape), tf.float32)]
        self._predict = tf.function(self._logits, input_signature=evaluate, jit_compile=xla)

    def _train_step(self, x: Any, y: Any) -> Any:
        variables = self.model.trainable_variables
        with tf.GradientTape() as tape:
            logits = self.model(x, training=True)
            loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits))
        self.optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables, strict=True))
        return loss

    def _logits(self, x: Any) -> Any:
        return self.model(x, training=False)

    def step(self, x: np.ndarray, y: np.ndarray, record: bool) -> float | None:
        with tf.device(self.device):
            loss = self._step(tf.convert_to_tensor(np.ascontiguousarray(x, dtype=np.float32)),
                              tf.convert_to_tensor(np.ascontiguousarray(y, dtype=np.int64)))  # fmt: skip
        return float(loss.numpy()) if record else None  # .numpy() waits for the step

    def sync(self) -> None:
        """A step's ops have run when the function returns on the CPU; a GPU is waited for by reading a weight."""
        if self.device != "/CPU:0":
            self.model.trainable_variables[0].numpy()

    def predict(self, x: np.ndarray) -> np.ndarray:
        with tf.device(self.device):
            return self._predict(tf.convert_to_tensor(np.ascontiguousarray(x, dtype=np.float32))).numpy()  # type: ignore[no-any-return]

    def weights(self) -> dict[str, np.ndarray]:
        return read_weights(self.model, self.spec)


def train(spec: ModelSpec, weights: dict[str, np.ndarray], options: TrainOptions) -> TensorFlowTrainer:
    return TensorFlowTrainer(spec, weights, options)
