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
from typing import TYPE_CHECKING, Any, ClassVar

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
    from ..environment import peak_rss_bytes
    from ..harness import measure_forward, open_backend
    from ..result import utc_now

    assert isinstance(config, LatencyConfig)
    backend, base = open_backend(request, base)
    if backend is None:
        return base
    if config.weights == TRAINED:
        m = measure_forward(backend, spec, request, config.batch, config, *trained_inputs(spec, config, request))
    else:
        m = measure_forward(backend, spec, request, config.batch, config)
    return replace(
        base,
        status="ok",
        build={**base.build, **m.facts},
        threads_in_use=m.threads_in_use,
        first_inference_s=m.first_inference_s,
        warmup_s=m.warmup_s,
        samples_s=m.samples_s,
        stats=m.stats,
        throughput_ips=config.batch / m.stats.median,
        gflops=spec.flops * config.batch / m.stats.median / 1e9,
        peak_rss_bytes=peak_rss_bytes(),
        verified=m.verified,
        max_error=m.max_error,
        tolerance=m.tolerance,
        other_load=m.other_load,
        warnings=m.warnings,
        accuracy=m.accuracy,
        finished_at=utc_now(),
    )


def trained_inputs(spec: ModelSpec, config: LatencyConfig, request: CellRequest) -> tuple[Any, Any, Any]:
    """The trained weights, the float64 reference of the verification input on them, and the accuracy
    measurement (the built forward over the test images, at the cell's batch size)."""
    from ..backends.numpy_backend import reference_forward
    from ..datasets import test_split
    from ..trained import trained_weights
    from ..training import accuracy
    from ..verify import verification_input

    weights = trained_weights(spec)
    reference = reference_forward(spec, weights, verification_input(spec, config.batch, request.seed))
    test = test_split()
    return weights, reference, lambda forward: accuracy(forward, test, config.batch)


SCENARIO = register_scenario(
    Scenario(
        name="latency",
        summary="time of one forward pass at one batch size (the matrix and its per-model tables)",
        config=LatencyConfig,
        measure=measure,
    )
)
