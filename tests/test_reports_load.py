"""Reading run directories: damaged results.jsonl lines are reported by line number and skipped."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

import pytest

from frameworks.result import Result
from reports.content import build_report
from reports.load import CPU_MODEL_KEY, FINGERPRINT_KEY, host_dir_name, load_run, read_results
from reports.markdown import render_markdown
from tests.fixtures.make_report_fixtures import (
    CPU_A,
    CPU_B,
    CPU_EPYC,
    MACHINE_B,
    MACHINE_EAST,
    MACHINE_WEST,
    golden_run,
    write_run,
)

FIXTURES = Path(__file__).parent / "fixtures" / "reports" / "runs"
GOLDEN_RUN = FIXTURES / "fixture-a2"
TWO_MACHINES = FIXTURES / "fixture-m1"


def _ok_line() -> str:
    _, lines = golden_run()
    return lines[0]


def test_fixture_problems_are_named_by_line_number() -> None:
    run = load_run(GOLDEN_RUN)
    found = {p.line: p.message for p in run.problems if p.line is not None}
    assert sorted(found) == [6, 42, 43, 64, 84]
    assert found[6].startswith("skipped: not valid JSON")
    assert found[42].startswith("skipped: not valid JSON")
    assert "schema_version 99" in found[43]
    assert found[64] == "superseded by line 65 (same cell, newer line)"
    assert found[84].startswith("skipped (truncated last line")
    latency = [r for r in run.results if r.scenario == "latency"]
    assert len(latency) == 63  # 60 docker cells + 3 local; the retried cell counted once
    assert Counter(r.scenario for r in run.results if r.scenario != "latency") == {"throughput": 8, "threads": 8}
    assert run.info is not None and run.info.run_id == "fixture-a2"


def test_a_retried_cell_keeps_its_newest_line() -> None:
    run = load_run(GOLDEN_RUN)
    local = [r for r in run.results if r.launcher == "local" and r.model == "lenet5"]
    assert [r.status for r in local] == ["ok"]


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("{", "not valid JSON"),
        ("[1, 2, 3]", "must be a JSON object"),
        ("null", "must be a JSON object"),
        ('"just a string"', "must be a JSON object"),
        ('{"schema_version": 1}', "result:"),
        ("[" * 100_000 + "]" * 100_000, "skipped"),
    ],
)
def test_bad_lines_are_skipped_with_their_reason(tmp_path: Path, line: str, expected: str) -> None:
    ok = _ok_line()
    (tmp_path / "results.jsonl").write_text(f"{ok}\n\n{line}\n{ok}\n", encoding="utf-8")
    results, problems = read_results(tmp_path / "results.jsonl")
    bad = [p for p in problems if not p.message.startswith("superseded")]
    assert [p.line for p in bad] == [3]  # the blank line 2 is not a problem
    assert expected in bad[0].message
    assert len(bad[0].message) <= 300
    assert len(results) == 1


def test_unknown_fields_and_wrong_types_are_named(tmp_path: Path) -> None:
    data = json.loads(_ok_line())
    lines = [
        json.dumps({**data, "surprise": 1}),
        json.dumps({**data, "samples_s": ["fast"]}),
        json.dumps({**data, "status": "exploded"}),
    ]
    (tmp_path / "results.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    results, problems = read_results(tmp_path / "results.jsonl")
    assert results == []
    assert "surprise" in problems[0].message
    assert "samples_s[0]" in problems[1].message
    assert "exploded" in problems[2].message


def test_invalid_utf8_and_nan_do_not_crash(tmp_path: Path) -> None:
    data = json.loads(_ok_line())
    nan_line = json.dumps({**data, "samples_s": [float("nan"), float("inf"), -1.0, 0.002, 0.003]})
    (tmp_path / "results.jsonl").write_bytes(b"\xff\xfe garbage \x00\n" + nan_line.encode() + b"\n")
    run = load_run(tmp_path)
    assert [p.line for p in run.problems if p.line is not None] == [1]
    report = build_report(run)  # non-finite and negative samples are dropped, not plotted
    assert report.cells[0].figures is not None
    assert report.cells[0].figures.samples_ms.size == 2


def test_truncated_last_line_is_reported_as_such(tmp_path: Path) -> None:
    ok = _ok_line()
    (tmp_path / "results.jsonl").write_text(f"{ok}\n{ok[:80]}", encoding="utf-8")
    run = load_run(tmp_path)
    assert [(p.line, p.message.split(":")[0]) for p in run.problems if p.line] == [(2, "skipped (truncated last line")]


def test_missing_files_are_problems_not_errors(tmp_path: Path) -> None:
    run = load_run(tmp_path)
    assert run.results == () and run.info is None
    assert {p.file for p in run.problems} == {"run.json", "results.jsonl"}
    assert run.run_id == tmp_path.name
    text = render_markdown(build_report(run))
    assert "No cell could be read" in text
    assert "run.json: missing" in text


def test_malformed_run_json_is_reported(tmp_path: Path) -> None:
    shutil.copy(GOLDEN_RUN / "results.jsonl", tmp_path / "results.jsonl")
    (tmp_path / "run.json").write_text('{"schema_version": 1, "run_id": ', encoding="utf-8")
    run = load_run(tmp_path)
    assert run.info is None
    assert any(p.file == "run.json" and "not valid JSON" in p.message for p in run.problems)
    assert run.cpu_model.startswith("Fixture CPU A")  # from the cells' own environment
    assert run.started_at == "2025-01-15T09:00:30Z"  # the earliest cell


def test_not_a_directory_raises(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        load_run(tmp_path / "nope")


def test_only_garbage_still_renders(tmp_path: Path) -> None:
    info, _ = golden_run()
    write_run(tmp_path, info, ["garbage", "{", "[]"])
    run = load_run(tmp_path)
    assert [p.line for p in run.problems] == [1, 2, 3]
    assert "No cell could be read" in render_markdown(build_report(run))


def test_results_without_samples_fall_back_to_stats(tmp_path: Path) -> None:
    result = Result.from_json(_ok_line())
    stripped = result.with_flat(samples_s=())
    (tmp_path / "results.jsonl").write_text(stripped.to_json() + "\n", encoding="utf-8")
    report = build_report(load_run(tmp_path))
    figs = report.cells[0].figures
    assert figs is not None and result.stats is not None
    assert figs.median_ms == pytest.approx(result.stats.median * 1e3)


def test_a_schema_1_run_loads_through_the_migration_and_renders() -> None:
    """Runs written before the scenario axis (``backend``, no scenario, no ``in_effect``) still report."""
    a1 = FIXTURES / "fixture-a1"
    raw = [json.loads(line) for line in (a1 / "results.jsonl").read_text(encoding="utf-8").splitlines()]
    assert {d["schema_version"] for d in raw} == {1} and all("backend" in d and "scenario" not in d for d in raw)
    assert json.loads((a1 / "run.json").read_text(encoding="utf-8"))["schema_version"] == 1
    run = load_run(a1)
    assert run.problems == () and len(run.results) == len(raw)
    assert all(
        r.launcher == "docker" and r.scenario == "latency" and r.key().identity == (("batch", "1"),)
        for r in run.results
    )
    text = render_markdown(build_report(run))
    assert "| Launcher " in text and "MKL vs OpenBLAS" in text and "oneDNN vs Eigen" in text
    assert "in_effect=MKL" in text  # derived by the migration, shown with the stated facts


# --- machine identity, and runs on several machines ----------------------------------------------------


def test_schema_2_lines_load_as_a_machine_without_a_fingerprint() -> None:
    """Runs written before machine identity are a machine of their own, keyed by their CPU model."""
    raw = [json.loads(line) for line in (FIXTURES / "fixture-a3" / "results.jsonl").read_text().splitlines()]
    assert {d["schema_version"] for d in raw} == {2} and all("machine" not in d["environment"] for d in raw)
    for name in ("fixture-a1", "fixture-a2", "fixture-a3"):
        run = load_run(FIXTURES / name)
        assert all(r.environment is not None and r.environment.machine is None for r in run.results)
        identity = run.identity
        assert run.machine is None and identity.fingerprint is None
        assert (identity.key, identity.name, identity.cpu_model) == (CPU_MODEL_KEY + CPU_A, CPU_A, CPU_A)


def test_a_run_of_today_is_known_by_its_fingerprint(tmp_path: Path) -> None:
    run = load_run(FIXTURES / "fixture-b1")
    assert run.machine == MACHINE_B and run.identity.key == FINGERPRINT_KEY + MACHINE_B.fingerprint
    assert run.identity.name == CPU_B  # one machine: named by its CPU model
    shutil.copy(FIXTURES / "fixture-b1" / "results.jsonl", tmp_path / "results.jsonl")
    assert load_run(tmp_path).machine == MACHINE_B  # no run.json: the cells' machine


def test_a_several_machine_run_is_read_machine_by_machine() -> None:
    run = load_run(TWO_MACHINES)
    assert run.several and [h.host_name for h in run.hosts] == ["east", "west"]
    east, west = run.hosts
    assert east.info is not None and east.info.host_name == "east" and {r.host for r in east.results} == {"east"}
    assert west.info is not None and west.info.host_name == "west" and {r.host for r in west.results} == {"west"}
    assert run.results == east.results + west.results and len(run.results) == 24
    assert run.run_id == east.run_id == west.run_id == "fixture-m1"
    # the same "model name", two machines
    assert east.cpu_model == west.cpu_model == CPU_EPYC
    assert (east.machine, west.machine) == (MACHINE_EAST, MACHINE_WEST)
    assert east.identity.key != west.identity.key
    assert (east.identity.name, west.identity.name) == ("east", "west")
    assert "avx512f" in MACHINE_WEST.flags and "avx512f" not in MACHINE_EAST.flags
    assert run.machine is None and run.machine_runs == run.hosts
    # problems are named by the machine's file in the run, and by its own file in the machine's run
    assert [str(p) for p in run.problems] == [
        "hosts/west/results.jsonl line 13: skipped (truncated last line: was the run killed while writing it?)"
    ]
    assert [str(p) for p in west.problems] == [
        "results.jsonl line 13: skipped (truncated last line: was the run killed while writing it?)"
    ]


def test_hosts_that_run_json_names_are_never_made_paths(tmp_path: Path) -> None:
    """run.json may name a host ``../../elsewhere``: it is reported as missing, never read there."""
    run_dir = tmp_path / "deep" / "run"
    shutil.copytree(TWO_MACHINES, run_dir)
    elsewhere = tmp_path / "elsewhere"
    shutil.copytree(TWO_MACHINES / "hosts" / "east", elsewhere)  # would load, were the name followed
    top = json.loads((run_dir / "run.json").read_text())
    top["hosts"] = {"../../../elsewhere": "unix:///x", **top["hosts"], "gone": "ssh://gone.fixture.invalid"}
    (run_dir / "run.json").write_text(json.dumps(top))
    (run_dir / "results.jsonl").write_text(_ok_line() + "\n")  # a stray top-level file is named, not mixed in
    run = load_run(run_dir)
    assert [h.host_name for h in run.hosts] == ["../../../elsewhere", "east", "west", "gone"]
    assert [h.recorded for h in run.hosts] == [False, True, True, False]
    assert len(run.results) == 24
    messages = [str(p) for p in run.problems]
    assert messages[0].startswith("results.jsonl: not read: a run on several machines keeps its results in hosts/")
    assert (
        "hosts/../../../elsewhere/run.json: missing, and no results either: nothing of this machine was recorded"
        in messages
    )
    assert "hosts/gone/run.json: missing, and no results either: nothing of this machine was recorded" in messages
    assert run.hosts[0].run_dir.parent == run_dir / "hosts" and ".." not in run.hosts[0].run_dir.name
    text = render_markdown(build_report(run))
    assert "gone: not run" in text and "### gone" in text


def test_a_host_without_run_json_still_shows_its_cells(tmp_path: Path) -> None:
    """A machine that never answered has failed cells and no run.json (the runner writes no facts for it)."""
    run_dir = tmp_path / "run"
    shutil.copytree(TWO_MACHINES, run_dir)
    (run_dir / "hosts" / "west" / "run.json").unlink()
    run = load_run(run_dir)
    west = run.hosts[1]
    assert west.info is None and west.recorded and west.run_id == "fixture-m1"
    assert west.machine == MACHINE_WEST  # from its cells
    assert "hosts/west/run.json: missing: run facts (machine, command, times) are not shown" in map(str, run.problems)


def test_host_dir_names() -> None:
    assert host_dir_name("east") == "east" and host_dir_name("box-2") == "box-2"
    for evil in ("../x", "..", ".hidden", "a/b", "a b", "x" * 200, ""):
        name = host_dir_name(evil)
        assert "/" not in name and not name.startswith(".") and 0 < len(name) <= 60, evil
    assert host_dir_name("a b") != host_dir_name("a-b")
