"""Charts drawn by matplotlib (Agg, no pyplot state) and returned as inline SVG text.

Inline SVG keeps the HTML report one file that opens offline. Text is kept as SVG ``<text>``
(``svg.fonttype: none``): smaller than glyph paths, searchable, and escaped by matplotlib's own
XML writer. Each chart's element ids get a prefix, because many charts share one document and
matplotlib numbers its ids per figure.
"""

from __future__ import annotations

import io
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import matplotlib
import numpy as np
from numpy.typing import ArrayLike

matplotlib.use("Agg")

from matplotlib.axes import Axes
from matplotlib.collections import PolyCollection
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter, NullFormatter, StrMethodFormatter

from .compare import Comparison
from .fmt import sig, visible

LOG_SPREAD = 30.0  # automatic log scale when the largest value is this many times the smallest
SPEEDUP_LOG_SPREAD = 8.0  # speedups (and slowdowns) around 1 go log sooner: 0.5x and 2x are equally far
MAX_LABEL = 64
WIDTH_IN = 7.6
ROW_IN = 0.24
BOTTOM_IN = 0.55  # tick labels and the axis label
CHAR_IN = 8.0 * 0.6 / 72  # about one character of 8 pt DejaVu Sans, in inches
PALETTE = ("#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860", "#da8bc3", "#8c8c8c", "#ccb974")
STYLE: dict[Any, Any] = {  # Any keys: matplotlib types them as a Literal of every rc name
    "svg.fonttype": "none",
    "svg.hashsalt": "dlbench-reports",  # deterministic ids, so two renders of one run are identical
    "font.size": 8.0,
    "font.family": "DejaVu Sans",
    "axes.spines.top": False,
    "axes.spines.right": False,
}
SIGNIFICANT, NOT_SIGNIFICANT = "significant", "not significant"
_ID_SAFE = re.compile(r"[^A-Za-z0-9_-]")


@dataclass(frozen=True)
class Bar:
    """One labelled value with its interval, for the latency and speedup charts."""

    label: str
    value: float
    low: float
    high: float
    group: str  # colour key (framework, or significance)


def plain_text(text: str) -> str:
    """Text for matplotlib as it is: '$' would start mathtext, newlines would break the layout."""
    return " ".join(visible(str(text)).split()).replace("$", r"\$")


def label_text(text: str) -> str:
    """A tick or legend label: plain text, shortened (long labels squeeze the plot)."""
    text = " ".join(str(text).split())
    return plain_text(text if len(text) <= MAX_LABEL else text[: MAX_LABEL - 1] + "…")


def use_log(values: Sequence[float], log_scale: bool | None, spread: float = LOG_SPREAD) -> bool:
    """``None`` means automatic: log when the values span more than ``spread`` times."""
    if log_scale is not None:
        return log_scale
    positive = [v for v in values if v > 0]
    return bool(positive) and max(positive) / min(positive) > spread


def to_svg(fig: Figure, prefix: str) -> str:
    """The figure as an SVG element for inlining: no XML prolog, doctype or metadata; ids prefixed."""
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", metadata={"Date": None, "Creator": None})
    text = buffer.getvalue()
    text = text[text.index("<svg") :]
    text = re.sub(r"<metadata>.*?</metadata>\s*", "", text, flags=re.DOTALL)
    safe = _ID_SAFE.sub("-", prefix)
    text = re.sub(r'\bid="([^"]+)"', rf'id="{safe}-\1"', text)
    text = re.sub(r"url\(#([^)]+)\)", rf"url(#{safe}-\1)", text)
    text = re.sub(r'href="#([^"]+)"', rf'href="#{safe}-\1"', text)
    return text.replace("<svg ", '<svg class="chart" role="img" ', 1)


def _log_axis(ax: Axes) -> None:
    """A log x axis with plain-number labels: mathtext tick labels (10^2) cost a parser run each."""
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _pos: sig(value, 2)))
    ax.xaxis.set_minor_formatter(NullFormatter())


def _figure(labels: Sequence[str], legend: bool = False) -> tuple[Figure, Axes]:
    """A one-axes figure with margins set from the label lengths.

    Fixed margins instead of constrained layout: the layout engine measures every text twice
    and took 40% of a report's render time; a character-count estimate is close enough here.
    """
    top_in = 0.45 if legend else 0.15
    height = max(1.6, len(labels) * ROW_IN + BOTTOM_IN + top_in)
    longest = max((len(label) for label in labels), default=0)
    left_in = min(WIDTH_IN * 0.55, 0.25 + longest * CHAR_IN)
    fig = Figure(figsize=(WIDTH_IN, height))
    fig.subplots_adjust(
        left=left_in / WIDTH_IN, right=1 - 0.2 / WIDTH_IN, bottom=BOTTOM_IN / height, top=1 - top_in / height
    )
    return fig, fig.add_subplot()


def _colours(groups: Sequence[str]) -> dict[str, str]:
    fixed = {SIGNIFICANT: "#4c72b0", NOT_SIGNIFICANT: "#b8b8b8"}
    free = [g for g in dict.fromkeys(groups) if g not in fixed]
    return {g: fixed.get(g) or PALETTE[free.index(g) % len(PALETTE)] for g in dict.fromkeys(groups)}


def bar_chart(
    bars: Sequence[Bar],
    xlabel: str,
    prefix: str,
    log_scale: bool | None,
    reference: float | None,
    spread: float = LOG_SPREAD,
) -> str:
    """Horizontal bars with interval whiskers, first bar on top; bars start at ``reference`` (else 0)."""
    with matplotlib.rc_context(STYLE):
        colours = _colours([b.group for b in bars])
        fig, ax = _figure([label_text(b.label) for b in bars], legend=len(colours) > 1)
        ys = list(range(len(bars)))
        base = reference if reference is not None else 0.0
        values = [v for b in bars for v in (b.low, b.value, b.high)]
        log = use_log(values + ([reference] if reference else []), log_scale, spread)
        ax.barh(
            ys,
            [b.value - base for b in bars],
            left=base,
            color=[colours[b.group] for b in bars],
            xerr=[[max(0.0, b.value - b.low) for b in bars], [max(0.0, b.high - b.value) for b in bars]],
            error_kw={"elinewidth": 0.8, "capsize": 2, "ecolor": "#222"},
            height=0.7,
        )
        if log:
            _log_axis(ax)
        if reference is not None:
            ax.axvline(reference, color="#222", linewidth=0.8)
        ax.set_yticks(ys, [label_text(b.label) for b in bars])
        ax.invert_yaxis()
        if reference is not None and not log:
            low, high = min([reference, *values]), max([reference, *values])
            margin = 0.05 * (high - low or 1.0)
            ax.set_xlim(low - margin, high + margin)  # bars start at the reference, not at 0
        ax.set_xlabel(plain_text(xlabel) + (" (log scale)" if log else ""))
        _legend(fig, colours)
        return to_svg(fig, prefix)


def _legend(fig: Figure, colours: dict[str, str]) -> None:
    """Above the plot, outside it: inside, it would hide bars."""
    if len(colours) < 2:
        return
    handles = [Patch(color=c, label=label_text(g)) for g, c in colours.items()]
    fig.legend(handles=handles, loc="upper center", ncols=min(len(handles), 5), fontsize=7, frameon=False)


def latency_chart(bars: Sequence[Bar], prefix: str, log_scale: bool | None = None) -> str:
    """Median latency per image for one model, one bar per variant and mode."""
    return bar_chart(bars, "median ms per image", prefix, log_scale, None)


def speedup_chart(comparisons: Sequence[Comparison], labels: Sequence[str], prefix: str) -> str:
    """Speedup ratios around 1 (log axis when they span much), significant ones coloured, the rest grey."""
    bars = [
        Bar(
            label,
            c.speedup.ratio,
            c.speedup.ci_low,
            c.speedup.ci_high,
            SIGNIFICANT if c.speedup.significant else NOT_SIGNIFICANT,
        )
        for c, label in zip(comparisons, labels, strict=True)
    ]
    xlabel = "× faster than the baseline"
    return bar_chart(bars, xlabel, prefix, None, 1.0, spread=SPEEDUP_LOG_SPREAD)


@dataclass(frozen=True)
class BoxStats:
    """Tukey's box: quartiles, whiskers at the furthest samples within 1.5 IQR, the rest outliers."""

    low: float
    q1: float
    median: float
    q3: float
    high: float
    outliers: tuple[float, ...]


def box_stats(values: ArrayLike) -> BoxStats:
    """The five numbers and outliers of one cell (as matplotlib's boxplot computes them)."""
    data = np.asarray(values, dtype=float)
    q1, median, q3 = (float(q) for q in np.percentile(data, [25, 50, 75]))
    reach = 1.5 * (q3 - q1)
    inside = data[(data >= q1 - reach) & (data <= q3 + reach)]
    outside = data[(data < q1 - reach) | (data > q3 + reach)]
    return BoxStats(float(inside.min()), q1, median, q3, float(inside.max()), tuple(outside.tolist()))


def samples_chart(labels: Sequence[str], samples: Sequence[ArrayLike], prefix: str) -> str:
    """Every raw sample of each cell as a box plot, in percent of the cell's own median.

    On one shared millisecond axis a 1% spread is invisible next to a 100x latency gap, so each
    cell is scaled by its median (which its label states): the plot shows stability and outliers.
    Drawn as a few collections (boxes, whiskers, medians, outliers) rather than ``Axes.boxplot``,
    whose seven artists per box made a 500-cell report's charts several times slower.
    """
    with matplotlib.rc_context(STYLE):
        fig, ax = _figure([label_text(x) for x in labels])
        arrays = [np.asarray(s, dtype=float) for s in samples]
        boxes = [box_stats(a * (100.0 / float(np.median(a)))) for a in arrays]
        ys = np.arange(len(boxes), dtype=float)
        half = 0.3
        ax.add_collection(
            PolyCollection(
                [
                    [(b.q1, y - half), (b.q3, y - half), (b.q3, y + half), (b.q1, y + half)]
                    for b, y in zip(boxes, ys, strict=True)
                ],
                facecolors="#dbe4f0",
                edgecolors="#222",
                linewidths=0.6,
            )
        )
        ax.hlines(
            np.r_[ys, ys],
            [b.low for b in boxes] + [b.q3 for b in boxes],
            [b.q1 for b in boxes] + [b.high for b in boxes],
            color="#222",
            linewidth=0.6,
        )
        ax.vlines(
            [b.low for b in boxes] + [b.high for b in boxes],
            np.r_[ys, ys] - half / 2,
            np.r_[ys, ys] + half / 2,
            color="#222",
            linewidth=0.6,
        )
        ax.vlines([b.median for b in boxes], ys - half, ys + half, color="#c44e52", linewidth=1.2)
        out_x = [v for b in boxes for v in b.outliers]
        out_y = [y for b, y in zip(boxes, ys, strict=True) for _ in b.outliers]
        ax.scatter(out_x, out_y, s=3, facecolors="none", edgecolors="#222", linewidths=0.5)
        ax.set_yticks(ys, [label_text(x) for x in labels])
        ax.set_ylim(len(boxes) - 0.5, -0.5)  # first cell on top
        ax.axvline(100.0, color="#888", linewidth=0.6, zorder=0)
        ax.autoscale(axis="x")
        ax.set_xlabel("every timed sample, % of the cell's median")
        return to_svg(fig, prefix)


@dataclass(frozen=True)
class HistoryPoint:
    label: str  # the run's date, for the x axis
    median: float
    low: float
    high: float
    flagged: bool  # a significant regression beyond the threshold against the previous run


@dataclass(frozen=True)
class History:
    title: str
    points: tuple[HistoryPoint, ...]


def history_chart(histories: Sequence[History], prefix: str, columns: int = 3) -> str:
    """Small multiples: one panel per cell, its median (and interval) run after run; regressions red."""
    rows = max(1, -(-len(histories) // columns))
    with matplotlib.rc_context(STYLE):
        fig = Figure(figsize=(WIDTH_IN, 1.9 * rows + 0.3), layout="constrained")
        axes = fig.subplots(rows, columns, squeeze=False)
        for ax, history in zip(axes.flat, histories, strict=False):
            _history_panel(ax, history)
        for ax in list(axes.flat)[len(histories) :]:
            ax.set_visible(False)
        return to_svg(fig, prefix)


def _history_panel(ax: Axes, history: History) -> None:
    xs = list(range(len(history.points)))
    medians = [p.median for p in history.points]
    err = [[p.median - p.low for p in history.points], [p.high - p.median for p in history.points]]
    ax.errorbar(xs, medians, yerr=err, color="#4c72b0", marker="o", markersize=3, linewidth=1, capsize=2)
    bad = [(x, p.median) for x, p in zip(xs, history.points, strict=True) if p.flagged]
    if bad:
        ax.scatter([b[0] for b in bad], [b[1] for b in bad], color="#c44e52", s=30, zorder=3, label="regression")
    ax.set_title(label_text(history.title), fontsize=7)
    ax.set_xticks(xs, [label_text(p.label) for p in history.points], rotation=30, fontsize=6, ha="right")
    ax.set_xlim(-0.5, max(0.5, len(xs) - 0.5))
    ax.set_ylabel("ms/img", fontsize=6)
    ax.tick_params(axis="y", labelsize=6)


class Line(Protocol):
    """One line of a chart (``cells.SweepLine``, the one record every section draws with): a row's figure at
    each x, NaN where none."""

    @property
    def label(self) -> str: ...
    @property
    def group(self) -> str: ...  # colour key (the framework); rows of one framework differ in marker and dash
    @property
    def xs(self) -> tuple[float, ...]: ...  # batch sizes and thread counts are ints; a sparsity is not
    @property
    def ys(self) -> tuple[float, ...]: ...
    @property
    def unverified(self) -> tuple[bool, ...]: ...


MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
DASHES = ("solid", (0, (4, 1.5)), (0, (1, 1.2)), (0, (4, 1.5, 1, 1.5)))
LEGEND_ROW_IN = 0.16


def sweep_chart(
    lines: Sequence[Line],
    *,
    x_label: str,
    y_label: str,
    log2_x: bool,
    ideal: bool,
    prefix: str,
) -> str:
    """A figure of each row against the sweep's axis: the x values as ticks (log 2 spaced for batch
    sizes), an optional dashed linear-scaling line, unverified points ringed in red, legend below."""
    with matplotlib.rc_context(STYLE):
        xs = sorted({x for line in lines for x in line.xs})
        fig, ax = _lines_figure(lines, extra_entries=int(ideal))
        if ideal and xs:
            ax.plot(xs, [x / xs[0] for x in xs], color="#444", linestyle="--", linewidth=1, label="linear scaling")
        log_y = _sweep_axes(ax, xs, log2_x, [y for line in lines for y in line.ys], ideal)
        ax.set_xlabel(plain_text(x_label) + (" (log 2 scale)" if log2_x else ""))
        ax.set_ylabel(plain_text(y_label) + (" (log scale)" if log_y else ""))
        handles, labels = ax.get_legend_handles_labels()
        fig.legend(handles, labels, loc="lower center", ncols=2, fontsize=7, frameon=False)
        return to_svg(fig, prefix)


def _legend_figure(entries: int) -> tuple[Figure, Axes]:
    """A one-axes figure sized for a legend of ``entries`` below it, two entries a row."""
    legend_in = LEGEND_ROW_IN * -(-entries // 2) + 0.1
    height = 3.0 + legend_in
    fig = Figure(figsize=(WIDTH_IN, height))
    fig.subplots_adjust(left=0.1, right=0.97, top=1 - 0.15 / height, bottom=(legend_in + 0.45) / height)
    return fig, fig.add_subplot()


def _lines_figure(lines: Sequence[Line], extra_entries: int = 0) -> tuple[Figure, Axes]:
    """A figure sized for its legend below (two entries a row), with each row drawn: sweeps and sparsity alike."""
    fig, ax = _legend_figure(len(lines) + extra_entries + int(any(any(line.unverified) for line in lines)))
    _sweep_lines(ax, lines)
    return fig, ax


def _sweep_lines(ax: Axes, lines: Sequence[Line]) -> None:
    colours = _colours([line.group for line in lines])
    within: dict[str, int] = {}
    flagged_x: list[float] = []
    flagged_y: list[float] = []
    for line in lines:
        n = within.get(line.group, 0)
        within[line.group] = n + 1
        ax.plot(
            line.xs,
            line.ys,
            color=colours[line.group],
            marker=MARKERS[n % len(MARKERS)],
            markersize=4,
            linestyle=DASHES[n % len(DASHES)],
            linewidth=1.2,
            label=label_text(line.label),
        )
        for x, y, bad in zip(line.xs, line.ys, line.unverified, strict=True):
            if bad and np.isfinite(y):
                flagged_x.append(x)
                flagged_y.append(y)
    if flagged_x:
        ax.scatter(
            flagged_x,
            flagged_y,
            s=70,
            facecolors="none",
            edgecolors="#c44e52",
            linewidths=1.4,
            zorder=3,
            label="output does not match the reference",
        )


def _sweep_axes(ax: Axes, xs: Sequence[float], log2_x: bool, ys: list[float], ideal: bool) -> bool:
    """Ticks at the measured x values; y from 0, or log when the values span much (never with the
    ideal line, whose straight diagonal is the point of the chart). Returns whether y is log."""
    if log2_x:
        ax.set_xscale("log", base=2)
    ax.set_xticks(xs, [str(x) for x in xs])
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.tick_params(axis="x", which="minor", length=0)
    finite = [y for y in ys if np.isfinite(y) and y > 0]
    log_y = use_log(finite, None) and not ideal
    if log_y:
        ax.set_yscale("log")
        ax.yaxis.set_minor_formatter(NullFormatter())
    else:
        ax.set_ylim(bottom=0)
    ax.yaxis.set_major_formatter(StrMethodFormatter("{x:,g}"))  # 20,000 and 1.25, as the tables write them
    ax.grid(True, color="#e5e5e5", linewidth=0.6)
    ax.set_axisbelow(True)
    return log_y


def curve_chart(lines: Sequence[Line], *, x_label: str, y_label: str, prefix: str, markers: bool) -> str:
    """Learning curves: each line's figure against a linear x (steps, epochs), legend below; markers
    for sparse x (epochs), none for dense (every 50 steps). Ticks are matplotlib's own."""
    with matplotlib.rc_context(STYLE):
        fig, ax = _legend_figure(len(lines))
        colours = _colours([line.group for line in lines])
        within: dict[str, int] = {}
        for line in lines:
            n = within.get(line.group, 0)
            within[line.group] = n + 1
            ax.plot(
                line.xs,
                line.ys,
                color=colours[line.group],
                marker=MARKERS[n % len(MARKERS)] if markers else None,
                markersize=4,
                linestyle=DASHES[n % len(DASHES)],
                linewidth=1.1,
                label=label_text(line.label),
            )
        xs = sorted({x for line in lines for x in line.xs})
        if markers and xs:
            ax.set_xticks(xs, [str(x) for x in xs])
        ax.yaxis.set_major_formatter(StrMethodFormatter("{x:,g}"))
        ax.grid(True, color="#e5e5e5", linewidth=0.6)
        ax.set_axisbelow(True)
        ax.set_xlabel(plain_text(x_label))
        ax.set_ylabel(plain_text(y_label))
        handles, labels = ax.get_legend_handles_labels()
        fig.legend(handles, labels, loc="lower center", ncols=2, fontsize=7, frameon=False)
        return to_svg(fig, prefix)


def sparsity_chart(lines: Sequence[Line], *, y_label: str, prefix: str, from_zero: bool) -> str:
    """A figure of each row against sparsity (the share of zeros counted from the weights): ticks at the
    measured sparsities, unverified points ringed in red, legend below. Latency starts at 0 (or goes log when
    the values span much); accuracy does not (the points of interest lie within a few percent of each other)."""
    with matplotlib.rc_context(STYLE):
        xs = sorted({x for line in lines for x in line.xs})
        fig, ax = _lines_figure(lines)
        ax.set_xticks(xs, [f"{x:.2f}" for x in xs])
        finite = [y for line in lines for y in line.ys if np.isfinite(y) and y > 0]
        log_y = from_zero and use_log(finite, None)
        if log_y:
            ax.set_yscale("log")
            ax.yaxis.set_minor_formatter(NullFormatter())
        elif from_zero:
            ax.set_ylim(bottom=0)
        ax.yaxis.set_major_formatter(StrMethodFormatter("{x:,g}"))
        ax.grid(True, color="#e5e5e5", linewidth=0.6)
        ax.set_axisbelow(True)
        ax.set_xlabel("sparsity (share of zeros among the prunable weights, counted)")
        ax.set_ylabel(plain_text(y_label) + (" (log scale)" if log_y else ""))
        handles, labels = ax.get_legend_handles_labels()
        fig.legend(handles, labels, loc="lower center", ncols=2, fontsize=7, frameon=False)
        return to_svg(fig, prefix)


class ReferenceLevel(Protocol):
    """A horizontal reference line (``int8.Reference``): a float32 figure the lines are read against."""

    @property
    def label(self) -> str: ...
    @property
    def group(self) -> str: ...  # colour key, as the lines': the framework
    @property
    def value(self) -> float: ...


def calibration_chart(lines: Sequence[Line], references: Sequence[ReferenceLevel], *, y_label: str,
                      prefix: str) -> str:  # fmt: skip
    """A figure of each row against calibration size (log 10 spaced: 10, 100, 1000 images), with each float32
    reference as a dotted horizontal line in its framework's colour, so int8's loss is read off at a glance;
    ticks at the measured sizes, unverified points ringed in red, legend below. The y axis does not start at 0
    (the points of interest lie within a few percent of each other)."""
    with matplotlib.rc_context(STYLE):
        xs = sorted({x for line in lines for x in line.xs})
        fig, ax = _lines_figure(lines, extra_entries=len(references))
        colours = _colours([*(line.group for line in lines), *(ref.group for ref in references)])
        for ref in references:
            ax.axhline(ref.value, color=colours[ref.group], linestyle=":", linewidth=1.2, label=label_text(ref.label))
        if len(xs) > 1 and xs[0] > 0:
            ax.set_xscale("log")
        ax.set_xticks(xs, [f"{x:,g}" for x in xs])
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.tick_params(axis="x", which="minor", length=0)
        ax.yaxis.set_major_formatter(StrMethodFormatter("{x:,g}"))
        ax.grid(True, color="#e5e5e5", linewidth=0.6)
        ax.set_axisbelow(True)
        ax.set_xlabel("calibration images (log scale)" if len(xs) > 1 else "calibration images")
        ax.set_ylabel(plain_text(y_label))
        handles, labels = ax.get_legend_handles_labels()
        fig.legend(handles, labels, loc="lower center", ncols=2, fontsize=7, frameon=False)
        return to_svg(fig, prefix)


class MemoryPoint(Protocol):
    """One cell of the latency-against-memory chart (``memory.MemoryPoint``)."""

    @property
    def label(self) -> str: ...
    @property
    def group(self) -> str: ...  # colour key: the framework; cells of one framework differ in marker
    @property
    def x(self) -> float: ...  # peak memory, MiB
    @property
    def median_ms(self) -> float: ...
    @property
    def valid(self) -> bool: ...  # hollow marker when not
    @property
    def front(self) -> bool: ...  # on the Pareto front: joined by a dotted line


SCATTER_LOG_SPREAD = 10.0  # an axis of the scatter goes log when its values span this many times


def memory_chart(points: Sequence[MemoryPoint], *, prefix: str) -> str:
    """Median latency per image against peak memory, one point per cell (legend below: one entry per cell),
    invalid cells hollow, the Pareto front dotted; an axis whose values span ``SCATTER_LOG_SPREAD``x goes log."""
    with matplotlib.rc_context(STYLE):
        front = sorted((p for p in points if p.front), key=lambda p: (p.x, p.median_ms))
        fig, ax = _legend_figure(len(points) + int(len(front) > 1))
        colours = _colours([p.group for p in points])
        within: dict[str, int] = {}
        for p in points:
            n = within.get(p.group, 0)
            within[p.group] = n + 1
            colour = colours[p.group]
            label = p.label if p.valid else f"{p.label} (not valid)"
            face = colour if p.valid else "none"
            ax.scatter([p.x], [p.median_ms], s=36, marker=MARKERS[n % len(MARKERS)], zorder=3, linewidths=1.2,
                       facecolors=face, edgecolors=colour, label=label_text(label))  # fmt: skip
        if len(front) > 1:
            ax.plot([p.x for p in front], [p.median_ms for p in front], color="#444", linestyle=":", linewidth=1,
                    zorder=2, label="Pareto front")  # fmt: skip
        log_x = use_log([p.x for p in points], None, SCATTER_LOG_SPREAD)
        log_y = use_log([p.median_ms for p in points], None, SCATTER_LOG_SPREAD)
        for log, axis, scale in ((log_x, ax.xaxis, ax.set_xscale), (log_y, ax.yaxis, ax.set_yscale)):
            if log:
                scale("log")
                axis.set_minor_formatter(NullFormatter())
            axis.set_major_formatter(StrMethodFormatter("{x:,g}"))
        ax.margins(0.08)
        ax.grid(True, color="#e5e5e5", linewidth=0.6)
        ax.set_axisbelow(True)
        ax.set_xlabel("peak memory, MiB" + (" (log scale)" if log_x else ""))
        ax.set_ylabel("median ms per image" + (" (log scale)" if log_y else ""))
        handles, labels = ax.get_legend_handles_labels()
        fig.legend(handles, labels, loc="lower center", ncols=2, fontsize=7, frameon=False)
        return to_svg(fig, prefix)
