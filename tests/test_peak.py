"""The float32 GEMM peak (frameworks.peak) and the run's provenance (runner.provenance)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import asdict, replace

import pytest

from frameworks import peak as peak_module
from frameworks.peak import LIBRARIES, measure_point, thread_counts
from frameworks.result import GemmPoint, Peak, RunInfo
from runner.peak import parse_peak, peak_note
from runner.provenance import NOT_A_CHECKOUT, project_commit
from tests.conftest import REPO_ROOT

PY = sys.executable


def test_thread_counts_reach_the_cells_count():
    assert thread_counts(1) == (1,)
    assert thread_counts(2) == (1, 2)
    assert thread_counts(6) == (1, 2, 4, 6)


@pytest.mark.parametrize("library", LIBRARIES)
def test_each_library_computes_the_product_it_times(library):
    """Every library of the peak is installed by .ci/setup (the ``peak`` extra) and checked to compute
    A @ B before it is timed: a bound from a wrong call would be none."""
    figures = measure_point(library, sizes=(256,), repeats=1)
    assert set(figures) == {256} and figures[256] > 0


def test_a_wrong_product_is_refused(monkeypatch):
    monkeypatch.setattr(peak_module, "_cblas_sgemm", lambda lib: lambda n, a, b, c: None)  # computes nothing
    with pytest.raises(RuntimeError, match="mkl sgemm computed a wrong product"):
        measure_point("mkl", sizes=(64,), repeats=1)


def test_the_peak_is_the_best_quiet_point_and_a_busy_point_is_measured_again(monkeypatch):
    loads = iter([0.9, 0.01, 0.01, 0.01])  # the first try of the first library is busy

    def child(library: str, threads: int, sizes: tuple[int, ...] = (512,)):
        if library == "onednn":
            return None, 0.0, "OSError: libdnnl.so.3: cannot open shared object file"
        return {512: 10.0 * threads + (5 if library == "mkl" else 0)}, next(loads, 0.01), None

    monkeypatch.setattr(peak_module, "_child", child)
    peak = peak_module.measure_peak(cpus=2)
    assert (peak.library, peak.threads, peak.gflops) == ("mkl", 2, 25.0)
    assert peak.attempts == 2 and len([p for p in peak.points if p.library == "mkl" and p.threads == 1]) == 2
    assert peak.missing == ("onednn: OSError: libdnnl.so.3: cannot open shared object file",)
    assert "measured 2 times (busy)" in peak_note(peak) and "not measured: onednn" in peak_note(peak)


def test_a_busy_best_point_does_not_set_the_bound(monkeypatch):
    def child(library: str, threads: int, sizes: tuple[int, ...] = (512,)):
        return {512: 99.0 if library == "mkl" else 20.0}, 0.9 if library == "mkl" else 0.0, None

    monkeypatch.setattr(peak_module, "_child", child)
    assert measure_peak_quiet_library(peak_module.measure_peak(cpus=1)) == "onednn"


def measure_peak_quiet_library(peak: Peak) -> str:
    return peak.library


def test_the_peak_command_prints_a_peak_the_runner_reads():
    done = subprocess.run([PY, "-m", "frameworks.peak", "--cpus", "1", "--sizes", "256", "512"], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=600, check=True)  # fmt: skip
    peak = parse_peak(done.stdout)
    quiet = [p.gflops for p in peak.points if p.other_load is not None and p.other_load <= 0.25]
    assert peak.gflops == max(quiet or [p.gflops for p in peak.points])
    assert {p.library for p in peak.points} == set(LIBRARIES) and peak.missing == ()
    assert {(p.threads, p.size) for p in peak.points} == {(1, 256), (1, 512)}


def test_parse_peak_refuses_what_is_not_one():
    good = Peak(100.0, "mkl", 2048, 2, 0.0, (GemmPoint("mkl", 2048, 2, 100.0, 0.0),))
    assert parse_peak("noise\n" + json.dumps(asdict(good))) == good
    for bad in ("", "nan", "[1]", json.dumps({"gflops": "fast"})):
        with pytest.raises(ValueError):
            parse_peak(bad)


def test_run_info_keeps_the_peak_and_the_provenance():
    info = RunInfo.from_dict(json.loads(json.dumps({
        "run_id": "r", "command": "c", "launcher": "local", "started_at": "2026-12-07T00:00:00+00:00",
        "schema_version": 6,
        "host": {"cpu_model": "x", "cpu_count": 2, "cpus_available": 2, "cpuset": "0-1", "memory_bytes": 1,
                 "python": "3.11", "os": "linux", "in_container": False},
        "peak": asdict(Peak(100.0, "mkl", 2048, 2, 0.0)), "project_commit": "abc+dirty",
    })))  # fmt: skip
    assert info.peak is not None and info.peak.library == "mkl" and info.project_commit == "abc+dirty"


def test_the_commit_of_a_checkout_and_of_a_copy(tmp_path):
    commit = project_commit(REPO_ROOT)
    head = subprocess.run(["git", "-C", str(REPO_ROOT), "rev-parse", "HEAD"], capture_output=True, text=True)
    assert commit.split("+")[0] == head.stdout.strip() and len(head.stdout.strip()) == 40
    copy = tmp_path / "copy"
    shutil.copytree(REPO_ROOT / "runner", copy / "runner")
    assert project_commit(copy) == NOT_A_CHECKOUT
    assert replace(Peak(1.0, "openblas", 1024, 1, None), attempts=3).attempts == 3
