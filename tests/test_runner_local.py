"""The local backend for real: a virtualenv built from the catalog (cpu-numpy-openblas: NumPy only,
cheap), the same ``python -m frameworks.predict`` as the containers, and its failure paths
(a timeout, a crash, variants it cannot run), plus an interrupted matrix resumed to completion."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import replace
from pathlib import Path

import pytest

from frameworks.result import Result
from runner.catalog import load_catalog
from runner.cell import Cell
from runner.local_launcher import LocalLauncher, ensure_venv, unsupported, venv_id, venv_python, venv_state
from runner.plan import plan
from runner.rundir import load_results, read_run_info
from runner.settings import Settings
from tests.conftest import REPO_ROOT, run_runner
from tests.fixtures.make_report_fixtures import schema4_dict

CATALOG = load_catalog()
OPENBLAS = CATALOG.variant("cpu-numpy-openblas")
SETTINGS = Settings(("cpu-numpy-openblas",), ("lenet5",), "local", cpus="0", timeout=120).with_options(
    iterations=3, warmup=1
)
BASE = ["--backend", "local", "--variants", "cpu-numpy-openblas", "--warmup", "1", "--min-time", "0",
        "--max-time", "0", "--no-peak"]  # fmt: skip


@pytest.fixture(scope="module")
def openblas_python() -> Path:
    """The real venv (built once, then reused from the cache like any user's)."""
    return ensure_venv(OPENBLAS.image, log=lambda line: None)


runner = run_runner


def only_run_dir(out: Path) -> Path:
    (run_dir,) = [p for p in out.iterdir() if p.is_dir()]
    return run_dir


def test_venv_is_current_and_found(openblas_python: Path) -> None:
    assert venv_state(OPENBLAS.image) == "current"
    assert venv_python("numpy-openblas") == openblas_python
    assert venv_python("no-such-image") is None
    out = subprocess.run([str(openblas_python), "-c", "import numpy; print(numpy.__version__)"],
                         capture_output=True, text=True, check=True)  # fmt: skip
    assert f"numpy=={out.stdout.strip()}" in OPENBLAS.image.requirements


def test_matrix_end_to_end(openblas_python: Path, tmp_path: Path) -> None:
    proc = runner("matrix", *BASE, "--models", "lenet5", "--iterations", "3", "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert "launcher: local" in proc.stderr
    assert "[1/1] cpu-numpy-openblas im2col lenet5 ... " in proc.stderr and "(ok)" in proc.stderr
    run_dir = only_run_dir(tmp_path)
    (result,) = load_results(run_dir).results
    assert result.status == "ok" and result.verified and len(result.samples_s) == 3
    assert result.variant == "cpu-numpy-openblas" and result.launcher == "local"
    assert result.threads == len(os.sched_getaffinity(0)) and result.build.get("blas") == "scipy-openblas"
    assert result.environment is not None and result.environment.image_id == venv_id(OPENBLAS.image)
    info = read_run_info(run_dir)
    assert info.launcher == "local" and info.finished_at is not None
    command = "python -m runner matrix --preset default --variants cpu-numpy-openblas --models lenet5"
    assert info.command.startswith(command)
    assert info.settings["memory"].startswith("not limited") and info.images["cpu-numpy-openblas"].startswith("venv:")


@pytest.mark.slow
def test_timeout_is_a_failed_cell_and_kills_predict(openblas_python: Path) -> None:
    token = uuid.uuid4().hex
    settings = replace(SETTINGS, timeout=3).with_options(iterations=10**8)
    (cell,) = plan([replace(OPENBLAS, env={"DLBENCH_TEST_TOKEN": token})], settings)
    start = time.monotonic()
    result = LocalLauncher().launch(cell, settings, venv_id(OPENBLAS.image))
    assert time.monotonic() - start < 30
    assert result.status == "failed" and result.error == "timed out after 3 s"
    assert result.model == "lenet5" and result.launcher == "local"
    assert not _processes_with(token), "predict outlived its timeout"


def _processes_with(token: str) -> list[int]:
    found = []
    for pid in (p for p in os.listdir("/proc") if p.isdigit()):
        try:
            if token.encode() in Path(f"/proc/{pid}/environ").read_bytes():
                found.append(int(pid))
        except OSError:
            continue
    return found


def test_a_crash_is_a_failed_cell_with_its_reason(openblas_python: Path) -> None:
    # An interpreter that dies before predict starts: no result line, a fatal error on stderr.
    cell = Cell(replace(OPENBLAS, env={"PYTHONMALLOC": "no-such-allocator"}), "im2col", "lenet5")
    result = LocalLauncher().launch(cell, SETTINGS, venv_id(OPENBLAS.image))
    assert result.status == "failed"
    assert result.error is not None and result.error.startswith("exit code 1: Fatal Python error")
    assert "unknown allocator" in result.error


def test_variants_the_local_backend_cannot_run_are_skipped(tmp_path: Path) -> None:
    assert unsupported(OPENBLAS) is None
    assert "CPU variants only" in (unsupported(CATALOG.variant("cuda-torch")) or "")
    assert "numpy-mkl.Dockerfile" in (unsupported(CATALOG.variant("cpu-numpy-mkl")) or "")
    proc = runner("matrix", "--backend", "local", "--variants", "cpu-numpy-mkl", "cuda-onnxruntime",
                  "--models", "lenet5", "--no-peak", "--out", str(tmp_path))  # fmt: skip
    assert proc.returncode == 4, proc.stderr  # a matrix that measured nothing says so (EXIT_NOTHING_RAN)
    assert proc.stderr.strip().splitlines()[-1].startswith("error: nothing was measured: every one of the 2 cells")
    results = load_results(only_run_dir(tmp_path)).results
    assert [(r.variant, r.status) for r in results] == [("cpu-numpy-mkl", "skipped"), ("cuda-onnxruntime", "skipped")]


@pytest.mark.slow
def test_interrupted_matrix_resumes_without_redoing_cells(openblas_python: Path, tmp_path: Path) -> None:
    token = uuid.uuid4().hex
    args = ["matrix", *BASE, "--models", "lenet5", "mobilenet_v1", "--iterations", "2000", "--timeout", "300"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "runner", *args, "--out", str(tmp_path)],
        cwd=REPO_ROOT, env={**os.environ, "DLBENCH_TEST_TOKEN": token}, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            dirs = [p for p in tmp_path.iterdir() if (p / "results.jsonl").exists()]
            if dirs and len(load_results(dirs[0]).results) == 1:
                break
            time.sleep(0.2)
        time.sleep(1)  # mobilenet_v1 is now running
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, stderr
    run_dir = only_run_dir(tmp_path)
    assert f"python -m runner matrix --resume {run_dir}" in stderr
    assert not _processes_with(token), "the cell in flight outlived the runner"
    first = (run_dir / "results.jsonl").read_bytes()
    assert first.count(b"\n") == 1
    # A kill in the middle of a write: the last line is cut short; resume reports it and redoes that cell.
    (run_dir / "results.jsonl").write_bytes(first + b'{"framework": "numpy", "mo')
    lenet = Result.from_json(first.decode())
    assert lenet.model == "lenet5"

    # The run's own settings apply (2000 MobileNet iterations would take minutes): shrink them the way a user cannot.
    info = json.loads((run_dir / "run.json").read_text())
    info["settings"]["iterations"] = "2"
    (run_dir / "run.json").write_text(json.dumps(info))
    resumed = runner("matrix", "--resume", str(run_dir), "--iterations", "9")
    assert resumed.returncode == 0, resumed.stderr
    assert "resume: ignoring --iterations" in resumed.stderr
    assert "truncated last line" in resumed.stderr
    assert "2 cells (1 already done)" in resumed.stderr
    assert "[2/2] cpu-numpy-openblas im2col mobilenet_v1 ... " in resumed.stderr and "[1/2]" not in resumed.stderr
    data = (run_dir / "results.jsonl").read_bytes()
    assert data.startswith(first), "the finished cell's line is untouched"
    results = load_results(run_dir).results
    assert [r.model for r in results] == ["lenet5", "mobilenet_v1"]
    assert results[1].status == "ok" and len(results[1].samples_s) == 2
    after = read_run_info(run_dir)  # the interrupted run's own timing: it stopped when its one cell was recorded
    assert after.started_at == info["started_at"] and after.finished_at == lenet.finished_at
    assert [r.cells for r in after.resumes] == [1] and after.resumes[0].finished_at

    again = runner("matrix", "--resume", str(run_dir))
    assert again.returncode == 0 and "2 cells (2 already done)" in again.stderr
    assert (run_dir / "results.jsonl").read_bytes() == data
    last = read_run_info(run_dir)
    assert (last.started_at, last.finished_at) == (after.started_at, after.finished_at)
    assert [r.cells for r in last.resumes] == [1, 0]


def test_a_whole_matrix_never_imports_a_framework_in_the_runner(openblas_python: Path, tmp_path: Path) -> None:
    from tests.test_runner_cli import _IMPORTS_AFTER, FRAMEWORK_MODULES

    args = ["matrix", *BASE, "--models", "lenet5", "--iterations", "2", "--out", str(tmp_path)]
    proc = subprocess.run([sys.executable, "-c", _IMPORTS_AFTER, *args], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=300, check=False)  # fmt: skip
    lines = dict(line.split(" ", 1) for line in proc.stdout.splitlines() if line.startswith(("EXIT", "MODULES")))
    assert lines["EXIT"] == "0", proc.stderr
    assert not set(lines["MODULES"].split()) & set(FRAMEWORK_MODULES)  # the reports may use matplotlib (NumPy)


@pytest.mark.slow
def test_every_scenario_through_the_matrix_and_resume_by_key(openblas_python: Path, tmp_path: Path) -> None:
    args = ["matrix", *BASE, "--models", "lenet5", "--iterations", "3", "--out", str(tmp_path)]
    proc = runner(*args, "--scenarios", "latency", "throughput", "threads", "--batches", "1", "4")
    assert proc.returncode == 0, proc.stderr
    run_dir = only_run_dir(tmp_path)
    results = load_results(run_dir).results
    assert [r.scenario for r in results] == ["latency", "throughput", "threads"]
    assert all(r.status == "ok" and r.verified and r.launcher == "local" for r in results)
    throughput, threads = results[1], results[2]
    assert [p.batch for p in throughput.points] == [1, 4] and throughput.config["batches"] == "1 4"
    assert [p.threads for p in threads.points] == list(range(1, len(os.sched_getaffinity(0)) + 1))
    info = read_run_info(run_dir)
    assert info.settings["scenarios"] == "latency throughput threads" and info.settings["batches"] == "1 4"
    assert "--scenarios latency throughput threads" in info.command and "--batches 1 4" in info.command
    assert "[2/3] cpu-numpy-openblas im2col lenet5 [throughput] ... 2/2 points (ok)" in proc.stderr

    # drop the throughput line: resume finds exactly that cell missing, by its key
    lines = (run_dir / "results.jsonl").read_text().splitlines()
    (run_dir / "results.jsonl").write_text("\n".join([lines[0], lines[2]]) + "\n")
    resumed = runner("matrix", "--resume", str(run_dir))
    assert resumed.returncode == 0, resumed.stderr
    assert "3 cells (2 already done)" in resumed.stderr and "[2/3]" in resumed.stderr
    assert sorted(r.key() for r in load_results(run_dir).results) == sorted(r.key() for r in results)


def test_a_run_from_before_the_scenario_axis_resumes(openblas_python: Path, tmp_path: Path) -> None:
    """run.json and results.jsonl of schema 1, as the previous release wrote them."""
    done = runner("matrix", *BASE, "--models", "lenet5", "--iterations", "2", "--out", str(tmp_path))
    assert done.returncode == 0, done.stderr
    run_dir = only_run_dir(tmp_path)
    info = json.loads((run_dir / "run.json").read_text())
    settings = {k: v for k, v in info["settings"].items() if k not in ("scenarios", "options_given", "batch")}
    settings["backend"] = settings.pop("launcher")
    info.update(schema_version=1, backend=info.pop("launcher"), settings={**settings, "models": "lenet5 mobilenet_v1"})
    (run_dir / "run.json").write_text(json.dumps(info))
    line = schema4_dict(json.loads((run_dir / "results.jsonl").read_text()))
    for key in ("scenario", "config", "identity", "points", "threads_in_use"):
        line.pop(key)
    line.update(schema_version=1, backend=line.pop("launcher"))
    (run_dir / "results.jsonl").write_text(json.dumps(line) + "\n")
    resumed = runner("matrix", "--resume", str(run_dir))
    assert resumed.returncode == 0, resumed.stderr
    assert "2 cells (1 already done)" in resumed.stderr
    assert [r.model for r in load_results(run_dir).results] == ["lenet5", "mobilenet_v1"]
