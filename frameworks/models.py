"""Architectures as data: each model is defined once, every framework lowers the same layers.

Pure Python on purpose: the host (runner, reports) reads parameter counts and FLOPs from here
without importing NumPy or a deep-learning framework.

Canonical layout (what ``weights`` produces and every backend converts from):
- activations NCHW; the flatten before the first dense layer is in C, H, W order;
- conv weight ``(out, in / groups, kh, kw)`` (OIHW); depthwise conv is ``groups == in``;
- dense weight ``(out, in)``;
- batch norm ``gamma``, ``beta``, ``mean``, ``var`` of shape ``(C,)``, epsilon ``BN_EPS``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Union

from .registry import Registry

BN_EPS = 1e-5


@dataclass(frozen=True)
class Conv:
    """2-D convolution with explicit symmetric zero padding (never 'same')."""

    name: str
    out: int
    kernel: int
    stride: int = 1
    pad: int = 0
    depthwise: bool = False
    bias: bool = True


@dataclass(frozen=True)
class BatchNorm:
    """Inference-mode batch norm over channels, using running statistics."""

    name: str


@dataclass(frozen=True)
class ReLU:
    name: str


@dataclass(frozen=True)
class MaxPool:
    name: str
    size: int = 2
    stride: int = 2


@dataclass(frozen=True)
class GlobalAvgPool:
    name: str


@dataclass(frozen=True)
class Flatten:
    """Flatten NCHW activations in C, H, W order."""

    name: str


@dataclass(frozen=True)
class Dense:
    name: str
    out: int


@dataclass(frozen=True)
class Softmax:
    name: str


# Union, not |: frameworks/ runs on Python 3.9 in the bullseye images, where | of classes is a TypeError.
Layer = Union[Conv, BatchNorm, ReLU, MaxPool, GlobalAvgPool, Flatten, Dense, Softmax]
Shape = tuple[int, ...]


DEFAULT_BATCHES = (1, 4, 16, 64)


@dataclass(frozen=True)
class ModelSpec:
    """A network: input shape (C, H, W) without batch, and its layers in order.

    ``tolerance`` is how far a float32 framework's output may be from the NumPy float64
    reference (max abs error / max abs reference) and still count as the same network: deeper
    networks accumulate more rounding. ``batches`` is the throughput scenario's default sweep
    (VGG-16 stops at 16: its im2col columns at batch 64 need tens of GB).
    """

    name: str
    title: str
    input_shape: tuple[int, int, int]
    layers: tuple[Layer, ...]
    tolerance: float = 1e-4
    batches: tuple[int, ...] = DEFAULT_BATCHES

    def __post_init__(self) -> None:
        if not (self.tolerance > 0):
            raise ValueError(f"model {self.name}: tolerance must be positive, got {self.tolerance!r}")
        if not self.batches or any(b < 1 for b in self.batches):
            raise ValueError(f"model {self.name}: batches must be positive integers, got {self.batches!r}")

    @property
    def classes(self) -> int:
        dense = [layer for layer in self.layers if isinstance(layer, Dense)]
        return dense[-1].out

    def walk(self) -> Iterator[tuple[Layer, Shape, Shape]]:
        """Yield (layer, input shape, output shape), shapes without the batch axis."""
        shape: Shape = self.input_shape
        for layer in self.layers:
            out = output_shape(layer, shape)
            yield layer, shape, out
            shape = out

    @property
    def output_shape(self) -> Shape:
        shape: Shape = self.input_shape
        for layer in self.layers:
            shape = output_shape(layer, shape)
        return shape

    def tensors(self) -> dict[str, Shape]:
        """Every weight tensor by canonical key (``layer.kind``) with its canonical shape."""
        found: dict[str, Shape] = {}
        for layer, shape_in, _ in self.walk():
            found.update(_layer_tensors(layer, shape_in))
        return found

    @property
    def params(self) -> int:
        """Trainable parameters: conv and dense weights and biases, batch-norm gamma and beta."""
        return sum(_size(s) for k, s in self.tensors().items() if not k.endswith((".mean", ".var")))

    @property
    def buffers(self) -> int:
        """Non-trainable state: batch-norm running mean and variance."""
        return sum(_size(s) for k, s in self.tensors().items() if k.endswith((".mean", ".var")))

    @property
    def flops(self) -> int:
        """FLOPs for one image: 2 per multiply-add of conv and dense layers."""
        total = 0
        for layer, shape_in, shape_out in self.walk():
            if isinstance(layer, Conv):
                per_output = layer.kernel * layer.kernel * (1 if layer.depthwise else shape_in[0])
                total += 2 * per_output * _size(shape_out)
            elif isinstance(layer, Dense):
                total += 2 * shape_in[0] * layer.out
        return total


def _size(shape: Shape) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


def _layer_tensors(layer: Layer, shape_in: Shape) -> dict[str, Shape]:
    if isinstance(layer, Conv):
        cin = shape_in[0]
        if layer.depthwise and layer.out != cin:
            raise ValueError(f"{layer.name}: depthwise conv must keep {cin} channels")
        per_group_in = 1 if layer.depthwise else cin
        found: dict[str, Shape] = {f"{layer.name}.weight": (layer.out, per_group_in, layer.kernel, layer.kernel)}
        if layer.bias:
            found[f"{layer.name}.bias"] = (layer.out,)
        return found
    if isinstance(layer, BatchNorm):
        c = shape_in[0]
        return {f"{layer.name}.{k}": (c,) for k in ("gamma", "beta", "mean", "var")}
    if isinstance(layer, Dense):
        return {f"{layer.name}.weight": (layer.out, shape_in[0]), f"{layer.name}.bias": (layer.out,)}
    return {}


def output_shape(layer: Layer, shape: Shape) -> Shape:
    """Shape inference for one layer (no batch axis); raises on a shape a layer cannot take."""
    if isinstance(layer, Conv):
        c, h, w = shape
        oh = (h + 2 * layer.pad - layer.kernel) // layer.stride + 1
        ow = (w + 2 * layer.pad - layer.kernel) // layer.stride + 1
        return (layer.out, oh, ow)
    if isinstance(layer, MaxPool):
        c, h, w = shape
        return (c, (h - layer.size) // layer.stride + 1, (w - layer.size) // layer.stride + 1)
    if isinstance(layer, GlobalAvgPool):
        return (shape[0],)
    if isinstance(layer, Flatten):
        return (_size(shape),)
    if isinstance(layer, Dense):
        if len(shape) != 1:
            raise ValueError(f"{layer.name}: dense layer needs a flat input, got {shape}")
        return (layer.out,)
    return shape


# --- the three networks -------------------------------------------------------------------


def lenet5(classes: int = 10, channels: int = 3) -> ModelSpec:
    """LeNet-5 on channels x 32 x 32 (62,006 parameters with 10 classes, 61,751 with 7; with one
    channel, Fashion-MNIST's grey images padded to 32 x 32, 61,706)."""
    layers: tuple[Layer, ...] = (
        Conv("conv1", 6, 5),
        ReLU("relu1"),
        MaxPool("pool1"),
        Conv("conv2", 16, 5),
        ReLU("relu2"),
        MaxPool("pool2"),
        Flatten("flatten"),
        Dense("fc1", 120),
        ReLU("relu3"),
        Dense("fc2", 84),
        ReLU("relu4"),
        Dense("fc3", classes),
        Softmax("softmax"),
    )
    return ModelSpec("lenet5", "LeNet-5", (channels, 32, 32), layers, tolerance=1e-4)


VGG16_CONFIG_D: tuple[int | str, ...] = (
    64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M",
)  # fmt: skip


def vgg16(classes: int = 1000) -> ModelSpec:
    """VGG-16 (configuration D) on 3x224x224: 13 conv 3x3 + ReLU, 5 max pools, 3 dense."""
    layers: list[Layer] = []
    block, index = 1, 1
    for item in VGG16_CONFIG_D:
        if item == "M":
            layers.append(MaxPool(f"pool{block}"))
            block, index = block + 1, 1
            continue
        assert isinstance(item, int)
        layers += [Conv(f"conv{block}_{index}", item, 3, pad=1), ReLU(f"relu{block}_{index}")]
        index += 1
    layers += [
        Flatten("flatten"),
        Dense("fc6", 4096),
        ReLU("relu6"),
        Dense("fc7", 4096),
        ReLU("relu7"),
        Dense("fc8", classes),
        Softmax("softmax"),
    ]
    return ModelSpec("vgg16", "VGG-16", (3, 224, 224), tuple(layers), tolerance=1e-3, batches=(1, 4, 16))


MOBILENET_V1_BLOCKS: tuple[tuple[int, int], ...] = (
    (64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2),
    (512, 1), (512, 1), (512, 1), (512, 1), (512, 1), (1024, 2), (1024, 1),
)  # fmt: skip


def _conv_bn_relu(name: str, out: int, kernel: int, stride: int, depthwise: bool = False) -> list[Layer]:
    pad = kernel // 2
    return [
        Conv(f"{name}", out, kernel, stride=stride, pad=pad, depthwise=depthwise, bias=False),
        BatchNorm(f"{name}_bn"),
        ReLU(f"{name}_relu"),
    ]


def mobilenet_v1(classes: int = 1000) -> ModelSpec:
    """MobileNet v1, width 1.0, on 3x224x224; BN epsilon fixed, explicit symmetric padding."""
    layers: list[Layer] = _conv_bn_relu("conv0", 32, 3, 2)
    channels = 32
    for i, (out, stride) in enumerate(MOBILENET_V1_BLOCKS, start=1):
        layers += _conv_bn_relu(f"dw{i}", channels, 3, stride, depthwise=True)
        layers += _conv_bn_relu(f"pw{i}", out, 1, 1)
        channels = out
    layers += [GlobalAvgPool("avgpool"), Dense("fc", classes), Softmax("softmax")]
    return ModelSpec("mobilenet_v1", "MobileNet v1", (3, 224, 224), tuple(layers), tolerance=1e-3)


# --- the networks a dataset's images need ---------------------------------------------------------

# Fashion-MNIST is grey (one channel), 28 x 28 padded to 32 x 32, 10 classes: the model of that name
# with a one-channel input. Only LeNet-5 is trained on it (VGG-16 and MobileNet v1 take 224 x 224).
_FASHION_MNIST: dict[str, ModelSpec] = {"lenet5": lenet5(classes=10, channels=1)}


def fashion_mnist_network(model: str) -> ModelSpec | None:
    """The registered model ``model`` as it runs on Fashion-MNIST images, or None when it has no such form.

    The same name (the reports' LeNet-5 table holds both), another input shape: 1 x 32 x 32.
    """
    return _FASHION_MNIST.get(model)


# --- the registry -------------------------------------------------------------------------------

MODELS: Registry[ModelSpec] = Registry("model")


def register_model(spec: ModelSpec) -> ModelSpec:
    """Make ``spec`` a model of the matrix: every framework, scenario and report picks it up."""
    return MODELS.register(spec.name, spec)


def list_models() -> list[str]:
    return list(MODELS)


def get_model(name: str) -> ModelSpec:
    """Look a model up by name; an unknown name lists the valid ones."""
    return MODELS.get_entry(name)


for _spec in (lenet5(), vgg16(), mobilenet_v1()):
    register_model(_spec)
