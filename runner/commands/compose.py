"""``runner compose``: regenerate docker-compose.yml from the catalog (or check that it is current)."""

from __future__ import annotations

import argparse

from frameworks.options import UsageError

from ..catalog import load_catalog
from ..source import installed
from .common import EXIT_FAILED, EXIT_OK, log

HELP = "regenerate docker-compose.yml from the catalog"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--check", action="store_true", help="only check that it is current (exit 1 when stale)")


def run(args: argparse.Namespace) -> int:
    from ..compose import COMPOSE_PATH, compose_is_current, write_compose

    catalog = load_catalog(args.catalog)
    if args.check:
        current = compose_is_current(catalog)
        log(f"{COMPOSE_PATH}: {'current' if current else 'stale (python -m runner compose)'}")
        return EXIT_OK if current else EXIT_FAILED
    if installed():  # the file is the repository's (its build contexts are the checkout): never rewrite site-packages
        raise UsageError(
            "compose regenerates a checkout's docker-compose.yml; this is an installed copy (--check reads it)"
        )
    log(f"{COMPOSE_PATH}: {'written' if write_compose(catalog) else 'already current'}")
    return EXIT_OK
