"""The float32 GEMM peak a run measured, and the cells whose achieved GFLOP/s claims more than it.

A float32 network cannot run faster than this machine's best float32 matrix multiply: its convolutions and
dense layers are GEMMs (or worse). A float32 cell whose achieved GFLOP/s is above the peak is therefore not a
fast cell but a wrong figure: a FLOP count that overstates the work, a reduced precision the build did not
state, a framework that skipped work (constant folding, a cached result), or a peak measured badly. The
tables flag it ("above the float32 GEMM peak: 112% of it") so that nobody quotes it unread.

Only cells that compute in float32 are held to the bound: a transformed model (int8, pruned) or a build that
says it computes in a reduced precision (OpenVINO's bf16) may rightly beat it, and a GPU is not bound by the
CPU's peak.
"""

from __future__ import annotations

import math

from frameworks.backends.registry import FLOAT32, PRECISION
from frameworks.result import NO_TRANSFORM, Result, RunInfo

from . import fmt
from .cells import figures

PRECISION_FACTS = (PRECISION, "precision")  # the build facts that name the precision a build computes in
FLOAT32_NAMES = ("", FLOAT32, "float32", "fp32")


def run_peak(info: RunInfo | None) -> float | None:
    """The run's float32 GEMM peak in GFLOP/s: its peak record's, else run.json's figure; None if not measured."""
    if info is None:
        return None
    for value in (info.peak.gflops if info.peak is not None else None, info.matmul_peak_gflops):
        if value is not None and math.isfinite(value) and value > 0:
            return value
    return None


def peak_text(info: RunInfo | None) -> str:
    """How the peak was measured, for the opening: GFLOP/s, library, matrix size, threads, load, retries."""
    peak = info.peak if info is not None else None
    value = run_peak(info)
    if value is None:
        return "not measured"
    if peak is None:
        return f"{fmt.sig(value)} GFLOP/s float32 (library, size and threads not recorded)"
    threads = f"{peak.threads} thread{'s' if peak.threads != 1 else ''}"
    load = "load unknown" if peak.other_load is None else f"other load {peak.other_load:.2f} CPUs"
    parts = [f"{fmt.sig(peak.gflops)} GFLOP/s float32 ({peak.library} sgemm, {peak.size}×{peak.size}, {threads}, "
             f"{load})"]  # fmt: skip
    if peak.attempts > 1:
        parts.append(f"measured {peak.attempts} times: the machine was busy")
    if peak.missing:
        parts.append("not measured: " + "; ".join(peak.missing))
    return "; ".join(parts)


def computes_in_float32(result: Result) -> bool:
    """A CPU cell of the model as specified whose build states no precision below float32: held to the peak."""
    if result.device != "cpu" or result.transform_name != NO_TRANSFORM:
        return False
    return all(result.build.get(fact, "").lower() in FLOAT32_NAMES for fact in PRECISION_FACTS)


def achieved_gflops(result: Result) -> float | None:
    """The cell's GFLOP/s at its median, from its samples (as the tables show it), else as recorded."""
    figs = figures(result)
    if figs is not None and figs.gflops is not None:
        return figs.gflops
    return result.gflops


def above_peak(result: Result, peak: float | None) -> float | None:
    """The share of the peak (1.12: 112%) a float32 cell's achieved GFLOP/s reaches when it is above it, else
    None (not float32, no peak, no GFLOP/s, or at or below the peak)."""
    if peak is None or not computes_in_float32(result):
        return None
    gflops = achieved_gflops(result)
    if gflops is None or not gflops > peak:
        return None
    return gflops / peak


def above_peak_text(share: float) -> str:
    return f"above the float32 GEMM peak: {fmt.percent(100.0 * share)} of it"
