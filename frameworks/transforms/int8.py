"""``int8``: post-training static int8 quantization, calibrated on real images (``frameworks.quantization``).

A build-level transform with data: the cell's float weights (LeNet-5's trained ones, else canonical)
travel with the calibration images and, for the ``qdq`` toolchain, the project's scales. Two toolchains:

- ``qdq``: the project's one int8 model, scales computed once in NumPy, written as one QDQ ONNX graph that
  every runtime importing ONNX runs (ONNX Runtime, its OpenVINO EP, OpenVINO, TVM); the cell is checked
  against the NumPy int8 reference of that graph within ``REFERENCE_STEPS`` steps of the logits' scale;
- ``native``: the framework's own PTQ toolchain calibrated on the same images (ONNX Runtime's
  quantize_static, OpenVINO's NNCF, TFLite's full-integer converter, torch's PT2E); the cell is checked
  against the float64 reference within ``NATIVE_TOLERANCE`` and, with trained weights, by test accuracy.

A cell whose framework says no int8 kernel ran (``registry.INT8_KERNELS``) is never reported as int8.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar

from . import Prepared, Transform, TransformConfig, register_transform, transform_option

if TYPE_CHECKING:
    import numpy as np

    from ..models import ModelSpec

TOOLCHAINS = ("qdq", "native")
CALIBRATORS = ("minmax", "percentile")  # as frameworks.quantization.CALIBRATORS (the host never imports NumPy)
DEFAULT_CALIBRATION = 100
# How far a native toolchain's output may be from the float64 reference (max abs error over max abs output): int8
# error itself, its own scales, rounding and fused kernels. The project's exact int8 model is 0.113 from float64 on
# VGG-16's seeded weights (16 quantized layers), 0.003 on LeNet-5's test images; an output that strays further than
# this bound is unverified (a uniform output against a peaked one misses it by far).
NATIVE_TOLERANCE = 0.25


@dataclass(frozen=True)
class Int8Config(TransformConfig):
    IDENTITY: ClassVar[tuple[str, ...]] = ("calibration", "toolchain", "calibrator")

    calibration: int = field(
        default=DEFAULT_CALIBRATION,
        metadata=transform_option("calibration_sizes", "images the int8 scales are calibrated on, each >= 1"),
    )
    toolchain: str = field(
        default="qdq",
        metadata={**transform_option("toolchains", f"one or more of: {', '.join(TOOLCHAINS)}"),
                  "defaults": TOOLCHAINS},
    )  # fmt: skip
    calibrator: str = field(
        default="minmax",
        metadata=transform_option("calibrators", f"activation ranges from: {', '.join(CALIBRATORS)}"),
    )

    def __post_init__(self) -> None:
        if self.calibration < 1:
            raise ValueError(f"--calibration-sizes must be at least 1, got {self.calibration}")
        if self.toolchain not in TOOLCHAINS:
            raise ValueError(f"--toolchains: unknown toolchain {self.toolchain!r}; valid: {', '.join(TOOLCHAINS)}")
        if self.calibrator not in CALIBRATORS:
            raise ValueError(f"--calibrators: unknown calibrator {self.calibrator!r}; valid: {', '.join(CALIBRATORS)}")


def network(spec: ModelSpec, config: TransformConfig) -> ModelSpec:
    """A model with trained weights runs in its trained form (LeNet-5: Fashion-MNIST's 1 x 32 x 32)."""
    from ..models import fashion_mnist_network
    from ..trained import has_trained

    return (fashion_mnist_network(spec.name) if has_trained(spec.name) else None) or spec


def apply(spec: ModelSpec, seed: int, config: TransformConfig) -> Prepared:
    """The float weights, the calibration images and (qdq) the project's scales for them."""

    from ..quantization import calibration_images, quantize, to_arrays
    from ..trained import has_trained, trained_weights
    from ..training import weights_sha256
    from ..weights import generate_weights

    assert isinstance(config, Int8Config)
    net = network(spec, config)
    trained = has_trained(spec.name)
    weights = trained_weights(net) if trained else generate_weights(net, seed)
    images, source = calibration_images(net, config.calibration, seed, trained)
    facts = {
        "calibration_images": f"{config.calibration} {source}",
        "calibration_sha256": weights_sha256({"calibration": images}),
    }
    arrays: dict[str, np.ndarray] = {"calibration": images}
    if config.toolchain == "qdq":
        params = quantize(net, weights, images, config.calibrator)
        arrays.update(to_arrays(params))
        facts["scales_sha256"] = params.digest()
        facts["int8_payload_bytes"] = str(params.payload_bytes())
        facts["quantization"] = ("the project's QDQ graph: batch norm folded, int8 weights per output channel "
                                 "(symmetric, 7-bit range), uint8 affine activations, int32 biases")  # fmt: skip
    return Prepared(net, weights, "trained" if trained else "canonical", trained, facts, arrays=arrays)


def reference(network: ModelSpec, weights: dict[str, np.ndarray], arrays: dict[str, np.ndarray],
              config: TransformConfig, x: np.ndarray) -> np.ndarray | None:  # fmt: skip
    """qdq: the NumPy int8 reference of the graph; native: None (the float64 reference)."""
    from ..quantization import from_arrays, int8_reference

    assert isinstance(config, Int8Config)
    if config.toolchain != "qdq":
        return None
    return int8_reference(from_arrays(network, weights, arrays), x)


def tolerance(network: ModelSpec, weights: dict[str, np.ndarray], arrays: dict[str, np.ndarray],
              config: TransformConfig, expected: np.ndarray) -> float:  # fmt: skip
    from ..quantization import from_arrays, reference_tolerance

    assert isinstance(config, Int8Config)
    if config.toolchain != "qdq":
        return NATIVE_TOLERANCE
    return reference_tolerance(from_arrays(network, weights, arrays), expected)


TRANSFORM = register_transform(
    Transform(
        name="int8",
        summary="post-training static int8 quantization, calibrated (--calibration-sizes --toolchains --calibrators)",
        level="build",
        config=Int8Config,
        apply=apply,
        network=network,
        reference=reference,
        tolerance=tolerance,
        verify_on_test_images=True,
    )
)
