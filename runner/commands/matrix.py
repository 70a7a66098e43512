"""``runner matrix``: build what is stale, then run every cell, strictly one at a time, then render.

Every build finishes before the first cell is timed (never time while building). ``--resume
RUN_DIR`` finishes an interrupted run with the settings run.json recorded, redoing exactly the
cells whose key has no result line.
"""

from __future__ import annotations

import argparse
import signal
from dataclasses import replace
from pathlib import Path

from frameworks.models import MODELS
from frameworks.options import UsageError, add_scenario_options, choose_scenarios, given_options
from frameworks.result import RESULTS_FILE, Result, RunInfo, utc_now
from frameworks.scenarios import DEFAULT_SCENARIO, SCENARIOS
from frameworks.scenarios.config import DEFAULT_TIMEOUT_S

from ..catalog import Catalog, CatalogError, Variant, load_catalog
from ..matrix import (
    DEFAULT_MEMORY,
    Launcher,
    MatrixRun,
    Settings,
    check_cpuset,
    check_models,
    default_cpuset,
    measure_host_peak,
    memory_bytes,
    plan,
)
from ..rundir import RunDirError, load_results, new_run_dir, read_run_info, repair_tail, write_run_info
from .common import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, log, render

HELP = "build what is stale, then run every cell, one at a time"
# What a resumed run keeps from run.json: given again, these are ignored with a note.
RUN_FLAGS = ("variants", "models", "scenarios", "cpus", "memory", "timeout", "out")


def add_arguments(p: argparse.ArgumentParser) -> None:
    # Defaults are None where --resume must tell "given" from "default" (a resumed run keeps its own).
    p.add_argument("--variants", nargs="+", metavar="VARIANT", help="default: every variant of the catalog")
    p.add_argument("--models", nargs="+", metavar="MODEL", help=f"default: {' '.join(MODELS)}")
    p.add_argument("--scenarios", nargs="+", metavar="SCENARIO",
                   help=f"what each cell measures: {', '.join(SCENARIOS)} (default: {DEFAULT_SCENARIO})")  # fmt: skip
    launchers = ("auto", "docker", "local")
    launcher_help = "how cells start: auto (default) uses Docker when an engine answers, else local venvs"
    p.add_argument("--launcher", "--backend", dest="launcher", choices=launchers, help=launcher_help)
    p.add_argument("--cpus", help="cpuset every cell is pinned to, e.g. 0-1 (default: every CPU available)")
    p.add_argument("--memory", help=f"memory limit per container, no swap (default {DEFAULT_MEMORY})")
    p.add_argument("--timeout", type=float, help="seconds per measurement (a cell, or one point of a sweep) "
                   f"before it is killed (default {DEFAULT_TIMEOUT_S:g})")  # fmt: skip
    p.add_argument("--resume", type=Path, metavar="RUN_DIR", help="finish an interrupted run with its own settings")
    p.add_argument("--out", type=Path, help="parent of the new RUN_DIR (default ./runs)")
    p.add_argument("--base-image", help="build stale images on this base (docker launcher)")
    p.add_argument("--no-peak", action="store_true", help="skip measuring the host's matmul peak")
    p.add_argument("--no-report", action="store_true", help="skip rendering the reports at the end")
    add_scenario_options(p, for_runner=True)


def new_settings(args: argparse.Namespace, catalog: Catalog, launcher: str) -> Settings:
    """The settings of a new run from the command line; any bad value is a ``UsageError``."""
    variants = catalog.select(args.variants)
    models = check_models(args.models or list(MODELS))
    scenarios = [s.name for s in choose_scenarios(args.scenarios or [DEFAULT_SCENARIO])]
    cpus = args.cpus or default_cpuset()
    check_cpuset(cpus)
    memory = args.memory or DEFAULT_MEMORY
    memory_bytes(memory)
    timeout = DEFAULT_TIMEOUT_S if args.timeout is None else args.timeout
    if timeout <= 0:
        raise UsageError("--timeout must be positive")
    return Settings(
        variants=tuple(v.name for v in variants),
        models=tuple(models),
        launcher=launcher,
        scenarios=tuple(scenarios),
        options=given_options(args),
        cpus=cpus,
        memory=memory,
        timeout=timeout,
        out=str(args.out or Path("runs")),
    )


def resumed_settings(args: argparse.Namespace, run_dir: Path) -> tuple[Settings, RunInfo]:
    info = read_run_info(run_dir)
    try:
        settings = Settings.from_dict(info.settings)
    except ValueError as exc:
        raise RunDirError(f"{run_dir / 'run.json'}: {exc}") from None
    given = [n for n in RUN_FLAGS if getattr(args, n) is not None] + sorted(given_options(args))
    if given:
        flags = ", ".join("--" + g.replace("_", "-") for g in given)
        log(f"resume: ignoring {flags}: a resumed run keeps its settings")
    if args.launcher not in (None, settings.launcher):
        raise UsageError(f"--launcher {args.launcher}: run {run_dir} used the {settings.launcher} launcher")
    check_cpuset(settings.cpus)
    return settings, info


def choose_launcher(wanted: str, base_image: str | None) -> Launcher:
    """The launcher to run with; 'auto' prefers Docker and says which it chose and why."""
    from ..docker_launcher import DockerLauncher
    from ..engine import EngineUnavailable, connect
    from ..local_launcher import LocalLauncher

    if wanted == "local":
        return LocalLauncher()
    try:
        client = connect()
    except EngineUnavailable as exc:
        if wanted == "docker":
            raise
        log(f"launcher: local ({exc})")
        return LocalLauncher()
    return DockerLauncher(client, base_image=base_image)


def run(args: argparse.Namespace) -> int:
    catalog = load_catalog(args.catalog)
    info: RunInfo | None = None
    if args.resume:
        settings, info = resumed_settings(args, args.resume)
        variants = [_resumed_variant(catalog, name, args.resume) for name in settings.variants]
    else:
        settings = new_settings(args, catalog, "auto")
        variants = catalog.select(list(settings.variants))
    wanted = (args.launcher or settings.launcher) if args.resume else (args.launcher or "auto")
    launcher = choose_launcher(wanted, args.base_image)
    settings = replace(settings, launcher=launcher.name)
    log(f"launcher: {launcher.describe()}")
    cells = plan(variants, settings)
    previous: list[Result] = _load_for_resume(args.resume) if args.resume else []
    done = {r.key() for r in previous}
    todo = [c for c in cells if c.key(settings.launcher) not in done]
    log(f"{len(cells)} cells ({len(cells) - len(todo)} already done); scenarios {' '.join(settings.scenarios)}; "
        f"CPUs {settings.cpus} ({settings.threads} threads), {settings.timeout:g} s per measurement")  # fmt: skip
    needed = [v for v in variants if any(c.variant.name == v.name for c in todo)]
    prepared = launcher.prepare(needed, log)  # every build finishes before the first cell is timed
    run_dir = args.resume or new_run_dir(Path(settings.out))
    info = _start_info(run_dir, settings, launcher, prepared.ids, info, args.no_peak)
    write_run_info(run_dir, info)
    log(f"run directory: {run_dir}")
    matrix = MatrixRun(cells, launcher, settings, run_dir, prepared, host=info.host, done=done)
    previous_handler = signal.signal(signal.SIGTERM, _terminate)
    try:
        results = matrix.run()
    except KeyboardInterrupt:
        log(f"\ninterrupted: finish it with  python -m runner matrix --resume {run_dir}")
        return EXIT_INTERRUPTED
    finally:
        signal.signal(signal.SIGTERM, previous_handler)
    write_run_info(run_dir, replace(info, finished_at=utc_now()))
    if not args.no_report:
        render(run_dir, None)
    return _verdict(previous + results, run_dir)


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
    run_dir: Path, settings: Settings, launcher: Launcher, ids: dict[str, str], old: RunInfo | None, no_peak: bool
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
        launcher=launcher.name,
        started_at=started,
        host=host,
        docker_version=launcher.version(),
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
