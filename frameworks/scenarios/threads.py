"""``threads``: thread scaling, what the second and later cores buy.

One point per thread count (1, 2, ... up to the CPUs of the cell's cpuset), each in a process of
its own with the count set through the framework's own setting and the BLAS/OpenMP variables
(BLAS and OpenMP read them once per process), and read back from the framework where it can say.
Per point: the median, the speedup over one thread and the parallel efficiency (speedup / threads).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, ClassVar

from . import ReportSpec, Scenario, register_scenario
from .config import DEFAULT_TIMEOUT_S, ScenarioConfig, option, positive_unique

if TYPE_CHECKING:
    from ..harness import CellRequest
    from ..models import ModelSpec
    from ..result import Measurement, Result

EVERY_COUNT_UP_TO = 8  # beyond 8 CPUs the default sweep doubles (1 2 4 8 16 ... and the CPU count)


def default_thread_counts(cpus: int) -> tuple[int, ...]:
    """1, 2, ... cpus; on bigger machines 1 ... 8, then doubling, always ending at ``cpus``."""
    if cpus <= EVERY_COUNT_UP_TO:
        return tuple(range(1, cpus + 1))
    counts = list(range(1, EVERY_COUNT_UP_TO + 1))
    while counts[-1] * 2 < cpus:
        counts.append(counts[-1] * 2)
    return (*counts, cpus)


@dataclass(frozen=True)
class ThreadsConfig(ScenarioConfig):
    IDENTITY: ClassVar[tuple[str, ...]] = ("batch", "thread_counts")

    batch: int = field(default=1, metadata=option("images per forward pass"))
    thread_counts: tuple[int, ...] = field(
        default=(), metadata=option("thread counts to sweep (default: 1 2 ... up to the CPUs of the cpuset)")
    )
    point_timeout: float = field(
        default=DEFAULT_TIMEOUT_S, metadata=option("seconds per thread count before it is killed", runner=False)
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.batch < 1:
            raise ValueError("--batch must be at least 1")
        positive_unique(self.thread_counts, "thread_counts")
        if not self.point_timeout > 0:
            raise ValueError("--point-timeout must be positive")

    def resolve(self, spec: ModelSpec, cpus: int) -> ThreadsConfig:
        return replace(self, thread_counts=self.thread_counts or default_thread_counts(cpus))

    def cell_batch(self) -> int:
        return self.batch

    def points(self) -> int:
        return len(self.thread_counts) or EVERY_COUNT_UP_TO


def with_scaling(points: list[Measurement]) -> list[Measurement]:
    """Speedup over the fewest threads measured (one, by default) and efficiency, per ok point."""
    ok = [p for p in points if p.status == "ok" and p.stats is not None]
    if not ok:
        return points
    base = min(ok, key=lambda p: p.threads)
    assert base.stats is not None
    scaled = []
    for p in points:
        if p in ok and p.stats is not None:
            speedup = base.stats.median / p.stats.median
            p = replace(p, speedup=speedup, efficiency=speedup * base.threads / p.threads)
        scaled.append(p)
    return scaled


def measure(request: CellRequest, spec: ModelSpec, config: ScenarioConfig, base: Result) -> Result:
    from ..harness import run_points, sweep_result

    assert isinstance(config, ThreadsConfig)
    sweep = [(config.batch, threads) for threads in config.thread_counts]
    points, children = run_points(request, config, sweep, config.point_timeout)
    return sweep_result(base, with_scaling(points), children)


SCENARIO = register_scenario(
    Scenario(
        name="threads",
        summary="speedup and parallel efficiency over thread counts, one process per count",
        config=ThreadsConfig,
        measure=measure,
        report=ReportSpec(
            title="Thread scaling",
            intro="Speedup of the median over the run with the fewest threads (one), per thread count, each "
            "measured in a process of its own with the framework's own thread setting; the dashed line is "
            "linear scaling. Efficiency = speedup / threads.",
            x="threads",
            x_label="threads",
            y="speedup",
            y_label="speedup over 1 thread",
            log2_x=False,
            ideal=True,
        ),
    )
)
