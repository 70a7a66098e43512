"""``python -m runner`` as a user runs it: bad input is one line and exit 2, and the host stays
free of deep-learning frameworks. No Docker engine is needed (an unreachable one is simulated
with DOCKER_HOST pointing at a socket that does not exist)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from frameworks.backends.registry import FRAMEWORKS
from tests.conftest import REPO_ROOT, run_runner

NO_ENGINE = {"DOCKER_HOST": "unix:///nonexistent/dlbench-test.sock"}
# Every registered framework's package, and the ones they pull in (keras with TensorFlow, jax with XLA).
FRAMEWORK_MODULES = (*(info.import_name for info in FRAMEWORKS.values() if info.import_name != "numpy"), "jax", "keras")


def runner(*args: str, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return run_runner(*args, env=env, timeout=timeout)


def assert_one_line_exit_2(proc: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: ")
    for fragment in fragments:
        assert fragment in lines[0]


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["matrix", "--variants", "cpu-caffe"], ["unknown variant 'cpu-caffe'", "valid variants: cpu-numpy-openblas"]),
        (["matrix", "--models", "alexnet"], ["unknown model 'alexnet'", "valid models: lenet5, vgg16, mobilenet_v1"]),
        (["build", "cpu-caffe"], ["unknown variant 'cpu-caffe'"]),
        (["venv", "cpu-caffe"], ["unknown variant 'cpu-caffe'"]),
        (["venv", "cuda-torch"], ["CPU variants only"]),
        (["matrix", "--cpus", "0-4095"], ["not available here"]),
        (["matrix", "--cpus", "zero"], ["expected a cpuset"]),
        (["matrix", "--memory", "lots"], ["expected a size"]),
        (["matrix", "--iterations", "0"], ["--iterations must be at least 1"]),
        (["matrix", "--timeout", "0"], ["--timeout must be positive"]),
        (["matrix", "--reconnect-wait", "-1"], ["--reconnect-wait must not be negative"]),
        (["matrix", "--frobnicate"], ["unrecognized arguments: --frobnicate"]),
        (["matrix", "--backend", "kubernetes"], ["invalid choice: 'kubernetes'"]),
        (["matrix", "--launcher", "kubernetes"], ["invalid choice: 'kubernetes'"]),
        (
            ["matrix", "--scenarios", "prune"],
            ["unknown scenario 'prune'", "valid scenarios: latency, throughput, threads, train"],
        ),
        (["matrix", "--batches", "1", "4"], ["--batches applies to the throughput scenario, not to latency"]),
        (["matrix", "--scenarios", "throughput", "--batches", "0"], ["throughput: --batches must be positive"]),
        (["matrix", "--scenarios", "threads", "--thread-counts", "x"], ["argument --thread-counts: invalid int"]),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args: list[str], fragments: list[str]) -> None:
    assert_one_line_exit_2(runner(*args, env=NO_ENGINE), *fragments)


def test_engine_unreachable_with_backend_docker() -> None:
    proc = runner("matrix", "--backend", "docker", "--variants", "cpu-numpy-openblas", env=NO_ENGINE)
    assert_one_line_exit_2(proc, "no Docker engine answers", "bash .ci/install-docker")


def test_engine_unreachable_for_build_and_base_image() -> None:
    assert_one_line_exit_2(runner("build", "cpu-numpy-openblas", env=NO_ENGINE), "no Docker engine answers")
    assert_one_line_exit_2(runner("base-image", env=NO_ENGINE), "no Docker engine answers")


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("schema = 1\n[variants.cpu-x]\nimage = 'nope'\nmodes = []\n", "unknown image 'nope'"),
        ("schema = [\n", "not valid TOML"),
        ("schema = 2\n", "schema must be 1"),
    ],
)
def test_malformed_catalog(tmp_path: Path, text: str, fragment: str) -> None:
    catalog = tmp_path / "catalog.toml"
    catalog.write_text(text, encoding="utf-8")
    for command in (["list"], ["matrix"], ["build"]):
        assert_one_line_exit_2(runner("--catalog", str(catalog), *command, env=NO_ENGINE), fragment)


def test_missing_catalog(tmp_path: Path) -> None:
    assert_one_line_exit_2(runner("--catalog", str(tmp_path / "none.toml"), "list"), "catalog not found")


def _run_dir(tmp_path: Path, run_json: str | None, results: str | None = None) -> Path:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    if run_json is not None:
        (run_dir / "run.json").write_text(run_json, encoding="utf-8")
    if results is not None:
        (run_dir / "results.jsonl").write_text(results, encoding="utf-8")
    return run_dir


@pytest.mark.parametrize(
    ("run_json", "fragment"),
    [
        (None, "run.json: not found"),
        ("{not json", "unreadable"),
        ('{"schema_version": 1}', "run: "),
        ('{"schema_version": 99}', "unsupported schema_version 99"),
    ],
)
def test_malformed_resume_dir(tmp_path: Path, run_json: str | None, fragment: str) -> None:
    run_dir = _run_dir(tmp_path, run_json)
    assert_one_line_exit_2(runner("matrix", "--resume", str(run_dir), env=NO_ENGINE), fragment)
    assert_one_line_exit_2(runner("report", str(run_dir)), fragment)


def test_resume_of_a_run_without_its_settings(tmp_path: Path) -> None:
    info = {
        "schema_version": 1, "run_id": "r", "command": "c", "backend": "local", "started_at": "2026-01-01T00:00:00",
        "host": {"cpu_model": "x", "cpu_count": 1, "cpus_available": 1, "cpuset": "0", "memory_bytes": 1,
                 "python": "3.11", "os": "linux", "in_container": False},
        "settings": {"variants": "cpu-numpy-openblas"},
    }  # fmt: skip
    run_dir = _run_dir(tmp_path, json.dumps(info))
    assert_one_line_exit_2(runner("matrix", "--resume", str(run_dir), env=NO_ENGINE), "settings.models is missing")


def test_resume_refuses_a_corrupt_results_file(tmp_path: Path) -> None:
    from frameworks.environment import environment
    from frameworks.result import RunInfo
    from runner.settings import Settings

    settings = Settings(("cpu-numpy-openblas",), ("lenet5",), "local", cpus="0")
    info = RunInfo("r", settings.command(), "local", "2026-01-01T00:00:00", environment(), settings=settings.to_dict())
    run_dir = _run_dir(tmp_path, info.to_json(), "this is not a result\n")
    proc = runner("matrix", "--resume", str(run_dir), env=NO_ENGINE)
    assert proc.returncode == 2
    assert "refusing to append to a corrupt file" in proc.stderr.strip().splitlines()[-1]


def test_list_without_an_engine_says_so() -> None:
    proc = runner("list", env=NO_ENGINE)
    assert proc.returncode == 0, proc.stderr
    assert "engine unreachable" in proc.stdout
    assert "Docker engine: unreachable: no Docker engine answers" in proc.stdout
    for variant in ("cpu-numpy-openblas", "cpu-torch", "cuda-onnxruntime"):
        assert variant in proc.stdout
    numpy_mkl = next(line for line in proc.stdout.splitlines() if line.startswith("cpu-numpy-mkl "))
    assert numpy_mkl.rstrip().endswith("unsupported")


_IMPORTS_AFTER = """
import runpy, sys
sys.argv = ["runner", *sys.argv[1:]]
try:
    runpy.run_module("runner", run_name="__main__", alter_sys=True)
except SystemExit as exc:
    code = exc.code
print("EXIT", code)
print("MODULES", " ".join(sorted({m.split(".")[0] for m in sys.modules})))
"""


@pytest.mark.parametrize("args", [["list"], ["matrix", "--models", "alexnet"], ["report", "/nonexistent"]])
def test_the_runner_never_imports_a_framework(args: list[str]) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", _IMPORTS_AFTER, *args],
        cwd=REPO_ROOT, env={**os.environ, **NO_ENGINE}, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    lines = dict(line.split(" ", 1) for line in proc.stdout.splitlines() if line.startswith(("EXIT", "MODULES")))
    modules = set(lines["MODULES"].split())
    assert "runner" in modules
    assert not modules & {*FRAMEWORK_MODULES, "numpy"}, f"the host runner imported {modules & set(FRAMEWORK_MODULES)}"


def test_compose_check_reports_current_or_stale() -> None:
    proc = runner("compose", "--check")
    assert proc.returncode in (0, 1)
    assert "docker-compose.yml: " in proc.stderr


def test_publish_needs_run_dirs(tmp_path: Path) -> None:
    assert_one_line_exit_2(runner("publish", str(tmp_path), "--site", str(tmp_path / "site")), "run.json: not found")
