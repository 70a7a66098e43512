"""``runner tune tvm``: re-tune Apache TVM's kernels for this machine and write the database the ``tuned`` mode reads.

TVM's users tune: MetaSchedule searches each kernel's schedules and measures the candidates on the
machine itself. This runs ``python -m frameworks.tvm_tune`` in TVM's virtualenv (the one the local launcher
uses, made here if missing; the same pins as the Docker image), which writes
``frameworks/tvm_tuning/<CPU fingerprint>-<target hash>/``: the database and ``tuning.json`` (the trials,
the kernels and the seconds per model, TVM's version, the machine). Commit that folder: the image bakes
``frameworks/`` in, so the next matrix rebuilds it and every tuned cell on a machine with this fingerprint
applies it. Tuning measures candidates, so the machine must be otherwise idle, like any timing.

Only TVM tunes here; another name lists the ones that do.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

from frameworks.models import MODELS
from frameworks.options import UsageError

from ..catalog import load_catalog
from ..source import SOURCE_ROOT, installed
from .common import EXIT_FAILED, EXIT_OK, log

HELP = "tune a compiler's kernels for this machine (tvm: MetaSchedule) and write the database its tuned mode reads"
TUNERS = {"tvm": ("tvm", "frameworks.tvm_tune")}  # framework: (catalog image, module run in its environment)
DEFAULT_TRIALS = 16


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("framework", help=f"what to tune: {', '.join(TUNERS)}")
    p.add_argument("--trials", type=int, default=DEFAULT_TRIALS,
                   help=f"candidates measured per kernel (default {DEFAULT_TRIALS}: LeNet-5 ~3 min, MobileNet "
                   "~10 min, VGG-16 ~10 min on 2 cores)")  # fmt: skip
    p.add_argument("--models", nargs="+", metavar="MODEL", help=f"default: {' '.join(MODELS)}")
    p.add_argument("--out", type=Path, help="the databases' root (default: the checkout's frameworks/tvm_tuning)")


def check(args: argparse.Namespace) -> tuple[str, str]:
    """The image and module of the tuner asked for; any bad value is a ``UsageError``."""
    if args.framework not in TUNERS:
        raise UsageError(f"cannot tune {args.framework!r}; frameworks that tune: {', '.join(TUNERS)}")
    if args.trials < 1:
        raise UsageError("--trials must be at least 1")
    unknown = [m for m in args.models or () if m not in MODELS]
    if unknown:
        raise UsageError(f"unknown model(s) {' '.join(unknown)}; valid models: {', '.join(MODELS)}")
    if args.out is not None and args.out.exists() and not args.out.is_dir():
        raise UsageError(f"--out {args.out}: not a directory")
    if installed() and args.out is None:
        raise UsageError("tune writes the database into a checkout's frameworks/tvm_tuning/ (to commit it): "
                         "run it in a clone of the project")  # fmt: skip
    return TUNERS[args.framework]


def run(args: argparse.Namespace) -> int:
    from ..local_launcher import VenvError, ensure_venv

    image_name, module = check(args)
    catalog = load_catalog(args.catalog)
    image = catalog.images[image_name]
    try:
        python = ensure_venv(image, log)
    except VenvError as exc:
        raise UsageError(str(exc)) from None
    command = [str(python), "-m", module, "--trials", str(args.trials), "--models", *(args.models or list(MODELS))]
    if args.out is not None:
        command += ["--root", str(args.out.resolve())]
    log(f"tune: {' '.join(command[1:])} (in {SOURCE_ROOT}; keep the machine otherwise idle)")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    proc = subprocess.run(command, cwd=SOURCE_ROOT, env=env, check=False, stdout=sys.stdout)
    return EXIT_OK if proc.returncode == 0 else EXIT_FAILED
