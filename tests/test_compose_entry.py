"""The compose services' entrypoint: who the benchmark runs as, and the one line when it cannot write."""

from __future__ import annotations

import os
import re
import tempfile
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
    if os.geteuid() == 0:  # root writes anything: the check runs as an ordinary user, as a user's would
        tmp_path = Path(tempfile.mkdtemp(dir="/tmp"))  # under /tmp, which that user can reach
    monkeypatch.setattr(compose_entry, "RESULTS", tmp_path)
    tmp_path.chmod(0o555)
    try:
        said = _check_as_nobody(tmp_path) if os.geteuid() == 0 else _check(tmp_path)
        assert re.fullmatch(r"cannot write .*: make it writable \(chmod u\+w results.*", said), said
    finally:
        tmp_path.chmod(0o755)
        if os.geteuid() == 0:
            tmp_path.rmdir()


def _check(directory: Path) -> str:
    """What ``check_writable`` refuses a file of ``directory`` with, or NOT REFUSED."""
    try:
        check_writable(directory / "x.jsonl")
    except Refused as exc:
        return str(exc)
    return "NOT REFUSED"


def _check_as_nobody(directory: Path) -> str:
    """``_check`` in a forked child that has become uid/gid 65534 (an ordinary user, not root)."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: no pytest machinery from here on, only os._exit
        os.close(read)
        try:
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            said = _check(directory)
        except BaseException as exc:
            said = f"ERROR {exc!r}"
        os.write(write, said.encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        said = pipe.read().decode()
    os.waitpid(pid, 0)
    return said
