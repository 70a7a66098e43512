"""``runner build``: cached image builds (CPU images; CUDA images validated where there is no GPU)."""

from __future__ import annotations

import argparse
from concurrent.futures import ThreadPoolExecutor

from ..catalog import ImageSpec, load_catalog
from .common import EXIT_FAILED, EXIT_OK, EXIT_USAGE, images_named, log

HELP = "build the images of the given variants (default: every CPU image), cached"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("variants", nargs="*", metavar="VARIANT", help="variant or image names")
    p.add_argument(
        "--base-image", help="build on this image (default: the catalog's, else dlbench/base:<the image's release>)"
    )
    p.add_argument("--force", action="store_true", help="rebuild even when current (the layer cache still applies)")
    p.add_argument(
        "--no-cache",
        action="store_true",
        help="rebuild from the base image up, every layer anew: the cold build a fresh machine does (implies --force)",
    )
    p.add_argument(
        "--jobs",
        type=int,
        default=1,
        metavar="N",
        help="build up to N images at once (default 1; a build waits mostly on downloads and unpacking, so a "
        "fresh machine's setup uses 3; never while anything is being timed)",
    )


def run(args: argparse.Namespace) -> int:
    from ..docker_launcher import has_nvidia_runtime
    from ..engine import connect
    from ..images import (
        ImageBuildError,
        ImageValidationError,
        PipSettings,
        build_image,
        describe,
        host_pip_settings,
        validate_image,
    )

    if args.jobs < 1:
        log(f"error: --jobs must be at least 1, not {args.jobs}")
        return EXIT_USAGE
    catalog = load_catalog(args.catalog)
    named = images_named(catalog, args.variants)
    client = connect()
    nvidia = has_nvidia_runtime(client)
    images = named or list(catalog.images.values())
    pip: list[PipSettings] = []  # `pip config list` takes half a second: read once, when first needed

    def one(image: ImageSpec) -> bool:
        """Build (or, for a CUDA image without a GPU, validate) one image; whether it failed."""
        try:
            if image.device == "cuda" and not nvidia and not named:
                log(f"{image.name}: no NVIDIA runtime: validating instead of building")
                pip[:] = pip or [host_pip_settings()]
                log(describe(validate_image(image, pip=pip[0])))
                return False
            build_image(connect() if args.jobs > 1 else client, image, base_image=args.base_image, log=log,
                        force=args.force, cache=not args.no_cache)  # fmt: skip
        except (ImageBuildError, ImageValidationError) as exc:
            log(f"error: {exc}")
            return True
        return False

    with ThreadPoolExecutor(max_workers=args.jobs) as pool:  # each build has an engine connection of its own
        failed = any(list(pool.map(one, images)))
    return EXIT_FAILED if failed else EXIT_OK
