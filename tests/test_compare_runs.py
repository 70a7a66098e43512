"""``runner compare BASE NEW``: pairing by the whole identity, each verdict, the regression gate, bad input.

The runs are real result records made as the harness makes them (``make_validity_fixtures``: measured, then
judged by ``frameworks.validity``), written as run directories; every number is made up.
"""

from __future__ import annotations

import random
from dataclasses import replace
from pathlib import Path

import pytest

from frameworks.result import Measurement, Result, Transformed
from frameworks.scenarios.throughput import ThroughputConfig
from reports.compare_runs import (
    FASTER,
    NOT_MEASURED,
    NOT_SIGNIFICANT,
    ONLY_BASE,
    ONLY_NEW,
    SLOWER,
    UNRELIABLE,
    compare_runs,
    identity,
)
from runner.commands import main
from tests.fixtures.make_report_fixtures import write_run
from tests.fixtures.make_validity_fixtures import START, THROUGHPUT, cell, measurement, not_run, validity_run

MEMORY = 60 * 2**20
BUSY = {"other_load": 0.61, "warnings": ("machine busy: other processes used 0.61 CPUs during the timed loop",)}


def latency(variant: str, mode: str, median_ms: float, seed: int, **trouble: object) -> Result:
    """A judged LeNet-5 latency cell around ``median_ms``; the same seed gives the same samples."""
    point = measurement(random.Random(seed), "lenet5", 1, median_ms, MEMORY, **trouble)
    return cell(variant, mode, "lenet5", START, (point,))


def sweep(variant: str, mode: str, medians_ms: dict[int, float], seed: int) -> Result:
    """A judged LeNet-5 throughput cell: one measurement per batch size."""
    rng = random.Random(seed)
    points = tuple(measurement(rng, "lenet5", batch, ms, MEMORY) for batch, ms in medians_ms.items())
    return cell(variant, mode, "lenet5", START, points, scenario="throughput", config=THROUGHPUT.to_strings(),
                identity=ThroughputConfig.IDENTITY)  # fmt: skip


def write(path: Path, cells: list[Result]) -> Path:
    info, _ = validity_run()
    return write_run(path, replace(info, run_id=path.name), [c.to_json() for c in cells], final_newline=True)


def base_cells() -> list[Result]:
    return [
        latency("cpu-torch", "eager", 0.20, 1),
        latency("cpu-torch", "compile", 0.155, 2),
        latency("cpu-onnxruntime", "session", 0.145, 3),
        latency("cpu-tensorflow", "graph", 0.21, 4),
        latency("cpu-tensorflow", "xla", 0.18, 5),
        latency("cpu-openvino", "f32", 0.17, 6),
        sweep("cpu-torch", "eager", {1: 0.2, 4: 0.11, 16: 0.08}, 7),
    ]


def new_cells() -> list[Result]:
    """BASE with one cell of each kind of change."""
    return [
        latency("cpu-torch", "eager", 0.20, 1),  # the same samples: not significant
        latency("cpu-torch", "compile", 0.155 * 1.2, 12),  # 20% slower, on a quiet machine
        latency("cpu-onnxruntime", "session", 0.145 * 0.8, 13),  # 20% faster
        latency("cpu-tensorflow", "graph", 0.21 * 1.3, 14, **BUSY),  # 30% slower, beside other load
        latency("cpu-tensorflow", "xla", 0.18 * 1.3, 15, spread=0.9),  # 30% slower, with an unstable spread
        not_run("cpu-openvino", "f32", "lenet5", START, "failed", "fixture: the engine crashed"),
        sweep("cpu-torch", "eager", {1: 0.2, 4: 0.11, 16: 0.08 * 1.25}, 7),  # its batch-16 point slower
    ]


@pytest.fixture
def runs(tmp_path: Path) -> tuple[Path, Path]:
    return write(tmp_path / "base", base_cells()), write(tmp_path / "new", new_cells())


def _verdicts(base: list[Result], new: list[Result]) -> dict[str, str]:
    return {c.label: c.verdict for c in compare_runs(base, new).changes}


def test_each_verdict() -> None:
    verdicts = _verdicts(base_cells(), new_cells())
    assert verdicts == {
        "cpu-torch eager lenet5 latency batch=1": NOT_SIGNIFICANT,
        "cpu-torch compile lenet5 latency batch=1": SLOWER,
        "cpu-onnxruntime session lenet5 latency batch=1": FASTER,
        "cpu-tensorflow graph lenet5 latency batch=1": UNRELIABLE,
        "cpu-tensorflow xla lenet5 latency batch=1": UNRELIABLE,
        "cpu-openvino f32 lenet5 latency batch=1": NOT_MEASURED,
        "cpu-torch eager lenet5 throughput batch=1": NOT_SIGNIFICANT,  # a sweep pairs point by point
        "cpu-torch eager lenet5 throughput batch=4": NOT_SIGNIFICANT,
        "cpu-torch eager lenet5 throughput batch=16": SLOWER,
    }


def test_unreliable_and_unmeasured_name_the_side_and_why() -> None:
    changes = {c.label: c for c in compare_runs(base_cells(), new_cells()).changes}
    busy = changes["cpu-tensorflow graph lenet5 latency batch=1"]
    assert busy.why == "NEW: busy machine: other processes used 0.61 CPUs"
    assert busy.ratio is not None and busy.ratio > 1.2  # measured, just not to be trusted
    unstable = changes["cpu-tensorflow xla lenet5 latency batch=1"].why
    assert unstable.startswith("NEW: precision not reached") and "unstable spread: sd is" in unstable
    assert changes["cpu-openvino f32 lenet5 latency batch=1"].why == "NEW failed: fixture: the engine crashed"


def test_an_invalid_verdict_is_unreliable_on_its_side() -> None:
    base = [latency("cpu-openvino", "auto", 0.16, 1, verified=False, max_error=0.012)]
    new = [latency("cpu-openvino", "auto", 0.16 * 1.5, 2)]
    change = compare_runs(base, new).changes[0]
    assert (change.verdict, change.why) == (UNRELIABLE, "BASE: output unverified")
    assert not change.regression(1.05)


def _point_changed(result: Result, batch: int | None = None, threads: int | None = None) -> Result:
    """The cell with its one measurement at another batch or thread count."""
    point = result.points[0]
    moved = replace(point, batch=batch or point.batch, threads=threads or point.threads)
    return replace(result, points=(moved,))


TRANSFORM = Transformed("prune", {"sparsity": "0.5"}, ("sparsity",), weights_sha256="ab" * 32)
ONE_FIELD_CHANGED = {
    "variant": lambda r: replace(r, variant="cpu-torch-other"),
    "mode": lambda r: replace(r, mode="jit"),
    "model": lambda r: replace(r, model="mobilenet_v1"),
    "device": lambda r: replace(r, device="cuda"),
    "launcher": lambda r: replace(r, launcher="local"),
    "host": lambda r: replace(r, host="east"),
    "scenario identity (batch)": lambda r: replace(r, config={**r.config, "batch": "4"}),
    "scenario identity (weights)": lambda r: replace(
        r, config={**r.config, "weights": "trained"}, identity=(*r.identity, "weights")
    ),
    "transform": lambda r: replace(r, transform=TRANSFORM),
    "transform identity": lambda r: replace(r, transform=replace(TRANSFORM, config={"sparsity": "0.9"})),
    "measurement batch": lambda r: _point_changed(r, batch=2),
    "measurement threads": lambda r: _point_changed(r, threads=1),
}


@pytest.mark.parametrize("field", ONE_FIELD_CHANGED)
def test_cells_differing_in_one_identity_field_do_not_pair(field: str) -> None:
    one = latency("cpu-torch", "eager", 0.20, 1)
    if field == "transform identity":
        one = replace(one, transform=TRANSFORM)
    other = ONE_FIELD_CHANGED[field](one)
    assert identity(one, one.points[0]) != identity(other, other.points[0])
    verdicts = [c.verdict for c in compare_runs([one], [other]).changes]
    assert verdicts == [ONLY_BASE, ONLY_NEW]
    assert [c.verdict for c in compare_runs([one], [one]).changes] == [NOT_SIGNIFICANT]


def test_timing_settings_are_not_identity() -> None:
    """What the protocol ran for (iterations, the precision asked) is no part of what was measured."""
    one = latency("cpu-torch", "eager", 0.20, 1)
    other = replace(one, config={**one.config, "iterations": "50", "precision": "0.01"}, started_at="elsewhen")
    assert identity(one, one.points[0]) == identity(other, other.points[0])


def test_summary_counts_every_measurement() -> None:
    extra_base = latency("cpu-mxnet-mkldnn", "hybrid", 0.196, 8)
    comparison = compare_runs([*base_cells(), extra_base], new_cells())
    assert comparison.summary() == ("1 faster, 2 slower, 3 not significant, 2 unreliable, 1 not measured, "
                                    "1 only in one run (1 only in BASE, 0 only in NEW)")  # fmt: skip


def test_command_prints_the_table_and_summary(runs: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    base, new = runs
    assert main(["compare", str(base), str(new)]) == 0  # no threshold: a comparison, not a gate
    out = capsys.readouterr().out
    assert out.startswith(f"BASE: {base} (run base, commit 0123456789abcdef")
    assert "cpu-torch compile lenet5 latency batch=1" in out and "NEW/BASE [95% CI]" in out
    assert "1 faster, 2 slower, 3 not significant, 2 unreliable, 1 not measured, 0 only in one run" in out
    assert "PERFORMANCE DECREASED" not in out and "note: different machines" not in out


def test_fail_above_exits_1_on_a_reliable_regression(
    runs: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    base, new = runs
    assert main(["compare", str(base), str(new), "--fail-above", "1.05"]) == 1
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("PERFORMANCE DECREASED")]
    assert [line.split(": NEW/BASE")[0] for line in lines] == [
        "PERFORMANCE DECREASED: cpu-torch compile lenet5 latency batch=1",
        "PERFORMANCE DECREASED: cpu-torch eager lenet5 throughput batch=16",
    ]  # the busy and the unstable cells are 30% slower too, and unreliable: not a regression
    assert all(line.endswith("above 1.05") for line in lines)


def test_fail_above_exits_0_below_the_threshold(runs: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    base, new = runs
    assert main(["compare", str(base), str(new), "--fail-above", "1.5"]) == 0
    out = capsys.readouterr().out
    assert "PERFORMANCE DECREASED" not in out and "no reliable, significant slowdown above 1.5" in out


def test_fail_above_exits_0_when_the_regression_is_unreliable(tmp_path: Path) -> None:
    base = write(tmp_path / "base", [latency("cpu-torch", "eager", 0.20, 1)])
    new = write(tmp_path / "new", [latency("cpu-torch", "eager", 0.20 * 1.5, 2, **BUSY)])
    assert main(["compare", str(base), str(new), "--fail-above", "1.05"]) == 0


def test_markdown_and_unpaired(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = write(tmp_path / "base", [latency("cpu-torch", "eager", 0.20, 1), latency("cpu-torch", "jit", 0.19, 2)])
    new = write(tmp_path / "new", [latency("cpu-torch", "eager", 0.20, 1)])
    assert main(["compare", str(base), str(new), "--format", "markdown"]) == 0
    out = capsys.readouterr().out
    assert "| cpu-torch eager lenet5 latency batch=1 |" in out.replace("  ", "")
    assert "jit" not in out.split("\n\n")[1] and "--unpaired lists those" in out
    assert main(["compare", str(base), str(new), "--unpaired"]) == 0
    assert "cpu-torch jit lenet5 latency batch=1" in capsys.readouterr().out


def _exit_2(args: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    assert main(["compare", *args]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    return err


def test_bad_input_is_one_line_and_exit_2(runs: tuple[Path, Path], tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    base, new = runs
    assert _exit_2([str(tmp_path / "missing"), str(new)], capsys).endswith("missing: not found")
    (tmp_path / "empty").mkdir()
    assert "not a run directory" in _exit_2([str(tmp_path / "empty"), str(new)], capsys)
    assert "not a directory" in _exit_2([str(base / "run.json"), str(new)], capsys)
    other = write(tmp_path / "other", [latency("cpu-mxnet-mkldnn", "hybrid", 0.196, 8)])
    assert "share no measurement" in _exit_2([str(base), str(other)], capsys)
    assert "--fail-above must be" in _exit_2([str(base), str(new), "--fail-above", "0.9"], capsys)


def test_a_sweep_point_is_a_measurement_of_its_own() -> None:
    """The same batch measured as a latency cell and as a sweep point are different measurements."""
    lat = latency("cpu-torch", "eager", 0.20, 1)
    swept = sweep("cpu-torch", "eager", {1: 0.2}, 1)
    assert identity(lat, lat.points[0]) != identity(swept, swept.points[0])
    assert isinstance(swept.points[0], Measurement)
