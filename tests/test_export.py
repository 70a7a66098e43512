"""``runner export RUN_DIR --format csv|json``: one row per measurement, every recorded figure, failures as rows.

``fixture-v1`` (``make_validity_fixtures``) is a latency run with a throughput sweep, judged cells of every kind,
skipped and failed cells, and a run.json with the project's version and commit.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from reports import load_run
from reports.export import COLUMNS, export_rows, render, to_csv, to_json
from runner.commands import main

RUNS = Path(__file__).parent / "fixtures" / "reports" / "runs"
V1 = RUNS / "fixture-v1"
REQUIRED = ("mean", "sd", "median", "p90", "p99", "min", "median_ci_low", "median_ci_high", "half_width",
            "first_inference_s", "peak_rss_bytes", "max_error", "valid", "invalid_reasons", "other_load", "build",
            "machine_fingerprint", "project_version", "project_commit", "status", "error", "batch", "threads",
            "identity", "transform", "transform_identity")  # fmt: skip


def _csv_rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def test_one_row_per_measurement_failures_included() -> None:
    run = load_run(V1)
    rows = export_rows(run)
    cells = len(run.results)
    sweep_points = sum(len(r.points) for r in run.results if r.scenario == "throughput")
    assert (cells, sweep_points) == (44, 6)
    assert len(rows) == cells - 2 + sweep_points  # each throughput cell is its three points
    by_status = {s: sum(r["status"] == s for r in rows) for s in ("ok", "failed", "skipped")}
    assert by_status == {"ok": 31, "failed": 1, "skipped": 16}
    failed = next(r for r in rows if r["status"] == "failed")
    assert failed["error"].startswith("MXNetError: out of memory") and failed["median"] is None


def test_columns_and_figures() -> None:
    assert set(REQUIRED) <= set(COLUMNS) and len(set(COLUMNS)) == len(COLUMNS)
    rows = export_rows(load_run(V1))
    assert all(list(r) == list(COLUMNS) for r in rows)
    vgg = next(r for r in rows if (r["variant"], r["mode"], r["model"]) == ("cpu-onnxruntime", "session", "vgg16"))
    assert vgg["n"] == 120 and vgg["p99"] is not None and vgg["valid"] is True  # 120 samples: a p99
    assert vgg["median_ci_low"] < vgg["median"] < vgg["median_ci_high"] and 0 < vgg["half_width"] < 0.02
    assert vgg["project_commit"] == "0123456789abcdef0123456789abcdef01234567+dirty"
    assert vgg["project_version"] == "0.6.0" and len(vgg["machine_fingerprint"]) == 16
    assert vgg["identity"] == {"batch": "1"} and vgg["transform"] == "none"
    bf16 = next(r for r in rows if (r["variant"], r["mode"], r["model"]) == ("cpu-openvino", "auto", "vgg16"))
    assert bf16["valid"] is False and bf16["verified"] is False and "output unverified" in bf16["invalid_reasons"]
    assert bf16["build"]["inference_precision"] == "bf16"
    busy = [r for r in rows if r["scenario"] == "throughput" and r["variant"] == "cpu-onnxruntime"]
    assert [r["batch"] for r in busy] == [1, 4, 16] and [r["valid"] for r in busy] == [True, True, False]
    assert busy[2]["other_load"] == 0.7  # a sweep point carries its own verdict and load


def test_csv_and_json_hold_the_same_rows() -> None:
    rows = export_rows(load_run(V1))
    from_csv, from_json = _csv_rows(to_csv(rows)), json.loads(to_json(rows))
    assert len(from_csv) == len(from_json) == len(rows)
    assert list(from_csv[0]) == list(from_json[0]) == list(COLUMNS)
    for text, value in zip(from_csv, from_json, strict=True):
        assert text["median"] == ("" if value["median"] is None else str(value["median"]))
        assert json.loads(text["build"]) == value["build"]  # not a scalar: JSON text in CSV, the object in JSON
        assert text["valid"] == {True: "true", False: "false", None: ""}[value["valid"]]


def test_command_writes_stdout_or_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["export", str(V1)]) == 0
    assert len(_csv_rows(capsys.readouterr().out)) == 48
    out = tmp_path / "v1.json"
    assert main(["export", str(V1), "--format", "json", "--out", str(out)]) == 0
    assert capsys.readouterr().out.strip() == str(out)
    assert out.read_text(encoding="utf-8") == render(load_run(V1), "json")


def test_several_machine_run_names_each_host(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["export", str(RUNS / "fixture-m1")]) == 0
    rows = _csv_rows(capsys.readouterr().out)
    assert {r["host"] for r in rows} == {"east", "west"} and all(r["machine_fingerprint"] for r in rows)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["missing-run"], "missing-run: not found"),
        ([str(RUNS)], "not a run directory"),
        ([str(V1), "--out", str(RUNS)], "is a directory"),
        ([str(V1), "--out", "/no/such/dir/x.csv"], "no directory /no/such/dir"),
        ([str(V1), "--format", "xml"], "invalid choice"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    try:
        code = main(["export", *args])
    except SystemExit as exc:  # argparse's own usage errors exit from the parser, with the same one line
        code = exc.code  # type: ignore[assignment]
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
