"""Two runs of the same matrix, cell by cell: did anything move? (e.g. before and after a refactor)

For every latency cell both runs measured (matched by variant, mode and model, ignoring the
launcher and the scenario config's timing settings), the ratio of medians (second / first) with
the reports' bootstrap interval and Mann-Whitney U test, then how many cells moved significantly
and each run's wall time (run.json's start to finish: the cells, not the image builds). A cell whose
validity verdict (frameworks.validity) is invalid on either side says so beside its ratio.

    python -m benchmarks.compare_runs runs/BEFORE runs/AFTER
"""

from __future__ import annotations

import argparse
import statistics
import sys
from datetime import datetime
from pathlib import Path

from tabulate import tabulate

from reports import load_run
from reports.cells import per_image_samples
from reports.compare import compare_samples
from reports.load import Run


def _latency_cells(run: Run) -> dict[tuple[str, str, str], object]:
    return {(r.variant or r.framework, r.mode, r.model): r for r in run.results if r.scenario == "latency"}


def _wall_s(run: Run) -> float | None:
    info = run.info
    if info is None or info.finished_at is None:
        return None
    return (datetime.fromisoformat(info.finished_at) - datetime.fromisoformat(info.started_at)).total_seconds()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("first", type=Path)
    parser.add_argument("second", type=Path)
    args = parser.parse_args(argv)
    first, second = load_run(args.first), load_run(args.second)
    a, b = _latency_cells(first), _latency_cells(second)
    rows, ratios, moved = [], [], 0
    for key in sorted(set(a) & set(b)):
        ra, rb = a[key], b[key]
        sa, sb = per_image_samples(ra), per_image_samples(rb)  # type: ignore[arg-type]
        if sa.size < 2 or sb.size < 2:
            rows.append([*key, "—", "—", "—", "not timed in both"])
            continue
        s = compare_samples(sb, sa)  # ratio = median(second) / median(first): above 1, the second is slower
        ratios.append(s.ratio)
        moved += s.significant
        flag = ("slower" if s.ratio > 1 else "faster") if s.significant else ""
        invalid = [name for name, r in (("first", ra), ("second", rb)) if getattr(r, "valid", None) is False]
        if invalid:  # a verdict of either side says how far to trust the ratio
            flag = f"{flag + '; ' if flag else ''}invalid in {' and '.join(invalid)}"
        rows.append([*key, f"{statistics.median(sa) * 1e3:.4g}", f"{statistics.median(sb) * 1e3:.4g}",
                     f"{s.ratio:.3f} [{s.ci_low:.3f}, {s.ci_high:.3f}]", flag])  # fmt: skip
    print(tabulate(rows, headers=["variant", "mode", "model", "first ms", "second ms", "second/first [95% CI]", ""]))
    walls = [_wall_s(first), _wall_s(second)]
    print(f"\n{len(ratios)} cells in both; median ratio {statistics.median(ratios):.3f}; "
          f"{moved} significantly different (p < 0.05 and the interval excludes 1)")  # fmt: skip
    for name, run, wall in (("first", first, walls[0]), ("second", second, walls[1])):
        print(f"{name}: {run.run_dir}  wall {wall:.0f} s" if wall is not None else f"{name}: {run.run_dir}  unfinished")
    return 0


if __name__ == "__main__":
    sys.exit(main())
