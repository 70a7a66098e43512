"""``runner publish``: one or more runs as a static site (index, a page per run, per-machine history)."""

from __future__ import annotations

import argparse
from pathlib import Path

from frameworks.options import UsageError

from ..rundir import read_run_info
from .common import EXIT_OK

HELP = "publish one or more runs as a static site"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dirs", type=Path, nargs="+", metavar="RUN_DIR")
    p.add_argument("--site", type=Path, required=True, metavar="DIR")


def run(args: argparse.Namespace) -> int:
    from reports import publish_site
    from reports.publish import site_problem

    problem = site_problem(args.site)  # before any page is written: a foreign directory is never touched
    if problem is not None:
        raise UsageError(f"--site {problem}")
    for run_dir in args.run_dirs:
        read_run_info(run_dir)

    print(publish_site(list(args.run_dirs), args.site))
    return EXIT_OK
