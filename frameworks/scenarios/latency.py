"""``latency``: the time of one forward pass at one batch size (batch 1 by default).

The matrix's default scenario and its main table: the protocol of ``harness.measure_forward``
once, in the cell's own process, reported at the top level of the result (no points).

``--weights trained`` runs a model that has trained weights (LeNet-5: trained on Fashion-MNIST by
the train scenario, committed in ``frameworks/trained``) on them, in its Fashion-MNIST form, and
also measures its test accuracy inside the framework on the 10,000 test images, after the timed
loop; a model without trained weights runs its canonical ones (the config says so per cell).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, ClassVar

from . import Scenario, register_scenario
from .config import ScenarioConfig, flag, option

CANONICAL, TRAINED = "canonical", "trained"
WEIGHTS = (CANONICAL, TRAINED)

if TYPE_CHECKING:
    from ..harness import CellRequest
    from ..models import ModelSpec
    from ..result import Result


@dataclass(frozen=True)
class LatencyConfig(ScenarioConfig):
    IDENTITY: ClassVar[tuple[str, ...]] = ("batch",)

    batch: int = field(default=1, metadata=option("images per forward pass"))
    weights: str = field(
        default=CANONICAL,
        metadata=option(f"{CANONICAL} (seeded), or {TRAINED}: the committed trained weights, with test accuracy"),
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.batch < 1:
            raise ValueError("--batch must be at least 1")
        if self.weights not in WEIGHTS:
            raise ValueError(f"{flag('weights')} must be one of {', '.join(WEIGHTS)}, got {self.weights!r}")

    def cell_batch(self) -> int:
        return self.batch

    def resolve(self, spec: ModelSpec, cpus: int) -> LatencyConfig:
        from ..trained import has_trained

        if self.weights == TRAINED and not has_trained(spec.name):
            return replace(self, weights=CANONICAL)  # no trained weights for this model: its cell says so
        return self

    def network(self, spec: ModelSpec) -> ModelSpec | None:
        if self.weights == TRAINED:
            from ..models import fashion_mnist_network

            return fashion_mnist_network(spec.name)
        return spec

    def datasets(self) -> tuple[str, ...]:
        return ("fashion-mnist",) if self.weights == TRAINED else ()

    def identity_fields(self) -> tuple[str, ...]:
        return (*self.IDENTITY, "weights") if self.weights != CANONICAL else self.IDENTITY


def measure(request: CellRequest, spec: ModelSpec, config: ScenarioConfig, base: Result) -> Result:
    from ..harness import cell_inputs, measure_forward, measured_result, open_backend

    assert isinstance(config, LatencyConfig)
    backend, base = open_backend(request, base)
    if backend is None:
        return base
    inputs = cell_inputs(request, spec, config.batch, trained=config.weights == TRAINED)
    return measured_result(base, measure_forward(backend, spec, request, config.batch, config, inputs))


SCENARIO = register_scenario(
    Scenario(
        name="latency",
        summary="time of one forward pass at one batch size (the matrix and its per-model tables)",
        config=LatencyConfig,
        measure=measure,
    )
)
