"""This machine's float32 GEMM peak: the bound a float32 cell's achieved GFLOP/s is held to.

A bound must be the best this machine reaches, not one library's one try: the fastest single-precision
GEMM of MKL (``cblas_sgemm``), oneDNN (``dnnl_sgemm``) and OpenBLAS (NumPy's ``matmul``), over several
square sizes, each library at each thread count up to the cells' (thread counts are read once per
process by these libraries, so each library and thread count is one child process). Other processes'
load is measured around each child, and a point measured on a busy machine is measured again.

The libraries are called through ctypes, no deep-learning framework is imported: MKL from the ``mkl``
wheel and oneDNN from the ``onednn-cpu-gomp`` wheel (both in ``sys.prefix/lib``), OpenBLAS from NumPy's
own. A library that is not there is named in ``Peak.missing`` and the others still count.

``python -m frameworks.peak`` prints the peak as JSON; ``--point LIBRARY`` is the child's side.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

from .environment import LOAD_WARNING_CPUS, THREAD_ENV, LoadMeter, available_cpus
from .result import GemmPoint, Peak

LIBRARIES = ("mkl", "onednn", "openblas")
SIZES = (1024, 2048, 3072)
REPEATS = 5  # per size: the best of them
BUSY_RETRIES = 2  # a busy point is measured again, at most this many times
CHILD_TIMEOUT_S = 300.0


# --- the child: one library at one thread count, every size ---------------------------------------------


def _library_path(name: str) -> Path:
    return Path(sys.prefix) / "lib" / name


def _cblas_sgemm(lib: ctypes.CDLL) -> Callable[[int, object, object, object], None]:
    """``C = A @ B`` through CBLAS (row-major, no transposes)."""
    fn = lib.cblas_sgemm
    fn.restype = None
    c_int, c_float, ptr = ctypes.c_int, ctypes.c_float, ctypes.c_void_p
    fn.argtypes = [c_int, c_int, c_int, c_int, c_int, c_int, c_float, ptr, c_int, ptr, c_int, c_float, ptr, c_int]

    def gemm(n: int, a: object, b: object, c: object) -> None:
        fn(101, 111, 111, n, n, n, 1.0, a, n, b, n, 0.0, c, n)  # CblasRowMajor, CblasNoTrans x2

    return gemm


def _dnnl_sgemm(lib: ctypes.CDLL) -> Callable[[int, object, object, object], None]:
    """``C = A @ B`` through oneDNN's BLAS-like ``dnnl_sgemm`` (row-major by definition)."""
    fn = lib.dnnl_sgemm
    fn.restype = ctypes.c_int
    dim, c_float, ptr, ch = ctypes.c_int64, ctypes.c_float, ctypes.c_void_p, ctypes.c_char
    fn.argtypes = [ch, ch, dim, dim, dim, c_float, ptr, dim, ptr, dim, c_float, ptr, dim]

    def gemm(n: int, a: object, b: object, c: object) -> None:
        status = fn(b"N", b"N", n, n, n, 1.0, a, n, b, n, 0.0, c, n)
        if status != 0:
            raise RuntimeError(f"dnnl_sgemm returned status {status}")

    return gemm


def _loader(library: str) -> Callable[[], Callable[[int, object, object, object], None]]:
    loaders: dict[str, Callable[[], Callable[[int, object, object, object], None]]] = {
        "mkl": lambda: _cblas_sgemm(ctypes.CDLL(str(_library_path("libmkl_rt.so.2")))),
        "onednn": lambda: _dnnl_sgemm(ctypes.CDLL(str(_library_path("libdnnl.so.3")))),
        "openblas": lambda: _numpy_matmul,
    }
    return loaders[library]


def _numpy_matmul(n: int, a: object, b: object, c: object) -> None:
    import numpy as np

    np.matmul(a, b, out=c)  # type: ignore[call-overload]


def measure_point(library: str, sizes: tuple[int, ...] = SIZES, repeats: int = REPEATS) -> dict[int, float]:
    """Best-of-``repeats`` GFLOP/s (2 n^3 FLOPs) at each size, with the thread count of this process."""
    import numpy as np

    gemm = _loader(library)()
    rng = np.random.default_rng(0)
    out: dict[int, float] = {}
    for n in sizes:
        a, b = (rng.standard_normal((n, n), dtype=np.float32) for _ in range(2))
        c = np.empty((n, n), dtype=np.float32)
        args = (a, b, c) if library == "openblas" else tuple(x.ctypes.data_as(ctypes.c_void_p) for x in (a, b, c))
        gemm(n, *args)  # warm the threads and caches
        if library != "openblas" and not np.allclose(c[:4, :4], a[:4] @ b[:, :4], rtol=1e-3, atol=1e-3):
            raise RuntimeError(f"{library} sgemm computed a wrong product")  # a bound from a wrong call is none
        best = float("inf")
        for _ in range(repeats):
            start = time.perf_counter_ns()
            gemm(n, *args)
            best = min(best, (time.perf_counter_ns() - start) * 1e-9)
        out[n] = 2.0 * n**3 / best / 1e9
    return out


# --- the parent: every library and thread count, load measured, busy points again ----------------------


def thread_counts(cpus: int) -> tuple[int, ...]:
    """1, the powers of two below ``cpus``, and ``cpus``: each library's best is at one of them."""
    counts = {cpus}
    t = 1
    while t < cpus:
        counts.add(t)
        t *= 2
    return tuple(sorted(counts))


def _child(
    library: str, threads: int, sizes: tuple[int, ...] = SIZES
) -> tuple[dict[int, float] | None, float | None, str | None]:
    """One library at one thread count in a process of its own: GFLOP/s per size, load, or the error."""
    env = {**os.environ, **{name: str(threads) for name in THREAD_ENV}, "MKL_THREADING_LAYER": "GNU"}
    meter = LoadMeter()
    meter.start()
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "frameworks.peak", "--point", library, "--sizes", *map(str, sizes)],
            env=env, capture_output=True, text=True, timeout=CHILD_TIMEOUT_S,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        return None, meter.stop(), f"took more than {CHILD_TIMEOUT_S:.0f} s"
    load = meter.stop()
    if proc.returncode != 0:
        lines = [line for line in proc.stderr.splitlines() if line.strip()]
        return None, load, lines[-1] if lines else f"exit status {proc.returncode}"
    return {int(k): float(v) for k, v in json.loads(proc.stdout.splitlines()[-1]).items()}, load, None


def measure_peak(cpus: int | None = None, sizes: tuple[int, ...] = SIZES) -> Peak:
    """The best GEMM point of every library, size and thread count up to ``cpus`` (default: this
    process's CPUs); a point measured while other processes used more than ``LOAD_WARNING_CPUS`` is
    measured again (up to ``BUSY_RETRIES`` times) and every try is kept."""
    cpus = cpus or len(available_cpus())
    points: list[GemmPoint] = []
    missing: list[str] = []
    attempts = 1
    for library in LIBRARIES:
        for threads in thread_counts(cpus):
            for attempt in range(1 + BUSY_RETRIES):
                figures, load, error = _child(library, threads, sizes)
                if error is not None:
                    missing.append(f"{library}: {error}")
                    break
                assert figures is not None
                points.extend(GemmPoint(library, size, threads, gflops, load) for size, gflops in figures.items())
                if load is not None and load <= LOAD_WARNING_CPUS:
                    break
                attempts = max(attempts, attempt + 2)
            if missing and missing[-1].startswith(f"{library}:"):
                break
    if not points:
        raise RuntimeError("no GEMM library could be measured: " + "; ".join(missing))
    quiet = [p for p in points if p.other_load is not None and p.other_load <= LOAD_WARNING_CPUS] or points
    best = max(quiet, key=lambda p: p.gflops)
    return Peak(best.gflops, best.library, best.size, best.threads, best.other_load, tuple(points), tuple(missing),
                attempts)  # fmt: skip


def matmul_peak_gflops() -> float:
    """The peak's GFLOP/s alone (what older callers and run.json's ``matmul_peak_gflops`` hold)."""
    return measure_peak().gflops


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m frameworks.peak", description=__doc__.split("\n\n")[0])
    parser.add_argument("--point", choices=LIBRARIES, help="(the child) measure one library at this process's threads")
    parser.add_argument("--cpus", type=int, default=None, help="the most threads to try (default: this process's CPUs)")
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES), help="square matrix sizes to try")
    args = parser.parse_args(argv)
    if (args.cpus is not None and args.cpus < 1) or min(args.sizes) < 1:
        parser.error("--cpus and --sizes must be positive")
    if args.point is not None:
        print(json.dumps(measure_point(args.point, tuple(args.sizes))))
        return 0
    try:
        peak = measure_peak(args.cpus, tuple(args.sizes))
    except RuntimeError as exc:
        print(f"peak: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(asdict(peak), sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
