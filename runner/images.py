"""Image builds from the catalog: build contexts, builds, staleness, and a no-build validation path.

A build context is a tarball assembled here, holding only what the Dockerfile copies: the
Dockerfile, ``frameworks/`` and ``docker/build-extras/`` (the host's CA bundle and the local wheels
that match the image's pins). Builds use the engine's classic builder with the host's network; the
image is labelled with ``ImageSpec.spec_hash()`` and the base image's ID, so a later run knows
whether it is current. Only the build stage sees build-extras, index URLs and the CA bundle.
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import re
import shlex
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Literal

from .base_image import BASE_TAG, pick_base_image
from .catalog import REPO_ROOT, ImageSpec, baked_files
from .engine import DockerClient

LABEL_HASH = "dlbench.spec-hash"
LABEL_IMAGE = "dlbench.image"
LABEL_BASE = "dlbench.base-image"
LABEL_BASE_ID = "dlbench.base-id"
EXTRAS_DIR = "docker/build-extras"  # in the context and in the repository (README only, for compose)
CA_NAME = "ca-bundle.crt"
CONTEXT_MTIME = 946684800  # fixed, so an unchanged file keeps the classic builder's COPY cache
PYTHON_VERSION = "3.11"
# glibc 2.36 (bookworm): the manylinux tags pip accepts for the images' Python.
PLATFORMS = (
    *(f"manylinux_2_{minor}_x86_64" for minor in range(36, 16, -1)),
    "manylinux2014_x86_64",
    "linux_x86_64",
)

State = Literal["missing", "stale", "current"]
Log = Callable[[str], None]


class ImageBuildError(RuntimeError):
    """A build failed: one line naming the image and the builder's error."""


class ImageValidationError(ValueError):
    """An image that cannot be built as specified (Dockerfile or pins): one line."""


# --- the host's pip settings -----------------------------------------------------------------


@dataclass(frozen=True)
class PipSettings:
    """What the build stage's pip needs from the host's pip: CA bundle, indexes, local wheels."""

    cert: Path | None = None
    index_url: str | None = None  # http(s) only: file:// indexes do not exist in the container
    extra_index_urls: tuple[str, ...] = ()
    find_links: tuple[Path, ...] = ()  # local directories; their matching wheels are copied


def host_pip_settings(python: str = sys.executable) -> PipSettings:
    """The host's pip configuration (``pip config list``, then PIP_* variables, which win)."""
    values = _pip_config_values(python)
    values.update({k[4:].lower().replace("_", "-"): v for k, v in os.environ.items() if k.startswith("PIP_")})
    cert = values.get("cert")
    index = values.get("index-url")
    return PipSettings(
        cert=Path(cert) if cert and Path(cert).is_file() else None,
        index_url=index if index and _is_http(index) else None,
        extra_index_urls=tuple(u for u in values.get("extra-index-url", "").split() if _is_http(u)),
        find_links=tuple(p for p in (_local_dir(u) for u in values.get("find-links", "").split()) if p),
    )


def _pip_config_values(python: str) -> dict[str, str]:
    """``pip config list`` as {option: value}; ``install.x`` and ``global.x`` both become ``x``."""
    try:
        out = subprocess.run(
            [python, "-m", "pip", "config", "list"], capture_output=True, text=True, timeout=60, check=False
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return {}
    values: dict[str, str] = {}
    for line in out.splitlines():
        match = re.match(r"^(?:[^.=]*)\.([a-z0-9-]+)='(.*)'$", line.strip())
        if match and not line.startswith(":env:"):
            values[match.group(1)] = match.group(2)
    return values


def _is_http(url: str) -> bool:
    return url.startswith(("http://", "https://"))


def _local_dir(location: str) -> Path | None:
    path = Path(location.removeprefix("file://"))
    return path if path.is_dir() else None


# --- local wheels ------------------------------------------------------------------------------


def matching_wheels(image: ImageSpec, find_links: Iterable[Path]) -> list[Path]:
    """The local wheels that satisfy one of the image's pins and install on its Python.

    Only the pinned packages themselves (the CPU torch build exists only as a local wheel); their
    dependencies come from the index. A CUDA image never takes a ``+cpu`` build.
    """
    from packaging.requirements import InvalidRequirement, Requirement
    from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename

    try:
        pins = {canonicalize_name(r.name): r.specifier for r in map(Requirement, image.requirements)}
    except InvalidRequirement as exc:
        raise ImageValidationError(f"{image.name}: bad requirement: {exc}") from None
    found: dict[str, Path] = {}
    for directory in find_links:
        for wheel in sorted(directory.glob("*.whl")):
            try:
                name, version, _, tags = parse_wheel_filename(wheel.name)
            except InvalidWheelFilename:
                continue
            if name not in pins or not pins[name].contains(version, prereleases=True):
                continue
            if image.device == "cuda" and "cpu" in (version.local or ""):
                continue
            if any(_installable(tag.interpreter, tag.abi, tag.platform) for tag in tags):
                found.setdefault(wheel.name, wheel)
    return [found[n] for n in sorted(found)]


def _installable(interpreter: str, abi: str, platform: str) -> bool:
    cp = "cp" + PYTHON_VERSION.replace(".", "")
    return (
        interpreter in (cp, "py3", "py2.py3", "cp3") or (interpreter.startswith("cp3") and abi == "abi3")
    ) and abi in (cp, "abi3", "none") and (platform == "any" or platform in PLATFORMS)  # fmt: skip


# --- build arguments and labels ------------------------------------------------------------------


def catalog_build_args(image: ImageSpec, base_image: str | None = None) -> dict[str, str]:
    """The build args the catalog determines: shared by the runner's builds and docker-compose.yml."""
    args = {
        "BASE_IMAGE": base_image or image.base_image,
        "REQUIREMENTS": " ".join(image.requirements),
        "APT_PACKAGES": " ".join(image.apt),
        "FRAMEWORK": image.framework,
        "DEVICE": image.device,
        "IMAGE_NAME": image.name,
    }
    args.update(image.build_args)
    return args


def build_args(image: ImageSpec, base_image: str | None, pip: PipSettings) -> dict[str, str]:
    """Catalog build args plus the host's http(s) package indexes (read by the build stage only)."""
    args = catalog_build_args(image, base_image)
    if pip.index_url:
        args["INDEX_URL"] = pip.index_url
    if pip.extra_index_urls:
        args["EXTRA_INDEX_URL"] = " ".join(pip.extra_index_urls)
    return args


def image_labels(image: ImageSpec, base_image: str, base_id: str | None) -> dict[str, str]:
    labels = {LABEL_HASH: image.spec_hash(), LABEL_IMAGE: image.name, LABEL_BASE: base_image}
    if base_id:
        labels[LABEL_BASE_ID] = base_id
    return labels


# --- the build context ---------------------------------------------------------------------------


def context_files(image: ImageSpec) -> dict[str, Path]:
    """Repository files the Dockerfile copies, {name in the context: path}: the files the spec hash covers."""
    files = {p.relative_to(REPO_ROOT).as_posix(): p for p in baked_files(image)}
    readme = REPO_ROOT / EXTRAS_DIR / "README.md"
    if readme.is_file():
        files[f"{EXTRAS_DIR}/README.md"] = readme
    return files


def extra_files(image: ImageSpec, pip: PipSettings) -> dict[str, Path]:
    """Build-stage-only inputs: the host's CA bundle and the local wheels matching the pins."""
    files: dict[str, Path] = {}
    if pip.cert:
        files[f"{EXTRAS_DIR}/{CA_NAME}"] = pip.cert
    for wheel in matching_wheels(image, pip.find_links):
        files[f"{EXTRAS_DIR}/wheels/{wheel.name}"] = wheel
    return files


def write_context(image: ImageSpec, out: IO[bytes], pip: PipSettings | None = None) -> list[str]:
    """Write the build context tarball to ``out``; returns its file names (sorted)."""
    files = {**context_files(image), **extra_files(image, pip or PipSettings())}
    with tarfile.open(fileobj=out, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for name in _with_parents(sorted(files)):
            if name in files:
                _add_file(tar, name, files[name])
            else:
                _add_dir(tar, name)
    return sorted(files)


def build_context(image: ImageSpec, pip: PipSettings | None = None) -> bytes:
    """The build context as bytes (builds stream it from a temporary file instead)."""
    buffer = io.BytesIO()
    write_context(image, buffer, pip)
    return buffer.getvalue()


def _with_parents(names: list[str]) -> Iterator[str]:
    seen: set[str] = set()
    for name in names:
        parts = name.split("/")
        for depth in range(1, len(parts) + 1):
            entry = "/".join(parts[:depth])
            if entry not in seen:
                seen.add(entry)
                yield entry


def _add_file(tar: tarfile.TarFile, name: str, path: Path) -> None:
    info = tarfile.TarInfo(name)
    info.size = path.stat().st_size
    info.mode = 0o755 if os.access(path, os.X_OK) else 0o644
    info.mtime = CONTEXT_MTIME
    with path.open("rb") as data:
        tar.addfile(info, data)


def _add_dir(tar: tarfile.TarFile, name: str) -> None:
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE
    info.mode = 0o755
    info.mtime = CONTEXT_MTIME
    tar.addfile(info)


# --- state and builds ------------------------------------------------------------------------------


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
    pip: PipSettings | None = None,
) -> str:
    """Build ``image`` (unless it is current) and return its image ID, streaming the builder's lines.

    ``base_image`` overrides the catalog's; None takes the catalog's where the engine has it, else
    ``dlbench/base:bookworm`` (``runner.base_image.pick_base_image``). ``pip`` defaults to the host's
    pip settings.
    """
    state = "forced" if force else image_state(client, image)
    previous = _image_or_none(client, image.tag)
    if state == "current":
        log(f"{image.name}: current ({image.tag}, {previous.id[:19]})")
        return str(previous.id)
    base = base_image or pick_base_image(client, image.base_image)
    base_found = _image_or_none(client, base)
    if base_found is None:
        log(f"{image.name}: base image {base} is not here: the engine will try to pull it "
            f"(where no registry answers, build {BASE_TAG} first: python -m runner base-image)")  # fmt: skip
    settings = pip if pip is not None else host_pip_settings()
    log(f"{image.name}: building {image.tag} ({state}) on {base}")
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
            pull=False,
            decode=True,
        )
        image_id = _follow_build(image, stream, log)
    log(f"{image.name}: built {image.tag} ({image_id[:19]})")
    if previous is not None and previous.id != image_id:
        _remove_replaced(client, previous.id, log)
    return image_id


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


# --- validation without a build (CUDA images on a machine without a GPU) -------------------------


@dataclass(frozen=True)
class Stage:
    """One ``FROM`` stage of a Dockerfile: its base, name and (instruction, arguments) lines."""

    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)


@dataclass(frozen=True)
class Dockerfile:
    global_args: dict[str, str | None]
    stages: list[Stage]

    def declared_args(self) -> set[str]:
        names = set(self.global_args)
        for stage in self.stages:
            names |= {_arg_name(a) for op, a in stage.instructions if op == "ARG"}
        return names


def parse_dockerfile(text: str) -> Dockerfile:
    """Instructions (continuations joined, comments dropped), split into stages at each FROM."""
    global_args: dict[str, str | None] = {}
    stages: list[Stage] = []
    for op, rest in _instructions(text):
        if op == "FROM":
            words = rest.split()
            name = words[2] if len(words) >= 3 and words[1].upper() == "AS" else None
            stages.append(Stage(words[0], name))
        elif not stages and op == "ARG":
            key, _, default = rest.partition("=")
            global_args[key.strip()] = default.strip().strip('"') if default else None
        elif not stages:
            raise ImageValidationError(f"{op} before the first FROM")
        else:
            stages[-1].instructions.append((op, rest))
    if not stages:
        raise ImageValidationError("no FROM instruction")
    return Dockerfile(global_args, stages)


def _instructions(text: str) -> Iterator[tuple[str, str]]:
    logical = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not logical and (not line or line.startswith("#")):
            continue
        if logical and line.startswith("#"):
            continue
        if line.endswith("\\"):
            logical += line[:-1] + " "
            continue
        logical += line
        op, _, rest = logical.strip().partition(" ")
        yield op.upper(), rest.strip()
        logical = ""
    if logical.strip():
        op, _, rest = logical.strip().partition(" ")
        yield op.upper(), rest.strip()


def _arg_name(arg: str) -> str:
    return arg.split("=", 1)[0].strip()


def render_base(stage: Stage, args: dict[str, str], defaults: dict[str, str | None]) -> str:
    """A stage's FROM image with ``${VAR}``/``$VAR`` replaced by the build args or global defaults."""

    def value(match: re.Match[str]) -> str:
        key = match.group(1) or match.group(2)
        found = args.get(key, defaults.get(key))
        if found is None:
            raise ImageValidationError(f"FROM {stage.base}: {key} has no value")
        return found

    return re.sub(r"\$\{(\w+)\}|\$(\w+)", value, stage.base)


def check_dockerfile(image: ImageSpec, args: dict[str, str]) -> Dockerfile:
    """The Dockerfile parses, every build arg passed is declared, every FROM renders, and the final
    stage is a fresh base that takes only ``/opt/venv`` from the build stage."""
    where = f"{image.name}: {image.dockerfile}"
    try:
        parsed = parse_dockerfile((REPO_ROOT / image.dockerfile).read_text(encoding="utf-8"))
        for stage in parsed.stages:
            render_base(stage, args, parsed.global_args)
    except ImageValidationError as exc:
        raise ImageValidationError(f"{where}: {exc}") from None
    undeclared = sorted(set(args) - parsed.declared_args())
    if undeclared:
        raise ImageValidationError(f"{where}: build arg(s) {', '.join(undeclared)} not declared by an ARG")
    if len(parsed.stages) < 2:
        raise ImageValidationError(f"{where}: not multi-stage (the final stage must not see build inputs)")
    for op, rest in parsed.stages[-1].instructions:
        if op == "COPY" and "--from=" in rest and not rest.split()[1].startswith("/opt/venv"):
            raise ImageValidationError(f"{where}: the final stage copies {rest!r}; only /opt/venv may cross")
        if op in ("COPY", "ADD") and "build-extras" in rest:
            raise ImageValidationError(f"{where}: the final stage copies build-extras")
    return parsed


@dataclass(frozen=True)
class Resolved:
    name: str
    version: str
    url: str


@dataclass(frozen=True)
class Validation:
    image: str
    stages: int
    packages: list[Resolved]
    cached: bool = False  # the resolve was taken from the cache (same spec hash, within its lifetime)


def resolve_command(image: ImageSpec, pip: PipSettings, target: Path, report: Path, links: Path) -> list[str]:
    """``pip install --dry-run`` for the image's Python and platform: resolves the pins and all their
    dependencies from metadata (PEP 658), downloading no wheel that the index describes."""
    command = [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet"]
    command += ["--target", str(target), "--report", str(report), "--only-binary=:all:"]
    command += ["--python-version", PYTHON_VERSION, "--implementation", "cp"]
    for platform in PLATFORMS:
        command += ["--platform", platform]
    if pip.cert:
        command += ["--cert", str(pip.cert)]
    if pip.index_url:
        command += ["--index-url", pip.index_url]
    for url in pip.extra_index_urls:
        command += ["--extra-index-url", url]
    command += ["--find-links", str(links), *image.requirements]
    return command


def resolve_requirements(image: ImageSpec, pip: PipSettings | None = None, timeout: float = 600) -> list[Resolved]:
    """What the build stage's pip would install, resolved on the host with the same inputs (the
    http(s) indexes, the CA bundle and the matching local wheels, not the host's pip config)."""
    settings = pip if pip is not None else host_pip_settings()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env.update(PIP_CONFIG_FILE=os.devnull, PIP_DISABLE_PIP_VERSION_CHECK="1")
    with tempfile.TemporaryDirectory(prefix="dlbench-resolve-") as tmp:
        links = Path(tmp) / "wheels"
        links.mkdir()
        for wheel in matching_wheels(image, settings.find_links):
            (links / wheel.name).symlink_to(wheel)
        report = Path(tmp) / "report.json"
        command = resolve_command(image, settings, Path(tmp) / "target", report, links)
        try:
            proc = subprocess.run(command, capture_output=True, text=True, env=env, timeout=timeout, check=False)
        except subprocess.TimeoutExpired:
            raise ImageValidationError(f"{image.name}: resolving the pins took more than {timeout:.0f}s") from None
        if proc.returncode != 0:
            errors = [line for line in proc.stderr.splitlines() if line.startswith("ERROR")] or ["?"]
            raise ImageValidationError(f"{image.name}: pins do not resolve: {errors[-1]}")
        data = json.loads(report.read_text(encoding="utf-8"))
    return [
        Resolved(i["metadata"]["name"], i["metadata"]["version"], i["download_info"]["url"]) for i in data["install"]
    ]


def default_validation_cache() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "dlbench" / "validated"


VALIDATION_CACHE = default_validation_cache()
VALIDATION_TTL_S = 24 * 3600  # an index changes slowly; a day-old resolve of the same pins still stands


def validate_image(
    image: ImageSpec,
    *,
    pip: PipSettings | None = None,
    resolve: bool = True,
    cache: Path | None = VALIDATION_CACHE,
) -> Validation:
    """Check what can be checked without building: the Dockerfile (parse, args, stages) and that the
    pins and their dependencies resolve for Python 3.11 on manylinux x86_64. For the CUDA images on
    a machine with no GPU, where downloading gigabytes of CUDA wheels would be pointless.

    A resolve takes 20 s to 2 min: a successful one is kept in ``cache`` (a directory; None: no cache)
    and reused for a day while the image's spec hash is unchanged.
    """
    settings = pip if pip is not None else host_pip_settings()
    parsed = check_dockerfile(image, build_args(image, None, settings))
    if not resolve:
        return Validation(image.name, len(parsed.stages), [])
    stamp = cache / f"{image.name}-{image.spec_hash()}.json" if cache else None
    packages = _cached_resolve(stamp)
    if packages is not None:
        return Validation(image.name, len(parsed.stages), packages, cached=True)
    packages = resolve_requirements(image, settings)
    if stamp is not None:
        stamp.parent.mkdir(parents=True, exist_ok=True)
        stamp.write_text(json.dumps([dataclasses.asdict(p) for p in packages]), encoding="utf-8")
    return Validation(image.name, len(parsed.stages), packages)


def _cached_resolve(stamp: Path | None) -> list[Resolved] | None:
    if stamp is None or not stamp.is_file() or time.time() - stamp.stat().st_mtime > VALIDATION_TTL_S:
        return None
    try:
        return [Resolved(**p) for p in json.loads(stamp.read_text(encoding="utf-8"))]
    except (ValueError, TypeError):
        return None


def describe(validation: Validation) -> str:
    """One line per validated image, for the CLI."""
    names = " ".join(f"{p.name}=={p.version}" for p in validation.packages)
    cached = " (cached resolve)" if validation.cached else ""
    return f"{validation.image}: Dockerfile ok ({validation.stages} stages); resolves {len(validation.packages)} " \
        f"packages{cached}: {shlex.quote(names)}"  # fmt: skip
