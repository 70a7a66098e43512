"""``runner tune`` and the tuning databases the project commits, from the host (no TVM imported here).

The TVM side (a real tuning, the tuned build applying it, the fallback without a database) is in
``test_backends_openvino_tvm``; here: the command's bad input, what every committed database must hold
to be found and trusted (its folder named by the fingerprint and target it says it was tuned for), and
the report's mark of a tuned cell.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from pathlib import Path

import pytest

from frameworks.models import MODELS
from frameworks.result import Result
from reports.matrix_view import tuning_note
from tests.conftest import REPO_ROOT
from tests.test_runner_cli import NO_ENGINE, assert_one_line_exit_2, runner

TUNING_ROOT = REPO_ROOT / "frameworks" / "tvm_tuning"
DATABASES = sorted(p for p in TUNING_ROOT.iterdir() if p.is_dir()) if TUNING_ROOT.is_dir() else []


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["tune", "openvino"], ["cannot tune 'openvino'", "frameworks that tune: tvm"]),
        (["tune", "tvm", "--trials", "0"], ["--trials must be at least 1"]),
        (["tune", "tvm", "--models", "alexnet"], ["unknown model(s) alexnet", "valid models: lenet5"]),
        (["tune", "tvm", "--trials", "many"], ["argument --trials: invalid int value"]),
    ],
)
def test_tune_bad_input_is_one_line_and_exit_2(args: list[str], fragments: list[str]) -> None:
    assert_one_line_exit_2(runner(*args, env=NO_ENGINE), *fragments)


def test_tune_out_on_a_file_is_one_line_and_exit_2(tmp_path: Path) -> None:
    afile = tmp_path / "db"
    afile.write_text("x")
    assert_one_line_exit_2(runner("tune", "tvm", "--out", str(afile), env=NO_ENGINE), "not a directory")


def test_at_least_one_database_is_committed() -> None:
    assert DATABASES, "frameworks/tvm_tuning/ holds no database: the tuned mode falls back everywhere"


@pytest.mark.parametrize("folder", DATABASES, ids=[p.name for p in DATABASES])
def test_a_committed_database_names_its_cpu_and_target_and_is_whole(folder: Path) -> None:
    record = json.loads((folder / "tuning.json").read_text())
    fingerprint, digest = folder.name.rsplit("-", 1)
    assert record["fingerprint"] == fingerprint, "the folder is found by the fingerprint it says it was tuned on"
    assert hashlib.sha256(record["target"].encode()).hexdigest()[:8] == digest, "and by the exact target string"
    target = json.loads(record["target"])
    assert target["kind"] == "llvm" and target["mcpu"] not in ("", "generic") and target["num-cores"] >= 1
    assert record["tvm"].startswith("0.27") and record["machine"]
    assert set(record["models"]) <= set(MODELS) and record["models"]
    for tuned in record["models"].values():
        assert tuned["trials_per_task"] >= 1 and tuned["tasks"] >= 1 and tuned["seconds"] > 0
    workloads = (folder / "database_workload.json").read_text().splitlines()
    records = (folder / "database_tuning_record.json").read_text().splitlines()
    assert workloads and records and not (folder / "logs").exists()
    used = {json.loads(line)[0] for line in records}
    assert used <= set(range(len(workloads))), "every record points at a workload of the database"
    assert len(used) >= max(t["tasks"] for t in record["models"].values()) - 1, "a record for (nearly) every kernel"


def _tvm_cell(build: dict[str, str]) -> Result:
    fixture = REPO_ROOT / "tests" / "fixtures" / "reports" / "runs" / "fixture-v1" / "results.jsonl"
    first = Result.from_json(fixture.read_text().splitlines()[0])
    return replace(first, framework="tvm", variant="cpu-tvm", mode="tuned", build=build)


def test_the_report_marks_a_tuned_cell_with_its_trials_kernels_and_target() -> None:
    note = tuning_note(_tvm_cell({"tuned_kernels": "9 of 9 kernels from the database", "target": '{"kind":"llvm"}',
                                  "tuned_trials": "16 trials per kernel, 9 kernels, 120 s of tuning"}))  # fmt: skip
    assert note == 'tuned: 16 trials per kernel, 9 kernels, 120 s of tuning; 9 of 9 kernels from the database; ' \
                   'target {"kind":"llvm"}'  # fmt: skip


def test_the_report_says_a_tuned_cell_without_a_database_was_not_tuned() -> None:
    note = tuning_note(_tvm_cell({"tuned_kernels": "0: no database", "target": '{"kind":"llvm"}'}))
    assert note.startswith("not tuned: no database for this CPU") and note.endswith("default schedule")
    assert tuning_note(_tvm_cell({"tuning": "none: untuned"})) == ""
