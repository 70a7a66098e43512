"""Sweep scenarios (a batch-size sweep, thread scaling): which figure to draw, and each point's figures.

A sweep's result keeps one ``Measurement`` per batch size or thread count. The reports recompute every
figure from each point's raw samples (the median of ``samples_s``), so the page never shows a
number the file does not support; a point's stored summary (``stats.median``, and for thread
scaling the stored ``speedup`` and ``efficiency``) is used only where its samples are missing.

How a scenario is drawn is its registered ``ReportSpec``. A result of a scenario this code does
not know (a newer runner's file) still renders, through a generic spec: thread counts on the x
axis when ``thread_counts`` is part of its identity, else batch sizes.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from frameworks.result import Measurement, Result
from frameworks.scenarios import SCENARIOS, ReportSpec

THREADS_FIELD = "thread_counts"  # a config field that makes a sweep a thread sweep


@dataclass(frozen=True)
class SweepSpec:
    """A scenario's report spec, and whether it came from the registry or the generic fallback."""

    scenario: str
    spec: ReportSpec
    registered: bool


@dataclass(frozen=True)
class PointFigures:
    """One point's figures: ``median_s`` is seconds per batch; None where the point has no timing."""

    point: Measurement
    x: int
    median_s: float | None
    from_samples: bool  # False: the point kept no usable samples, its stored summary was used
    images_per_s: float | None
    speedup: float | None  # over the ok point with the fewest threads (thread sweeps only)
    efficiency: float | None  # speedup x fewest threads / threads


def sweep_spec(scenario: str, results: Sequence[Result]) -> SweepSpec | None:
    """How to draw ``scenario``'s results, or None when it is not a sweep (latency, or no points)."""
    entry = SCENARIOS.get(scenario)
    if entry is not None:
        return SweepSpec(scenario, entry.report, True) if entry.report is not None else None
    if not any(r.points for r in results):
        return None
    by_threads = any(THREADS_FIELD in r.identity for r in results)
    return SweepSpec(scenario, fallback_spec(scenario, by_threads), False)


def fallback_spec(scenario: str, by_threads: bool) -> ReportSpec:
    """A generic spec for an unregistered scenario, so its measurements are shown rather than dropped."""
    unknown = f"The scenario {scenario!r} is not registered in this version of the reports"
    if by_threads:
        return ReportSpec(
            title=f"Scenario {scenario}: speedup over thread count",
            intro=f"{unknown}; its points are shown by thread count (its identity names thread_counts), as the "
            "speedup of the median over the point with the fewest threads.",
            x="threads",
            x_label="threads",
            y="speedup",
            y_label="speedup over the fewest threads",
            log2_x=False,
            ideal=True,
        )
    return ReportSpec(
        title=f"Scenario {scenario}: images/s over batch size",
        intro=f"{unknown}; its points are shown by batch size, as images per second at the median.",
        x="batch",
        x_label="batch size",
        y="images_per_s",
        y_label="images/s",
        log2_x=True,
    )


def x_of(point: Measurement, spec: ReportSpec) -> int:
    return point.threads if spec.x == "threads" else point.batch


def usable_samples(values: Iterable[float]) -> np.ndarray:
    """Finite, positive samples (anything else is not a time and is dropped, as for latency cells)."""
    samples = np.asarray(tuple(values), dtype=float)
    return samples[np.isfinite(samples) & (samples > 0)]


def point_median(point: Measurement) -> tuple[float | None, bool]:
    """(seconds per batch, from the samples?): the samples' median, else the stored median, else None."""
    if point.status != "ok":
        return None, False
    samples = usable_samples(point.samples_s)
    if samples.size:
        return float(np.median(samples)), True
    stored = point.stats.median if point.stats is not None else None
    return (stored, False) if _positive(stored) else (None, False)


def _positive(value: float | None) -> bool:
    return value is not None and math.isfinite(value) and value > 0


def sweep_figures(result: Result, spec: ReportSpec) -> tuple[PointFigures, ...]:
    """Every point of ``result`` in x order (a repeated x keeps its last point), with its figures."""
    by_x: dict[int, Measurement] = {}
    for point in result.points:
        by_x[x_of(point, spec)] = point
    points = [by_x[x] for x in sorted(by_x)]
    medians = [point_median(p) for p in points]
    base = _scaling_base(points, medians) if spec.y == "speedup" else None
    figures = []
    for point, (median, from_samples) in zip(points, medians, strict=True):
        speedup, efficiency = _scaling(point, median, from_samples, base) if spec.y == "speedup" else (None, None)
        figures.append(
            PointFigures(
                point=point,
                x=x_of(point, spec),
                median_s=median,
                from_samples=from_samples,
                images_per_s=point.batch / median if median is not None and point.batch > 0 else None,
                speedup=speedup,
                efficiency=efficiency,
            )
        )
    return tuple(figures)


@dataclass(frozen=True)
class _Base:
    threads: int
    median_s: float
    from_samples: bool


def _scaling_base(points: list[Measurement], medians: list[tuple[float | None, bool]]) -> _Base | None:
    """The ok point with the fewest threads that has a median: what every speedup is over."""
    timed = [(p, m) for p, m in zip(points, medians, strict=True) if m[0] is not None]
    if not timed:
        return None
    point, (median, from_samples) = min(timed, key=lambda pm: pm[0].threads)
    assert median is not None
    return _Base(point.threads, median, from_samples)


def _scaling(
    point: Measurement, median: float | None, from_samples: bool, base: _Base | None
) -> tuple[float | None, float | None]:
    """(speedup, efficiency): from the samples of this point and the base; else the stored figures;
    else the ratio of the stored medians."""
    if point.status != "ok":
        return None, None
    if base is not None and median is not None and from_samples and base.from_samples:
        return _with_efficiency(base.median_s / median, base.threads, point.threads)
    if _positive(point.speedup):
        assert point.speedup is not None
        if _positive(point.efficiency):
            return point.speedup, point.efficiency
        return _with_efficiency(point.speedup, base.threads if base is not None else None, point.threads)
    if base is not None and median is not None:
        return _with_efficiency(base.median_s / median, base.threads, point.threads)
    return None, None


def _with_efficiency(speedup: float, base_threads: int | None, threads: int) -> tuple[float, float | None]:
    if base_threads is None or threads <= 0:
        return speedup, None
    return speedup, speedup * base_threads / threads


def figure(figures: PointFigures, spec: ReportSpec) -> float | None:
    """The figure the spec draws for this point: images/s or speedup."""
    return figures.speedup if spec.y == "speedup" else figures.images_per_s
