"""One machine's worker: its engine, its images, its facts, then its cells strictly one at a time.

``matrix`` without ``--hosts`` runs one worker on this machine in the calling thread, writing
RUN_DIR/run.json and RUN_DIR/results.jsonl as always. With ``--hosts`` it runs one worker per host
in a thread of its own, writing RUN_DIR/hosts/NAME/run.json and results.jsonl: machines in parallel,
cells never two at once on one machine. A host that cannot be reached (after a bounded retry), or
whose engine stops answering mid-run and does not come back, has its remaining cells recorded as
failed with the reason, and the other hosts go on; ``--resume`` runs those cells again.
"""

from __future__ import annotations

import tempfile
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from frameworks.result import CellKey, Environment, Peak, Result, RunInfo, utc_now

from .cell import Cell
from .engine import ENGINE_LOST, EngineLost, EngineUnavailable, first_line
from .hosts import Host
from .inputs import prepare_inputs, with_inputs
from .interpret import runner_result
from .launcher import Launcher, Log, Prepared
from .paths import history_path
from .peak import measure_host_peak, parse_peak, peak_note
from .provenance import provenance
from .run_loop import UNREACHABLE, MatrixRun
from .rundir import append_result, last_recorded, resumed, session_finished, write_run_info
from .settings import Settings

RECONNECT_ATTEMPTS = 3
RECONNECT_DELAY_S = 10.0  # between the tries, unless the run says otherwise (runner matrix --reconnect-wait)


@dataclass
class HostJob:
    """Everything one worker needs; ``results`` and ``lost`` are what it leaves behind."""

    host: Host
    run_dir: Path  # where this host's run.json and results.jsonl are written
    run_id: str
    settings: Settings  # this host's: its cpuset and memory
    cells: list[Cell]
    done: set[CellKey]
    old_info: RunInfo | None
    connect: Callable[[], Launcher]  # a launcher on this host's engine (raises EngineUnavailable)
    log: Log
    no_peak: bool = False
    probe: bool = False  # facts and peak measured in a container on the host (several-machine runs)
    local_files: bool = True  # the host sees this machine's files (the inputs cache can be mounted)
    ship: Callable[[Launcher, list[str], Log], Prepared] | None = None  # images loaded there instead of built
    # its settings and cells, once reached (None: it never answered, plan without what it would have said)
    resolve: Callable[[Launcher | None], tuple[Settings, list[Cell]]] | None = None
    previous: list[Result] = field(default_factory=list)  # what a resumed run had already recorded there
    # before its images are built there: e.g. the base images shipped (no registry to pull them from)
    ready: Callable[[Launcher, Log], None] | None = None
    reconnect_wait_s: float = RECONNECT_DELAY_S  # between the tries to reach an engine that does not answer
    launcher: Launcher | None = None  # once connected (another thread may abort its cell in flight)
    results: list[Result] = field(default_factory=list)
    lost: str | None = None  # why this host's remaining cells could not run


def work(job: HostJob, stop: threading.Event | None = None) -> HostJob:
    """Run one host's cells; never raises for what a host does (unreachable, lost, interrupted): it is recorded."""
    try:
        _work(job, stop)
    except KeyboardInterrupt:  # stopped by the main thread (Ctrl-C): the cell in flight was removed there
        job.log("stopped")
    except EngineUnavailable as exc:
        job.lost = str(exc)
        if job.resolve is not None and not job.cells:  # never reached: its cells as this run plans them
            job.cells = job.resolve(None)[1]
        _fail_remaining(job, job.cells, UNREACHABLE, None)
    except EngineLost as exc:  # while building or looking at the host
        job.lost = str(exc)
        _fail_remaining(job, _left(job, job.cells), ENGINE_LOST, None)
    except Exception as exc:  # a bug, or an engine error nobody foresaw: this host stops, the others go on
        traceback.print_exc()
        job.lost = f"the runner failed on this host: {first_line(exc)}"
        _fail_remaining(job, _left(job, job.cells), job.lost, None)
    return job


def _work(job: HostJob, stop: threading.Event | None) -> None:
    launcher = _connect(job)
    job.launcher = launcher
    if job.resolve is not None:
        job.settings, job.cells = job.resolve(launcher)
    job.run_dir.mkdir(parents=True, exist_ok=True)
    todo = _left(job, job.cells)
    needed = list({c.variant.name: c.variant for c in todo}.values())
    launcher.begin(job.run_id, job.log)  # what killed runners left behind goes before any build or timing
    if job.ship is not None:
        prepared = job.ship(launcher, [v.name for v in needed], job.log)
    else:
        if job.ready is not None:
            job.ready(launcher, job.log)
        prepared = launcher.prepare(needed, job.log)
    made = {}
    if job.local_files:  # a host on another machine cannot mount this one's inputs: its cells make their own
        made = prepare_inputs([c for c in todo if c.variant.name in prepared.ids], job.settings.seed, job.log)
    cells = with_inputs(job.cells, made) if job.local_files else [replace(c, inputs=None) for c in job.cells]
    info = start_info(job, launcher, prepared)
    write_run_info(job.run_dir, info)
    matrix = MatrixRun(cells, launcher, job.settings, job.run_dir, prepared, host=info.host, done=set(job.done),
                       history=history_path(), host_name=_host_key(job), prefix=_prefix(job), stop=stop)  # fmt: skip
    while True:
        try:
            job.results += matrix.run()
            break
        except EngineLost as exc:
            job.results += matrix.finished
            if not _came_back(job, launcher):
                job.lost = str(exc)
                _fail_remaining(job, _left(job, cells), ENGINE_LOST, info.host)
                break
            matrix = replace(matrix, done={*matrix.done, *_keys(job)}, finished=[])
    write_run_info(job.run_dir, session_finished(info, len(job.results)))


def _left(job: HostJob, cells: list[Cell]) -> list[Cell]:
    """The cells of the host with no result yet (neither from before nor from this session)."""
    keys = _keys(job)
    return [c for c in cells if c.key(job.settings.launcher, _host_key(job)) not in keys]


def _host_key(job: HostJob) -> str:
    return job.host.name if job.probe else ""


def _prefix(job: HostJob) -> str:
    return f"[{job.host.name}] " if job.probe else ""


def _keys(job: HostJob) -> set[CellKey]:
    return {*job.done, *(r.key() for r in job.results)}


def _connect(job: HostJob) -> Launcher:
    """The host's launcher, retried a few times (a machine waking up, a flaky link)."""
    for attempt in range(RECONNECT_ATTEMPTS):
        try:
            return job.connect()
        except EngineUnavailable as exc:
            if attempt + 1 == RECONNECT_ATTEMPTS:
                raise
            job.log(f"{exc}; trying again in {job.reconnect_wait_s:g} s")
            time.sleep(job.reconnect_wait_s)
    raise AssertionError("unreachable")


def _came_back(job: HostJob, launcher: Launcher) -> bool:
    from .engine import engine_answers

    client = getattr(launcher, "client", None)
    for _ in range(RECONNECT_ATTEMPTS):
        time.sleep(job.reconnect_wait_s)
        if client is not None and engine_answers(client, attempts=1):
            job.log("the engine answers again: going on")
            return True
    return False


def _fail_remaining(job: HostJob, cells: list[Cell], reason: str, env: Environment | None) -> None:
    """Record each cell of the host that will not run as failed with the reason (resume runs them again)."""
    job.run_dir.mkdir(parents=True, exist_ok=True)
    cells = _left(job, cells)
    for cell in cells:
        result = replace(
            runner_result(cell, job.settings, "failed", reason, environment=env), host=_host_key(job) or None
        )
        append_result(job.run_dir, result)
        job.results.append(result)
    job.log(f"{len(cells)} cell(s) recorded as failed: {reason}")


# --- the host's facts and run.json ----------------------------------------------------------------------


def start_info(job: HostJob, launcher: Launcher, prepared: Prepared) -> RunInfo:
    """This host's run.json at the start: a new run's, or a resumed run's with this session's images added."""
    from frameworks.environment import environment

    old = job.old_info
    if old is not None:
        changed = [v for v, i in prepared.ids.items() if old.images.get(v) not in (None, i)]
        if changed:
            job.log(f"resume: warning: the image of {', '.join(changed)} changed since the run started")
        return resumed(replace(old, images={**old.images, **prepared.ids}), last_recorded(job.run_dir))
    started = utc_now()
    if job.probe:
        host, peak, note = probe_host(launcher, prepared, job.settings, job.no_peak)
    else:
        peak, note = (None, "not measured (--no-peak)") if job.no_peak else measure_host_peak(job.settings.cpus)
        host = environment(matmul_peak_gflops=peak.gflops if peak else None)
    if not job.no_peak:
        job.log(f"float32 GEMM peak: {f'{peak.gflops:.1f} GFLOP/s ({note})' if peak else note}")
    version, commit = provenance()
    return RunInfo(
        run_id=job.run_id,
        command=job.settings.command(),
        launcher=launcher.name,
        started_at=started,
        host=host,
        docker_version=launcher.version(),
        images=dict(prepared.ids),
        settings={
            **job.settings.to_dict(),
            "matmul_peak": note,
            **({"host_url": job.host.public_url} if job.probe else {}),
        },
        matmul_peak_gflops=peak.gflops if peak else None,
        peak=peak,
        host_name=job.host.name if job.probe else None,
        project_version=version,
        project_commit=commit,
    )


_FACTS = "import dataclasses, json; from frameworks.environment import environment; print(json.dumps(dataclasses.asdict(environment())))"  # noqa: E501


def probe_host(
    launcher: Launcher, prepared: Prepared, settings: Settings, no_peak: bool
) -> tuple[Environment, Peak | None, str]:
    """The machine behind an engine, as a container on it sees it, and its GEMM peak measured there
    (with the GEMM libraries the image has: NumPy's OpenBLAS at least)."""
    from frameworks.result import Environment as Env
    from frameworks.result import _build

    probe = getattr(launcher, "probe", None)
    image = next(iter(prepared.ids.values()), None)
    if probe is None or image is None:
        raise EngineUnavailable("no image to look at the host with")
    facts = _build(Env, _json(probe(image, ["python", "-c", _FACTS], settings)), "host")
    if no_peak:
        return facts, None, "not measured (--no-peak)"
    try:
        peak = parse_peak(probe(image, ["python", "-m", "frameworks.peak", "--cpus", str(settings.threads)], settings))
    except (ValueError, RuntimeError) as exc:
        return facts, None, f"the GEMM peak failed: {first_line(exc)}"
    note = f"{peak_note(peak)}, in {image[:19]} on CPUs {settings.cpus} of the host"
    return replace(facts, matmul_peak_gflops=peak.gflops), peak, note


def _json(text: str) -> Any:
    import json

    return json.loads(text.strip().splitlines()[-1])


# --- images between engines -------------------------------------------------------------------------------


def ship_base_images(local: Any, remote: Any, log: Log) -> None:
    """The Debian-built base images (``dlbench/base:*``) this engine has and the host lacks: no registry
    answers here, so a host builds the variant images on the same bases only once they are shipped."""
    for image in local.images.list(name="dlbench/base"):
        missing = [t for t in image.tags if not _has(remote, t)]
        if missing:
            ship_images(local, remote, {missing[0]: image.id}, log)


def _has(client: Any, ref: str) -> bool:
    try:
        client.images.get(ref)
        return True
    except Exception:
        return False


def ship_images(local: Any, remote: Any, images: dict[str, str], log: Log) -> dict[str, float]:
    """Each image (name -> id on the local engine) saved here and loaded there, its id checked; seconds each."""
    took: dict[str, float] = {}
    for name, image_id in images.items():
        try:
            if remote.images.get(image_id).id == image_id:
                log(f"{name}: already on the host ({image_id[:19]})")
                took[name] = 0.0
                continue
        except Exception:  # not there (or the lookup failed): ship it
            pass
        start = time.monotonic()
        with tempfile.TemporaryFile() as tar:
            for chunk in local.images.get(image_id).save(chunk_size=4 << 20, named=True):  # its tag comes along
                tar.write(chunk)
            tar.seek(0)
            loaded = remote.images.load(tar)
        ids = {image.id for image in loaded}
        if image_id not in ids:
            raise RuntimeError(f"{name}: the host loaded {', '.join(sorted(ids)) or 'nothing'}, not {image_id}")
        took[name] = time.monotonic() - start
        log(f"{name}: shipped in {took[name]:.1f} s ({image_id[:19]})")
    return took
