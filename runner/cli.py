"""``python -m runner``: list, build, base-image, venv, compose, matrix, report, publish.

Bad input (an unknown variant or model, a malformed catalog or run directory, no Docker engine
where one is required) is one line on stderr and exit 2, never a traceback. The modules that talk
to Docker or render reports are imported inside the commands that need them, so every command
works while those modules change, and the host never imports a deep-learning framework.
"""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, NoReturn

from frameworks.environment import DEFAULT_MIN_TIME_S
from frameworks.models import MODELS
from frameworks.result import RESULTS_FILE, Result, RunInfo, utc_now

from .catalog import CATALOG_PATH, Catalog, CatalogError, ImageSpec, Variant, load_catalog
from .matrix import (
    DEFAULT_MEMORY,
    DEFAULT_TIMEOUT_S,
    Backend,
    MatrixRun,
    Settings,
    UsageError,
    check_cpuset,
    check_models,
    default_cpuset,
    measure_host_peak,
    memory_bytes,
    plan,
    result_key,
)
from .rundir import RunDirError, load_results, new_run_dir, read_run_info, repair_tail, write_run_info

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


def log(message: str) -> None:
    """Human progress goes to stderr; stdout carries only tables and paths."""
    print(message, file=sys.stderr, flush=True)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, like every other bad input
        self.exit(EXIT_USAGE, f"error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m runner", description="Build the variant images and run the inference matrix.")
    parser.add_argument("--catalog", type=Path, default=CATALOG_PATH, help="the variant catalog (default: %(default)s)")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    sub.add_parser("list", help="variants, their images' state, the engine, the local venvs")

    p = sub.add_parser("build", help="build the images of the given variants (default: every CPU image), cached")
    p.add_argument("variants", nargs="*", metavar="VARIANT", help="variant or image names")
    p.add_argument("--base-image", help="build on this image (default: the catalog's, else dlbench/base:bookworm)")
    p.add_argument("--force", action="store_true", help="rebuild even when current (the layer cache still applies)")

    p = sub.add_parser("base-image", help="build dlbench/base:bookworm from Debian packages (no registry needed)")
    p.add_argument("--force", action="store_true", help="rebuild even when it exists")
    p.add_argument("--mirror", help="Debian mirror (default: the one this host's apt uses)")

    p = sub.add_parser("venv", help="build the local backend's virtualenvs (default: every image it supports)")
    p.add_argument("names", nargs="*", metavar="NAME", help="image or variant names")

    p = sub.add_parser("compose", help="regenerate docker-compose.yml from the catalog")
    p.add_argument("--check", action="store_true", help="only check that it is current (exit 1 when stale)")

    _add_matrix(sub.add_parser("matrix", help="build what is stale, then run every cell, one at a time"))

    p = sub.add_parser("report", help="re-render the reports of a run from its results alone")
    p.add_argument("run_dir", type=Path, metavar="RUN_DIR")
    p.add_argument("--out", type=Path, help="where to write (default: inside RUN_DIR)")

    p = sub.add_parser("publish", help="publish one or more runs as a static site")
    p.add_argument("run_dirs", type=Path, nargs="+", metavar="RUN_DIR")
    p.add_argument("--site", type=Path, required=True, metavar="DIR")
    return parser


def _add_matrix(p: argparse.ArgumentParser) -> None:
    # Defaults are None where --resume must tell "given" from "default" (a resumed run keeps its own).
    p.add_argument("--variants", nargs="+", metavar="VARIANT", help="default: every variant of the catalog")
    p.add_argument("--models", nargs="+", metavar="MODEL", help=f"default: {' '.join(MODELS)}")
    p.add_argument("--iterations", type=int, help="timed iterations per cell (default 20)")
    p.add_argument("--warmup", type=int, help="untimed iterations first (default 5)")
    min_time_help = f"and at least this many seconds of timed iterations (default {DEFAULT_MIN_TIME_S:g})"
    p.add_argument("--min-time", type=float, help=min_time_help)
    p.add_argument("--backend", choices=("auto", "docker", "local"), help="default auto: Docker when an engine answers")
    p.add_argument("--cpus", help="cpuset every cell is pinned to, e.g. 0-1 (default: every CPU available)")
    p.add_argument("--memory", help=f"memory limit per container, no swap (default {DEFAULT_MEMORY})")
    p.add_argument("--timeout", type=float, help=f"seconds per cell before it is killed ({DEFAULT_TIMEOUT_S:g})")
    p.add_argument("--resume", type=Path, metavar="RUN_DIR", help="finish an interrupted run with its own settings")
    p.add_argument("--out", type=Path, help="parent of the new RUN_DIR (default ./runs)")
    p.add_argument("--base-image", help="build stale images on this base (docker backend)")
    p.add_argument("--no-peak", action="store_true", help="skip measuring the host's matmul peak")
    p.add_argument("--no-report", action="store_true", help="skip rendering the reports at the end")


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    commands: dict[str, Callable[[argparse.Namespace], int]] = {
        "list": cmd_list, "build": cmd_build, "base-image": cmd_base_image, "venv": cmd_venv,
        "compose": cmd_compose, "matrix": cmd_matrix, "report": cmd_report, "publish": cmd_publish,
    }  # fmt: skip
    from .engine import EngineUnavailable

    try:
        return commands[args.command](args)
    except (UsageError, CatalogError, RunDirError, EngineUnavailable) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


# --- list ----------------------------------------------------------------------------------------


def cmd_list(args: argparse.Namespace) -> int:
    from tabulate import tabulate

    from .engine import EngineUnavailable, connect, engine_version
    from .local_backend import unsupported, venv_state

    catalog = load_catalog(args.catalog)
    try:
        client = connect(timeout=10)
    except EngineUnavailable as exc:
        client, engine = None, f"unreachable: {exc}"
    else:
        engine = engine_version(client)
    states = {name: _image_state(client, image) for name, image in catalog.images.items()}
    rows = [
        [v.name, v.framework, v.device, " ".join(v.modes), v.image.tag, states[v.image.name],
         "unsupported" if unsupported(v) else venv_state(v.image)]
        for v in catalog.variants.values()
    ]  # fmt: skip
    print(tabulate(rows, headers=["variant", "framework", "device", "modes", "image", "image state", "local venv"]))
    print(f"\nDocker engine: {engine}")
    if client is not None:
        from .docker_backend import has_nvidia_runtime

        print(f"NVIDIA runtime: {'yes' if has_nvidia_runtime(client) else 'no (CUDA variants are skipped)'}")
        client.close()
    return EXIT_OK


def _image_state(client: Any, image: ImageSpec) -> str:
    if client is None:
        return "engine unreachable"
    from .engine import first_line
    from .images import image_state

    try:
        return image_state(client, image)
    except Exception as exc:  # an engine error must not hide the rest of the table
        return f"error: {first_line(exc, 60)}"


# --- build, base-image, venv, compose ------------------------------------------------------------


def _images_named(catalog: Catalog, names: list[str]) -> list[ImageSpec]:
    """Images by variant or image name, in order, each once; unknown names list the valid ones."""
    chosen: dict[str, ImageSpec] = {}
    for name in names:
        if name in catalog.images:
            chosen[name] = catalog.images[name]
        elif name in catalog.variants:
            chosen[catalog.variants[name].image.name] = catalog.variants[name].image
        else:
            raise UsageError(f"unknown variant {name!r}; valid variants: {', '.join(catalog.variants)} "
                             f"(or images: {', '.join(catalog.images)})")  # fmt: skip
    return list(chosen.values())


def cmd_build(args: argparse.Namespace) -> int:
    from .docker_backend import has_nvidia_runtime
    from .engine import connect
    from .images import (
        ImageBuildError,
        ImageValidationError,
        PipSettings,
        build_image,
        describe,
        host_pip_settings,
        validate_image,
    )

    catalog = load_catalog(args.catalog)
    named = _images_named(catalog, args.variants)
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


def cmd_base_image(args: argparse.Namespace) -> int:
    from .base_image import BaseImageError, build_base_image
    from .engine import connect

    client = connect()
    try:
        tag = build_base_image(client, force=args.force, mirror=args.mirror, log=log)
    except BaseImageError as exc:
        log(f"error: {exc}")
        return EXIT_FAILED
    print(tag)
    return EXIT_OK


def cmd_venv(args: argparse.Namespace) -> int:
    from .local_backend import VenvError, ensure_venv, unsupported

    catalog = load_catalog(args.catalog)
    images = _images_named(catalog, args.names)
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


def cmd_compose(args: argparse.Namespace) -> int:
    from .compose import COMPOSE_PATH, compose_is_current, write_compose

    catalog = load_catalog(args.catalog)
    if args.check:
        current = compose_is_current(catalog)
        log(f"{COMPOSE_PATH}: {'current' if current else 'stale (python -m runner compose)'}")
        return EXIT_OK if current else EXIT_FAILED
    log(f"{COMPOSE_PATH}: {'written' if write_compose(catalog) else 'already current'}")
    return EXIT_OK


# --- matrix --------------------------------------------------------------------------------------


def _new_settings(args: argparse.Namespace, catalog: Catalog, backend: str) -> Settings:
    variants = catalog.select(args.variants)
    models = check_models(args.models or list(MODELS))
    cpus = args.cpus or default_cpuset()
    check_cpuset(cpus)
    memory = args.memory or DEFAULT_MEMORY
    memory_bytes(memory)
    settings = Settings(
        variants=tuple(v.name for v in variants),
        models=tuple(models),
        backend=backend,
        iterations=20 if args.iterations is None else args.iterations,
        warmup=5 if args.warmup is None else args.warmup,
        min_time=DEFAULT_MIN_TIME_S if args.min_time is None else args.min_time,
        cpus=cpus,
        memory=memory,
        timeout=DEFAULT_TIMEOUT_S if args.timeout is None else args.timeout,
        out=str(args.out or Path("runs")),
    )
    if settings.iterations < 1:
        raise UsageError("--iterations must be at least 1")
    if settings.warmup < 0 or settings.min_time < 0:
        raise UsageError("--warmup and --min-time must not be negative")
    if settings.timeout <= 0:
        raise UsageError("--timeout must be positive")
    return settings


def _resumed_settings(args: argparse.Namespace, run_dir: Path) -> tuple[Settings, RunInfo]:
    info = read_run_info(run_dir)
    try:
        settings = Settings.from_dict(info.settings)
    except ValueError as exc:
        raise RunDirError(f"{run_dir / 'run.json'}: {exc}") from None
    given = [n for n in ("variants", "models", "iterations", "warmup", "min_time", "cpus", "memory", "timeout", "out")
             if getattr(args, n) is not None]  # fmt: skip
    if given:
        flags = ", ".join("--" + g.replace("_", "-") for g in given)
        log(f"resume: ignoring {flags}: a resumed run keeps its settings")
    if args.backend not in (None, settings.backend):
        raise UsageError(f"--backend {args.backend}: run {run_dir} used the {settings.backend} backend")
    check_cpuset(settings.cpus)
    return settings, info


def choose_backend(wanted: str, base_image: str | None) -> Backend:
    """The backend to run on; 'auto' prefers Docker and says which it chose and why."""
    from .docker_backend import DockerBackend
    from .engine import EngineUnavailable, connect
    from .local_backend import LocalBackend

    if wanted == "local":
        return LocalBackend()
    try:
        client = connect()
    except EngineUnavailable as exc:
        if wanted == "docker":
            raise
        log(f"backend: local ({exc})")
        return LocalBackend()
    return DockerBackend(client, base_image=base_image)


def cmd_matrix(args: argparse.Namespace) -> int:
    catalog = load_catalog(args.catalog)
    info: RunInfo | None = None
    if args.resume:
        settings, info = _resumed_settings(args, args.resume)
        variants = [_resumed_variant(catalog, name, args.resume) for name in settings.variants]
    else:
        settings = _new_settings(args, catalog, "auto")
        variants = catalog.select(list(settings.variants))
    wanted = (args.backend or settings.backend) if args.resume else (args.backend or "auto")
    backend = choose_backend(wanted, args.base_image)
    settings = replace(settings, backend=backend.name)
    log(f"backend: {backend.describe()}")
    cells = plan(variants, settings.models)
    previous: list[Result] = []
    if args.resume:
        previous = _load_for_resume(args.resume)
    done = {result_key(r) for r in previous}
    todo = [c for c in cells if c.key not in done]
    log(f"{len(cells)} cells ({len(cells) - len(todo)} already done); {settings.iterations} iterations, "
        f"CPUs {settings.cpus} ({settings.threads} threads), timeout {settings.timeout:g} s")  # fmt: skip
    needed = [v for v in variants if any(c.variant.name == v.name for c in todo)]
    prepared = backend.prepare(needed, log)  # every build finishes before the first cell is timed
    run_dir = args.resume or new_run_dir(Path(settings.out))
    info = _start_info(run_dir, settings, backend, prepared.ids, info, args.no_peak)
    write_run_info(run_dir, info)
    log(f"run directory: {run_dir}")
    matrix = MatrixRun(cells, backend, settings, run_dir, prepared, host=info.host, done=done)
    previous_handler = signal.signal(signal.SIGTERM, _terminate)
    try:
        results = matrix.run()
    except KeyboardInterrupt:
        log(f"\ninterrupted: finish it with  python -m runner matrix --resume {run_dir}")
        return EXIT_INTERRUPTED
    finally:
        signal.signal(signal.SIGTERM, previous_handler)
    write_run_info(run_dir, replace(info, finished_at=utc_now()))
    everything = previous + results
    if not args.no_report:
        render(run_dir, None)
    return _verdict(everything, run_dir)


def _terminate(signum: int, frame: object) -> None:
    """SIGTERM (a CI timeout, ``kill``) unwinds like Ctrl-C, so the cell in flight is killed and removed."""
    raise KeyboardInterrupt


def _resumed_variant(catalog: Catalog, name: str, run_dir: Path) -> Variant:
    try:
        return catalog.variant(name)
    except CatalogError as exc:
        raise RunDirError(f"{run_dir}: cannot resume: {exc}") from None


def _load_for_resume(run_dir: Path) -> list[Result]:
    loaded = load_results(run_dir)
    for problem in loaded.describe_problems(run_dir / RESULTS_FILE):
        log(problem)
    if loaded.corrupt:
        raise RunDirError(f"{run_dir / RESULTS_FILE}: line {loaded.corrupt[0].lineno} is not a result; "
                          "refusing to append to a corrupt file")  # fmt: skip
    removed = repair_tail(run_dir)
    if removed:
        log(f"resume: cut {removed} bytes of a truncated last line; that cell runs again")
    return loaded.results


def _start_info(
    run_dir: Path, settings: Settings, backend: Backend, ids: dict[str, str], old: RunInfo | None, no_peak: bool
) -> RunInfo:
    """run.json at the start: a new run's, or a resumed run's with this session's images added."""
    from frameworks.environment import environment

    if old is not None:
        changed = [v for v, i in ids.items() if old.images.get(v) not in (None, i)]
        if changed:
            log(f"resume: warning: the image of {', '.join(changed)} changed since the run started")
        resumes = str(int(old.settings.get("resumes", "0")) + 1)
        settings_now = {**old.settings, "resumes": resumes}
        return replace(old, images={**old.images, **ids}, finished_at=None, settings=settings_now)
    started = utc_now()
    peak, note = (None, "not measured (--no-peak)") if no_peak else measure_host_peak(settings.cpus)
    if not no_peak:
        log(f"host matmul peak: {f'{peak:.1f} GFLOP/s' if peak else note}")
    host = environment(matmul_peak_gflops=peak)
    return RunInfo(
        run_id=run_dir.name,
        command=settings.command(),
        backend=backend.name,
        started_at=started,
        host=host,
        docker_version=backend.version(),
        images=dict(ids),
        settings={**settings.to_dict(), "matmul_peak": note},
        matmul_peak_gflops=peak,
    )


def _verdict(results: list[Result], run_dir: Path) -> int:
    counts = {s: sum(r.status == s for r in results) for s in ("ok", "failed", "skipped")}
    unverified = [r.cell for r in results if r.status == "ok" and not r.verified]
    log(f"{counts['ok']} ok, {counts['failed']} failed, {counts['skipped']} skipped: {run_dir / RESULTS_FILE}")
    if unverified:
        log(f"warning: {len(unverified)} cell(s) ran but did not match the reference: {', '.join(unverified)}")
    return EXIT_FAILED if counts["failed"] else EXIT_OK


# --- report, publish -----------------------------------------------------------------------------


def render(run_dir: Path, out_dir: Path | None) -> None:
    """report.md and report.html from the run's files alone; lines that are not results are named."""
    from reports import load_run
    from reports.render import write_reports

    run = load_run(run_dir)
    for problem in run.problems:
        log(f"{run_dir}: {problem}")
    if not run.results:
        raise RunDirError(f"{run_dir / RESULTS_FILE}: no results")
    for path in write_reports(run, [(out_dir or run_dir, None)]):
        print(path)


def cmd_report(args: argparse.Namespace) -> int:
    run_dir: Path = args.run_dir
    read_run_info(run_dir)  # a directory that is not a run is bad input
    render(run_dir, args.out)
    return EXIT_OK


def cmd_publish(args: argparse.Namespace) -> int:
    for run_dir in args.run_dirs:
        read_run_info(run_dir)
    from reports import publish_site

    print(publish_site(list(args.run_dirs), args.site))
    return EXIT_OK
