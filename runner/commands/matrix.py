"""``runner matrix``: build what is stale, then run every cell, strictly one at a time, then render.

Every build finishes before the first cell is timed (never time while building). ``--resume
RUN_DIR`` finishes an interrupted run with the settings run.json recorded, redoing exactly the
cells whose key has no result line. ``--preset`` and the filters choose the cells
(``runner.presets``); ``--dry-run`` shows them, the images to build and the time, and runs nothing.
"""

from __future__ import annotations

import argparse
import signal
import threading
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any

from frameworks.models import MODELS
from frameworks.options import (
    UsageError,
    add_scenario_options,
    add_transform_options,
    choose_scenarios,
    given_options,
    given_transform_options,
)
from frameworks.result import RESULTS_FILE, RUN_FILE, Result, RunInfo, utc_now
from frameworks.scenarios import DEFAULT_SCENARIO, SCENARIOS
from frameworks.scenarios.config import DEFAULT_TIMEOUT_S

from ..catalog import Catalog, CatalogError, Variant, load_catalog
from ..cell import Cell
from ..engine import EngineLost
from ..hosts import LOCAL, Host, check_host, parse_hosts
from ..inputs import prepare_inputs, prepare_transforms, with_inputs
from ..launcher import Launcher
from ..limits import check_cpuset, default_cpuset, memory_bytes
from ..paths import history_path
from ..plan import check_models, plan
from ..presets import PRESETS, check_excludes, check_frameworks, check_modes, get_preset, preset_variants
from ..run_loop import MatrixRun, ResultsUnwritable, finished_keys
from ..rundir import (
    RunDirError,
    last_recorded,
    load_results,
    new_run_dir,
    read_run_info,
    repair_tail,
    resumed,
    session_finished,
    write_run_info,
)
from ..settings import DEFAULT_MEMORY, Settings
from ..worker import RECONNECT_ATTEMPTS, RECONNECT_DELAY_S, HostJob, start_info, work
from .common import (
    EXIT_ENGINE_LOST,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_NOTHING_RAN,
    EXIT_OK,
    EXIT_USAGE,
    log,
    render,
)

HELP = "build what is stale, then run every cell, one at a time"
# What a resumed run keeps from run.json: given again, these are ignored with a note.
RUN_FLAGS = ("preset", "variants", "frameworks", "modes", "exclude", "models", "scenarios", "cpus", "memory", "timeout",
             "out")  # fmt: skip


def add_arguments(p: argparse.ArgumentParser) -> None:
    # Defaults are None where --resume must tell "given" from "default" (a resumed run keeps its own).
    presets = "; ".join(f"{p.name}: {p.summary}" for p in PRESETS.values())
    p.add_argument("--preset", choices=list(PRESETS), help=f"which cells to run (default: default): {presets}; "
                   "--variants, --models, --scenarios and --modes replace its choice of theirs")  # fmt: skip
    p.add_argument("--variants", nargs="+", metavar="VARIANT", help="default: the preset's (every variant of the "
                   "catalog; quick: each framework's first CPU variant)")  # fmt: skip
    p.add_argument("--models", nargs="+", metavar="MODEL", help=f"default: the preset's ({' '.join(MODELS)}; "
                   "quick: lenet5 mobilenet_v1)")  # fmt: skip
    p.add_argument("--scenarios", nargs="+", metavar="SCENARIO", help=f"what each cell measures: "
                   f"{', '.join(SCENARIOS)} (default: the preset's: {DEFAULT_SCENARIO}; full: all)")  # fmt: skip
    p.add_argument("--frameworks", nargs="+", metavar="FRAMEWORK", help="only the variants of these frameworks")
    p.add_argument("--modes", nargs="+", metavar="MODE", help="only these modes of each variant, opt-in modes "
                   "(the catalog's opt_in_modes) included (default: the preset's)")  # fmt: skip
    p.add_argument("--exclude", nargs="+", metavar="PATTERN", help="leave out the cells a pattern matches: a glob "
                   "on the cell's label ('cpu-tvm * vgg16', '*compile*') or FIELD=GLOB on one of its fields "
                   "(variant, framework, mode, model, scenario)")  # fmt: skip
    p.add_argument("--dry-run", action="store_true", help="print the cells, the images that would be built and "
                   "the estimated time; run and build nothing")  # fmt: skip
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
    p.add_argument("--hosts", nargs="+", metavar="HOST", help="run on these machines' engines, in parallel, one cell "
                   "at a time on each: NAME=URL (unix://PATH, ssh://USER@HOST[:PORT], tcp://HOST:PORT), a .toml "
                   "hosts file, or docker context names (default: this machine alone)")  # fmt: skip
    p.add_argument("--ship-images", action="store_true", help="with --hosts: build the images here once and load "
                   "them on each host (docker save/load, ids checked) instead of building on each")  # fmt: skip
    p.add_argument("--reconnect-wait", type=float, default=RECONNECT_DELAY_S, metavar="SECONDS",
                   help=f"seconds between the {RECONNECT_ATTEMPTS} tries to reach an engine that does not answer, "
                   "or stopped answering mid-run, before its cells are recorded as failed "
                   f"(default {RECONNECT_DELAY_S:g})")  # fmt: skip
    add_scenario_options(p, for_runner=True)
    add_transform_options(p)


def new_settings(args: argparse.Namespace, catalog: Catalog, launcher: str, check_cpus: bool = True) -> Settings:
    """The settings of a new run from the command line; any bad value is a ``UsageError``.

    ``check_cpus``: the cpuset must be this machine's (not in a run on other machines, whose CPUs the
    hosts themselves say).
    """
    preset = get_preset(args.preset or "default")
    variants = catalog.select(args.variants) if args.variants else preset_variants(preset.name, catalog)
    if args.frameworks:
        frameworks = check_frameworks(args.frameworks, catalog)
        variants = [v for v in variants if v.framework in frameworks]
    models = check_models(args.models or list(preset.models))
    scenarios = [s.name for s in choose_scenarios(args.scenarios or list(preset.scenarios))]
    cpus = args.cpus or default_cpuset()
    if check_cpus:
        check_cpuset(cpus)
    memory = args.memory or DEFAULT_MEMORY
    memory_bytes(memory)
    timeout = DEFAULT_TIMEOUT_S if args.timeout is None else args.timeout
    if timeout <= 0:
        raise UsageError("--timeout must be positive")
    out = args.out or Path("runs")
    check_out(out)
    return Settings(
        variants=tuple(v.name for v in variants),
        models=tuple(models),
        launcher=launcher,
        scenarios=tuple(scenarios),
        options=given_options(args),
        transforms=given_transform_options(args),
        cpus=cpus,
        memory=memory,
        timeout=timeout,
        out=str(out),
        preset=preset.name,
        modes=check_modes(args.modes, catalog) if args.modes else (),
        exclude=check_excludes(args.exclude, catalog) if args.exclude else (),
    )


def check_out(out: Path) -> None:
    """``--out`` must be a directory, or a path one can be made at: a file there (or above it) is bad input."""
    for path in (out, *out.parents):
        if path.exists():
            if not path.is_dir():
                raise UsageError(f"--out {out}: {path} is a file, not a directory")
            return


def resumed_settings(args: argparse.Namespace, run_dir: Path, several: bool = False) -> tuple[Settings, RunInfo]:
    info = read_run_info(run_dir)
    try:
        settings = Settings.from_dict(info.settings)
    except ValueError as exc:
        raise RunDirError(f"{run_dir / 'run.json'}: {exc}") from None
    given = [n for n in RUN_FLAGS if getattr(args, n) is not None] + sorted(given_options(args))
    given += list(given_transform_options(args))
    if given:
        flags = ", ".join("--" + g.replace("_", "-") for g in given)
        log(f"resume: ignoring {flags}: a resumed run keeps its settings")
    if args.launcher not in (None, settings.launcher):
        raise UsageError(f"--launcher {args.launcher}: run {run_dir} used the {settings.launcher} launcher")
    if not several:
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
    if args.reconnect_wait < 0:
        raise UsageError("--reconnect-wait must not be negative")
    if args.dry_run and (args.resume or args.hosts):
        raise UsageError("--dry-run plans a new run on this machine: not with --resume or --hosts")
    catalog = load_catalog(args.catalog)
    hosts = parse_hosts(args.hosts) if args.hosts else None
    info: RunInfo | None = None
    if args.resume:
        settings, info = resumed_settings(args, args.resume, several=bool(hosts or (read_run_info(args.resume).hosts)))
        variants = [_resumed_variant(catalog, name, args.resume) for name in settings.variants]
        if info.hosts:
            return run_hosts(args, settings, variants, hosts or recorded_hosts(info), info)
        if hosts:
            raise UsageError(f"--hosts: run {args.resume} ran on this machine alone")
    else:
        settings = new_settings(args, catalog, "auto", check_cpus=hosts is None)
        variants = catalog.select(list(settings.variants))
        if not plan(variants, settings):
            log(f"error: no cells to run: {why_no_cells(args)}")
            return EXIT_NOTHING_RAN
        if args.dry_run:
            from ..dry_run import dry_run

            launcher = choose_launcher(args.launcher or "auto", None)
            print("\n".join(dry_run(plan(variants, settings), settings, launcher)))
            return EXIT_OK
        if hosts:
            return run_hosts(args, replace(settings, launcher="docker"), variants, hosts, None)
    return run_here(args, settings, variants, info)


def why_no_cells(args: argparse.Namespace) -> str:
    """What left a new run without a cell, in the words of its flags."""
    given = [f"--{name} {' '.join(getattr(args, name))}" for name in ("frameworks", "variants", "modes", "exclude",
             "models", "scenarios") if getattr(args, name)]  # fmt: skip
    if not given:
        return "the catalog and the preset make none"
    return f"{', '.join(given)} leave none"


def run_here(args: argparse.Namespace, settings: Settings, variants: list[Variant], info: RunInfo | None) -> int:
    """The matrix on this machine: one worker, in this thread, writing RUN_DIR/results.jsonl."""
    wanted = (args.launcher or settings.launcher) if args.resume else (args.launcher or "auto")
    launcher = choose_launcher(wanted, args.base_image)
    settings = replace(settings, launcher=launcher.name)
    log(f"launcher: {launcher.describe()}")
    cells = prepare_transforms(plan(variants, settings), settings.seed, log)
    previous: list[Result] = _load_for_resume(args.resume) if args.resume else []
    done = finished_keys(previous)
    todo = [c for c in cells if c.key(settings.launcher) not in done]
    log(f"{len(cells)} cells ({len(cells) - len(todo)} already done); scenarios {' '.join(settings.scenarios)}; "
        f"CPUs {settings.cpus} ({settings.threads} threads), {settings.timeout:g} s per measurement")  # fmt: skip
    needed = [v for v in variants if any(c.variant.name == v.name for c in todo)]
    run_dir = args.resume or new_run_dir(Path(settings.out))
    try:
        launcher.begin(run_dir.name, log)  # what killed runners left behind goes before any build or timing
        prepared = launcher.prepare(needed, log)  # every build finishes before the first cell is timed
    except EngineLost:
        if not args.resume and not any(run_dir.iterdir()):
            run_dir.rmdir()  # a new run that never started leaves no empty directory behind
        raise
    made = prepare_inputs([c for c in todo if c.variant.name in prepared.ids], settings.seed, log)
    cells = with_inputs(cells, made)
    job = HostJob(Host(LOCAL, "unix:///var/run/docker.sock"), run_dir, run_dir.name, settings, cells, done, info,
                  connect=lambda: launcher, log=log, no_peak=args.no_peak,
                  reconnect_wait_s=args.reconnect_wait)  # fmt: skip
    info = start_info(job, launcher, prepared)
    write_run_info(run_dir, info)
    log(f"run directory: {run_dir}")
    matrix = MatrixRun(cells, launcher, settings, run_dir, prepared, host=info.host, done=done, history=history_path())
    previous_handler = signal.signal(signal.SIGTERM, _terminate)
    try:
        results = matrix.run()
    except KeyboardInterrupt:
        log(f"\ninterrupted: finish it with  python -m runner matrix --resume {run_dir}")
        return EXIT_INTERRUPTED
    except EngineLost as exc:
        log(f"error: {exc}; what finished is in {run_dir / RESULTS_FILE}: once an engine answers, "
            f"finish it with  python -m runner matrix --resume {run_dir}")  # fmt: skip
        return EXIT_ENGINE_LOST
    except ResultsUnwritable as exc:
        print(exc.result.to_json())  # the cell it could not record, on stdout rather than lost
        log(
            f"\nerror: {exc}; every earlier line is whole: free space, then  python -m runner matrix --resume {run_dir}"
        )
        return EXIT_USAGE
    finally:
        signal.signal(signal.SIGTERM, previous_handler)
    write_run_info(run_dir, session_finished(info, len(results)))
    if not args.no_report:
        render(run_dir, None)
    return _verdict(previous + results, run_dir)


# --- several machines -------------------------------------------------------------------------------


def recorded_hosts(info: RunInfo) -> list[Host]:
    """The hosts of a run as run.json names them (no TLS paths are recorded: those hosts need --hosts again)."""
    hosts = []
    for name, url in info.hosts.items():
        if url.startswith("tcp://"):
            raise UsageError(f"resume: host {name} ({url}) needs its TLS settings again: give --hosts as the run did")
        hosts.append(check_host(Host(name, url)))
    return hosts


def run_hosts(
    args: argparse.Namespace, settings: Settings, variants: list[Variant], hosts: list[Host], old: RunInfo | None
) -> int:
    """One worker per host, in threads: cells one at a time on each machine, machines in parallel."""
    from frameworks.environment import environment

    if old is not None and set(old.hosts) != {h.name for h in hosts}:
        raise UsageError(f"--hosts {' '.join(h.name for h in hosts)}: the run's hosts are {' '.join(old.hosts)}")
    run_dir = args.resume or new_run_dir(Path(settings.out))
    top = resumed(old, last_recorded(run_dir)) if old is not None else RunInfo(
        run_id=run_dir.name, command=settings.command(hosts), launcher="docker", started_at=utc_now(),
        host=environment(), settings=settings.to_dict(), hosts={h.name: h.public_url for h in hosts},
    )  # fmt: skip
    write_run_info(run_dir, top)
    log(f"run directory: {run_dir}; hosts: {', '.join(f'{h.name} ({h.public_url})' for h in hosts)}")
    ship = _shipper(args, variants, settings) if args.ship_images else None
    jobs = [_host_job(args, h, run_dir, settings, variants, ship) for h in hosts]
    stop = threading.Event()
    threads = [threading.Thread(target=work, args=(job, stop), name=job.host.name, daemon=True) for job in jobs]
    previous_handler = signal.signal(signal.SIGTERM, _terminate)
    try:
        for thread in threads:
            thread.start()
        while any(t.is_alive() for t in threads):
            for thread in threads:
                thread.join(timeout=0.5)
    except KeyboardInterrupt:
        stop.set()
        for job in jobs:
            if job.launcher is not None:
                job.launcher.abort()
        for thread in threads:
            thread.join(timeout=60)
        log(f"\ninterrupted: finish it with  python -m runner matrix --resume {run_dir}")
        return EXIT_INTERRUPTED
    finally:
        signal.signal(signal.SIGTERM, previous_handler)
    write_run_info(run_dir, session_finished(top, sum(len(job.results) for job in jobs)))
    if not args.no_report:
        render(run_dir, None)
    every = [r for job in jobs for r in (*job.previous, *job.results)]
    verdict = _verdict(every, run_dir)
    lost = [job for job in jobs if job.lost]
    for job in lost:
        log(f"error: host {job.host.name}: {job.lost}; once it answers, finish with  "
            f"python -m runner matrix --resume {run_dir}")  # fmt: skip
    return EXIT_ENGINE_LOST if lost else verdict


def _host_job(
    args: argparse.Namespace, host: Host, run_dir: Path, settings: Settings, variants: list[Variant], ship: Any
) -> HostJob:
    host_dir = run_dir / "hosts" / host.name
    old = read_run_info(host_dir) if args.resume and (host_dir / RUN_FILE).exists() else None
    previous = _load_for_resume(host_dir) if args.resume and (host_dir / RESULTS_FILE).exists() else []
    prefix = f"[{host.name}] "

    def say(line: str) -> None:
        log(f"{prefix}{line}")

    def connect() -> Any:
        from ..docker_launcher import DockerLauncher
        from ..hosts import connect_host

        return DockerLauncher(connect_host(host), base_image=args.base_image)

    def resolve(launcher: Any) -> tuple[Settings, list[Cell]]:
        """This host's settings (its own cpuset: all its CPUs unless told; none when it never answered)
        and its cells."""
        if old is not None:
            mine = Settings.from_dict(old.settings)
        elif launcher is None:
            mine = replace(settings, cpus=host.cpus or args.cpus or "0")
        else:
            cpus = host.cpus or args.cpus or f"0-{int(launcher.client.info()['NCPU']) - 1}"
            mine = replace(settings, cpus=cpus, memory=host.memory or settings.memory)
        return mine, prepare_transforms(plan(variants, mine), mine.seed, say)

    def ready(launcher: Any, say: Any) -> None:
        """Before building there: the base images, from this machine's engine when the host has none."""
        from ..engine import EngineUnavailable, connect
        from ..worker import ship_base_images

        try:
            here = connect(timeout=600)
        except EngineUnavailable:
            return  # nothing to ship from: the host builds on what it has
        ship_base_images(here, launcher.client, say)

    return HostJob(host, host_dir, run_dir.name, settings, [], finished_keys(previous), old, connect=connect,
                   log=say, no_peak=args.no_peak, probe=True, local_files=not host.is_remote, ship=ship,
                   resolve=resolve, previous=previous, ready=ready, reconnect_wait_s=args.reconnect_wait)  # fmt: skip


def _shipper(args: argparse.Namespace, variants: list[Variant], settings: Settings) -> Any:
    """Build every image on this machine's engine once; each host then loads them (``--ship-images``)."""
    from ..docker_launcher import DockerLauncher
    from ..engine import connect
    from ..worker import ship_images

    local = DockerLauncher(connect(), base_image=args.base_image)
    prepared = local.prepare(variants, log)
    lock = threading.Lock()

    def ship(launcher: Any, names: list[str], say: Any) -> Any:
        wanted = {v: prepared.ids[v] for v in names if v in prepared.ids}
        with lock:  # one image stream at a time out of this engine
            ship_images(local.client, launcher.client, {i: i for i in set(wanted.values())}, say)
        return replace(prepared, ids=wanted)

    return ship


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


def _verdict(results: list[Result], run_dir: Path) -> int:
    """The summary line and exit code: each cell counted once, by its newest line (a resumed cell replaces
    the line of the attempt the engine took with it)."""
    results = list({r.key(): r for r in results}.values())
    counts = {s: sum(r.status == s for r in results) for s in ("ok", "failed", "skipped")}
    unverified = [r.cell for r in results if r.status == "ok" and not r.verified]
    log(f"{counts['ok']} ok, {counts['failed']} failed, {counts['skipped']} skipped: {run_dir / RESULTS_FILE}")
    if unverified:
        log(f"warning: {len(unverified)} cell(s) ran but did not match the reference: {', '.join(unverified)}")
    if counts["failed"]:
        return EXIT_FAILED
    if not counts["ok"]:
        log(f"error: nothing was measured: {nothing_measured(results)}")
        return EXIT_NOTHING_RAN
    return EXIT_OK


def nothing_measured(results: list[Result]) -> str:
    """Why a run without a failed or measured cell measured nothing: its skip reasons, the commonest first."""
    if not results:
        return "no cell ran"
    reasons = Counter(r.error or "no reason recorded" for r in results)
    said = "; ".join(f"{n} {reason}" for reason, n in reasons.most_common(3))
    more = f"; {len(reasons) - 3} other reasons" if len(reasons) > 3 else ""
    return f"every one of the {len(results)} cells was skipped ({said}{more})"
