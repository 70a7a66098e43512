"""The sweep sections of a report (throughput, threads): per scenario a chart and a table per model, every
figure computed from the points' raw samples."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from frameworks.result import Result
from frameworks.scenarios import ReportSpec

from . import fmt
from .cells import SweepLine, is_latency, model_order, model_title
from .matrix_view import row_labels
from .run_facts import scenario_order
from .sweeps import PointFigures, SweepSpec, figure, sweep_figures, sweep_spec
from .verdicts import trust_flags


@dataclass(frozen=True)
class SweepCell:
    """One point of a sweep as a table cell: its figure and how it was measured, or why it has none."""

    ok: bool
    value: str  # "3,650 img/s", "1.85×"; empty when not ok
    details: tuple[str, ...]  # "median 0.274 ms/batch"; "efficiency 92.5%", "median 0.274 ms"
    reason: str  # "failed: out of memory ..." when not ok
    flags: tuple[str, ...]  # an output that did not match the reference, the point's own warnings
    unverified: bool


@dataclass(frozen=True)
class SweepRow:
    label: str
    note: str  # why a cell has no points at all ("failed: ..."), else empty
    cells: tuple[SweepCell | None, ...]  # one per x value of the table, None where not measured
    line: SweepLine


@dataclass(frozen=True)
class SweepModel:
    model: str
    title: str
    xs: tuple[int, ...]
    headers: tuple[str, ...]  # "batch size 4", "threads 2": one per x value
    rows: tuple[SweepRow, ...]


@dataclass(frozen=True)
class SweepSection:
    """One sweep scenario of the run: its spec (title, intro, axes) and a chart and table per model."""

    scenario: str
    spec: ReportSpec
    registered: bool
    legend: str  # how every figure in the tables was computed
    models: tuple[SweepModel, ...]


def sweep_sections(results: Sequence[Result], show_launcher: bool) -> tuple[tuple[SweepSection, ...], list[str]]:
    """A section per sweep scenario of the run (registry order, then unknown names), and notes on
    results no section can show (a scenario that is neither latency nor a sweep with points)."""
    by_scenario: dict[str, list[Result]] = defaultdict(list)
    for result in results:
        if not is_latency(result):
            by_scenario[result.scenario].append(result)
    sections, notes = [], []
    for scenario in scenario_order(by_scenario):
        group = by_scenario[scenario]
        spec = sweep_spec(scenario, group)
        if spec is None:
            notes.append(f"{len(group)} result(s) of scenario {scenario!r} have no points to show: not shown")
            continue
        sections.append(sweep_section(spec, group, show_launcher))
    return tuple(sections), notes


def sweep_legend(spec: ReportSpec) -> str:
    if spec.y == "speedup":
        figure_text = (
            "Speedup = median time at the fewest threads / median time at this count; efficiency = speedup × "
            "fewest threads / threads; median = the median of the point's timed samples, in ms per batch"
        )
    else:
        figure_text = "Images/s = batch size / the median of the point's timed samples (seconds per batch)"
    return (
        f"{figure_text}. Every figure is computed from the points' raw samples; one taken from a point's stored "
        "summary instead (it kept no samples) says so. ⚠ INVALID flags a point the validity check failed, with its "
        "reasons; ⚠ flags what else a point recorded (an output not checked, a warning the verdict does not state, "
        "an unknown load); a failed point shows its reason."
    )


def sweep_section(spec: SweepSpec, results: list[Result], show_launcher: bool) -> SweepSection:
    labels = row_labels(results, show_launcher)
    models = tuple(model_order(r.model for r in results))
    return SweepSection(
        scenario=spec.scenario,
        spec=spec.spec,
        registered=spec.registered,
        legend=sweep_legend(spec.spec),
        models=tuple(_sweep_model(spec.spec, [r for r in results if r.model == m], labels, m) for m in models),
    )


def _sweep_model(spec: ReportSpec, results: list[Result], labels: dict[int, str], model: str) -> SweepModel:
    computed = [(r, sweep_figures(r, spec)) for r in results]
    xs = tuple(sorted({f.x for _, figs in computed for f in figs}))
    rows = tuple(_sweep_row(spec, r, labels[id(r)], figs, xs) for r, figs in computed)
    return SweepModel(model, model_title(model), xs, tuple(f"{spec.x_label} {x}" for x in xs), rows)


def _sweep_row(
    spec: ReportSpec, result: Result, label: str, figs: tuple[PointFigures, ...], xs: tuple[int, ...]
) -> SweepRow:
    by_x = {f.x: f for f in figs}
    note = "" if result.points else f"{result.status}: {result.error or 'no point was measured'}"
    values = tuple(figure(f, spec) for f in figs)
    line = SweepLine(
        label=label,
        group=result.framework,
        xs=tuple(f.x for f in figs),
        ys=tuple(v if v is not None else math.nan for v in values),
        unverified=tuple(f.point.verified is False for f in figs),
    )
    return SweepRow(label, note, tuple(_sweep_cell(spec, by_x[x]) if x in by_x else None for x in xs), line)


def _sweep_cell(spec: ReportSpec, figs: PointFigures) -> SweepCell:
    point = figs.point
    flags = list(_point_flags(spec, figs))
    value = figure(figs, spec)
    if point.status != "ok" or value is None:
        reason = point.error or ("no timing recorded" if point.status == "ok" else "no reason recorded")
        status = "failed" if point.status == "ok" else point.status
        return SweepCell(False, "", (), f"{status}: {reason}", tuple(flags), point.verified is False)
    details = []
    if spec.y == "speedup":
        if figs.efficiency is not None:
            details.append(f"efficiency {fmt.percent(100.0 * figs.efficiency)}")
        if figs.median_s is not None:
            details.append(f"median {fmt.ms(figs.median_s * 1e3)}")
        text = fmt.ratio(value)
    else:
        if figs.median_s is not None:
            details.append(f"median {fmt.ms(figs.median_s * 1e3)}/batch")
        text = f"{fmt.sig(value)} img/s"
    if not figs.from_samples:
        details.append("from the stored summary (no samples kept)")
    return SweepCell(True, text, tuple(details), "", tuple(flags), point.verified is False)


def _point_flags(spec: ReportSpec, figs: PointFigures) -> list[str]:
    """What to flag beside a point's figure: its verdict when invalid, a failed output check, its own warnings
    (less those the verdict states), a thread count the framework reports differently from the one requested,
    an unknown load."""
    point = figs.point
    flags = []
    if point.verified is False and not any("reference" in w for w in point.warnings):
        error = f" (max error {point.max_error:.3g})" if point.max_error is not None else ""
        flags.append(f"output does not match the reference{error}")
    elif point.status == "ok" and point.verified is None:
        flags.append("output not checked against the reference")
    flags += point.warnings
    if spec.x == "threads" and point.threads_in_use is not None and point.threads_in_use != point.threads:
        flags.append(f"the framework reports {point.threads_in_use} threads in use, not {point.threads}")
    return list(trust_flags(point, flags))
