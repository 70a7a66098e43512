"""``python -m runner`` and the ``dlbench`` console script: one module per subcommand, in the style of
asv's ``commands/``.

Each module has ``HELP``, ``add_arguments(parser)`` and ``run(args) -> int``. Bad input (an
unknown variant, model or scenario, a malformed catalog or run directory, no Docker engine where
one is required) is one line on stderr and exit 2, never a traceback. The modules that talk to
Docker or render reports are imported inside the commands that need them, so every command works
while those modules change, and the host never imports a deep-learning framework.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import NoReturn

from frameworks.options import UsageError

from ..catalog import CATALOG_PATH, CatalogError
from ..rundir import RunDirError
from .common import EXIT_ENGINE_LOST, EXIT_INTERRUPTED, EXIT_USAGE, log

UNWRITABLE = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM)  # one line, not a traceback
PROG = "python -m runner"
CONSOLE_PROG = "dlbench"  # pyproject's [project.scripts]: help and errors name what the user typed
COMMANDS = (
    "list", "build", "base-image", "venv", "compose", "matrix", "report", "publish", "compare", "export", "tune",
)  # fmt: skip


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, like every other bad input
        self.exit(EXIT_USAGE, f"error: {message} (see {self.prog} --help)\n")


def command_module(name: str) -> ModuleType:
    return importlib.import_module(f"{__name__}.{name.replace('-', '_')}")


def build_parser(prog: str = PROG) -> argparse.ArgumentParser:
    parser = _Parser(prog=prog, description="Build the variant images and run the benchmark matrix.")
    parser.add_argument("--catalog", type=Path, default=CATALOG_PATH, help="the variant catalog (default: %(default)s)")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for name in COMMANDS:
        module = command_module(name)
        module.add_arguments(sub.add_parser(name, help=module.HELP))
    return parser


def console() -> int:
    """The ``dlbench`` console script: ``python -m runner``'s commands under the name the user typed."""
    return main(prog=CONSOLE_PROG)


def main(argv: Sequence[str] | None = None, prog: str = PROG) -> int:
    args = build_parser(prog).parse_args(argv)
    from ..engine import EngineLost, EngineUnavailable

    try:
        code: int = command_module(args.command).run(args)
        return code
    except (UsageError, CatalogError, RunDirError, EngineUnavailable) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except EngineLost as exc:  # a build, or the preparation of a run, lost its engine
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ENGINE_LOST
    except OSError as exc:
        if exc.errno not in UNWRITABLE:
            raise
        print(f"error: cannot write {exc.filename or 'a file'}: {exc.strerror}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        log("\ninterrupted")
        return EXIT_INTERRUPTED
