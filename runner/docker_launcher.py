"""The Docker launcher: one fresh, sealed container per cell, and never two benchmarks at once.

Each container has no network, a pinned cpuset, a memory limit with no swap beyond it, a read-only
root filesystem (with a tmpfs ``/tmp`` that torch.compile and XLA can write and execute from), no
capabilities, no way to gain privileges, a process limit, an explicit unprivileged user whatever
the image says, no writable mount (the result comes back on stdout), a bounded log, and a
per-cell timeout. It runs the image by ID, not by tag, so the image recorded in run.json is the
one that ran even if someone rebuilds the tag meanwhile. Whatever happens to a container (a
crash, the OOM killer, the timeout) becomes a failed cell with its reason, and the container is
always removed; one left behind by a killed runner is removed before the next cell starts
(``exclusive``). An engine that stops answering ends the run with ``EngineLost``.
"""

from __future__ import annotations

import contextlib
import sys
import time
from typing import Any

from frameworks.result import Result

from .catalog import ImageSpec, Variant
from .cell import Cell
from .engine import ENGINE_LOST, DockerClient, EngineLost, engine_answers, first_line
from .exclusive import (
    LABEL_CELL,
    LABEL_DEADLINE,
    LABEL_RUN,
    LABEL_RUNNER,
    WAIT_POLL_S,
    Tags,
    deadline,
    parse_deadline,
    runner_id,
)
from .interpret import interpret, runner_result
from .launcher import OUTPUT_MAX_BYTES, Log, Prepared
from .paths import inputs_root
from .settings import Settings

INPUTS_MOUNT = "/inputs"
TMPFS = {"/tmp": "rw,exec,nosuid,size=2g"}  # exec: torch.compile loads the C++ it compiles from /tmp
CELL_USER = "10001:10001"  # the unprivileged user the Dockerfiles create; set explicitly all the same
PIDS_LIMIT = 4096  # threads count: TensorFlow's pools and torch.compile's workers stay far below
LOG_MAX = "16m"  # the engine keeps at most this much of a cell's output on disk (OUTPUT_MAX_BYTES is read)
NO_NVIDIA = "no NVIDIA runtime (the Docker engine lists no 'nvidia' runtime)"
__all__ = ["LABEL_CELL", "NO_NVIDIA", "DockerLauncher", "container_options", "has_nvidia_runtime"]


def has_nvidia_runtime(client: DockerClient) -> bool:
    return "nvidia" in (client.info().get("Runtimes") or {})


def container_options(cell: Cell, settings: Settings, image_id: str, run_id: str = "") -> dict[str, Any]:
    """The keyword arguments of ``containers.run`` for one cell: the isolation and sealing described above."""
    import docker.types

    env = {**cell.variant.env, "BENCH_IMAGE_ID": image_id, "BENCH_VARIANT": cell.variant.name}
    # the canonical inputs the runner made (read-only: the only mount; results come back on stdout)
    volumes = {str(inputs_root()): {"bind": INPUTS_MOUNT, "mode": "ro"}} if cell.inputs is not None else {}
    labels = {
        LABEL_CELL: cell.label,
        LABEL_RUN: run_id,
        LABEL_RUNNER: runner_id(),
        LABEL_DEADLINE: deadline(settings.cell_timeout(cell)),
    }
    options: dict[str, Any] = {
        "command": ["python", "-m", "frameworks.predict", *settings.predict_args(cell, INPUTS_MOUNT)],
        "volumes": volumes,
        "environment": env,
        "network_mode": "none",
        "cpuset_cpus": settings.cpus,
        "mem_limit": settings.memory,
        "memswap_limit": settings.memory,  # equal to the limit: no swap, so a big model fails instead of crawling
        "read_only": True,
        "tmpfs": dict(TMPFS),
        "user": CELL_USER,
        "cap_drop": ["ALL"],
        "security_opt": ["no-new-privileges:true"],
        "pids_limit": PIDS_LIMIT,
        "log_config": docker.types.LogConfig(type="json-file", config={"max-size": LOG_MAX, "max-file": "1"}),
        "labels": labels,
        "detach": True,
    }
    if cell.variant.device == "cuda":
        options["device_requests"] = [docker.types.DeviceRequest(count=-1, capabilities=[["gpu"]])]
    return options


class DockerLauncher:
    name = "docker"

    def __init__(self, client: DockerClient, base_image: str | None = None) -> None:
        self.client = client
        self.base_image = base_image
        self.run_id = ""
        self.log: Log = _stderr
        self.current: Any = None  # the container in flight
        self._nvidia: bool | None = None

    def version(self) -> str | None:
        from .engine import engine_version

        return engine_version(self.client)

    def describe(self) -> str:
        return f"docker (engine {self.version()})"

    def nvidia(self) -> bool:
        if self._nvidia is None:
            self._nvidia = has_nvidia_runtime(self.client)
        return self._nvidia

    # --- before the first cell ------------------------------------------------------------------

    def prepare(self, variants: list[Variant], log: Log) -> Prepared:
        """Build every stale image the chosen variants need, one at a time, before any cell is timed."""
        prepared = Prepared()
        built: dict[str, str] = {}  # image name -> id or error
        for variant in variants:
            if variant.unavailable_reason:
                prepared.skipped[variant.name] = variant.unavailable_reason
                continue
            if variant.device == "cuda" and not self.nvidia():
                prepared.skipped[variant.name] = NO_NVIDIA
                continue
            if variant.image.name not in built:
                built[variant.image.name] = self._build(variant.image, log)
            outcome = built[variant.image.name]
            if outcome.startswith("error: "):
                prepared.errors[variant.name] = outcome.removeprefix("error: ")
            else:
                prepared.ids[variant.name] = outcome
        return prepared

    def _build(self, image: ImageSpec, log: Log) -> str:
        """The image ID, or 'error: ...' (its cells fail with the reason; the other images go on)."""
        from .images import ImageBuildError, ImageValidationError, build_image

        try:
            return build_image(self.client, image, base_image=self.base_image, log=log)
        except (ImageBuildError, ImageValidationError) as exc:
            message = first_line(exc)
        except Exception as exc:  # an engine error, or the engine gone
            if not engine_answers(self.client):
                raise EngineLost(f"{ENGINE_LOST} while building {image.name}") from None
            message = first_line(exc)
        log(f"{image.name}: build failed: {message}")
        return f"error: image {image.name} did not build: {message}"

    def begin(self, run_id: str, log: Log) -> None:
        """Remember the run's id for the labels, and remove what earlier runs left behind."""
        self.run_id, self.log = run_id, log
        self._clear(log, wait=False)

    # --- one cell --------------------------------------------------------------------------------

    def launch(self, cell: Cell, settings: Settings, image_id: str) -> Result:
        self._clear(self.log, wait=True)
        try:
            container = self.client.containers.run(image_id, **container_options(cell, settings, image_id, self.run_id))
        except Exception as exc:  # docker.errors.*, requests' connection errors, a vanished socket
            self._check_engine(cell, settings)
            return runner_result(cell, settings, "failed", f"container did not start: {first_line(exc)}")
        self.current = container
        try:
            return self._finish(container, cell, settings)
        finally:
            self.current = None
            with contextlib.suppress(Exception):  # with the engine gone there is nothing left to remove
                _remove(container)

    def _finish(self, container: Any, cell: Cell, settings: Settings) -> Result:
        timeout = settings.cell_timeout(cell)
        try:
            status = container.wait(timeout=timeout)
        except Exception:  # the wait timed out (the SDK says so as a ReadTimeout or a ConnectionError), or the
            self._check_engine(cell, settings)  # engine went away under the cell: only a ping tells which
            _kill(container)
            return runner_result(cell, settings, "failed", f"timed out after {timeout:g} s")
        try:
            returncode = int(status.get("StatusCode", -1))
            stdout = bounded_logs(container, stdout=True)
            stderr = bounded_logs(container, stdout=False)
            oom = returncode != 0 and _oom_killed(container)
        except Exception as exc:
            self._check_engine(cell, settings)
            return runner_result(
                cell, settings, "failed", f"the container's output could not be read: {first_line(exc)}"
            )
        if oom:
            return runner_result(cell, settings, "failed", f"out of memory (limit {settings.memory})")
        return interpret(cell, settings, returncode, stdout, stderr)

    def _check_engine(self, cell: Cell, settings: Settings) -> None:
        """Raise ``EngineLost`` (with the cell recorded as failed) when the engine does not answer."""
        if not engine_answers(self.client):
            raise EngineLost(f"{ENGINE_LOST} during {cell.label}", runner_result(cell, settings, "failed", ENGINE_LOST))

    def probe(self, image_id: str, command: list[str], settings: Settings) -> str:
        """A short command in a sealed container of the image on this engine (pinned to the run's cpuset):
        its stdout. How a several-machine run learns what a host is and measures its matmul peak."""
        from frameworks.environment import THREAD_ENV

        threads = {name: str(settings.threads) for name in THREAD_ENV}
        labels = {LABEL_CELL: "probe", LABEL_RUN: self.run_id, LABEL_RUNNER: runner_id(), LABEL_DEADLINE: deadline(600)}
        container = self.client.containers.run(
            image_id, command, environment=threads, network_mode="none", cpuset_cpus=settings.cpus,
            mem_limit=settings.memory, read_only=True, tmpfs=dict(TMPFS), user=CELL_USER, cap_drop=["ALL"],
            security_opt=["no-new-privileges:true"], pids_limit=PIDS_LIMIT, detach=True, labels=labels,
        )  # fmt: skip
        self.current = container
        try:
            code = int(container.wait(timeout=600).get("StatusCode", -1))
            out = bounded_logs(container, stdout=True)
            if code != 0:
                raise RuntimeError(f"exit code {code}: {bounded_logs(container, stdout=False).strip()[-300:]}")
            return out
        finally:
            self.current = None
            with contextlib.suppress(Exception):
                _remove(container)

    def abort(self) -> None:
        """Kill and remove the container in flight (another thread: Ctrl-C in a several-machine run)."""
        container = self.current
        if container is not None:
            with contextlib.suppress(Exception):
                _remove(container)

    # --- one benchmark at a time -----------------------------------------------------------------

    def _clear(self, log: Log, wait: bool) -> None:
        """Remove orphaned benchmark containers; with ``wait``, also wait out another runner's live one."""
        waited: set[str] = set()
        while True:
            live = []
            for container in self._benchmark_containers():
                tags = _tags(container)
                why = tags.orphan()
                if why is None:  # another live runner's: wait while it runs; once exited, its runner reads
                    if container.status == "running":  # and removes it (removing it here would fail that cell)
                        live.append((container, tags))
                    continue
                if container.status != "running":
                    why = f"it has exited and {why}"
                log(f"removing benchmark container {container.short_id} {tags.describe()}: {why}")
                with contextlib.suppress(Exception):
                    _remove(container)
            if not live or not wait:
                return
            for container, tags in live:
                if container.id not in waited:
                    waited.add(container.id)
                    log(f"waiting for benchmark container {container.short_id} {tags.describe()} "
                        f"(another runner on this engine) to finish")  # fmt: skip
            time.sleep(WAIT_POLL_S)

    def _benchmark_containers(self) -> list[Any]:
        return list(self.client.containers.list(all=True, filters={"label": LABEL_CELL}))


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _tags(container: Any) -> Tags:
    labels = container.labels or {}
    return Tags(
        cell=labels.get(LABEL_CELL, "?"),
        run=labels.get(LABEL_RUN) or None,
        runner=labels.get(LABEL_RUNNER) or None,
        deadline=parse_deadline(labels.get(LABEL_DEADLINE)),
    )


def bounded_logs(container: Any, stdout: bool) -> str:
    """One stream of the container's output, at most its last ``OUTPUT_MAX_BYTES`` (the result line is last)."""
    kept = bytearray()
    for chunk in container.logs(stdout=stdout, stderr=not stdout, stream=True):
        kept += chunk
        if len(kept) > 2 * OUTPUT_MAX_BYTES:
            del kept[: len(kept) - OUTPUT_MAX_BYTES]
    return bytes(kept[-OUTPUT_MAX_BYTES:]).decode("utf-8", "replace")


def _oom_killed(container: Any) -> bool:
    container.reload()
    return bool(container.attrs.get("State", {}).get("OOMKilled"))


def _kill(container: Any) -> None:
    import docker.errors

    with contextlib.suppress(docker.errors.APIError):  # it ended on its own in the meantime
        container.kill()


def _remove(container: Any) -> None:
    import docker.errors

    with contextlib.suppress(docker.errors.NotFound):
        container.remove(force=True)
