"""The host's float32 GEMM peak, measured once per run outside every cell (``frameworks.peak``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from frameworks.result import Peak, _build

from .catalog import REPO_ROOT
from .interpret import describe_exit, last_line
from .limits import parse_cpuset


def measure_host_peak(cpus: str, timeout: float = 600) -> tuple[Peak | None, str]:
    """The host's float32 GEMM peak up to the cells' thread count (``frameworks.peak``), in a subprocess
    pinned to the cpuset: the runner itself never imports NumPy or a BLAS. Returns (the peak or None, a
    note on how it was measured or why not)."""
    allowed = parse_cpuset(cpus)
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "frameworks.peak", "--cpus", str(len(allowed))], cwd=REPO_ROOT,
            capture_output=True, text=True, timeout=timeout, check=False,
            preexec_fn=lambda: os.sched_setaffinity(0, allowed),
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        return None, f"the GEMM peak took more than {timeout:.0f} s"
    if proc.returncode != 0:
        return None, f"the GEMM peak failed: {last_line(proc.stderr) or describe_exit(proc.returncode)}"
    try:
        peak = parse_peak(proc.stdout)
    except ValueError as exc:
        return None, f"the GEMM peak printed {proc.stdout.strip()[:80]!r} ({exc})"
    return peak, f"{peak_note(peak)}, on CPUs {cpus}"


def parse_peak(stdout: str) -> Peak:
    """``python -m frameworks.peak``'s last line as a ``Peak``; ``ValueError`` if it is not one."""
    lines = stdout.strip().splitlines()
    if not lines:
        raise ValueError("nothing printed")
    try:
        data = json.loads(lines[-1])
    except json.JSONDecodeError as exc:
        raise ValueError(exc.msg) from None
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    return _build(Peak, data, "peak")


def peak_note(peak: Peak) -> str:
    """How the peak was measured, in one line for run.json's settings and the log."""
    busy = f", measured {peak.attempts} times (busy)" if peak.attempts > 1 else ""
    load = f", other load {peak.other_load:.2f} CPUs" if peak.other_load is not None else ", load unknown"
    missing = f"; not measured: {'; '.join(peak.missing)}" if peak.missing else ""
    return (f"float32 GEMM, best of {len(peak.points)} points: {peak.library} sgemm {peak.size}x{peak.size}, "
            f"{peak.threads} threads{load}{busy}{missing}")  # fmt: skip
