"""This machine's float32 matrix-multiply peak, the yardstick for achieved GFLOP/s.

Measured with NumPy's BLAS at the thread count the cells use, in the same run as the cells,
so a report can say what share of the machine each framework reached.
"""

from __future__ import annotations

import time

import numpy as np


def matmul_peak_gflops(size: int = 2048, repeats: int = 7) -> float:
    """Best-of-``repeats`` GFLOP/s of a ``size``-square float32 matmul (2*n^3 FLOPs)."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((size, size), dtype=np.float32)
    b = rng.standard_normal((size, size), dtype=np.float32)
    out = np.empty((size, size), dtype=np.float32)
    np.matmul(a, b, out=out)  # warm the BLAS threads and caches
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter_ns()
        np.matmul(a, b, out=out)
        best = min(best, (time.perf_counter_ns() - start) * 1e-9)
    return 2.0 * size**3 / best / 1e9


if __name__ == "__main__":
    print(f"float32 matmul peak: {matmul_peak_gflops():.1f} GFLOP/s")
