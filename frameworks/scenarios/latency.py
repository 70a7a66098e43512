"""``latency``: the time of one forward pass at one batch size (batch 1 by default).

The matrix's default scenario and its main table: the protocol of ``harness.measure_forward``
once, in the cell's own process, reported at the top level of the result (no points).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, ClassVar

from . import Scenario, register_scenario
from .config import ScenarioConfig, option

if TYPE_CHECKING:
    from ..harness import CellRequest
    from ..models import ModelSpec
    from ..result import Result


@dataclass(frozen=True)
class LatencyConfig(ScenarioConfig):
    IDENTITY: ClassVar[tuple[str, ...]] = ("batch",)

    batch: int = field(default=1, metadata=option("images per forward pass"))

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.batch < 1:
            raise ValueError("--batch must be at least 1")

    def cell_batch(self) -> int:
        return self.batch


def measure(request: CellRequest, spec: ModelSpec, config: ScenarioConfig, base: Result) -> Result:
    from ..environment import peak_rss_bytes
    from ..harness import measure_forward, open_backend
    from ..result import utc_now

    assert isinstance(config, LatencyConfig)
    backend, base = open_backend(request, base)
    if backend is None:
        return base
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
        finished_at=utc_now(),
    )


SCENARIO = register_scenario(
    Scenario(
        name="latency",
        summary="time of one forward pass at one batch size (the matrix and its per-model tables)",
        config=LatencyConfig,
        measure=measure,
    )
)
