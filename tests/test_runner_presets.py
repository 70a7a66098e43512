"""Presets, filters, opt-in modes, ``--dry-run``, the exit code of a matrix that measured nothing, and the
timing a resumed run keeps. Planning is pure (no engine, nothing runs); the command-line tests run
``python -m runner`` with no Docker engine and run no cell."""

from __future__ import annotations

import copy
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import tomllib

from frameworks.environment import environment
from frameworks.options import UsageError
from frameworks.result import RESULTS_FILE, Resume, RunInfo
from runner.catalog import CATALOG_PATH, CatalogError, load_catalog, parse_catalog
from runner.interpret import runner_result
from runner.plan import plan
from runner.presets import (
    EVERY_MODE,
    check_excludes,
    check_frameworks,
    check_modes,
    excluded,
    planned_modes,
    preset_variants,
)
from runner.rundir import read_run_info, resumed, session_finished, write_run_info
from runner.settings import Settings
from tests.conftest import run_runner

NO_ENGINE = {"DOCKER_HOST": "unix:///nonexistent/dlbench-test.sock"}
CATALOG = load_catalog()
OPT_IN = ("cpu-onnxruntime", "disabled")  # the mode the tests' catalog makes opt-in


@pytest.fixture(scope="module")
def raw() -> dict[str, Any]:
    return tomllib.loads(CATALOG_PATH.read_text(encoding="utf-8"))


def with_variant(raw: dict[str, Any], name: str, **keys: Any) -> dict[str, Any]:
    data = copy.deepcopy(raw)
    data["variants"][name].update(keys)
    return data


@pytest.fixture(scope="module")
def opt_in_catalog(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real catalog with ONNX Runtime's ``disabled`` mode opt-in (as TVM's untuned mode is meant to be)."""
    text = CATALOG_PATH.read_text(encoding="utf-8")
    line = 'modes = ["session", "basic", "disabled"]\n'
    assert text.count(line) == 1
    path = tmp_path_factory.mktemp("catalog") / "catalog.toml"
    path.write_text(text.replace(line, line + 'opt_in_modes = ["disabled"]\n'), encoding="utf-8")
    return path


def settings(**values: Any) -> Settings:
    return Settings(tuple(values.pop("variants", CATALOG.variants)), tuple(values.pop("models", ("lenet5",))), "local",
                    cpus="0", **values)  # fmt: skip


def labels(cells: list[Any]) -> set[str]:
    return {c.label for c in cells}


# --- the catalog's opt_in_modes and best_mode ----------------------------------------------------------


def test_opt_in_modes_leave_the_default_modes(raw: dict[str, Any]) -> None:
    catalog = parse_catalog(with_variant(raw, "cpu-onnxruntime", opt_in_modes=["disabled"]))
    variant = catalog.variant("cpu-onnxruntime")
    assert variant.opt_in_modes == ("disabled",)
    assert variant.default_modes == ("session", "basic")
    assert variant.best_mode == "session"  # the first default mode, none declared


@pytest.mark.parametrize(
    ("keys", "fragment"),
    [
        ({"opt_in_modes": ["eager"]}, "'eager' is not one of the variant's modes"),
        ({"opt_in_modes": ["session", "basic", "disabled"]}, "every mode is opt-in"),
        ({"opt_in_modes": "disabled"}, "opt_in_modes must be a list of strings"),
        ({"best_mode": "turbo"}, "best_mode: 'turbo' is not one of the variant's modes"),
        ({"best_mode": "disabled", "opt_in_modes": ["disabled"]}, "best_mode: 'disabled' is not one"),
        ({"best_mode": 1}, "best_mode must be a string"),
    ],
)
def test_bad_opt_in_or_best_mode_is_a_catalog_error(raw: dict[str, Any], keys: dict[str, Any], fragment: str) -> None:
    with pytest.raises(CatalogError, match=fragment.replace("(", r"\(")):
        parse_catalog(with_variant(raw, "cpu-onnxruntime", **keys))


def test_best_modes_are_declared_where_the_first_mode_is_not_the_fastest() -> None:
    assert CATALOG.variant("cpu-torch").best_mode == "jit"
    assert CATALOG.variant("cpu-tensorflow").best_mode == "graph"
    assert CATALOG.variant("cpu-numpy-openblas").best_mode == "im2col"


def test_list_marks_the_best_and_the_opt_in_modes(opt_in_catalog: Path) -> None:
    from runner.commands.list import modes_text

    assert modes_text(load_catalog(opt_in_catalog).variant("cpu-onnxruntime")) == "session* basic disabled (opt-in)"
    assert modes_text(CATALOG.variant("cpu-torch")) == "eager jit* compile sparse"


# --- presets -----------------------------------------------------------------------------------------------


def test_quick_takes_each_frameworks_first_available_cpu_variant_and_its_best_mode() -> None:
    variants = preset_variants("quick", CATALOG)
    frameworks = [v.framework for v in variants]
    assert len(frameworks) == len(set(frameworks)) == len({v.framework for v in CATALOG.select(device="cpu")})
    assert all(v.device == "cpu" and not v.unavailable for v in variants)
    assert "cpu-tensorflow" in {v.name for v in variants} and "cpu-tensorflow-eigen" not in {v.name for v in variants}
    cells = plan(variants, settings(variants=[v.name for v in variants], models=("lenet5", "mobilenet_v1"),
                                    preset="quick"))  # fmt: skip
    assert len(cells) == 2 * len(variants)
    assert {(c.variant.name, c.mode) for c in cells} == {(v.name, v.best_mode) for v in variants}


def test_default_leaves_opt_in_modes_out_and_full_or_modes_bring_them_in(opt_in_catalog: Path) -> None:
    catalog = load_catalog(opt_in_catalog)
    ort = [catalog.variant("cpu-onnxruntime")]
    default = plan(ort, settings(variants=["cpu-onnxruntime"]))
    assert [c.mode for c in default] == ["session", "basic"]
    full = plan(ort, settings(variants=["cpu-onnxruntime"], preset="full"))
    assert [c.mode for c in full] == ["session", "basic", "disabled"]
    named = plan(ort, settings(variants=["cpu-onnxruntime"], modes=("disabled",)))
    assert [c.mode for c in named] == ["disabled"]
    assert planned_modes(ort[0], EVERY_MODE) == ("session", "basic", "disabled")  # a run from before presets


# --- filters -------------------------------------------------------------------------------------------------


def test_exclude_by_label_glob_and_by_field() -> None:
    torch = [CATALOG.variant("cpu-torch")]
    cells = plan(torch, settings(variants=["cpu-torch"], models=("lenet5", "vgg16")))
    assert "cpu-torch compile vgg16" in labels(cells)
    patterns = ("*compile*", "model=vgg16")
    kept = plan(torch, settings(variants=["cpu-torch"], models=("lenet5", "vgg16"), exclude=patterns))
    assert labels(kept) == {"cpu-torch eager lenet5", "cpu-torch jit lenet5"}
    assert excluded(cells[0], ["framework=tor?h"]) and not excluded(cells[0], ["framework=tvm"])


@pytest.mark.parametrize(
    ("check", "names", "fragment"),
    [
        (check_frameworks, ["pytorch"], "unknown framework 'pytorch'; valid frameworks: numpy, torch"),
        (check_modes, ["fast"], "unknown mode 'fast'; valid modes: im2col, eager"),
        (check_excludes, ["mode=fast"], "unknown mode 'fast'"),
        (check_excludes, ["model=alexnet"], "unknown model 'alexnet'; valid models: lenet5"),
        (check_excludes, [" "], "--exclude: an empty pattern"),
    ],
)
def test_unknown_filter_names_list_the_valid_ones(check: Any, names: list[str], fragment: str) -> None:
    with pytest.raises(UsageError, match=fragment):
        check(names, CATALOG)


def test_a_glob_or_a_label_pattern_is_not_checked_against_names() -> None:
    assert check_excludes(["mode=comp*", "cpu-tvm * vgg16"], CATALOG) == ("mode=comp*", "cpu-tvm * vgg16")


def test_settings_keep_preset_modes_and_exclude_through_run_json() -> None:
    given = settings(preset="quick", modes=("jit",), exclude=("cpu-tvm * vgg16",))
    back = Settings.from_dict(json.loads(json.dumps(given.to_dict())))
    assert (back.preset, back.modes, back.exclude) == ("quick", ("jit",), ("cpu-tvm * vgg16",))
    assert "--preset quick" in given.command() and "--exclude 'cpu-tvm * vgg16'" in given.command()
    old = {k: v for k, v in given.to_dict().items() if k not in ("preset", "modes", "exclude")}
    assert Settings.from_dict(old).preset == EVERY_MODE  # a run.json from before presets planned every mode


# --- the command line: dry run, filters, exit codes ------------------------------------------------------------


def runner(*args: str) -> subprocess.CompletedProcess[str]:
    return run_runner(*args, env=NO_ENGINE, timeout=120)


def assert_one_line(proc: subprocess.CompletedProcess[str], code: int, *fragments: str) -> None:
    assert proc.returncode == code, proc.stderr
    lines = [line for line in proc.stderr.strip().splitlines() if not line.startswith("launcher: ")]
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    for fragment in fragments:
        assert fragment in lines[0]


def test_dry_run_prints_the_cells_and_the_estimate_and_runs_nothing(tmp_path: Path) -> None:
    out = tmp_path / "runs"
    proc = runner("matrix", "--preset", "quick", "--dry-run", "--launcher", "local", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    quick = preset_variants("quick", CATALOG)
    assert lines[0].startswith(f"dry run: preset quick, {2 * len(quick)} cells, launcher local")
    assert any("cpu-torch jit mobilenet_v1: ~" in line for line in lines)
    assert lines[-2].startswith("to build first: ")
    assert lines[-1].startswith("estimated time: ~")
    assert not out.exists()  # no run directory, nothing recorded


def test_dry_run_shows_opt_in_modes_only_when_asked(opt_in_catalog: Path) -> None:
    def planned(*args: str) -> str:
        proc = runner("--catalog", str(opt_in_catalog), "matrix", "--variants", "cpu-onnxruntime", "--models", "lenet5",
                      "--dry-run", "--launcher", "local", *args)  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        return proc.stdout

    assert "cpu-onnxruntime disabled lenet5" not in planned()
    assert "cpu-onnxruntime disabled lenet5" in planned("--modes", "disabled")
    full = planned("--preset", "full")
    assert "cpu-onnxruntime disabled lenet5" in full and "[throughput]" in full  # full: every scenario too


@pytest.mark.parametrize(
    ("args", "code", "fragments"),
    [
        (["--frameworks", "tvm", "--modes", "eager"], 4, ["no cells to run: --frameworks tvm, --modes eager"]),
        (["--frameworks", "pytorch"], 2, ["unknown framework 'pytorch'"]),
        (["--modes", "fast"], 2, ["unknown mode 'fast'"]),
        (["--exclude", "variant=cpu-nope"], 2, ["unknown variant 'cpu-nope'"]),
        (["--preset", "fast"], 2, ["invalid choice: 'fast'"]),
        (["--dry-run", "--resume", "runs/x"], 2, ["--dry-run plans a new run"]),
    ],
)
def test_bad_or_empty_choices_are_one_line(args: list[str], code: int, fragments: list[str]) -> None:
    assert_one_line(runner("matrix", "--dry-run", *args), code, *fragments)


def test_out_on_a_file_is_one_line_and_exit_2(tmp_path: Path) -> None:
    file = tmp_path / "file"
    file.write_text("")
    assert_one_line(runner("matrix", "--out", str(file)), 2, "is a file, not a directory")
    assert_one_line(runner("matrix", "--out", str(file / "below")), 2, f"{file} is a file")


def test_publish_into_a_foreign_directory_or_a_file_is_one_line_and_exit_2(tmp_path: Path) -> None:
    foreign = tmp_path / "site"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    assert_one_line(runner("publish", "runs/x", "--site", str(foreign)), 2, "not a site this command made")
    assert (foreign / "notes.txt").read_text() == "mine"
    assert_one_line(runner("publish", "runs/x", "--site", str(foreign / "notes.txt")), 2, "a file, not a directory")


def test_a_matrix_whose_every_cell_was_skipped_exits_4(tmp_path: Path) -> None:
    """cpu-chainer-ideep cannot be made (the catalog keeps pip's error): its one cell is skipped, nothing runs."""
    proc = runner("matrix", "--variants", "cpu-chainer-ideep", "--models", "lenet5", "--launcher", "local",
                  "--no-peak", "--no-report", "--out", str(tmp_path))  # fmt: skip
    assert proc.returncode == 4, proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error: nothing was measured: every one of the 1 cells was skipped (1 unavailable: ")


# --- resume keeps the run's timing --------------------------------------------------------------------------------


def test_resume_keeps_the_original_timing_and_records_itself_apart() -> None:
    start, finish = "2026-01-01T00:00:00+00:00", "2026-01-01T00:00:10+00:00"
    info = RunInfo("r", "c", "local", start, environment(), finished_at=finish)
    during = resumed(info, stopped_at=None)
    assert (during.started_at, during.finished_at) == (info.started_at, info.finished_at)
    assert len(during.resumes) == 1 and during.resumes[0].finished_at is None
    after = session_finished(during, cells=3)
    assert after.finished_at == info.finished_at and after.resumes[0].cells == 3
    assert after.resumes[0].finished_at is not None
    interrupted = resumed(RunInfo("r", "c", "local", info.started_at, environment()), "2026-01-01T00:00:07+00:00")
    assert interrupted.finished_at == "2026-01-01T00:00:07+00:00"  # when its last cell was recorded
    assert session_finished(RunInfo("r", "c", "local", info.started_at, environment()), 5).resumes == ()


def test_old_run_json_without_resumes_loads() -> None:
    data = json.loads(RunInfo("r", "c", "local", "2026-01-01T00:00:00", environment()).to_json())
    del data["resumes"]
    assert RunInfo.from_dict(data).resumes == ()
    assert RunInfo.from_dict({**data, "resumes": [{"started_at": "x", "cells": 2}]}).resumes == (Resume("x", None, 2),)


def test_a_no_op_resume_keeps_the_recorded_duration(tmp_path: Path) -> None:
    """Every cell already has its line: the resume runs nothing, and run.json's start and finish stay the run's."""
    variant = CATALOG.variant("cpu-chainer-ideep")
    given = Settings((variant.name,), ("lenet5",), "local", cpus="0", out=str(tmp_path))
    (cell,) = plan([variant], given)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    start, finish = "2026-01-01T00:00:00+00:00", "2026-01-01T00:00:10+00:00"
    write_run_info(run_dir, RunInfo("run", given.command(), "local", start, environment(), finished_at=finish,
                                    settings=given.to_dict()))  # fmt: skip
    (run_dir / RESULTS_FILE).write_text(runner_result(cell, given, "skipped", "unavailable: x").to_json() + "\n")
    proc = runner("matrix", "--resume", str(run_dir), "--no-report")
    assert proc.returncode == 4, proc.stderr  # nothing measured, then or now
    info = read_run_info(run_dir)
    assert (info.started_at, info.finished_at) == (start, finish)
    assert len(info.resumes) == 1 and info.resumes[0].cells == 0 and info.resumes[0].finished_at is not None


def test_the_report_states_each_resume() -> None:
    from reports.run_facts import resume_text

    done = Resume("2026-01-01T00:00:00+00:00", "2026-01-01T00:01:05+00:00", 3)
    assert resume_text(done) == "2026-01-01T00:00:00+00:00: 3 cells in 1 min 5 s"
    assert resume_text(Resume("2026-01-01T00:00:00+00:00")).endswith("not finished (interrupted?)")
