"""The matrix's pieces: settings, the plan, how a predict process's outcome becomes a result, the ETA,
and the loop's contract (one cell at a time, each result on disk before the next cell starts)."""

from __future__ import annotations

import io
import shlex
from dataclasses import replace
from pathlib import Path

import pytest

from frameworks.environment import environment
from frameworks.models import MODELS
from frameworks.options import UsageError
from frameworks.result import Result, Stats
from runner.catalog import load_catalog
from runner.cell import Cell
from runner.eta import Eta, cell_wall_key, history_key, load_history, load_reference, reference_walls
from runner.interpret import describe_exit, error_line, interpret, runner_result
from runner.launcher import Prepared
from runner.limits import memory_bytes, parse_cpuset
from runner.plan import check_models, plan
from runner.run_loop import MatrixRun, format_duration, with_load, with_peak
from runner.rundir import load_results
from runner.settings import Settings

CATALOG = load_catalog()
OPENBLAS = CATALOG.variant("cpu-numpy-openblas")
TORCH = CATALOG.variant("cpu-torch")
SETTINGS = Settings(("cpu-numpy-openblas", "cpu-torch"), ("lenet5", "vgg16"), "docker", cpus="0").with_options(
    iterations=7
)


def test_parse_cpuset() -> None:
    assert parse_cpuset("0-2,5") == [0, 1, 2, 5]
    assert parse_cpuset("1") == [1]
    for bad in ("", "a", "3-1", "0-"):
        with pytest.raises(UsageError):
            parse_cpuset(bad)


def test_memory_bytes() -> None:
    assert memory_bytes("8g") == 8 << 30
    assert memory_bytes("512m") == 512 << 20
    assert memory_bytes("1073741824") == 1 << 30
    for bad in ("lots", "1t", "1k"):
        with pytest.raises(UsageError):
            memory_bytes(bad)


def test_settings_round_trip_through_run_json() -> None:
    settings = replace(SETTINGS, timeout=12.5, memory="2g").with_options(min_time=0.5)
    assert Settings.from_dict(settings.to_dict()) == settings


def test_local_settings_say_memory_is_not_limited() -> None:
    local = replace(SETTINGS, launcher="local")
    assert local.to_dict()["memory"].startswith("not limited")
    assert Settings.from_dict(local.to_dict()).memory == "8g"


def test_command_reproduces_the_settings() -> None:
    args = shlex.split(SETTINGS.command())
    assert args[:4] == ["python", "-m", "runner", "matrix"]
    assert args[args.index("--variants") + 1 : args.index("--models")] == ["cpu-numpy-openblas", "cpu-torch"]
    for flag, value in [("--iterations", "7"), ("--launcher", "docker"), ("--cpus", "0"), ("--timeout", "900")]:
        assert args[args.index(flag) + 1] == value


def test_threads_follow_the_cpuset() -> None:
    assert replace(SETTINGS, cpus="0-3,6").threads == 5
    args = SETTINGS.predict_args(Cell(TORCH, "jit", "vgg16"))
    assert args[args.index("--threads") + 1] == "1"
    assert args[args.index("--mode") + 1] == "jit" and args[-2:] == ["--output", "-"]


def test_plan_is_variant_model_mode() -> None:
    cells = plan([OPENBLAS, TORCH], SETTINGS)
    assert [(c.variant.name, c.mode, c.model, c.scenario) for c in cells[:3]] == [
        ("cpu-numpy-openblas", "im2col", "lenet5", "latency"),
        ("cpu-numpy-openblas", "im2col", "vgg16", "latency"),
        ("cpu-torch", "eager", "lenet5", "latency"),
    ]
    assert len(cells) == 2 + 6


def test_check_models() -> None:
    assert check_models(["vgg16", "lenet5"]) == ["vgg16", "lenet5"]
    with pytest.raises(UsageError, match="valid models: lenet5, vgg16, mobilenet_v1"):
        check_models(["alexnet"])


def _ok(cell: Cell) -> Result:
    """What predict would write for the cell (its scenario, config and identity included), measured."""
    stats = Stats(3, 1e-3, 1e-5, 1e-3, 1e-3, 1e-3, None, None, 1e-3, 1e-3, 0.95)
    made = runner_result(cell, SETTINGS, "ok", "")
    return made.with_flat(error=None, variant=None, launcher=None, stats=stats, verified=True)


def test_interpret_takes_the_result_line() -> None:
    cell = Cell(OPENBLAS, "im2col", "lenet5")
    stdout = "some framework chatter\n" + _ok(cell).to_json() + "\n"
    result = interpret(cell, SETTINGS, 0, stdout, "")
    assert result.status == "ok" and result.variant == "cpu-numpy-openblas" and result.launcher == "docker"
    crashed_at_exit = interpret(cell, SETTINGS, -11, stdout, "")
    assert crashed_at_exit.status == "ok" and "SIGSEGV" in crashed_at_exit.warnings[-1]


def test_interpret_without_a_result_line() -> None:
    cell = Cell(TORCH, "eager", "lenet5")
    traceback = "Traceback (most recent call last):\n  File x\nRuntimeError: boom\n"
    crashed = interpret(cell, SETTINGS, 1, "", traceback)
    assert crashed.status == "failed" and crashed.error == "exit code 1: RuntimeError: boom"
    killed = interpret(cell, SETTINGS, 137, "", "")
    assert killed.status == "failed" and killed.error == "killed by SIGKILL (exit 137) (no output)"
    no_gpu = interpret(cell, SETTINGS, 2, "", "error: CUDA requested but torch sees no GPU\n")
    assert no_gpu.status == "skipped" and no_gpu.error == "CUDA requested but torch sees no GPU"
    refused = interpret(cell, SETTINGS, 2, "", "error: unknown mode 'x'\n")
    assert refused.status == "failed" and "refused the arguments: unknown mode 'x'" in (refused.error or "")
    assert crashed.params == 62_006 and crashed.variant == "cpu-torch" and crashed.threads == 1


def test_error_line_and_describe_exit() -> None:
    assert error_line("Fatal Python error: bad\nPython runtime state: preinitializing\n") == "Fatal Python error: bad"
    assert error_line("just this\n") == "just this"
    assert describe_exit(-9) == "killed by SIGKILL (exit -9)"
    assert describe_exit(3) == "exit code 3"


def test_eta_uses_the_mean_per_model() -> None:
    eta = Eta()
    assert eta.left([Cell(OPENBLAS, "im2col", "lenet5")]) is None
    eta.add(Cell(OPENBLAS, "im2col", "lenet5"), 2.0)
    eta.add(Cell(OPENBLAS, "im2col", "vgg16"), 20.0)
    remaining = [Cell(TORCH, "eager", "lenet5"), Cell(TORCH, "eager", "vgg16"), Cell(TORCH, "eager", "mobilenet_v1")]
    assert eta.left(remaining) == pytest.approx(2 + 20 + 11)
    assert format_duration(30) == "30 s" and format_duration(600) == "10 min" and format_duration(7200) == "2.0 h"
    assert format_duration(160) == "2 min 40 s" and format_duration(124) == "2 min" and format_duration(596) == "10 min"
    assert format_duration(90) == "1 min 30 s" and format_duration(594) == "9 min 50 s"


def test_eta_scales_each_cells_own_history_by_this_runs_pace(tmp_path: Path) -> None:
    lenet, vgg = Cell(OPENBLAS, "im2col", "lenet5"), Cell(TORCH, "compile", "vgg16")
    history = {history_key(lenet, "cpu"): 4.0, history_key(vgg, "cpu"): 60.0}
    eta = Eta(history, "cpu")
    eta.add(lenet, 2.0)  # this run goes twice as fast as the one the history remembers
    assert eta.left([vgg]) == pytest.approx(30.0)
    assert Eta(history, "another cpu").left([vgg]) is None, "no cell of this run yet"
    eta.remember(tmp_path / "walls.json")
    assert load_history(tmp_path / "walls.json")[history_key(lenet, "cpu")] == 2.0


def test_eta_without_history_weighs_a_framework_mode_against_its_model() -> None:
    eta = Eta()
    eta.add(Cell(OPENBLAS, "im2col", "lenet5"), 2.0)
    eta.add(Cell(TORCH, "compile", "lenet5"), 30.0)  # torch.compile: half a minute of compiling
    eta.add(Cell(OPENBLAS, "im2col", "vgg16"), 20.0)
    later = eta.left([Cell(TORCH, "compile", "vgg16")])
    assert later == pytest.approx(20.0 * 30.0 / 16.0), "vgg16's mean times compile's ratio to lenet5's mean"


def test_eta_scales_the_shipped_reference_where_this_machine_has_no_history() -> None:
    lenet, vgg, mobilenet = (Cell(OPENBLAS, "im2col", m) for m in ("lenet5", "vgg16", "mobilenet_v1"))
    reference = {cell_wall_key(lenet): 4.0, cell_wall_key(vgg): 600.0}
    eta = Eta({history_key(vgg, "cpu"): 100.0}, "cpu", reference)
    eta.add(lenet, 2.0)  # twice as fast as the reference run; this machine's own history knows vgg16
    assert eta.left([vgg]) == pytest.approx(100.0), "this machine's own wall first (its pace: no common cell, 1)"
    first_run = Eta({}, "cpu", reference)
    first_run.add(lenet, 2.0)
    assert first_run.left([vgg]) == pytest.approx(300.0), "the reference's 600 s at this run's pace"
    assert first_run.left([mobilenet]) == pytest.approx(2.0), "in neither table: this run's cells of its model"


def test_a_cells_wall_key_holds_every_option_that_sets_its_length() -> None:
    short = Cell(OPENBLAS, "im2col", "lenet5")
    longer = replace(short, config=replace(short.config, iterations=200))
    assert cell_wall_key(short) != cell_wall_key(longer), "a test run of 3 iterations must not stand for 20"
    assert history_key(short, "m") == f"m|{cell_wall_key(short)}"


def test_reference_walls_are_the_gaps_between_results(tmp_path: Path) -> None:
    cells = [Cell(OPENBLAS, "im2col", "lenet5"), Cell(TORCH, "eager", "lenet5"), Cell(TORCH, "compile", "lenet5")]
    results = [replace(_ok(c), variant=c.variant.name, finished_at=f"2026-12-01T10:00:{s:02d}+00:00")
               for c, s in zip(cells, (3, 10, 10), strict=True)]  # fmt: skip
    results[2] = replace(results[2], status="skipped")
    walls = reference_walls(results, "2026-12-01T10:00:00+00:00")
    assert walls == {cell_wall_key(cells[0]): 3.0, cell_wall_key(cells[1]): 7.0}, "skipped cells cost nothing"


def test_the_shipped_reference_covers_every_cpu_cell_of_the_default_matrix() -> None:
    """Refresh it (``python -m runner.eta RUN_DIR ...``, see runner/eta.py) when a variant, mode or model is
    added: a first run's estimate for a cell it lacks falls back to a guess."""
    reference = load_reference()
    variants = [v for v in CATALOG.select(device="cpu") if v.unavailable_reason is None]
    settings = Settings(tuple(v.name for v in variants), tuple(MODELS), "docker", cpus="0-1")
    missing = [c.label for c in plan(variants, settings) if cell_wall_key(c) not in reference]
    assert not missing, missing
    train = Settings(tuple(v.name for v in variants), ("lenet5",), "docker", ("train",), cpus="0-1")
    trained = [c for c in plan(variants, train) if cell_wall_key(c) in reference]
    assert {c.variant.framework for c in trained} >= {"numpy", "torch", "tensorflow", "mxnet"}
    assert load_reference(Path("/nonexistent")) == {}


def test_each_result_carries_the_runs_peak() -> None:
    env = environment()
    ok = replace(_ok(Cell(OPENBLAS, "im2col", "lenet5")), environment=env)
    host = replace(env, matmul_peak_gflops=150.0)
    assert with_peak(ok, host).environment.matmul_peak_gflops == 150.0  # type: ignore[union-attr]
    assert with_peak(ok, None) == ok and with_peak(replace(ok, environment=None), host).environment is None
    own = replace(ok, environment=replace(env, matmul_peak_gflops=99.0))  # measured where it ran: kept
    assert with_peak(own, host) == own


def test_with_load_keeps_predicts_reading() -> None:
    env = environment()
    ok = _ok(Cell(OPENBLAS, "im2col", "lenet5"))
    assert with_load(replace(ok, environment=env), 9.0, None).environment == env
    assert with_load(ok, 9.0, env).environment.load_avg_1m == 9.0  # type: ignore[union-attr]
    assert with_load(ok, 9.0, None).environment is None


class RecordingLauncher:
    """Runs nothing: a stand-in for the loop's own tests (the launchers have real tests of their own)."""

    name = "docker"

    def __init__(self, run_dir: Path) -> None:
        self.run_dir, self.calls = run_dir, []  # type: ignore[var-annotated]

    def describe(self) -> str:
        return "recording"

    def version(self) -> str | None:
        return None

    def prepare(self, variants: list, log: object) -> Prepared:  # type: ignore[type-arg]
        return Prepared()

    def launch(self, cell: Cell, settings: Settings, image_id: str) -> Result:
        raise NotImplementedError


def test_loop_runs_one_cell_at_a_time_appending_each_result(tmp_path: Path) -> None:
    cuda = CATALOG.variant("cuda-onnxruntime")
    cells = plan([OPENBLAS, TORCH, cuda], replace(SETTINGS, models=("lenet5",)))
    assert len(cells) == 5

    class Launcher(RecordingLauncher):
        def launch(self, cell: Cell, settings: Settings, image_id: str) -> Result:
            assert len(load_results(self.run_dir).results) == len(self.calls) + 1, "a result reached disk late"
            self.calls.append((cell.key("docker"), image_id))
            return _ok(cell)

    backend = Launcher(tmp_path)
    (tmp_path / "results.jsonl").write_text(
        replace(_ok(cells[0]), variant=OPENBLAS.name, launcher="docker").to_json() + "\n"
    )
    prepared = Prepared(ids={"cpu-torch": "sha256:b"}, skipped={"cuda-onnxruntime": "no NVIDIA runtime"})
    stream = io.StringIO()
    run = MatrixRun(
        cells, backend, SETTINGS, tmp_path, prepared, host=environment(), done={cells[0].key("docker")}, stream=stream
    )
    results = run.run()
    assert [key for key, _ in backend.calls] == [c.key("docker") for c in cells[1:4]]
    assert {image for _, image in backend.calls} == {"sha256:b"}
    assert [r.status for r in results] == ["ok", "ok", "ok", "skipped"]
    assert results[-1].error == "no NVIDIA runtime" and results[-1].environment is not None
    assert results[-1].environment.memory_limit_bytes == memory_bytes(SETTINGS.memory)  # the container limit
    assert [r.key() for r in load_results(tmp_path).results] == [c.key("docker") for c in cells]
    lines = stream.getvalue().splitlines()
    assert lines[0].startswith("[2/5] cpu-torch eager lenet5 ... 1 ms (ok) — ~")
    assert lines[-1] == "[5/5] cuda-onnxruntime session lenet5 ... skipped: no NVIDIA runtime"
    assert all(r.environment is not None and r.environment.load_avg_1m is not None for r in results)


def test_eta_cli_refuses_what_is_not_a_run_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from runner.eta import main

    assert main([]) == 2
    assert main([str(tmp_path / "nothing")]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == f"error: {tmp_path / 'nothing'}: not a directory"
