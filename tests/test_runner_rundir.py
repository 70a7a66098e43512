"""RUN_DIR: results.jsonl survives a kill at any instant with whole lines only; run.json is atomic."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest

from frameworks.environment import environment
from frameworks.result import Result, RunInfo, append_jsonl
from runner.rundir import (
    RunDirError,
    append_result,
    load_results,
    new_run_dir,
    read_run_info,
    repair_tail,
    results_path,
    write_run_info,
)
from tests.conftest import REPO_ROOT


def result(i: int, samples: int = 3) -> Result:
    return Result.from_flat(
        framework="numpy",
        mode="im2col",
        model="lenet5",
        device="cpu",
        status="ok",
        variant=f"cpu-v{i}",
        samples_s=(1e-3,) * samples,
    )


def test_append_and_load_round_trip(tmp_path: Path) -> None:
    for i in range(3):
        append_result(tmp_path, result(i))
    loaded = load_results(tmp_path)
    assert [r.variant for r in loaded.results] == ["cpu-v0", "cpu-v1", "cpu-v2"]
    assert loaded.bad_lines == []


def test_a_line_with_a_newline_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        append_jsonl(results_path(tmp_path), "a\nb")


def test_truncated_last_line_is_reported_ignored_and_repaired(tmp_path: Path) -> None:
    append_result(tmp_path, result(0))
    whole = result(1).to_json()
    with results_path(tmp_path).open("a", encoding="utf-8") as f:
        f.write(whole[: len(whole) // 2])
    loaded = load_results(tmp_path)
    assert [r.variant for r in loaded.results] == ["cpu-v0"]
    assert loaded.truncated_tail is not None and loaded.truncated_tail.lineno == 2
    assert loaded.corrupt == []
    assert "truncated last line" in loaded.describe_problems(results_path(tmp_path))[0]
    assert repair_tail(tmp_path) == len(whole) // 2
    append_result(tmp_path, result(2))
    again = load_results(tmp_path)
    assert [r.variant for r in again.results] == ["cpu-v0", "cpu-v2"] and again.bad_lines == []
    assert repair_tail(tmp_path) == 0


def test_a_whole_bad_line_is_corrupt_not_truncated(tmp_path: Path) -> None:
    results_path(tmp_path).write_text('{"schema_version": 1}\n', encoding="utf-8")
    loaded = load_results(tmp_path)
    assert loaded.results == [] and len(loaded.corrupt) == 1 and loaded.truncated_tail is None


def test_missing_results_file_is_empty(tmp_path: Path) -> None:
    assert load_results(tmp_path).results == []


_WRITER = """
import sys
from frameworks.result import Result
from runner.rundir import append_result
from pathlib import Path
run_dir = Path(sys.argv[1])
i = 0
while True:
    samples = (1e-3 + i * 1e-9,) * (20 + (i * 7919) % 4000)  # lines from ~0.5 to ~60 kB
    append_result(run_dir, Result.from_flat(framework="numpy", mode="im2col", model="lenet5", device="cpu", status="ok",
                                            variant=f"v{i}", samples_s=samples))
    i += 1
"""


@pytest.mark.parametrize("delay", [0.3, 0.55, 0.8])
def test_a_killed_writer_leaves_only_whole_lines(tmp_path: Path, delay: float) -> None:
    writer = subprocess.Popen([sys.executable, "-c", _WRITER, str(tmp_path)], cwd=REPO_ROOT)
    try:
        deadline = time.monotonic() + 30
        while not results_path(tmp_path).exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(delay)
    finally:
        os.kill(writer.pid, signal.SIGKILL)
        writer.wait()
    loaded = load_results(tmp_path)
    assert loaded.corrupt == [], loaded.bad_lines
    assert len(loaded.results) > 0
    assert [r.variant for r in loaded.results] == [f"v{i}" for i in range(len(loaded.results))]
    data = results_path(tmp_path).read_bytes()
    # A fatal signal may cut one write short; then it is the last line, it is reported, and repair removes it.
    assert data.endswith(b"\n") or loaded.truncated_tail is not None
    repair_tail(tmp_path)
    assert results_path(tmp_path).read_bytes().endswith(b"\n")


def test_new_run_dir_is_a_utc_timestamp_and_never_reused(tmp_path: Path) -> None:
    now = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    first, second = new_run_dir(tmp_path, now), new_run_dir(tmp_path, now)
    assert first.name == "20260102T030405Z" and second.name == "20260102T030405Z-1"
    assert first.is_dir() and second.is_dir()


def test_run_info_is_replaced_atomically_and_read_back(tmp_path: Path) -> None:
    info = RunInfo("r", "python -m runner matrix", "local", "2026-01-01T00:00:00+00:00", environment())
    write_run_info(tmp_path, info)
    write_run_info(tmp_path, info.__class__(**{**info.__dict__, "finished_at": "2026-01-01T01:00:00+00:00"}))
    assert read_run_info(tmp_path).finished_at == "2026-01-01T01:00:00+00:00"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.json"], "no temporary file is left behind"


def test_read_run_info_errors_are_one_line(tmp_path: Path) -> None:
    with pytest.raises(RunDirError, match="not found"):
        read_run_info(tmp_path)
    (tmp_path / "run.json").write_text("[]", encoding="utf-8")
    with pytest.raises(RunDirError, match="must be a JSON object"):
        read_run_info(tmp_path)
    with pytest.raises(RunDirError, match="not a directory"):
        read_run_info(tmp_path / "nope")


def test_a_deeply_nested_or_wrongly_typed_line_is_a_bad_line_not_a_crash(tmp_path: Path) -> None:
    results_path(tmp_path).write_text(
        "[" * 100_000 + "\n" + '{"schema_version": 1, "samples_s": 3}\n', encoding="utf-8"
    )
    loaded = load_results(tmp_path)
    assert loaded.results == [] and [b.lineno for b in loaded.corrupt] == [1, 2]
