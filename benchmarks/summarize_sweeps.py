"""What a run's sweeps say, per variant and mode: batching gain and thread speedup.

Throughput cells: images/s at batch 1, the best batch and its images/s, and their ratio (what
batching buys). Threads cells: the median at each thread count and the speedup of the most
threads over the fewest. Figures come from the points' raw samples through the reports' own
functions, so they are the report's figures.

    python -m benchmarks.summarize_sweeps RUN_DIR [--model mobilenet_v1] [--best-mode]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tabulate import tabulate

from frameworks.result import Result
from reports import load_run
from reports.sweeps import sweep_figures, sweep_spec


def throughput_row(result: Result) -> tuple[list[object], float] | None:
    spec = sweep_spec("throughput", [result])
    assert spec is not None
    figures = [f for f in sweep_figures(result, spec.spec) if f.images_per_s is not None]
    one = next((f for f in figures if f.x == 1), None)
    if not figures or one is None or one.images_per_s is None:
        return None
    best = max(figures, key=lambda f: f.images_per_s or 0.0)
    assert best.images_per_s is not None
    failed = [f"batch {p.batch}" for p in result.points if p.status != "ok"]
    gain = best.images_per_s / one.images_per_s
    row: list[object] = [result.variant, result.mode, result.model, f"{one.images_per_s:.4g}", best.x,
                         f"{best.images_per_s:.4g}", f"{gain:.2f}", ", ".join(failed) or "—"]  # fmt: skip
    return row, best.images_per_s


def threads_row(result: Result) -> list[object] | None:
    spec = sweep_spec("threads", [result])
    assert spec is not None
    figures = [f for f in sweep_figures(result, spec.spec) if f.median_s is not None]
    if len(figures) < 2:
        return None
    first, last = figures[0], figures[-1]
    medians = ", ".join(f"{f.x}: {f.median_s * 1e3:.4g} ms" for f in figures if f.median_s is not None)
    in_use = ", ".join(str(f.point.threads_in_use) for f in figures)
    return [result.variant, result.mode, result.model, medians, f"{last.speedup:.2f}" if last.speedup else "—",
            f"{last.efficiency:.0%}" if last.efficiency else "—", in_use, first.x]  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--model", help="only this model")
    parser.add_argument("--best-mode", action="store_true", help="throughput: only each variant's fastest mode")
    args = parser.parse_args(argv)
    run = load_run(args.run_dir)
    results = [r for r in run.results if r.status == "ok" and (args.model is None or r.model == args.model)]
    made = [(r, throughput_row(r)) for r in results if r.scenario == "throughput"]
    rows = [(r, row) for r, row in made if row is not None]
    if args.best_mode:
        best: dict[tuple[str | None, str], tuple[Result, tuple[list[object], float]]] = {}
        for r, row in rows:
            key = (r.variant, r.model)
            if key not in best or row[1] > best[key][1][1]:
                best[key] = (r, row)
        rows = list(best.values())
    headers = ["variant", "mode", "model", "img/s at 1", "best batch", "img/s there", "best / batch 1", "failed"]
    if rows:
        print(tabulate([row for _, (row, _) in rows], headers=headers))
    threads = [t for r in results if r.scenario == "threads" and (t := threads_row(r)) is not None]
    if threads:
        print()
        print(tabulate(threads, headers=["variant", "mode", "model", "median per thread count", "speedup",
                                         "efficiency", "threads in use", "over"]))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
