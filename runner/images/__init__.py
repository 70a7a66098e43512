"""Image builds from the catalog: builds and staleness on an engine, and a no-build validation path.

A build context is a tarball assembled here, holding only what the Dockerfile copies: the
Dockerfile, ``frameworks/`` and ``docker/build-extras/`` (the host's CA bundle and the local wheels
that match the image's pins). Builds use the engine's classic builder with the host's network; the
image is labelled with ``ImageSpec.spec_hash()`` and the base image's ID, so a later run knows
whether it is current. Only the build stage sees build-extras, index URLs and the CA bundle.

This module builds and inspects images on an engine (``image_state``, ``build_image``); the rest
lives in submodules, whose public names are re-exported here:

- ``pip``: the host's pip settings (CA bundle, indexes, find-links) and the local wheels an image takes;
- ``context``: the build args, the image labels and the build context tarball;
- ``dockerfile``: the Dockerfile parser and the checks every image's Dockerfile must pass;
- ``resolve``: validation without a build (Dockerfile check plus a dry-run resolve of the pins, cached);
- ``errors``: ``ImageBuildError`` and ``ImageValidationError``.
"""

from __future__ import annotations

import re
import tempfile
import time
from collections.abc import Callable, Iterable
from typing import Any, Literal

from ..base_image import base_tag, pick_base_image
from ..catalog import ImageSpec
from ..engine import DockerClient
from .context import (
    CA_NAME,
    CONTEXT_MTIME,
    EXTRAS_DIR,
    LABEL_BASE,
    LABEL_BASE_ID,
    LABEL_HASH,
    build_args,
    build_context,
    catalog_build_args,
    image_labels,
    write_context,
)
from .dockerfile import check_dockerfile, parse_dockerfile, render_base
from .errors import ImageBuildError, ImageValidationError
from .pip import PipSettings, host_pip_settings, matching_wheels
from .resolve import Resolved, describe, validate_image

__all__ = [
    "CA_NAME",
    "CONTEXT_MTIME",
    "EXTRAS_DIR",
    "LABEL_BASE",
    "LABEL_BASE_ID",
    "LABEL_HASH",
    "ImageBuildError",
    "ImageValidationError",
    "PipSettings",
    "Resolved",
    "build_args",
    "build_context",
    "build_image",
    "catalog_build_args",
    "check_dockerfile",
    "describe",
    "host_pip_settings",
    "image_labels",
    "image_state",
    "matching_wheels",
    "parse_dockerfile",
    "render_base",
    "validate_image",
]

State = Literal["missing", "stale", "current"]
Log = Callable[[str], None]


def _image_or_none(client: DockerClient, ref: str) -> Any:
    import docker.errors

    try:
        return client.images.get(ref)
    except docker.errors.ImageNotFound:
        return None


def image_state(client: DockerClient, image: ImageSpec) -> State:
    """``missing``; ``stale`` when the catalog entry or baked files changed (hash label) or the base
    image it was built on has since been rebuilt; else ``current``."""
    found = _image_or_none(client, image.tag)
    if found is None:
        return "missing"
    labels = found.labels or {}
    if labels.get(LABEL_HASH) != image.spec_hash():
        return "stale"
    base_ref, base_id = labels.get(LABEL_BASE), labels.get(LABEL_BASE_ID)
    if base_ref and base_id:
        base = _image_or_none(client, base_ref)
        if base is not None and base.id != base_id:
            return "stale"
    return "current"


def build_image(
    client: DockerClient,
    image: ImageSpec,
    *,
    base_image: str | None,
    log: Log = print,
    force: bool = False,
    cache: bool = True,
    pip: PipSettings | None = None,
) -> str:
    """Build ``image`` (unless it is current) and return its image ID, streaming the builder's lines.

    ``cache=False`` builds every layer anew (``docker build --no-cache``): the cold build of a fresh
    machine, to time it or to refresh a layer whose inputs live outside the context (apt, PyPI).
    ``base_image`` overrides the catalog's; None takes the catalog's where the engine has it, else
    the Debian-built base of the image's release, ``dlbench/base:<release>``
    (``runner.base_image.pick_base_image``). ``pip`` defaults to the host's pip settings.
    """
    rebuild = force or not cache  # a build without the cache is a rebuild, whatever state the image is in
    state = ("forced" if cache else "forced, no cache") if rebuild else image_state(client, image)
    previous = _image_or_none(client, image.tag)
    if state == "current":
        log(f"{image.name}: current ({image.tag}, {previous.id[:19]})")
        return str(previous.id)
    base = _base_for(client, image, base_image, log)
    base_found = _image_or_none(client, base)
    if base_found is None:
        log(f"{image.name}: base image {base} is not here: the engine will try to pull it "
            f"(where no registry answers, build {base_tag(image.release)} first: "
            f"python -m runner base-image --release {image.release})")  # fmt: skip
    settings = pip if pip is not None else host_pip_settings()
    log(f"{image.name}: building {image.tag} ({state}) on {base}")
    start = time.monotonic()
    with tempfile.TemporaryFile() as context:
        names = write_context(image, context, settings)
        context.seek(0)
        extras = [n for n in names if n.startswith(f"{EXTRAS_DIR}/") and not n.endswith("README.md")]
        log(f"{image.name}: context {len(names)} files, build-extras: {', '.join(extras) or 'none'}")
        stream = client.api.build(
            fileobj=context,
            custom_context=True,
            dockerfile=image.dockerfile,
            tag=image.tag,
            buildargs=build_args(image, base, settings),
            labels=image_labels(image, base, base_found.id if base_found is not None else None),
            network_mode="host",
            rm=True,
            forcerm=True,
            nocache=not cache,
            pull=False,
            decode=True,
        )
        image_id = _follow_build(image, stream, log)
    log(f"{image.name}: built {image.tag} ({image_id[:19]}) in {time.monotonic() - start:.0f} s")
    if previous is not None and previous.id != image_id:
        _remove_replaced(client, previous.id, log)
    return image_id


def _base_for(client: DockerClient, image: ImageSpec, override: str | None, log: Log) -> str:
    """The image to build on: the override, else the catalog's or the release's Debian-built base.

    An override that is the Debian-built base of another release (``--base-image dlbench/base:bookworm``
    for a bullseye image) becomes the image's own release's: its packages and Python exist there only.
    """
    own = base_tag(image.release)
    if override is None:
        return pick_base_image(client, image.base_image, own)
    if override.startswith(own.split(":", 1)[0] + ":") and override != own:
        log(f"{image.name}: built on {own}, not {override}: the image is of Debian {image.release}")
        return own
    return override


def _remove_replaced(client: DockerClient, image_id: str, log: Log) -> None:
    """Remove the image a rebuild replaced (now untagged), so old versions do not pile up; the
    layer cache of the build stage is not its parent and stays."""
    import docker.errors

    try:
        client.images.remove(image_id)
    except docker.errors.APIError as exc:  # in use by a container, or tagged elsewhere: keep it
        log(f"  kept the replaced image {image_id[:19]}: {exc.explanation or exc}")


def _follow_build(image: ImageSpec, stream: Iterable[dict[str, Any]], log: Log) -> str:
    """Log the builder's output line by line; the image ID, or ``ImageBuildError`` on an error."""
    image_id = None
    for chunk in stream:
        if "error" in chunk:
            message = str(chunk.get("errorDetail", {}).get("message") or chunk["error"]).strip()
            raise ImageBuildError(f"{image.name}: build failed: {message.splitlines()[-1] if message else '?'}")
        if "aux" in chunk and isinstance(chunk["aux"], dict) and "ID" in chunk["aux"]:
            image_id = str(chunk["aux"]["ID"])
        for line in str(chunk.get("stream", chunk.get("status", ""))).splitlines():
            if line.strip():
                log(f"  {line.rstrip()}")
            match = re.match(r"Successfully built ([0-9a-f]+)", line.strip())
            if match and image_id is None:
                image_id = match.group(1)
    if image_id is None:
        raise ImageBuildError(f"{image.name}: the builder ended without an image ID")
    return image_id
