"""Faults on a real engine: a killed runner, the engine stopped mid-cell, a flooding container, a full disk.

Marked ``faults`` (and ``docker``): they kill processes, stop and restart a Docker engine (a second
one, tests/engines.py, so that the main engine and whatever it is building are never disturbed) and
mount a tmpfs, so they need root; in CI they run like every other test. The out-of-memory kill, the
timeout and the corrupt run.json have their tests beside the launchers (tests/test_runner_docker.py,
tests/test_runner_cli.py).
"""

from __future__ import annotations

import contextlib
import os
import resource
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from frameworks.result import RESULTS_FILE
from runner.catalog import load_catalog
from runner.docker_launcher import LABEL_CELL, DockerLauncher, container_options
from runner.engine import ENGINE_LOST
from runner.hosts import Host, connect_host
from runner.launcher import OUTPUT_MAX_BYTES
from runner.plan import plan
from runner.rundir import load_results
from runner.settings import Settings
from tests.conftest import IN_CI, REPO_ROOT
from tests.engines import ENGINE2, Engine, load_image, need_root

pytestmark = [pytest.mark.faults, pytest.mark.docker, pytest.mark.slow]

OPENBLAS = load_catalog().variant("cpu-numpy-openblas")
CPUS = "0" if len(os.sched_getaffinity(0)) == 1 else "0-1"
FAST = ["--iterations", "3", "--warmup", "1", "--min-time", "0", "--max-time", "0", "--no-peak"]


def _need_root() -> None:
    if os.geteuid() != 0:
        if IN_CI:
            pytest.fail("the fault tests need root in CI (they stop the engine and mount a tmpfs)")
        pytest.skip("the fault tests need root")


def _matrix(out: Path, *args: str, engine: str | None = None) -> subprocess.Popen[str]:
    command = [sys.executable, "-m", "runner", "matrix", "--launcher", "docker", "--variants", OPENBLAS.name,
               "--cpus", CPUS, "--out", str(out), *args]  # fmt: skip
    env = {**os.environ, **({"DOCKER_HOST": engine} if engine else {})}
    return subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _benchmark_containers(client: Any, running: bool = False) -> list[Any]:
    return list(client.containers.list(all=not running, filters={"label": LABEL_CELL}))


def _wait_for(condition: Any, timeout: float, what: str, proc: subprocess.Popen[str] | None = None) -> None:
    """Poll ``condition``; on a timeout, what the runner said so far is in the failure."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        if proc is not None and proc.poll() is not None:
            break
        time.sleep(0.2)
    said = ""
    if proc is not None:
        proc.kill()
        said = proc.communicate()[1][-3000:]
    raise AssertionError(f"timed out waiting for {what}\n{said}")


def _run_dir(out: Path) -> Path:
    (run_dir,) = [p for p in out.iterdir() if p.is_dir()]
    return run_dir


@pytest.fixture
def openblas_image(docker_client: Any) -> str:
    prepared = DockerLauncher(docker_client).prepare([OPENBLAS], log=lambda line: None)
    assert not prepared.errors, prepared.errors
    return prepared.ids[OPENBLAS.name]


class MaxContainers:
    """Watches the engine while a run goes on: the most benchmark containers running at once."""

    def __init__(self, client: Any) -> None:
        self.client, self.most, self._stop = client, 0, threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def _watch(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(Exception):  # the engine may be restarting
                self.most = max(self.most, len(_benchmark_containers(self.client, running=True)))
            time.sleep(0.1)

    def __enter__(self) -> MaxContainers:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def test_kill_9_mid_cell_then_resume_removes_the_orphan_and_runs_one_cell_at_a_time(
    docker_client: Any, openblas_image: str, tmp_path: Path
) -> None:
    _need_root()
    proc = _matrix(tmp_path, "--models", "lenet5", "mobilenet_v1", "--iterations", "3000", "--warmup", "1",
                   "--min-time", "0", "--max-time", "0", "--no-peak")  # fmt: skip
    try:
        _wait_for(lambda: _results_so_far(tmp_path) == 1, 600, "the first cell", proc)
        _wait_for(lambda: len(_benchmark_containers(docker_client, running=True)) == 1, 120, "the second cell", proc)
        os.kill(proc.pid, signal.SIGKILL)  # no handler runs: the container is left behind
        proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    (orphan,) = _benchmark_containers(docker_client, running=True)
    run_dir = _run_dir(tmp_path)
    resume = [sys.executable, "-m", "runner", "matrix", "--resume", str(run_dir), "--no-report"]
    with MaxContainers(docker_client) as watch:
        # 3000 MobileNet iterations are minutes: the resumed cell is the orphan's, so shrink it via run.json
        info = (run_dir / "run.json").read_text().replace('"iterations": "3000"', '"iterations": "3"')
        (run_dir / "run.json").write_text(info)
        done = subprocess.run(resume, cwd=REPO_ROOT, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr
    assert f"removing benchmark container {orphan.short_id}" in done.stderr and "is gone" in done.stderr
    assert watch.most <= 1, "two benchmark containers ran at once"
    results = load_results(run_dir).results
    assert [r.model for r in results] == ["lenet5", "mobilenet_v1"], "no duplicate, nothing lost"
    assert all(r.status == "ok" for r in results)
    assert not _benchmark_containers(docker_client), "no container left behind"


def test_another_runners_live_cell_is_waited_for(docker_client: Any, openblas_image: str, tmp_path: Path) -> None:
    """A benchmark container whose runner is alive (here: this test process) is never removed: the
    new run waits until it has finished, then runs its own cell."""
    _need_root()
    settings = Settings((OPENBLAS.name,), ("lenet5",), "docker", cpus=CPUS, timeout=120)
    (cell,) = plan([OPENBLAS], settings)
    options = container_options(cell, settings, openblas_image, run_id="someone-else")
    options["command"] = ["python", "-c", "import time; time.sleep(8)"]
    other = docker_client.containers.run(openblas_image, **options)
    try:
        start = time.monotonic()
        done = subprocess.run([sys.executable, "-m", "runner", "matrix", "--launcher", "docker", "--variants",
                               OPENBLAS.name, "--models", "lenet5", "--cpus", CPUS, *FAST, "--out", str(tmp_path)],
                              cwd=REPO_ROOT, capture_output=True, text=True, timeout=300, check=False)  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert "waiting for benchmark container" in done.stderr and "someone-else" in done.stderr
        assert time.monotonic() - start > 5
        (result,) = load_results(_run_dir(tmp_path)).results
        assert result.status == "ok"
    finally:
        with contextlib.suppress(Exception):  # its runner (this test) removes it
            other.remove(force=True)


def _results_so_far(out: Path) -> int:
    """How many results the one run under ``out`` has written (0 before its directory exists)."""
    return len(load_results(_run_dir(out)).results) if out.exists() and any(out.iterdir()) else 0


@pytest.fixture
def engine2(openblas_image: str) -> Iterator[Engine]:
    """A second engine holding the image, running again after the test whatever the test did to it."""
    need_root()
    engine = Engine(ENGINE2)
    engine.start()
    load_image(engine, openblas_image)
    load_image(engine, "dlbench/base:bookworm")  # so that an image gone stale meanwhile can be built there too
    yield engine
    engine.stop()


def test_engine_stopped_mid_cell_ends_the_run_with_one_line_and_resume_finishes(
    engine2: Engine, tmp_path: Path
) -> None:
    proc = _matrix(tmp_path, "--models", "lenet5", "mobilenet_v1", "--iterations", "2000", "--warmup", "1",
                   "--min-time", "0",
                   "--max-time", "0", "--no-peak", "--reconnect-wait", "1", engine=engine2.url)  # fmt: skip
    client = connect_host(Host("two", engine2.url))
    try:
        _wait_for(lambda: _results_so_far(tmp_path) == 1, 600, "the first cell", proc)
        _wait_for(lambda: len(_benchmark_containers(client, running=True)) == 1, 120, "the second cell", proc)
        engine2.stop()
        _, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 3, stderr
    assert "Traceback" not in stderr
    last = stderr.strip().splitlines()[-1]
    assert last.startswith(f"error: {ENGINE_LOST}") and "--resume" in last
    run_dir = _run_dir(tmp_path)
    first, second = load_results(run_dir).results
    assert first.status == "ok" and second.status == "failed" and second.error == ENGINE_LOST

    engine2.start()
    info = (run_dir / "run.json").read_text().replace('"iterations": "2000"', '"iterations": "3"')
    (run_dir / "run.json").write_text(info)
    env = {**os.environ, "DOCKER_HOST": engine2.url}
    done = subprocess.run([sys.executable, "-m", "runner", "matrix", "--resume", str(run_dir), "--no-report"],
                          cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "2 cells (1 already done)" in done.stderr, "the cell the engine took with it runs again"
    results = {r.model: r for r in load_results(run_dir).results}  # the newest line of each cell
    assert results["mobilenet_v1"].status == "ok" and results["lenet5"] == first


def test_engine_gone_before_the_run_is_one_line(tmp_path: Path) -> None:
    proc = _matrix(tmp_path, "--models", "lenet5", *FAST, engine=f"unix://{tmp_path / 'no-engine.sock'}")
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 2 and "Traceback" not in stderr
    assert stderr.strip().splitlines()[-1].startswith("error: no Docker engine answers")


def test_a_flooding_container_cannot_exhaust_the_runners_memory(docker_client: Any, openblas_image: str) -> None:
    settings = Settings((OPENBLAS.name,), ("lenet5",), "docker", cpus=CPUS, timeout=300)
    (cell,) = plan([OPENBLAS], settings)
    options = container_options(cell, settings, openblas_image)
    flood = "import sys\nblock = 'x' * (1 << 20) + '\\n'\nfor _ in range(1024): sys.stdout.write(block)\n"
    options["command"] = ["python", "-c", flood]  # 1 GiB on stdout
    container = docker_client.containers.run(openblas_image, **options)
    launcher = DockerLauncher(docker_client)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss << 10
    try:
        result = launcher._finish(container, cell, settings)
    finally:
        container.remove(force=True)
    grown = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss << 10) - before
    assert result.status == "failed" and "exit code 0" in (result.error or "")
    assert grown < 4 * OUTPUT_MAX_BYTES, f"the runner's memory grew by {grown >> 20} MiB reading a 1 GiB flood"


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    _need_root()
    mount = tmp_path / "disk"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16k", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_full_results_disk_is_one_line_and_never_a_partial_line(
    docker_client: Any, openblas_image: str, small_disk: Path
) -> None:
    # run.json and the latency line fit; the throughput line (7 points of 300 samples, ~40 KB) does not
    proc = _matrix(small_disk, "--models", "lenet5", "--scenarios", "latency", "throughput", "threads",
                   "--batches", "1", "2", "4", "8", "16", "32", "64", "--iterations", "300", "--warmup", "1",
                   "--min-time", "0", "--max-time", "0", "--no-peak", "--no-report")  # fmt: skip
    stdout, stderr = proc.communicate(timeout=600)
    assert proc.returncode == 2, stderr
    last = stderr.strip().splitlines()[-1]
    assert last.startswith("error: cannot write") and "No space left on device" in last and "--resume" in last
    data = (_run_dir(small_disk) / RESULTS_FILE).read_bytes()
    assert data.endswith(b"\n") or data == b"", "a line was cut short"
    assert len(load_results(_run_dir(small_disk)).results) == data.count(b"\n")
    assert stdout.strip().startswith("{"), "the cell it could not record is printed, not lost"


def test_replace_is_used_for_run_json_so_a_full_disk_keeps_the_old_one(small_disk: Path) -> None:
    from frameworks.environment import environment
    from frameworks.result import RunInfo
    from runner.rundir import read_run_info, write_run_info

    info = RunInfo("r", "c", "docker", "2026-01-01T00:00:00+00:00", environment())
    write_run_info(small_disk, info)
    with contextlib.suppress(OSError), (small_disk / "filler").open("wb") as filler:  # whatever still fits
        while True:
            filler.write(b"x" * 1024)
            filler.flush()
    with pytest.raises(OSError):
        write_run_info(small_disk, replace(info, command="c" * (64 << 10)))
    assert read_run_info(small_disk) == info
