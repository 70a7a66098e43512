"""How long does a report take to render at full size, and how big is the HTML file?

Generates an N-cell fixture run (default 500: the catalog's rows repeated as numbered variant
copies, 25 samples each; test data, see tests/fixtures/make_report_fixtures.py) in a temporary
directory (``--sweep-cells`` adds throughput and thread-scaling cells, whose sections draw a
line chart and a table per model), then times each stage of ``render_run`` separately, best of
``--repeats``:

- load: parse results.jsonl and run.json;
- content: figures, matrix, study tables, every comparison (bootstrap + Mann-Whitney U), sweeps;
- markdown: the Markdown text;
- charts: every matplotlib chart as SVG;
- html: the jinja2 template around them.

    python -m benchmarks.bench_reports [--cells 500] [--sweep-cells 0] [--repeats 3] [--keep DIR]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from tabulate import tabulate

T = TypeVar("T")


def best_of(repeats: int, work: Callable[[], T]) -> tuple[float, T]:
    """Fastest wall time of ``repeats`` calls (the least disturbed by other processes), and a result."""
    best, value = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        value = work()
        best = min(best, time.perf_counter() - start)
    assert value is not None
    return best, value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cells", type=int, default=500)
    parser.add_argument("--sweep-cells", type=int, default=0, help="throughput and thread-scaling cells to add")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--keep", type=Path, help="also write the run and its reports here")
    args = parser.parse_args(argv)

    from reports.content import build_report
    from reports.html import render_html, report_charts
    from reports.load import load_run
    from reports.markdown import render_markdown
    from tests.fixtures.make_report_fixtures import big_run

    work = Path(tempfile.mkdtemp(prefix="bench-reports-"))
    try:
        run_dir = big_run(work / "run", args.cells, args.sweep_cells)
        t_load, run = best_of(args.repeats, lambda: load_run(run_dir))
        t_content, report = best_of(args.repeats, lambda: build_report(run))
        t_md, markdown = best_of(args.repeats, lambda: render_markdown(report))
        t_charts, drawn = best_of(args.repeats, lambda: report_charts(report))
        t_html, html = best_of(args.repeats, lambda: render_html(report, drawn))
        if args.keep:
            args.keep.mkdir(parents=True, exist_ok=True)
            shutil.copytree(run_dir, args.keep / "run", dirs_exist_ok=True)
            (args.keep / "report.md").write_text(markdown, encoding="utf-8")
            (args.keep / "report.html").write_text(html, encoding="utf-8")
    finally:
        shutil.rmtree(work, ignore_errors=True)

    ok = sum(r.status == "ok" for r in run.results)
    comparisons = sum(len(g.comparisons) for g in report.groups)
    sweep_tables = sum(len(s.models) for s in report.sweeps)
    print(
        f"{len(run.results)} cells ({ok} ok), {len(report.matrix)} rows, {comparisons} comparisons, "
        f"{sweep_tables} sweep charts and tables"
    )
    print(f"best of {args.repeats} per stage")
    rows = [
        ["load results.jsonl", f"{t_load:.3f}"],
        ["content (figures, comparisons)", f"{t_content:.3f}"],
        ["Markdown", f"{t_md:.3f}"],
        ["charts (SVG)", f"{t_charts:.3f}"],
        ["HTML template", f"{t_html:.3f}"],
        ["Markdown report total (load + content + Markdown)", f"{t_load + t_content + t_md:.3f}"],
        ["HTML report total (load + content + charts + HTML)", f"{t_load + t_content + t_charts + t_html:.3f}"],
    ]
    print(tabulate(rows, headers=["stage", "seconds"], disable_numparse=True))
    size = len(html.encode("utf-8"))
    print(f"report.html: {size:,} bytes ({size / 2**20:.2f} MiB); report.md: {len(markdown.encode()):,} bytes")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
