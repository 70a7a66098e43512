"""VGG-16 with N threads: each framework's best mode in GFLOP/s against the matmul peak.

Every cell runs as its own ``python -m frameworks.predict`` process (MXNet in its own
environment), strictly one at a time; the machine's float32 matrix-multiply peak is measured in
the same run, before and after the cells, with every BLAS available here (NumPy's, and torch's
when installed), and the best figure is the yardstick. Run it on a quiet machine.

    python -m benchmarks.bench_vgg_peak [--threads 2] [--iterations 10] [--python-mxnet PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from tabulate import tabulate

from frameworks.backends.registry import FRAMEWORKS, is_installed
from frameworks.environment import THREAD_ENV
from frameworks.result import Result

REPO = Path(__file__).resolve().parent.parent
PEAK_CODE = """
import json, os, time
from frameworks.peak import matmul_peak_gflops
out = {"numpy": matmul_peak_gflops()}
try:
    import torch
    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
    a = torch.randn(2048, 2048); b = torch.randn(2048, 2048); a @ b
    best = min((lambda s: (a @ b, time.perf_counter() - s)[1])(time.perf_counter()) for _ in range(7))
    out["torch"] = 2 * 2048**3 / best / 1e9
except ImportError:
    pass
print(json.dumps(out))
"""


def thread_env(threads: int) -> dict[str, str]:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    for name in THREAD_ENV:
        env[name] = str(threads)
    return env


def measure_peak(threads: int) -> dict[str, float]:
    proc = subprocess.run([sys.executable, "-c", PEAK_CODE], cwd=REPO, env=thread_env(threads),
                          capture_output=True, text=True, check=True)  # fmt: skip
    return dict(json.loads(proc.stdout))


def measure_cell(python: str, framework: str, mode: str, threads: int, iterations: int) -> Result:
    args = ["--framework", framework, "--model", "vgg16", "--mode", mode, "--threads", str(threads),
            "--iterations", str(iterations), "--warmup", "2", "--output", "-"]  # fmt: skip
    proc = subprocess.run([python, "-m", "frameworks.predict", *args], cwd=REPO, env=thread_env(threads),
                          capture_output=True, text=True, check=False)  # fmt: skip
    if not proc.stdout.strip():
        raise RuntimeError(f"{framework}-{mode}: {proc.stderr.strip().splitlines()[-1:]}")
    return Result.from_json(proc.stdout.strip().splitlines()[-1])


def interpreters(mxnet_python: str | None) -> dict[str, str]:
    found = {fw: sys.executable for fw in FRAMEWORKS if is_installed(fw)}
    if "mxnet" not in found and mxnet_python:
        found["mxnet"] = mxnet_python
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--iterations", type=int, default=10)
    parser.add_argument("--python-mxnet", default=os.environ.get("BENCH_PYTHON_MXNET"))
    parser.add_argument("--frameworks", nargs="*", help="restrict to these frameworks")
    args = parser.parse_args(argv)
    found = interpreters(args.python_mxnet)
    if args.frameworks:
        found = {fw: py for fw, py in found.items() if fw in args.frameworks}
    before = measure_peak(args.threads)
    rows: list[list[object]] = []
    best: dict[str, tuple[str, float]] = {}
    for framework, python in found.items():
        for mode in FRAMEWORKS[framework].modes:
            r = measure_cell(python, framework, mode, args.threads, args.iterations)
            assert r.stats is not None and r.gflops is not None, r.error
            rows.append([f"{framework}-{mode}", r.version, f"{r.stats.median * 1e3:.1f}", f"{r.gflops:.1f}",
                         r.verified, f"{r.other_load:.2f}" if r.other_load is not None else "?"])  # fmt: skip
            if framework not in best or r.gflops > best[framework][1]:
                best[framework] = (mode, r.gflops)
    after = measure_peak(args.threads)
    peak = max(*before.values(), *after.values())
    print(f"float32 matmul peak ({args.threads} threads): before {before}, after {after}; using {peak:.1f} GFLOP/s")
    print(tabulate(rows, headers=["cell", "version", "median ms", "GFLOP/s", "verified", "other load"]))
    print()
    summary = [[fw, mode, f"{g:.1f}", f"{100 * g / peak:.0f}%"] for fw, (mode, g) in best.items()]
    print(tabulate(summary, headers=["framework", "best mode", "GFLOP/s", "of matmul peak"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
