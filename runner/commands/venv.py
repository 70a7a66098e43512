"""``runner venv``: the local launcher's virtualenvs, one per catalog image it supports."""

from __future__ import annotations

import argparse

from frameworks.options import UsageError

from ..catalog import load_catalog
from .common import EXIT_FAILED, EXIT_OK, images_named, log

HELP = "build the local launcher's virtualenvs (default: every image it supports)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("names", nargs="*", metavar="NAME", help="image or variant names")


def run(args: argparse.Namespace) -> int:
    from ..local_launcher import VenvError, ensure_venv, unsupported

    catalog = load_catalog(args.catalog)
    images = images_named(catalog, args.names)
    if not images:
        supported = [v for v in catalog.variants.values() if unsupported(v) is None]
        images = list({v.image.name: v.image for v in supported}.values())
    failed = False
    for image in images:
        reason = next((unsupported(v) for v in catalog.variants.values() if v.image == image), None)
        if reason:
            raise UsageError(f"{image.name}: {reason}")
        try:
            print(ensure_venv(image, log))
        except VenvError as exc:
            log(f"error: {exc}")
            failed = True
    return EXIT_FAILED if failed else EXIT_OK
