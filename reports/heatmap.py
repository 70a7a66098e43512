"""Each framework against the fastest: a framework x model table of relative speed, for the page's opening.

A reader comparing frameworks wants one number per framework and model: how far its best cell is from the
best cell of that model. Each framework's best VALID latency cell (any variant and mode) is divided by the
fastest valid cell of the model on the same device (1.00× is the fastest, 2.00× twice as slow); a framework
that ran the model but has no valid cell says so instead of a number, because an invalid median is not one to
rank. Per device: a GPU would otherwise make every CPU framework look alike. A best cell whose float32 GFLOP/s
is above the float32 GEMM peak is marked ⚠ (``reports/gemm.py``): a figure to check before it is believed. A
framework none of whose cells ran (every CUDA variant on a machine without a GPU) has no row: the list of cells
that did not run says why. The HTML colours each number on one scale (green at 1×, red from ``HEAT_SPAN``× on,
logarithmic between).
"""

from __future__ import annotations

import colorsys
import math
from collections.abc import Sequence
from dataclasses import dataclass

from frameworks.result import Result

from . import fmt
from .cells import figures, framework_title, model_order, model_title, row_sort_key
from .gemm import above_peak, above_peak_text
from .verdicts import is_valid

HEAT_SPAN = 10.0  # a ratio this large or larger is the scale's far end (red)
NO_VALID = "no valid cell"
NONE_RAN = "no cell ran"
NOT_RUN = "—"


@dataclass(frozen=True)
class HeatCell:
    """One framework on one model: its best valid median over the fastest valid one, or why there is none."""

    ratio: float | None
    text: str  # "1.00×" ("1.00× ⚠" above the float32 GEMM peak), NO_VALID, NONE_RAN, NOT_RUN
    detail: str  # "cpu-torch / compile: 0.155 ms/img", "2 cells ran, none valid", "failed: ...", "not run"

    @property
    def colour(self) -> str | None:
        return heat_colour(self.ratio) if self.ratio is not None else None


@dataclass(frozen=True)
class HeatRow:
    label: str  # "PyTorch", "PyTorch (cuda)"
    cells: tuple[HeatCell, ...]  # one per model of the heatmap


@dataclass(frozen=True)
class Heatmap:
    models: tuple[str, ...]
    titles: tuple[str, ...]
    rows: tuple[HeatRow, ...]


def heat_colour(ratio: float) -> str:
    """``#rrggbb`` on a green (1×) to red (``HEAT_SPAN``× and more) scale, logarithmic in the ratio."""
    share = min(1.0, max(0.0, math.log(max(ratio, 1.0)) / math.log(HEAT_SPAN)))
    red, green, blue = colorsys.hls_to_rgb((1.0 - share) / 3.0, 0.80, 0.65)  # hue 120° (green) to 0° (red)
    return f"#{round(255 * red):02x}{round(255 * green):02x}{round(255 * blue):02x}"


def _median(result: Result) -> float | None:
    figs = figures(result)
    return figs.median_ms if figs is not None else None


def heatmap(results: Sequence[Result], labels: dict[int, str], peak: float | None = None) -> Heatmap | None:
    """The heatmap of ``results`` (the matrix's latency cells), or None when none has a timing; ``peak``: the
    run's float32 GEMM peak, which a best cell above is marked against."""
    timed = [r for r in results if _median(r) is not None]
    if not timed:
        return None
    models = tuple(model_order(r.model for r in results))
    fastest: dict[tuple[str, str], float] = {}
    for r in timed:
        if is_valid(r):
            key, median = (r.model, r.device), _median(r)
            assert median is not None
            fastest[key] = min(median, fastest.get(key, math.inf))
    rows = []
    for framework, device in _frameworks(results):
        mine = [r for r in results if (r.framework, r.device) == (framework, device)]
        label = framework_title(framework) + ("" if device == "cpu" else f" ({device})")
        cells = tuple(_cell([r for r in mine if r.model == m], labels, fastest.get((m, device)), peak)
                      for m in models)  # fmt: skip
        rows.append(HeatRow(label, cells))
    return Heatmap(models, tuple(model_title(m) for m in models), tuple(rows))


def _frameworks(results: Sequence[Result]) -> list[tuple[str, str]]:
    """(framework, device) pairs with a cell that ran, in the matrix's row order (CPU first, frameworks in
    registry order)."""
    ordered = sorted((r for r in results if r.status == "ok"), key=row_sort_key)
    return list(dict.fromkeys((r.framework, r.device) for r in ordered))


def _cell(cells: list[Result], labels: dict[int, str], fastest: float | None, peak: float | None) -> HeatCell:
    if not cells:
        return HeatCell(None, NOT_RUN, "not run")
    ran = sum(r.status == "ok" for r in cells)
    if not ran:
        return HeatCell(None, NONE_RAN, "; ".join(dict.fromkeys(f"{r.status}: {r.error or '?'}" for r in cells)))
    valid = [(median, r) for r in cells if is_valid(r) and (median := _median(r)) is not None]
    if not valid or fastest is None:
        return HeatCell(None, NO_VALID, f"{ran} cell{'s' if ran != 1 else ''} ran, none valid")
    median, best = min(valid, key=lambda pair: pair[0])
    ratio = median / fastest
    detail = f"{labels[id(best)]}: {fmt.sig(median)} ms/img"
    share = above_peak(best, peak)
    if share is not None:
        return HeatCell(ratio, f"{fmt.ratio(ratio)} ⚠", f"{detail}, {above_peak_text(share)}")
    return HeatCell(ratio, fmt.ratio(ratio), detail)
