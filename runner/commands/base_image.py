"""``runner base-image [--release bookworm|bullseye]``: dlbench/base:<release> from Debian packages,
reproducibly (no registry needed)."""

from __future__ import annotations

import argparse

from ..base_image import DEFAULT_RELEASE, RELEASES
from .common import EXIT_FAILED, EXIT_OK, log

HELP = "build dlbench/base:<release> from Debian packages (no registry needed)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--release",
        choices=list(RELEASES),
        default=DEFAULT_RELEASE,
        help=f"Debian release (default {DEFAULT_RELEASE}); its Python: "
        + ", ".join(f"{r} {v}" for r, v in RELEASES.items()),
    )
    p.add_argument("--force", action="store_true", help="rebuild even when it exists")
    p.add_argument("--mirror", help="Debian mirror (default: the one this host's apt uses)")


def run(args: argparse.Namespace) -> int:
    from ..base_image import BaseImageError, build_base_image
    from ..engine import connect

    client = connect()
    try:
        tag = build_base_image(client, release=args.release, force=args.force, mirror=args.mirror, log=log)
    except BaseImageError as exc:
        log(f"error: {exc}")
        return EXIT_FAILED
    print(tag)
    return EXIT_OK
