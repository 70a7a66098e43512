"""``python -m frameworks.predict`` as a user runs it (real subprocesses, the NumPy backend)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from frameworks.backends.registry import FRAMEWORKS
from frameworks.result import Result
from tests.conftest import REPO_ROOT, run_predict

PY = sys.executable


def test_one_cell_prints_the_seed_line_and_a_verified_result():
    args = [
        "--framework",
        "numpy",
        "--model",
        "lenet5",
        "--iterations",
        "7",
        "--warmup",
        "2",
        "--min-time",
        "0",
        "--max-time",
        "0",
    ]
    proc = run_predict(PY, *args)
    assert proc.returncode == 0, proc.stderr
    result = Result.from_json(proc.stdout.strip())
    assert result.status == "ok" and result.verified
    assert len(result.samples_s) == 7 and len(result.warmup_s) == 2
    assert result.first_inference_s is not None and result.first_inference_s > 0
    assert result.params == 62_006 and result.flops == 1_303_440
    assert result.throughput_ips == pytest.approx(1 / result.stats.median)
    assert result.threads >= 1 and result.environment.cpus_available >= 1
    assert any(line.startswith("numpy-im2col-lenet5 : ") and "(sd " in line for line in proc.stderr.splitlines())


def test_min_time_extends_the_run():
    proc = run_predict(PY, "--framework", "numpy", "--model", "lenet5", "--iterations", "1", "--min-time", "0.3",
                       "--max-time", "0.3")  # fmt: skip
    result = Result.from_json(proc.stdout.strip())
    assert sum(result.samples_s) > 0.1 and len(result.samples_s) > 10
    # 0.3 s is too short a window for /proc/stat's 10 ms ticks: the whole cell's load, or the verdict says unknown
    assert result.other_load is not None or "unknown load: no load figure for the measurement" in result.invalid_reasons


def test_small_models_are_timed_for_a_second_by_default():
    proc = run_predict(PY, "--framework", "numpy", "--model", "lenet5", "--iterations", "1")
    result = Result.from_json(proc.stdout.strip())
    assert sum(result.samples_s) > 0.4 and len(result.samples_s) > 100
    assert result.other_load is not None and 0 <= result.other_load < result.environment.cpu_count


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--framework", "theano", "--model", "lenet5"], "unknown framework 'theano'; valid frameworks: caffe2"),
        (["--framework", "numpy", "--model", "alexnet"], "unknown model 'alexnet'; valid models:"),
        (["--framework", "numpy", "--model", "lenet5", "--mode", "xla"], "unknown mode 'xla' for numpy; valid modes"),
        (["--framework", "numpy", "--model", "lenet5", "--device", "cuda"], "numpy has no 'cuda' device"),
        (["--framework", "numpy", "--model", "lenet5", "--iterations", "0"], "--iterations must be at least 1"),
        (["--model", "lenet5"], "give --framework and --model, or --all"),
        (
            ["--framework", "numpy", "--model", "lenet5", "--mode", "im2col", "--mode", "im2col"],
            "several go with --all",
        ),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args, message):
    proc = run_predict(PY, *args)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and message in proc.stderr


def test_all_runs_the_modes_named_once_each_in_order():
    """A variant running some of a framework's modes (compose names each with --mode)."""
    from frameworks.predict import parse_args, plan

    args = parse_args(
        ["--all", "--framework", "onnxruntime", "--model", "lenet5", "--mode", "disabled", "--mode", "session"]
    )
    assert plan(args) == [("onnxruntime", "lenet5", "disabled"), ("onnxruntime", "lenet5", "session")]
    assert [m for _, _, m in plan(parse_args(["--all", "--framework", "onnxruntime", "--model", "lenet5"]))] == list(
        FRAMEWORKS["onnxruntime"].modes
    )


def test_all_writes_one_file_per_cell_into_a_directory(tmp_path):
    proc = run_predict(
        PY, "--all", "--framework", "numpy", "--model", "lenet5", "--iterations", "3", "--output", str(tmp_path)
    )
    assert proc.returncode == 0, proc.stderr
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["numpy-im2col-lenet5.json"]


def test_jsonl_output_appends_whole_lines(tmp_path):
    out = tmp_path / "r.jsonl"
    for _ in range(2):
        run_predict(PY, "--framework", "numpy", "--model", "lenet5", "--iterations", "2", "--output", str(out))
    lines = out.read_text().splitlines()
    assert len(lines) == 2 and all(Result.from_json(line).status == "ok" for line in lines)


def test_thread_count_reaches_the_blas_environment():
    code = "import frameworks.predict as p, os; p.set_thread_env(1); print(os.environ['OPENBLAS_NUM_THREADS'])"
    out = subprocess.run([PY, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=True).stdout
    assert out.strip() == "1"


def test_host_side_modules_import_no_framework():
    """What the runner and the reports import from frameworks/: no NumPy, no framework."""
    packages = sorted({"numpy", *(info.import_name for info in FRAMEWORKS.values())})
    code = (
        "import json, sys, frameworks.predict, frameworks.result, frameworks.models, frameworks.backends.registry, "
        "frameworks.stats, frameworks.scenarios, frameworks.options; "
        f"print(json.dumps([m for m in {packages!r} if m in sys.modules]))"
    )
    out = subprocess.run([PY, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=True).stdout
    assert json.loads(out) == []
