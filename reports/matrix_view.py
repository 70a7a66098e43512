"""The matrix of a report: one row per variant and mode, one column per model, the fastest valid cell marked;
and each result's row label, which every table of the report shares."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from frameworks.result import Result

from .cells import Figures, distinct_labels
from .gemm import above_peak, above_peak_text
from .verdicts import LOAD_UNKNOWN, Verdict, is_valid, load_unknown, shown_warnings, verdict_of


@dataclass(frozen=True)
class CellView:
    """One result with its row label and figures (None unless it ran and has timings)."""

    result: Result
    label: str
    figures: Figures | None


@dataclass(frozen=True)
class MatrixCell:
    view: CellView
    fastest: bool  # fastest valid cell for this model on this device
    warnings: tuple[str, ...]  # what to flag beside the figures that the verdict does not say already
    verdict: Verdict
    recorded: tuple[str, ...] = ()  # every warning the cell recorded (the HTML keeps them on the verdict's mark)
    above_peak: str = ""  # "above the float32 GEMM peak: 112.0% of it", else empty
    gathered: bool = False  # skipped for a reason several cells share: listed once below the matrix
    tuning: str = ""  # how a tuning compiler scheduled the cell's kernels (``tuning_note``), else empty

    @property
    def status(self) -> str:
        return self.view.result.status

    @property
    def recorded_text(self) -> str:
        """Every warning the cell recorded, for the HTML verdict's title ("" when none)."""
        return f"recorded warnings: {'; '.join(self.recorded)}" if self.recorded else ""

    @property
    def reason(self) -> str:
        return self.view.result.error or "no reason recorded"

    @property
    def mismatch(self) -> bool:
        return self.view.result.verified is False


@dataclass(frozen=True)
class MatrixRow:
    label: str
    cells: tuple[MatrixCell | None, ...]  # one per model, None where the cell did not run


def row_labels(results: Sequence[Result], show_launcher: bool) -> dict[int, str]:
    """Each result's row label (by ``id``): the matrix's ``variant / mode``, made unique per model.

    Two cells of one label and model differ in their scenario identity (a latency cell at batch 1
    and one at batch 8): every cell of such a label then names its identity, so rows stay whole.
    """
    return distinct_labels(results, show_launcher, lambda _result: "")


def matrix_rows(
    cells: tuple[CellView, ...], models: tuple[str, ...], peak: float | None = None, skips: set[int] | None = None
) -> tuple[MatrixRow, ...]:
    """One row per variant and mode, one column per model, in the cells' sorted order. A row whose every cell
    was skipped for a reason several cells share (``skips``: listed once below the matrix) is left out."""
    fastest = fastest_cells(cells)
    skips = skips or set()
    rows: dict[str, dict[str, CellView]] = {}
    for view in cells:
        rows.setdefault(view.label, {})[view.result.model] = view
    return tuple(
        MatrixRow(label, tuple(_matrix_cell(by_model.get(m), fastest, peak, skips) for m in models))
        for label, by_model in rows.items()
        if any(id(v.result) not in skips for v in by_model.values())
    )


def _matrix_cell(view: CellView | None, fastest: set[int], peak: float | None, skips: set[int]) -> MatrixCell | None:
    if view is None:
        return None
    result = view.result
    verdict = verdict_of(result)
    recorded = cell_warnings(result)
    warnings = (*shown_warnings(recorded, verdict), *([LOAD_UNKNOWN] if load_unknown(result, verdict) else []))
    share = above_peak(result, peak)
    return MatrixCell(view, id(view) in fastest, warnings, verdict, recorded,
                      above_peak_text(share) if share is not None else "", id(result) in skips,
                      tuning_note(result))  # fmt: skip


def tuning_note(result: Result) -> str:
    """A tuned cell's mark: its trials and target, or that no database was there and what ran instead.

    Read from the build facts a tuning backend records (TVM: ``tuned_kernels``, ``tuned_trials``, ``target``),
    so a reader never takes a default-scheduled cell, or one tuned elsewhere, for a tuned one."""
    build = result.build or {}
    kernels = build.get("tuned_kernels")
    if not kernels:
        return ""
    target = build.get("target", "target not recorded")
    if kernels.startswith("0: no database"):
        return f"not tuned: no database for this CPU and target {target}; default schedule"
    return f"tuned: {build.get('tuned_trials', 'trials not recorded')}; {kernels}; target {target}"


def fastest_cells(cells: tuple[CellView, ...]) -> set[int]:
    """The fastest cell per model and device, among valid cells (``frameworks.validity``): a median that is
    not known to its precision, or measured beside other load, or of a wrong output, wins nothing.

    Per device because a GPU would otherwise win every column and the CPU race would go unmarked.
    """
    best: dict[tuple[str, str], CellView] = {}
    for view in cells:
        if view.figures is None or not is_valid(view.result):
            continue
        key = (view.result.model, view.result.device)
        if key not in best or view.figures.median_ms < best[key].figures.median_ms:  # type: ignore[union-attr]
            best[key] = view
    return {id(v) for v in best.values()}


def cell_warnings(result: Result) -> tuple[str, ...]:
    """The result's own warnings, plus a mismatch line when it failed verification without saying so."""
    found = list(result.warnings)
    if result.verified is False and not any("reference" in w for w in found):
        error = f" (max error {result.max_error:.3g})" if result.max_error is not None else ""
        found.insert(0, f"output does not match the reference{error}")
    return tuple(found)
