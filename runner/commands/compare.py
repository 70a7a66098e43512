"""``runner compare BASE NEW``: two runs measurement by measurement, with a verdict each and a regression gate.

Pairs are made by the whole identity of a measurement (``reports.compare_runs.identity``); each gets NEW / BASE
of the medians with a 95% interval and faster, slower, not significant or unreliable (a side measured on a busy
machine, with an unstable spread or an INVALID verdict: which side, and why). ``--fail-above 1.05`` exits 1 on a
reliable, significant slowdown above 5%, as ``asv continuous`` does; without it the comparison exits 0. Two runs
that share no measurement, a missing path and a directory that is not a run are one line and exit 2.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from frameworks.options import UsageError
from frameworks.result import RESULTS_FILE, RUN_FILE

from ..rundir import RunDirError
from .common import EXIT_FAILED, EXIT_OK, log

if TYPE_CHECKING:
    from reports.load import Run

HELP = "compare two runs measurement by measurement: ratio, 95%% CI, a verdict each, --fail-above for CI"
FORMATS = {"plain": "simple", "markdown": "github"}  # tabulate's names


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("base", type=Path, metavar="BASE", help="the run compared against (a RUN_DIR)")
    p.add_argument("new", type=Path, metavar="NEW", help="the run under test (a RUN_DIR)")
    p.add_argument(
        "--fail-above", type=float, metavar="RATIO",
        help="exit 1 when a reliable, significant NEW/BASE ratio is above this (1.05: 5%% slower)",
    )  # fmt: skip
    p.add_argument("--format", choices=sorted(FORMATS), default="plain", help="table style (default: %(default)s)")
    p.add_argument("--unpaired", action="store_true", help="list the measurements only one run made in the table too")


def read_run(path: Path) -> Run:
    """A run directory with results, or a one-line ``RunDirError`` (a missing path, not a run, no results)."""
    from reports import load_run

    if not path.exists():
        raise RunDirError(f"{path}: not found")
    if not path.is_dir():
        raise RunDirError(f"{path}: not a directory (a run directory holds {RUN_FILE} and {RESULTS_FILE})")
    run = load_run(path)
    if not run.recorded:
        raise RunDirError(f"{path}: not a run directory (no {RUN_FILE}, no {RESULTS_FILE})")
    if not run.results:
        raise RunDirError(f"{path / RESULTS_FILE}: no results")
    for problem in run.problems:
        log(f"{path}: {problem}")
    return run


def run(args: argparse.Namespace) -> int:
    from tabulate import tabulate

    from reports.compare_runs import HEADERS, compare_runs, decreased_line, rows

    threshold: float | None = args.fail_above
    if threshold is not None and not threshold >= 1.0:
        raise UsageError(f"--fail-above must be a NEW/BASE ratio of at least 1 (1.05: 5% slower), got {threshold:g}")
    base, new = read_run(args.base), read_run(args.new)
    comparison = compare_runs(base.results, new.results)
    if comparison.paired == 0:
        raise RunDirError(f"{args.base} and {args.new} share no measurement (a pair must match in scenario, "
                          "variant, launcher, host, mode, model, device, batch, threads and transform)")  # fmt: skip
    for name, one in (("BASE", base), ("NEW", new)):
        print(f"{name}: {one.run_dir} ({describe(one)})")
    if base.identity.key != new.identity.key:
        print(f"note: different machines ({base.identity.key} and {new.identity.key}): the ratios compare them too")
    print()
    table = rows(comparison, args.unpaired)
    print(tabulate(table, headers=HEADERS, tablefmt=FORMATS[args.format], disable_numparse=True))
    print()
    unlisted = not args.unpaired and comparison.paired < len(comparison.changes)
    print(comparison.summary() + ("; --unpaired lists those" if unlisted else ""))
    if threshold is None:
        return EXIT_OK
    regressions = comparison.regressions(threshold)
    for change in regressions:
        print(decreased_line(change, threshold))
    if not regressions:
        print(f"no reliable, significant slowdown above {threshold:g}")
    return EXIT_FAILED if regressions else EXIT_OK


def describe(run: Run) -> str:
    """``run 20260101T..., commit abc123, machine fingerprint:...``: what a reader needs to trust the pairing."""
    info = run.info
    commit = info.project_commit if info is not None and info.project_commit else "commit not recorded"
    return f"run {run.run_id}, {commit if commit.startswith('commit') else 'commit ' + commit}, {run.identity.key}"
