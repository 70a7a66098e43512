"""Latency against memory: what each cell's speed costs in memory, per model.

A framework that is 10% faster but holds twice the memory is not the better choice on a small machine. Each
latency cell of the model as specified that ran and recorded its peak memory (the measuring process's peak
RSS) is one point: median latency per image against peak memory. The cells no other valid cell of the same
device beats on both (as fast or faster, as small or smaller, better on one) are the Pareto front: the only
ones worth choosing on these two figures. Invalid cells are shown but never on the front, since their medians
are not to be ranked. The HTML draws the points (``charts.memory_chart``); both pages list them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from frameworks.result import Result

from .cells import figures, model_order, model_title
from .verdicts import is_valid

INTRO = (
    "Median latency per image against the peak memory (peak RSS of the measuring process) of each latency cell "
    "that ran. On the Pareto front: no other valid cell of the same device is both as fast and as small, and "
    "better in one; invalid cells are never on it."
)


@dataclass(frozen=True)
class MemoryPoint:
    label: str  # variant / mode
    group: str  # the framework: the chart's colour
    median_ms: float
    peak_bytes: int
    valid: bool
    front: bool

    @property
    def x(self) -> float:
        """Peak memory in MiB, the chart's x."""
        return self.peak_bytes / 2**20


@dataclass(frozen=True)
class MemoryModel:
    model: str
    title: str
    points: tuple[MemoryPoint, ...]  # by peak memory, smallest first
    unrecorded: tuple[str, ...]  # cells with a timing but no peak memory


@dataclass(frozen=True)
class MemorySection:
    intro: str
    models: tuple[MemoryModel, ...]


def pareto_front(points: Sequence[tuple[float, float]]) -> set[int]:
    """Indices of the points no other point dominates (smaller or equal in both, smaller in one); lower is
    better on both axes, and equal points are all on the front."""
    front = set()
    for i, (a, b) in enumerate(points):
        if not any(c <= a and d <= b and (c < a or d < b) for j, (c, d) in enumerate(points) if j != i):
            front.add(i)
    return front


def memory_section(results: Sequence[Result], labels: dict[int, str]) -> MemorySection | None:
    """Per model, its timed cells as points; None when no cell recorded a peak memory."""
    models = []
    for model in model_order(r.model for r in results):
        found = _model([r for r in results if r.model == model], labels, model)
        if found is not None:
            models.append(found)
    return MemorySection(INTRO, tuple(models)) if any(m.points for m in models) else None


def _model(results: list[Result], labels: dict[int, str], model: str) -> MemoryModel | None:
    timed = [(r, figs.median_ms) for r in results if (figs := figures(r)) is not None]
    if not timed:
        return None
    measured = [(r, median) for r, median in timed if r.peak_rss_bytes]
    on_front: set[int] = set()
    for device in {r.device for r, _ in measured}:
        valid = [i for i, (r, _) in enumerate(measured) if is_valid(r) and r.device == device]
        front = pareto_front([(measured[i][1], float(measured[i][0].peak_rss_bytes or 0)) for i in valid])
        on_front |= {valid[k] for k in front}
    points = [MemoryPoint(labels[id(r)], r.framework, median, r.peak_rss_bytes or 0, is_valid(r), i in on_front)
              for i, (r, median) in enumerate(measured)]  # fmt: skip
    unrecorded = tuple(labels[id(r)] for r, _ in timed if not r.peak_rss_bytes)
    points.sort(key=lambda p: (p.peak_bytes, p.median_ms))
    return MemoryModel(model, model_title(model), tuple(points), unrecorded)
