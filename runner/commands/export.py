"""``runner export RUN_DIR --format csv|json``: every measurement of a run, one row each, for other tools.

The rows and columns are ``reports.export``'s (the README lists them); ``publish`` writes the same files beside
each run's page. Standard output, or ``--out FILE`` (replaced if it exists).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from frameworks.options import UsageError

from .common import EXIT_OK
from .compare import read_run

HELP = "every measurement of a run as CSV or JSON: one row each, every recorded figure, the verdict, the machine"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir", type=Path, metavar="RUN_DIR")
    p.add_argument("--format", choices=("csv", "json"), default="csv", help="(default: %(default)s)")
    p.add_argument("--out", type=Path, metavar="FILE", help="write here instead of standard output")


def run(args: argparse.Namespace) -> int:
    from reports.export import render

    out: Path | None = args.out
    if out is not None and out.is_dir():
        raise UsageError(f"--out {out}: is a directory; name a file")
    if out is not None and not out.parent.is_dir():
        raise UsageError(f"--out {out}: no directory {out.parent}")
    text = render(read_run(args.run_dir), args.format)
    if out is None:
        sys.stdout.write(text)
    else:
        out.write_text(text, encoding="utf-8")
        print(out)
    return EXIT_OK
