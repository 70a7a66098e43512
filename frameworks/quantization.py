"""Post-training static int8 quantization in NumPy: one set of scales, one QDQ graph, its int8 reference.

The project's own quantizer, the same for every runtime that imports ONNX (``onnx_graph.to_qdq``):

- batch norm is folded into the convolution before it (``fold_batch_norm``);
- weights are int8, symmetric, one scale per output channel, in the 7-bit range [-63, 63]
  (``WEIGHT_QMAX``): a u8 x s8 pair product summed twice then fits in int16, so the VPMADDUBSW kernels
  of CPUs without VNNI cannot saturate, and the one model runs exactly on every CPU;
- activations are uint8, affine (scale and zero point), one pair per quantized tensor, from the
  calibration images: ``minmax`` (the extremes seen) or ``percentile`` (the 0.01 and 99.99
  percentiles of each batch of 16 images, averaged over the batches);
- biases are int32 with scale input scale x weight scale, zero point 0 (what runtimes fuse).

A tensor is quantized where a runtime would requantize: the network's input, each convolution or
dense output after its ReLU (or without one), each global average pool, each max pool and flatten
(with their input's scale: they move values, never change them). The softmax runs in float on the
dequantized logits.

``int8_reference`` evaluates exactly that graph in float64 (QuantizeLinear rounds half to even and
saturates, as ONNX specifies): an int8 runtime accumulates in int32 exactly, so its output differs
from the reference only where its requantization rounds another way; ``REFERENCE_STEPS`` bounds that.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, replace

import numpy as np

from .backends.numpy_backend import compile_network
from .models import BN_EPS, BatchNorm, Conv, Dense, Flatten, GlobalAvgPool, Layer, MaxPool, ModelSpec, ReLU, Softmax

ACT_QMIN, ACT_QMAX = 0, 255  # uint8 activations
WEIGHT_QMAX = 63  # 7-bit symmetric int8 weights (see the module docstring)
INPUT = "input"
CALIBRATORS = ("minmax", "percentile")
PERCENTILE = 99.99
CALIBRATION_BATCH = 16
# How far (in quantization steps of the logits) an int8 runtime's output may be from the int8 reference:
# requantization rounding in another order moves a tensor by one step here and there, and deep networks
# carry that to the logits. A softmax output moves by at most half its logits' largest move.
REFERENCE_STEPS = 2
# The most calibration data made for one cell (seeded images of a 3 x 224 x 224 model: 1,000 images).
MAX_CALIBRATION_BYTES = 1 << 30


@dataclass(frozen=True, eq=False)
class QuantParams:
    """The project's int8 model: the BN-folded network and float weights, and every scale and zero point."""

    spec: ModelSpec  # batch norm folded away
    weights: dict[str, np.ndarray]  # float32, canonical keys of the folded network
    weight_scales: dict[str, np.ndarray]  # "<layer>.weight" -> (out,) float32
    activations: dict[str, tuple[float, int]]  # quantized tensor ("input" or a layer's name) -> (scale, zero point)

    def weight_int8(self, key: str) -> np.ndarray:
        """The int8 weight tensor of ``key`` (per-output-channel symmetric)."""
        w = np.asarray(self.weights[key], dtype=np.float32)
        scale = self.weight_scales[key].reshape((-1,) + (1,) * (w.ndim - 1))
        return np.clip(np.rint(w / scale), -WEIGHT_QMAX, WEIGHT_QMAX).astype(np.int8)

    def bias_scale(self, layer: str, input_tensor: str) -> np.ndarray:
        """The int32 bias's per-channel scale: the input's scale times the weight's, in float32 as written."""
        return (np.float32(self.activations[input_tensor][0]) * self.weight_scales[f"{layer}.weight"]).astype(
            np.float32
        )

    def bias_int32(self, layer: str, input_tensor: str) -> np.ndarray:
        bias = np.asarray(self.weights[f"{layer}.bias"], dtype=np.float64)
        return np.rint(bias / self.bias_scale(layer, input_tensor).astype(np.float64)).astype(np.int32)

    def logits_scale(self) -> float:
        """The step of the last quantized tensor (the logits): the unit of the reference bound."""
        last = [name for name, _ in quantized_tensors(self.spec)][-1]
        return float(self.activations[last][0])

    def payload_bytes(self) -> int:
        """What the int8 model stores: int8 weights, int32 biases, float32 weight and activation scales."""
        total = 0
        for key, w in self.weights.items():
            total += w.size * (1 if key.endswith(".weight") else 4)
        total += sum(4 * s.size for s in self.weight_scales.values())
        return total + 5 * len(self.activations)

    def digest(self) -> str:
        """sha256 over every scale and zero point (the cell records which quantization it ran)."""
        h = hashlib.sha256()
        for key in sorted(self.weight_scales):
            h.update(key.encode() + self.weight_scales[key].astype("<f4").tobytes())
        for name in sorted(self.activations):
            scale, zero = self.activations[name]
            h.update(f"{name}:{np.float32(scale).tobytes().hex()}:{zero}".encode())
        return h.hexdigest()


# --- the network's structure ----------------------------------------------------------------------------------


def fold_batch_norm(spec: ModelSpec, weights: dict[str, np.ndarray]) -> tuple[ModelSpec, dict[str, np.ndarray]]:
    """The network with each batch norm folded into the convolution before it (which gains a bias)."""
    layers: list[Layer] = []
    folded: dict[str, np.ndarray] = {}
    for layer in spec.layers:
        if isinstance(layer, BatchNorm):
            conv = layers[-1]
            if not isinstance(conv, Conv):
                raise ValueError(f"{spec.name}: batch norm {layer.name} follows {conv.name}, not a convolution")
            g, b, m, v = (
                np.asarray(weights[f"{layer.name}.{k}"], np.float64) for k in ("gamma", "beta", "mean", "var")
            )
            scale = g / np.sqrt(v + BN_EPS)
            w = folded[f"{conv.name}.weight"].astype(np.float64) * scale[:, None, None, None]
            bias = folded.get(f"{conv.name}.bias", np.zeros(conv.out)).astype(np.float64) * scale + (b - m * scale)
            folded[f"{conv.name}.weight"], folded[f"{conv.name}.bias"] = w.astype(np.float32), bias.astype(np.float32)
            layers[-1] = replace(conv, bias=True)
            continue
        if isinstance(layer, (Conv, Dense)):
            folded[f"{layer.name}.weight"] = np.asarray(weights[f"{layer.name}.weight"], np.float32)
            if isinstance(layer, Dense) or layer.bias:
                folded[f"{layer.name}.bias"] = np.asarray(weights[f"{layer.name}.bias"], np.float32)
        layers.append(layer)
    for layer in layers:  # every folded conv has a bias now (int32 in the graph)
        if isinstance(layer, Conv) and f"{layer.name}.bias" not in folded:
            folded[f"{layer.name}.bias"] = np.zeros(layer.out, np.float32)
    layers = [replace(x, bias=True) if isinstance(x, Conv) else x for x in layers]
    return replace(spec, layers=tuple(layers)), folded


def quantized_tensors(spec: ModelSpec) -> list[tuple[str, str]]:
    """(tensor, how): each quantized tensor of the folded network in order, "calibrated" or "same" (its
    input's scale). A convolution or dense layer followed by a ReLU is quantized after the ReLU only."""
    points = [(INPUT, "calibrated")]
    layers = spec.layers
    for index, layer in enumerate(layers):
        following = layers[index + 1] if index + 1 < len(layers) else None
        if isinstance(layer, (Conv, Dense)) and isinstance(following, ReLU):
            continue
        if isinstance(layer, (Conv, Dense, ReLU, GlobalAvgPool)):
            points.append((layer.name, "calibrated"))
        elif isinstance(layer, (MaxPool, Flatten)):
            points.append((layer.name, "same"))
    return points


def input_tensors(spec: ModelSpec) -> dict[str, str]:
    """Layer name -> the quantized tensor its input is (for a conv or dense layer: its input's scale)."""
    quantized = {name for name, _ in quantized_tensors(spec)}
    current, inputs = INPUT, {}
    for layer in spec.layers:
        inputs[layer.name] = current
        if layer.name in quantized:
            current = layer.name
    return inputs


# --- calibration ---------------------------------------------------------------------------------------------


def _layer_outputs(spec: ModelSpec, weights: dict[str, np.ndarray], x: np.ndarray) -> Iterator[tuple[str, np.ndarray]]:
    """Each layer's float32 output, in order, for a batch (the calibration pass)."""
    y = np.asarray(x, np.float32)
    yield INPUT, y
    for layer in spec.layers:
        y = compile_network(replace(spec, layers=(layer,)), weights, np.float32)(y)
        yield layer.name, y


def calibrate(
    spec: ModelSpec, weights: dict[str, np.ndarray], images: np.ndarray, calibrator: str
) -> dict[str, tuple[float, int]]:
    """Each quantized tensor's (scale, zero point) from the folded float network's activations on ``images``."""
    if calibrator not in CALIBRATORS:
        raise ValueError(f"unknown calibrator {calibrator!r}; valid: {', '.join(CALIBRATORS)}")
    points = dict(quantized_tensors(spec))
    seen: dict[str, list[tuple[float, float]]] = {name: [] for name, how in points.items() if how == "calibrated"}
    for start in range(0, images.shape[0], CALIBRATION_BATCH):
        for name, y in _layer_outputs(spec, weights, images[start : start + CALIBRATION_BATCH]):
            if name in seen:
                if calibrator == "minmax":
                    seen[name].append((float(y.min()), float(y.max())))
                else:
                    lo, hi = np.percentile(y, [100 - PERCENTILE, PERCENTILE])
                    seen[name].append((float(lo), float(hi)))
    params: dict[str, tuple[float, int]] = {}
    previous = INPUT
    for name, how in quantized_tensors(spec):
        if how == "same":
            params[name] = params[previous]
        else:
            ranges = seen[name]
            if calibrator == "minmax":
                lo, hi = min(r[0] for r in ranges), max(r[1] for r in ranges)
            else:
                lo, hi = float(np.mean([r[0] for r in ranges])), float(np.mean([r[1] for r in ranges]))
            params[name] = affine(lo, hi)
        previous = name
    return params


def affine(lo: float, hi: float) -> tuple[float, int]:
    """uint8 (scale, zero point) for values in [lo, hi], the range widened to hold 0 exactly."""
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    scale = np.float32((hi - lo) / (ACT_QMAX - ACT_QMIN)) if hi > lo else np.float32(1.0)
    zero = int(np.clip(np.rint(ACT_QMIN - lo / float(scale)), ACT_QMIN, ACT_QMAX))
    return float(scale), zero


def weight_scales(spec: ModelSpec, weights: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Per-output-channel symmetric scales of every conv and dense weight (1 where a channel is all zero)."""
    scales = {}
    for layer in spec.layers:
        if isinstance(layer, (Conv, Dense)):
            w = np.asarray(weights[f"{layer.name}.weight"], np.float32)
            peak = np.abs(w.reshape(w.shape[0], -1)).max(axis=1)
            scales[f"{layer.name}.weight"] = np.where(peak > 0, peak / WEIGHT_QMAX, 1.0).astype(np.float32)
    return scales


def quantize(spec: ModelSpec, weights: dict[str, np.ndarray], images: np.ndarray, calibrator: str) -> QuantParams:
    """The project's int8 model of ``spec`` on ``weights``, calibrated on ``images``."""
    folded_spec, folded = fold_batch_norm(spec, weights)
    activations = calibrate(folded_spec, folded, images, calibrator)
    return QuantParams(folded_spec, folded, weight_scales(folded_spec, folded), activations)


# --- the int8 reference -----------------------------------------------------------------------------------


def fake_quant(x: np.ndarray, scale: float, zero: int) -> np.ndarray:
    """QuantizeLinear then DequantizeLinear, in float64: round half to even, saturate to uint8."""
    q = np.clip(np.rint(x / np.float64(np.float32(scale))) + zero, ACT_QMIN, ACT_QMAX)
    return (q - zero) * np.float64(np.float32(scale))


def dequantized_weights(params: QuantParams) -> dict[str, np.ndarray]:
    """The weights as the QDQ graph computes with them: int8 x scale, int32 bias x scale, in float64."""
    inputs = input_tensors(params.spec)
    out: dict[str, np.ndarray] = {}
    for layer in params.spec.layers:
        if isinstance(layer, (Conv, Dense)):
            key = f"{layer.name}.weight"
            q = params.weight_int8(key).astype(np.float64)
            out[key] = q * params.weight_scales[key].astype(np.float64).reshape((-1,) + (1,) * (q.ndim - 1))
            bias_scale = params.bias_scale(layer.name, inputs[layer.name]).astype(np.float64)
            out[f"{layer.name}.bias"] = params.bias_int32(layer.name, inputs[layer.name]) * bias_scale
    return out


def int8_reference(params: QuantParams, x: np.ndarray) -> np.ndarray:
    """The QDQ graph's output for ``x``, in float64, one image at a time (a batch's is a prefix of a larger one's)."""
    weights = dequantized_weights(params)
    quantized = dict(params.activations)
    steps = [(layer, compile_network(replace(params.spec, layers=(layer,)), weights, np.float64))
             for layer in params.spec.layers]  # fmt: skip
    outputs = []
    for i in range(x.shape[0]):
        y = fake_quant(np.asarray(x[i : i + 1], np.float64), *quantized[INPUT])
        for index, (layer, run) in enumerate(steps):
            y = run(y)
            if layer.name in quantized and index < len(steps) - 1:  # the graph's output stays float
                y = fake_quant(y, *quantized[layer.name])
        outputs.append(y)
    return np.concatenate(outputs)


def reference_tolerance(params: QuantParams, reference: np.ndarray) -> float:
    """The relative bound (as ``verify.compare`` measures) of ``REFERENCE_STEPS`` logit steps on the softmax output.

    A softmax output moves by at most half the largest move of its logits (its partial derivatives
    p_i(d_ij - p_j) sum to at most 2 p_i (1 - p_i) <= 1/2 in absolute value).
    """
    peak = float(np.max(np.abs(reference)))
    move = REFERENCE_STEPS * params.logits_scale() * (0.5 if ends_in_softmax(params.spec) else 1.0)
    return move / peak if peak > 0 else float("inf")


def ends_in_softmax(spec: ModelSpec) -> bool:
    return isinstance(spec.layers[-1], Softmax)


# --- what travels with a cell -------------------------------------------------------------------------------

CALIBRATION = "calibration"  # the calibration images, (N, C, H, W) float32
ACT_SCALES, ACT_ZEROS = "act_scales", "act_zeros"  # per quantized tensor, in ``quantized_tensors`` order
WEIGHT_SCALE = "wscale."  # + "<layer>.weight": per output channel


def to_arrays(params: QuantParams) -> dict[str, np.ndarray]:
    """The scales and zero points as arrays (saved beside the weights by ``frameworks.inputs``)."""
    names = [name for name, _ in quantized_tensors(params.spec)]
    arrays = {
        ACT_SCALES: np.array([params.activations[n][0] for n in names], np.float32),
        ACT_ZEROS: np.array([params.activations[n][1] for n in names], np.int32),
    }
    arrays.update({WEIGHT_SCALE + key: scale for key, scale in params.weight_scales.items()})
    return arrays


def from_arrays(spec: ModelSpec, weights: dict[str, np.ndarray], arrays: dict[str, np.ndarray]) -> QuantParams:
    """``to_arrays`` read back: the folded network is folded again from the float weights (cheap, exact)."""
    folded_spec, folded = fold_batch_norm(spec, weights)
    names = [name for name, _ in quantized_tensors(folded_spec)]
    scales, zeros = np.asarray(arrays[ACT_SCALES]), np.asarray(arrays[ACT_ZEROS])
    if len(names) != scales.shape[0]:
        raise ValueError(f"{spec.name}: {scales.shape[0]} activation scales for {len(names)} quantized tensors")
    activations = {n: (float(s), int(z)) for n, s, z in zip(names, scales, zeros)}
    wscales = {
        k[len(WEIGHT_SCALE) :]: np.asarray(v, np.float32) for k, v in arrays.items() if k.startswith(WEIGHT_SCALE)
    }
    return QuantParams(folded_spec, folded, wscales, activations)


def calibration_images(spec: ModelSpec, size: int, seed: int, trained: bool) -> tuple[np.ndarray, str]:
    """``size`` calibration images and where they come from: Fashion-MNIST training images (a seeded choice,
    never a test image) for a model with trained weights, else seeded inputs like the timed ones."""
    per_image = int(np.prod(spec.input_shape)) * 4
    if size * per_image > MAX_CALIBRATION_BYTES:
        most = MAX_CALIBRATION_BYTES // per_image
        raise ValueError(f"--calibration-sizes {size}: {spec.name} calibrates on at most {most} images here "
                         f"({MAX_CALIBRATION_BYTES >> 20} MB of float32 images)")  # fmt: skip
    if trained:
        from .datasets import TITLE, fashion_mnist

        train = fashion_mnist().train
        if size > len(train):
            raise ValueError(f"--calibration-sizes {size}: {TITLE} has {len(train)} training images")
        order = np.random.default_rng([seed, 7]).permutation(len(train))[:size]
        return np.ascontiguousarray(train.x[np.sort(order)]), f"{TITLE} training images (seeded choice, seed {seed})"
    from .weights import make_input

    return make_input(spec, size, np.random.default_rng([seed, 5])), f"seeded inputs (seed {seed}), no dataset"
