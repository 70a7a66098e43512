"""The local launcher: the catalog's CPU images as virtualenvs, for machines with no Docker engine.

One virtualenv per catalog image (variants sharing an image share it; the variant's environment
still applies per cell) under ``$DLBENCH_CACHE/venvs/<image>`` (default ``~/.cache/dlbench``),
holding the image's pinned requirements, installed by the host's pip (its configuration applies).
Each cell runs the same ``python -m frameworks.predict`` as the containers, from the repository
root (an installed wheel: from a copy of ``frameworks/`` alone, ``runner.source.cell_root``), in a
subprocess of its own session pinned to the cpuset and killed (with its children) at the timeout.
There is no memory limit: ``RLIMIT_AS`` counts reserved address space, which JIT frameworks reserve
by the gigabyte, so it would fail healthy cells; run.json says so.

A marker file records the hash of what the venv was built from (the pins and the interpreter):
a changed pin rebuilds it. It is not the image's spec hash, which also covers ``frameworks/``;
the venv runs ``frameworks/`` from the working tree, so editing it needs no reinstall.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from frameworks.environment import THREAD_ENV
from frameworks.result import Result

from .catalog import CatalogError, ImageSpec, Variant, load_catalog
from .cell import Cell
from .exclusive import ENV_DEADLINE, ENV_RUN, ENV_RUNNER, WAIT_POLL_S, Tags, deadline, parse_deadline, runner_id
from .interpret import interpret, runner_result
from .launcher import OUTPUT_MAX_BYTES, Log, Prepared
from .limits import parse_cpuset
from .paths import cache_dir, inputs_root
from .settings import Settings
from .source import cell_root

GENERIC_DOCKERFILE = "docker/Dockerfile"
MARKER = ".dlbench-venv.json"
VENV_SCHEMA = 1
CUDA_ONLY_DOCKER = "the local launcher runs CPU variants only"


class VenvError(RuntimeError):
    """A virtualenv that could not be built: one line naming the image and pip's error."""


def venv_dir(image_name: str) -> Path:
    return cache_dir() / "venvs" / image_name


def venv_hash(image: ImageSpec) -> str:
    """What the venv is built from: the pins and this interpreter's version."""
    data = {"schema": VENV_SCHEMA, "requirements": list(image.requirements), "python": sys.version.split()[0]}
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


def venv_id(image: ImageSpec) -> str:
    """The 'image ID' recorded for a local cell: which venv, built from what."""
    return f"venv:{image.name}:{venv_hash(image)}"


def unsupported(variant: Variant) -> str | None:
    """Why the local launcher cannot run ``variant`` faithfully, or None when it can."""
    if variant.unavailable_reason:
        return variant.unavailable_reason
    if variant.device != "cpu":
        return CUDA_ONLY_DOCKER
    host = f"{sys.version_info.major}.{sys.version_info.minor}"
    if variant.image.python != host:
        # Caffe, Caffe2, Chainer, NNabla: Debian bullseye's Python 3.9; a venv of this interpreter is another build.
        return (f"{variant.image.name} runs on Python {variant.image.python} (Debian {variant.image.release}), "
                f"this host on {host}: it runs in its Docker image only")  # fmt: skip
    if variant.image.dockerfile != GENERIC_DOCKERFILE:
        # numpy-mkl: Debian's NumPy with libblas pointed at MKL. No pip install reproduces that
        # (PyPI's NumPy always bundles OpenBLAS), so the local result would be OpenBLAS mislabelled.
        return (f"{variant.image.name} is built by {variant.image.dockerfile}, not by pip alone: "
                "it runs in its Docker image only")  # fmt: skip
    return None


def _python(venv: Path) -> Path:
    return venv / "bin" / "python"


def _marker(venv: Path) -> dict[str, str] | None:
    try:
        data = json.loads((venv / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def venv_state(image: ImageSpec) -> str:
    """'current', 'stale' (pins changed), or 'missing'."""
    venv = venv_dir(image.name)
    marker = _marker(venv)
    if marker is None or not _python(venv).exists():
        return "missing"
    return "current" if marker.get("hash") == venv_hash(image) else "stale"


def venv_python(image_name: str) -> Path | None:
    """The interpreter of the image's venv when it is built and current; else None.

    The tests use it to reach MXNet, which cannot share an environment with TensorFlow.
    """
    try:
        image = load_catalog().images.get(image_name)
    except CatalogError:
        return None
    if image is None or venv_state(image) != "current":
        return None
    return _python(venv_dir(image_name))


@contextlib.contextmanager
def _locked(venv: Path) -> Iterator[None]:
    """One builder per venv at a time (CI setup and a test session may both ask for it)."""
    venv.parent.mkdir(parents=True, exist_ok=True)
    with open(venv.parent / f".{venv.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def ensure_venv(image: ImageSpec, log: Log = print) -> Path:
    """The venv's interpreter, building the venv first unless it is current.

    A venv with a different marker is recreated from scratch (no package of the old pins may
    linger); one without a marker is completed in place by pip, which leaves satisfied pins alone.
    """
    venv = venv_dir(image.name)
    with _locked(venv):
        state = venv_state(image)
        if state == "current":
            return _python(venv)
        fresh = state == "stale" or not _python(venv).exists()
        log(f"{image.name}: {'creating' if fresh else 'completing'} venv {venv} ({', '.join(image.requirements)})")
        (venv / MARKER).unlink(missing_ok=True)
        if fresh:
            _run([sys.executable, "-m", "venv", "--clear", str(venv)], image, "python -m venv")
        python = str(_python(venv))
        _run([python, "-m", "pip", "install", "--progress-bar", "off", *image.requirements], image, "pip install")
        _run([python, "-m", "pip", "check"], image, "pip check")
        marker = {"hash": venv_hash(image), "image": image.name, "requirements": " ".join(image.requirements)}
        (venv / MARKER).write_text(json.dumps(marker, indent=2) + "\n", encoding="utf-8")
        log(f"{image.name}: venv ready ({python})")
        return _python(venv)


def _run(command: list[str], image: ImageSpec, what: str) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    proc = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if proc.returncode != 0:
        lines = [line for line in (proc.stderr + proc.stdout).splitlines() if line.strip()]
        errors = [line for line in lines if line.startswith("ERROR")] or lines or ["?"]
        raise VenvError(f"{image.name}: {what} failed: {errors[-1].strip()}")


def cell_env(cell: Cell, settings: Settings, image_id: str, run_id: str = "") -> dict[str, str]:
    """The host's environment minus anything that would change which Python runs, plus the variant's,
    plus the tags that tell a later runner whose process this is (``exclusive``)."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env.update({name: str(settings.threads) for name in THREAD_ENV})
    env.update(cell.variant.env)
    env.update(BENCH_IMAGE_ID=image_id, BENCH_VARIANT=cell.variant.name, PYTHONDONTWRITEBYTECODE="1")
    env.update({ENV_RUN: run_id, ENV_RUNNER: runner_id(), ENV_DEADLINE: deadline(settings.cell_timeout(cell))})
    return env


def tagged_processes() -> dict[int, Tags]:
    """Process groups of benchmark cells on this machine (their leaders' tags), from /proc."""
    groups: dict[int, Tags] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            raw = Path(f"/proc/{entry}/environ").read_bytes()
            pgid = os.getpgid(int(entry))
        except (OSError, ProcessLookupError):
            continue
        env = dict(item.split(b"=", 1) for item in raw.split(b"\0") if b"=" in item)
        runner = env.get(ENV_RUNNER.encode())
        if runner is None or pgid in groups:
            continue
        text = {k.decode("utf-8", "replace"): v.decode("utf-8", "replace") for k, v in env.items()}
        groups[pgid] = Tags(text.get("BENCH_VARIANT", "?"), text.get(ENV_RUN) or None, text[ENV_RUNNER] or None,
                            parse_deadline(text.get(ENV_DEADLINE)))  # fmt: skip
    return groups


class LocalLauncher:
    name = "local"

    def __init__(self) -> None:
        self.pythons: dict[str, Path] = {}  # image name -> venv interpreter
        self.run_id = ""
        self.log: Log = lambda line: print(line, file=sys.stderr, flush=True)
        self.current: subprocess.Popen[bytes] | None = None  # the cell in flight

    def version(self) -> str | None:
        return None

    def describe(self) -> str:
        return f"local (one virtualenv per image under {cache_dir() / 'venvs'})"

    def prepare(self, variants: list[Variant], log: Log) -> Prepared:
        """Build every venv the chosen variants need, before any cell is timed."""
        prepared = Prepared()
        errors: dict[str, str] = {}
        for variant in variants:
            reason = unsupported(variant)
            if reason:
                prepared.skipped[variant.name] = reason
                continue
            image = variant.image
            if image.name not in self.pythons and image.name not in errors:
                try:
                    self.pythons[image.name] = ensure_venv(image, log)
                except VenvError as exc:
                    log(str(exc))
                    errors[image.name] = f"venv {image.name} did not build: {exc}"
            if image.name in errors:
                prepared.errors[variant.name] = errors[image.name]
            else:
                prepared.ids[variant.name] = venv_id(image)
        return prepared

    def begin(self, run_id: str, log: Log) -> None:
        """Remember the run's id for the tags, and kill what killed runners left running."""
        self.run_id, self.log = run_id, log
        self._clear(wait=False)

    def launch(self, cell: Cell, settings: Settings, image_id: str) -> Result:
        python = self.pythons.get(cell.variant.image.name) or ensure_venv(cell.variant.image, lambda _: None)
        command = [str(python), "-m", "frameworks.predict", *settings.predict_args(cell, str(inputs_root()))]
        cpus = parse_cpuset(settings.cpus)
        self._clear(wait=True)
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            try:
                proc = subprocess.Popen(
                    command, cwd=cell_root(), env=cell_env(cell, settings, image_id, self.run_id), stdout=out,
                    stderr=err, start_new_session=True, preexec_fn=lambda: os.sched_setaffinity(0, cpus),
                )  # fmt: skip
            except OSError as exc:
                return runner_result(cell, settings, "failed", f"predict did not start: {exc}")
            self.current = proc
            timeout = settings.cell_timeout(cell)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                _kill_group(proc.pid, proc)
                return runner_result(cell, settings, "failed", f"timed out after {timeout:g} s")
            except BaseException:  # Ctrl-C: never leave a benchmark running behind the runner
                _kill_group(proc.pid, proc)
                raise
            finally:
                self.current = None
            return interpret(cell, settings, proc.returncode, _tail(out), _tail(err))

    def abort(self) -> None:
        """Kill the cell in flight and what it started (another thread's Ctrl-C)."""
        proc = self.current
        if proc is not None:
            _kill_group(proc.pid)

    def _clear(self, wait: bool) -> None:
        """Kill orphaned cells' process groups; with ``wait``, wait out another runner's live one."""
        waited: set[int] = set()
        while True:
            live = []
            for pgid, tags in tagged_processes().items():
                why = tags.orphan()
                if why is None:
                    live.append((pgid, tags))
                    continue
                self.log(f"killing benchmark process group {pgid} {tags.describe()}: {why}")
                _kill_group(pgid)
            if not live or not wait:
                return
            for pgid, tags in live:
                if pgid not in waited:
                    waited.add(pgid)
                    self.log(f"waiting for benchmark process group {pgid} {tags.describe()} (another runner)")
            time.sleep(WAIT_POLL_S)


def _tail(stream: IO[bytes]) -> str:
    """The last ``OUTPUT_MAX_BYTES`` of a cell's output (the result line is last): memory stays bounded."""
    size = stream.seek(0, os.SEEK_END)
    stream.seek(max(0, size - OUTPUT_MAX_BYTES))
    return stream.read().decode("utf-8", "replace")


def _kill_group(pgid: int, proc: subprocess.Popen[bytes] | None = None) -> None:
    """Kill predict and anything it started (compiler workers, a sweep's points), then reap it."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)
    if proc is not None:
        proc.wait()
