"""The compose services' entrypoint: who the benchmark runs as, and the one line when it cannot write."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from frameworks import compose_entry
from frameworks.compose_entry import IMAGE_USER, Refused, check_writable, command, output_path, target_user


def test_the_benchmark_runs_as_the_results_directorys_owner(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to give the directory another owner")
    os.chown(tmp_path, 1234, 2345)
    assert target_user(tmp_path, {}) == (1234, 2345)
    os.chown(tmp_path, 0, 0)
    assert target_user(tmp_path, {}) == IMAGE_USER, "never root: a root-owned directory gets the image's user"


def test_dlbench_user_says_who_instead(tmp_path: Path) -> None:
    assert target_user(tmp_path, {"DLBENCH_USER": "1000:1001"}) == (1000, 1001)
    assert target_user(tmp_path, {"DLBENCH_USER": "1000"}) == (1000, 1000)
    with pytest.raises(Refused, match="expected uid:gid"):
        target_user(tmp_path, {"DLBENCH_USER": "alice"})


def test_output_and_command() -> None:
    args = ["--framework", "numpy", "--all", "--output", "/results/cpu-x.jsonl"]
    assert output_path(args) == Path("/results/cpu-x.jsonl") and output_path(["--output", "-"]) is None
    assert command(args)[1:3] == ["-m", "frameworks.predict"] and command(args)[3:] == args
    override = ["python", "-m", "frameworks.predict", "--scenario", "threads"]
    assert command(override) == override, "a `docker compose run` override is run as given"


def test_an_unwritable_results_file_is_one_line_naming_the_fix(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(compose_entry, "RESULTS", tmp_path)
    tmp_path.chmod(0o555)
    try:
        if os.access(tmp_path, os.W_OK):
            pytest.skip("root without restrictions can write anything here")
        with pytest.raises(Refused, match=r"cannot write .*: make it writable \(chmod u\+w results"):
            check_writable(tmp_path / "x.jsonl")
    finally:
        tmp_path.chmod(0o755)
