"""The self-contained HTML report: jinja2 templates with autoescaping, charts inlined as SVG.

Autoescaping is on for every template, so any string from a result file (an error message, a
build fact, a variant name) is text on the page, never markup. The only strings marked safe are
the SVG documents matplotlib wrote, whose text matplotlib escapes itself. The only links are ours:
home, and a several-machine run's reports of its machines (percent-encoded paths under hosts/).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import cache
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup

from . import charts, fmt
from .cells import model_title
from .content import ComparisonGroup, Report
from .markdown import (
    FASTEST_LEGEND,
    HEATMAP_LEGEND,
    MACHINES_INTRO,
    MATRIX_LEGEND,
    STUDY_LEGEND,
    across_legend,
    comparison_legend,
    median_text,
)
from .matrix_view import CellView
from .sweep_tables import SweepSection

TEMPLATES = Path(__file__).resolve().parent / "templates"


@cache
def jinja_environment() -> jinja2.Environment:
    """The one jinja2 environment: autoescape on for every template, undefined names are errors.

    (Named for jinja: ``frameworks.environment`` is the machine a cell ran on.)
    """
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        finalize=_visible,
    )
    env.globals.update(fmt=fmt, model_title=model_title, zip=zip, fmt_median=median_text)
    return env


def _visible(value: Any) -> Any:
    """Every printed string shows its control characters instead of obeying them (markup is ours: kept)."""
    if isinstance(value, str) and not isinstance(value, Markup):
        return fmt.visible(value)
    return value


def render_template(name: str, **context: Any) -> str:
    return jinja_environment().get_template(name).render(**context)


@dataclass(frozen=True)
class ReportCharts:
    """Inline SVG charts by model (latency, samples) and by comparison group (speedups)."""

    latency: dict[str, Markup] = field(default_factory=dict)
    samples: dict[str, Markup] = field(default_factory=dict)
    speedups: dict[str, Markup] = field(default_factory=dict)
    sweeps: list[dict[str, Markup]] = field(default_factory=list)  # per sweep section, by model
    across: Markup | None = None  # a several-machine run: the cells compared across machines
    training: dict[str, tuple[Markup, Markup]] = field(default_factory=dict)  # by model: loss, accuracy
    pruning: dict[str, PrunedCharts] = field(default_factory=dict)  # by model: accuracy and latency by sparsity
    int8: dict[str, Markup] = field(default_factory=dict)  # by model: test accuracy by calibration size
    memory: dict[str, Markup] = field(default_factory=dict)  # by model: median latency against peak memory


@dataclass(frozen=True)
class PrunedCharts:
    """One pruned model's curves against sparsity; None where no cell has a point to draw."""

    accuracy: Markup | None
    latency: Markup | None


def report_charts(report: Report, log_scale: bool | None = None) -> ReportCharts:
    """Every chart of one report; ids are numbered, never taken from result strings."""
    built = ReportCharts()
    for i, model in enumerate(report.models):
        timed = [v for v in report.cells if v.result.model == model and v.figures is not None]
        if not timed:
            continue
        built.latency[model] = Markup(charts.latency_chart(_latency_bars(timed), f"lat{i}", log_scale))
        with_samples = [v for v in timed if v.figures is not None and v.figures.samples_ms.size]
        if with_samples:
            built.samples[model] = Markup(_samples_svg(with_samples, f"box{i}"))
    for i, group in enumerate(report.groups):
        built.speedups[group.title] = Markup(_speedup_svg(group, f"spd{i}"))
    built.sweeps.extend(_sweep_svgs(section, i) for i, section in enumerate(report.sweeps))
    built.training.update(_training_svgs(report))
    built.pruning.update(_pruning_svgs(report))
    built.int8.update(_int8_svgs(report))
    built.memory.update(_memory_svgs(report))
    if report.across:
        labels = [f"{model_title(c.model)} · {c.context} · {c.title}" for c in report.across]
        return replace(built, across=Markup(charts.speedup_chart(report.across, labels, "across")))
    return built


def _sweep_svgs(section: SweepSection, index: int) -> dict[str, Markup]:
    """One chart per model of a sweep section, for models with at least one point to draw."""
    spec, drawn = section.spec, {}
    for j, model in enumerate(section.models):
        lines = [row.line for row in model.rows if row.line.xs]
        if not lines:
            continue
        svg = charts.sweep_chart(
            lines,
            x_label=spec.x_label,
            y_label=spec.y_label,
            log2_x=spec.log2_x,
            ideal=spec.ideal,
            prefix=f"sw{index}m{j}",
        )
        drawn[model.model] = Markup(svg)
    return drawn


def _training_svgs(report: Report) -> dict[str, tuple[Markup, Markup]]:
    """The learning curves of each trained model: loss against step, test accuracy against epoch."""
    drawn: dict[str, tuple[Markup, Markup]] = {}
    if report.training is None:
        return drawn
    for j, model in enumerate(report.training.models):
        if not model.loss_lines:
            continue
        loss = charts.curve_chart(model.loss_lines, x_label="step", y_label="training loss", prefix=f"tl{j}",
                                  markers=False)  # fmt: skip
        accuracy = charts.curve_chart(model.accuracy_lines, x_label="epoch", y_label="test accuracy (%)",
                                      prefix=f"ta{j}", markers=True)  # fmt: skip
        drawn[model.model] = (Markup(loss), Markup(accuracy))
    return drawn


def _pruning_svgs(report: Report) -> dict[str, PrunedCharts]:
    """Each pruned model's test accuracy (trained weights only) and latency against sparsity."""
    drawn: dict[str, PrunedCharts] = {}
    if report.pruning is None:
        return drawn
    for j, model in enumerate(report.pruning.models):
        accuracy = latency = None
        if model.accuracy_lines:
            accuracy = Markup(charts.sparsity_chart(model.accuracy_lines, y_label="test accuracy (%)",
                                                    prefix=f"pa{j}", from_zero=False))  # fmt: skip
        if model.latency_lines:
            latency = Markup(charts.sparsity_chart(model.latency_lines, y_label="median latency (ms/img)",
                                                   prefix=f"pl{j}", from_zero=True))  # fmt: skip
        drawn[model.model] = PrunedCharts(accuracy, latency)
    return drawn


def _int8_svgs(report: Report) -> dict[str, Markup]:
    """Each int8 model's test accuracy against calibration size, its float32 accuracy as the reference."""
    drawn: dict[str, Markup] = {}
    if report.int8 is None:
        return drawn
    for j, model in enumerate(report.int8.models):
        if model.lines:
            svg = charts.calibration_chart(model.lines, model.references, y_label="test accuracy (%)", prefix=f"qa{j}")
            drawn[model.model] = Markup(svg)
    return drawn


def _memory_svgs(report: Report) -> dict[str, Markup]:
    """Each model's cells as points: median latency per image against peak memory."""
    if report.memory is None:
        return {}
    return {model.model: Markup(charts.memory_chart(model.points, prefix=f"mem{j}"))
            for j, model in enumerate(report.memory.models) if model.points}  # fmt: skip


def _latency_bars(views: list[CellView]) -> list[charts.Bar]:
    bars = []
    for view in views:
        figs = view.figures
        assert figs is not None
        bars.append(charts.Bar(view.label, figs.median_ms, figs.ci_low_ms, figs.ci_high_ms, view.result.framework))
    return bars


def _samples_svg(views: list[CellView], prefix: str) -> str:
    samples = [v.figures.samples_ms for v in views if v.figures is not None]
    labels = [f"{v.label} · {fmt.ms(v.figures.median_ms)}" for v in views if v.figures is not None]
    return charts.samples_chart(labels, samples, prefix)


def _speedup_svg(group: ComparisonGroup, prefix: str) -> str:
    labels = [f"{model_title(c.model)} · {c.context} · {c.title}" for c in group.comparisons]
    return charts.speedup_chart(group.comparisons, labels, prefix)


def render_html(report: Report, report_charts_: ReportCharts | None = None, home_href: str | None = None) -> str:
    """The report as one HTML document (charts are drawn here unless given)."""
    drawn = report_charts_ if report_charts_ is not None else report_charts(report)
    if report.several:
        return render_template(
            "several.html.j2",
            page_title=report.title,
            report=report,
            charts=drawn,
            machines_intro=MACHINES_INTRO,
            matrix_legend=MATRIX_LEGEND,
            across_legend=across_legend(report.first_machine),
            home_href=home_href,
        )
    return render_template(
        "report.html.j2",
        page_title=report.title,
        report=report,
        charts=drawn,
        comparison_legend=comparison_legend(),
        matrix_legend=MATRIX_LEGEND,
        study_legend=STUDY_LEGEND,
        fastest_legend=FASTEST_LEGEND,
        heatmap_legend=HEATMAP_LEGEND,
        home_href=home_href,
    )
