"""``throughput``: images per second over a sweep of batch sizes.

A hardware buyer's first question: how does throughput grow with the batch? Each batch size is
one point, measured with the latency protocol in a process of its own (its own peak memory; an
out-of-memory kill or a timeout fails that point only, and the sweep goes on), its output checked
against the float64 reference at that batch size.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, ClassVar

from ..models import DEFAULT_BATCHES
from . import ReportSpec, Scenario, register_scenario
from .config import DEFAULT_TIMEOUT_S, ScenarioConfig, option, positive_unique

if TYPE_CHECKING:
    from ..harness import CellRequest
    from ..models import ModelSpec
    from ..result import Result


@dataclass(frozen=True)
class ThroughputConfig(ScenarioConfig):
    IDENTITY: ClassVar[tuple[str, ...]] = ("batches",)

    batches: tuple[int, ...] = field(
        default=(),
        metadata=option("batch sizes to sweep (default: the model's own, 1 4 16 64; VGG-16 1 4 16)"),
    )
    point_timeout: float = field(
        default=DEFAULT_TIMEOUT_S, metadata=option("seconds per batch size before it is killed", runner=False)
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        positive_unique(self.batches, "batches")
        if not self.point_timeout > 0:
            raise ValueError("--point-timeout must be positive")

    def resolve(self, spec: ModelSpec, cpus: int) -> ThroughputConfig:
        return replace(self, batches=self.batches or spec.batches)

    def cell_batch(self) -> int:
        return self.batches[0] if self.batches else 1

    def largest_batch(self) -> int:
        return max(self.batches, default=1)

    def points(self) -> int:
        return len(self.batches) or len(DEFAULT_BATCHES)


def measure(request: CellRequest, spec: ModelSpec, config: ScenarioConfig, base: Result) -> Result:
    from ..harness import run_points, sweep_result

    assert isinstance(config, ThroughputConfig)
    sweep = [(batch, request.threads) for batch in config.batches]
    return sweep_result(base, *run_points(request, config, sweep, config.point_timeout))


SCENARIO = register_scenario(
    Scenario(
        name="throughput",
        summary="images/s over a sweep of batch sizes, one process per batch",
        config=ThroughputConfig,
        measure=measure,
        report=ReportSpec(
            title="Throughput over batch size",
            intro="Images per second at the median of each batch size's timed loop (each batch measured in a "
            "process of its own, its output checked at that batch size). A missing point failed: its reason "
            "is in the table.",
            x="batch",
            x_label="batch size",
            y="images_per_s",
            y_label="images/s",
            log2_x=True,
        ),
    )
)
