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
from typing import TYPE_CHECKING, Any, ClassVar

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
            return Prepared(net, committed, "trained", True, _schedule_facts(config.sparsity),
                            counted_sparsity(net, committed))  # fmt: skip
        pruned = magnitude_prune(net, trained_weights(net), config.sparsity)
        facts = {"fine_tuned": "no (off the committed schedule: one-shot pruning of the trained weights)"}
        if config.sparsity == 0:
            facts = {"fine_tuned": "no: the committed trained weights, nothing pruned"}
    else:
        pruned, facts = _canonical(net, generate_weights(net, seed), config.sparsity)
    if pruned.spared:
        facts["spared"] = " ".join(pruned.spared)  # (for the committed schedule: in its manifest)
    return Prepared(net, pruned.weights, "trained" if has_trained(spec.name) else "canonical",
                    has_trained(spec.name), facts, pruned.sparsity)  # fmt: skip


def _schedule_facts(target: float) -> dict[str, str]:
    """How the committed schedule made this step: its fine-tuning, spared layers and NumPy accuracies."""
    from ..pruning import schedule_manifest

    manifest = schedule_manifest()
    step: dict[str, Any] = next((s for s in manifest.get("steps", []) if abs(float(s["target"]) - target) < 1e-9), {})
    epochs = manifest.get("fine_tune_epochs", "?")
    facts = {
        "fine_tuned": f"{epochs} epoch(s) of masked fine-tuning after each schedule step (committed: "
        "frameworks/trained/lenet5-fashion-mnist-pruned)",
        "spared": " ".join(step.get("spared", [])) or "none",
    }
    if "pruned_accuracy" in step:
        facts["numpy_accuracy"] = f"{step['pruned_accuracy']:.4f} pruned, {step['accuracy']:.4f} fine-tuned"
    return facts


def _canonical(net: ModelSpec, weights: dict[str, Any], sparsity: float) -> tuple[Any, dict[str, str]]:
    """Canonical weights pruned without fine-tuning, first conv and last dense spared above 0.8 where the
    other layers can reach the target without them (MobileNet's last dense is a quarter of its weights:
    sparing it caps it at 0.76), else nothing spared, and the cell says so."""
    from ..pruning import magnitude_prune, spared_keys

    facts = {"fine_tuned": "no (canonical weights)"}
    try:
        return magnitude_prune(net, weights, sparsity), facts
    except ValueError as exc:
        if "unreachable" not in str(exc):
            raise
    facts["spared"] = f"none: sparing {' and '.join(spared_keys(net, sparsity))} leaves {sparsity:g} unreachable"
    return magnitude_prune(net, weights, sparsity, spare=False), facts


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
