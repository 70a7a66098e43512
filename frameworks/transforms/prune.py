"""``prune``: global unstructured L1 magnitude pruning over the conv and dense weights (``frameworks.pruning``).

A weights-level transform: the cell runs the pruned weights with the framework's ordinary kernels
(a dense kernel multiplies the zeros: that is what is timed, and what the cell says) and checks its
output against the float64 reference of the pruned weights. A model with trained weights (LeNet-5 on
Fashion-MNIST) is pruned from them, along the committed schedule with one epoch of masked fine-tuning
between steps (``frameworks/trained/lenet5-fashion-mnist-pruned``), and its cells measure test
accuracy; a sparsity off the schedule is pruned from the trained weights in one shot, without
fine-tuning, and the cell says so. Models without trained weights (VGG-16, MobileNet v1) are pruned
from their canonical weights, without fine-tuning: latency and size, no accuracy.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar

from . import Prepared, Transform, TransformConfig, register_transform, transform_option

if TYPE_CHECKING:
    from ..models import ModelSpec

DEFAULT_SPARSITY = 0.5


@dataclass(frozen=True)
class PruneConfig(TransformConfig):
    IDENTITY: ClassVar[tuple[str, ...]] = ("sparsity",)

    sparsity: float = field(
        default=DEFAULT_SPARSITY,
        metadata=transform_option("sparsities", "shares of conv and dense weights set to zero, each in [0, 1)"),
    )

    def __post_init__(self) -> None:
        if not 0 <= self.sparsity < 1:
            raise ValueError(f"--sparsities must be in [0, 1), got {self.sparsity:g}")


def network(spec: ModelSpec, config: TransformConfig) -> ModelSpec:
    """A model with trained weights runs in its trained form (LeNet-5: Fashion-MNIST's 1 x 32 x 32)."""
    from ..models import fashion_mnist_network
    from ..trained import has_trained

    trained = fashion_mnist_network(spec.name) if has_trained(spec.name) else None
    return trained or spec


def apply(spec: ModelSpec, seed: int, config: TransformConfig) -> Prepared:
    from ..pruning import counted_sparsity, magnitude_prune, pruned_weights
    from ..trained import has_trained, trained_weights
    from ..weights import generate_weights

    assert isinstance(config, PruneConfig)
    net = network(spec, config)
    if has_trained(spec.name):
        committed = pruned_weights(net, config.sparsity)
        if committed is not None:
            facts = {"fine_tuned": "1 epoch of masked fine-tuning per schedule step (committed)"}
            return Prepared(net, committed, "trained", True, facts, counted_sparsity(net, committed))
        pruned = magnitude_prune(net, trained_weights(net), config.sparsity)
        facts = {"fine_tuned": "no (off the committed schedule: one-shot pruning of the trained weights)"}
    else:
        pruned = magnitude_prune(net, generate_weights(net, seed), config.sparsity)
        facts = {"fine_tuned": "no (canonical weights)"}
    if pruned.spared:
        facts["spared"] = " ".join(pruned.spared)
    return Prepared(net, pruned.weights, "trained" if has_trained(spec.name) else "canonical",
                    has_trained(spec.name), facts, pruned.sparsity)  # fmt: skip


TRANSFORM = register_transform(
    Transform(
        name="prune",
        summary="global L1 magnitude pruning of conv and dense weights, run with dense kernels (--sparsities)",
        level="weights",
        config=PruneConfig,
        apply=apply,
        network=network,
    )
)
