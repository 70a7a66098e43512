"""``runner build``: cached image builds (CPU images; CUDA images validated where there is no GPU)."""

from __future__ import annotations

import argparse

from ..catalog import load_catalog
from .common import EXIT_FAILED, EXIT_OK, images_named, log

HELP = "build the images of the given variants (default: every CPU image), cached"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("variants", nargs="*", metavar="VARIANT", help="variant or image names")
    p.add_argument("--base-image", help="build on this image (default: the catalog's, else dlbench/base:bookworm)")
    p.add_argument("--force", action="store_true", help="rebuild even when current (the layer cache still applies)")


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

    catalog = load_catalog(args.catalog)
    named = images_named(catalog, args.variants)
    client = connect()
    nvidia = has_nvidia_runtime(client)
    images = named or list(catalog.images.values())
    failed = False
    pip: PipSettings | None = None  # `pip config list` takes half a second: read once, when first needed
    for image in images:
        try:
            if image.device == "cuda" and not nvidia and not named:
                log(f"{image.name}: no NVIDIA runtime: validating instead of building")
                pip = pip or host_pip_settings()
                log(describe(validate_image(image, pip=pip)))
                continue
            build_image(client, image, base_image=args.base_image, log=log, force=args.force)
        except (ImageBuildError, ImageValidationError) as exc:
            log(f"error: {exc}")
            failed = True
    return EXIT_FAILED if failed else EXIT_OK
