"""``runner report``: re-render a run's report.md and report.html from its results alone."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..rundir import read_run_info
from .common import EXIT_OK, render

HELP = "re-render the reports of a run from its results alone"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir", type=Path, metavar="RUN_DIR")
    p.add_argument("--out", type=Path, help="where to write (default: inside RUN_DIR)")


def run(args: argparse.Namespace) -> int:
    run_dir: Path = args.run_dir
    read_run_info(run_dir)  # a directory that is not a run is bad input
    render(run_dir, args.out)
    return EXIT_OK
