"""The per-model tables (the LeNet-5 study's columns): latency, FPS, FLOPs, GFLOP/s, share of the GEMM peak,
with each cell's verdict and what a reader needs to trust its median."""

from __future__ import annotations

from dataclasses import dataclass

from frameworks.result import RunInfo

from . import fmt
from .cells import framework_title, matmul_peak, model_title
from .gemm import above_peak, above_peak_text
from .matrix_view import CellView
from .verdicts import Verdict, load_text, verdict_of


@dataclass(frozen=True)
class StudyRow:
    """One line of the LeNet-5 study's table: framework, params, latency, FPS, FLOPs, GFLOP/s; with the cell's
    verdict and what a reader needs to trust its median: the precision reached, the tail (p90, p99), the
    first inference, peak memory and the other processes' load."""

    framework: str
    cell: str
    params: str
    latency: str
    fps: str
    flops: str
    gflops: str
    peak_share: str
    accuracy: str  # test accuracy, for a cell that ran trained weights ("—" for others)
    verdict: Verdict
    precision: str  # "±0.8%": the median's 95% CI half-width over the median
    p90: str  # ms per image; "n/a" where too few samples were taken for it
    p99: str
    first_inference: str  # ms, the first call (lazy compilation included)
    peak_memory: str
    load: str  # "0.02 CPUs" or "load unknown"
    above_peak: str  # "above the float32 GEMM peak: 112.0% of it", else empty


@dataclass(frozen=True)
class StudyTable:
    model: str
    title: str
    rows: tuple[StudyRow, ...]
    peak_note: str
    accuracy: bool = False  # whether any row has a test accuracy (then the table shows the column)


def study_table(cells: tuple[CellView, ...], model: str, info: RunInfo | None, peak: float | None = None) -> StudyTable:
    """The LeNet-5 study's columns for one model, fastest first (``peak``: the run's float32 GEMM peak, which a
    float32 cell's GFLOP/s is held to)."""
    timed = sorted((v for v in cells if v.result.model == model and v.figures is not None), key=_median)
    peaks = {p for v in timed if v.result.device == "cpu" and (p := matmul_peak(v.result, info)) is not None}
    if peaks:
        note = "float32 matmul peak measured in this run: " + ", ".join(f"{fmt.sig(p)} GFLOP/s" for p in sorted(peaks))
    else:
        note = "no float32 matmul peak was measured in this run, so no share of peak is shown"
    rows = tuple(_study_row(v, info, peak) for v in timed)
    return StudyTable(model, model_title(model), rows, note, any(v.result.accuracy is not None for v in timed))


def _median(view: CellView) -> float:
    return view.figures.median_ms if view.figures is not None else float("inf")


def _study_row(view: CellView, info: RunInfo | None, gemm_peak: float | None) -> StudyRow:
    result, figs = view.result, view.figures
    assert figs is not None
    peak = matmul_peak(result, info) if result.device == "cpu" else None
    share = fmt.percent(100.0 * figs.gflops / peak) if peak is not None and figs.gflops is not None else "—"
    above = above_peak(result, gemm_peak)
    stats = result.stats
    batch = result.batch if result.batch > 0 else 1
    return StudyRow(
        framework=f"{framework_title(result.framework)} {result.version or ''}".strip(),
        cell=view.label,
        params=fmt.count(result.params) if result.params > 0 else "—",
        latency=fmt.sig(figs.median_ms),
        fps=fmt.sig(figs.images_per_s),
        flops=fmt.si(result.flops, "FLOP") if result.flops > 0 else "—",
        gflops=fmt.sig(figs.gflops) if figs.gflops is not None else "—",
        peak_share=share,
        accuracy=fmt.accuracy(result.accuracy) if result.accuracy is not None else "—",
        verdict=verdict_of(result),
        precision=fmt.plus_minus(precision_reached(view)),
        p90=_per_image_ms(stats.p90 if stats is not None else None, batch),
        p99=_per_image_ms(stats.p99 if stats is not None else None, batch),
        first_inference=fmt.sig(result.first_inference_s * 1e3) if result.first_inference_s is not None else "—",
        peak_memory=fmt.memory(result.peak_rss_bytes) if result.peak_rss_bytes else "—",
        load=load_text(result.other_load),
        above_peak=above_peak_text(above) if above is not None else "",
    )


def precision_reached(view: CellView) -> float:
    """The median's 95% CI half-width over the median, as recorded (``Stats.half_width``), else from the
    figures the table shows (a cell that kept samples but no summary)."""
    stats = view.result.stats
    width = stats.half_width if stats is not None else None
    if width is not None:
        return width
    figs = view.figures
    assert figs is not None
    return max(figs.median_ms - figs.ci_low_ms, figs.ci_high_ms - figs.median_ms) / figs.median_ms


def _per_image_ms(seconds: float | None, batch: int) -> str:
    """A recorded percentile (seconds per batch) in ms per image; ``n/a`` where too few samples gave none."""
    return fmt.sig(seconds / batch * 1e3) if seconds is not None else "n/a"
