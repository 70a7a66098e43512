"""The RUN_DIR layout: ``run.json`` (what the run was) and ``results.jsonl`` (one cell per line).

A run may be killed at any instant (Ctrl-C, an OOM killer, a power cut) and must still be readable
and resumable. So each result is appended with a single ``write`` of the whole line on an
``O_APPEND`` descriptor and fsynced before the next cell starts, and ``run.json`` is replaced
atomically (temporary file + ``os.replace``). The only damage a kill can leave is a truncated last
line (a fatal signal may cut a large write short): loading reports it and ignores it, and
``repair_tail`` cuts it off before a resumed run appends again.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path

from frameworks.result import (
    RESULTS_FILE,
    RUN_FILE,
    BadLine,
    Result,
    Resume,
    RunInfo,
    append_jsonl,
    parse_results_jsonl,
    utc_now,
)


class RunDirError(ValueError):
    """A RUN_DIR that cannot be read or resumed: one line naming the file and the problem."""


@dataclass(frozen=True)
class LoadedResults:
    results: list[Result] = field(default_factory=list)
    bad_lines: list[BadLine] = field(default_factory=list)

    @property
    def truncated_tail(self) -> BadLine | None:
        return next((b for b in self.bad_lines if b.truncated), None)

    @property
    def corrupt(self) -> list[BadLine]:
        """Bad lines that a kill cannot explain (a whole line that is not a result)."""
        return [b for b in self.bad_lines if not b.truncated]

    def describe_problems(self, path: Path) -> list[str]:
        truncated = "truncated last line (the run was killed mid-write), ignored"
        return [f"{path}:{b.lineno}: {truncated if b.truncated else b.reason}" for b in self.bad_lines]


def new_run_dir(out: Path, now: datetime | None = None) -> Path:
    """``<out>/<UTC timestamp>``, e.g. ``runs/20260102T030405Z``; a suffix keeps two runs in one second apart."""
    stamp = (now or datetime.now(timezone.utc)).strftime("%Y%m%dT%H%M%SZ")
    out.mkdir(parents=True, exist_ok=True)
    for n in range(1000):
        candidate = out / (stamp if n == 0 else f"{stamp}-{n}")
        try:
            candidate.mkdir()
        except FileExistsError:
            continue
        return candidate
    raise RunDirError(f"{out}: cannot create a new run directory for {stamp}")


def results_path(run_dir: Path) -> Path:
    return run_dir / RESULTS_FILE


def append_result(run_dir: Path, result: Result) -> None:
    """One whole line, fsynced before the next cell starts (``append_jsonl``, predict's writer too)."""
    append_jsonl(results_path(run_dir), result.to_json())


def load_results(run_dir: Path) -> LoadedResults:
    """Every whole, valid result line; bad lines are returned, not raised, so callers decide."""
    try:
        data = results_path(run_dir).read_bytes()
    except FileNotFoundError:
        return LoadedResults()
    numbered, bad = parse_results_jsonl(data)
    return LoadedResults([result for _, result in numbered], bad)


def repair_tail(run_dir: Path) -> int:
    """Cut a truncated last line off results.jsonl so that appends start on a fresh line; bytes removed."""
    path = results_path(run_dir)
    if not path.is_file():
        return 0
    data = path.read_bytes()
    if not data or data.endswith(b"\n"):
        return 0
    keep = data.rfind(b"\n") + 1
    with path.open("r+b") as f:
        f.truncate(keep)
        f.flush()
        os.fsync(f.fileno())
    return len(data) - keep


def write_run_info(run_dir: Path, info: RunInfo) -> None:
    """Replace run.json atomically: a reader sees the old file or the new one, never half of one."""
    target = run_dir / RUN_FILE
    fd, tmp = tempfile.mkstemp(prefix=".run.", suffix=".json.tmp", dir=run_dir)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(info.to_json() + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_run_info(run_dir: Path) -> RunInfo:
    """run.json parsed and validated; any problem is a one-line ``RunDirError``."""
    path = run_dir / RUN_FILE
    if not run_dir.is_dir():
        raise RunDirError(f"{run_dir}: not a directory")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RunDirError(f"{path}: not found (not a run directory?)") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RunDirError(f"{path}: unreadable: {str(exc).splitlines()[0]}") from None
    try:
        return RunInfo.from_dict(data)
    except ValueError as exc:
        raise RunDirError(f"{path}: {exc}") from None


def resumed(info: RunInfo, stopped_at: str | None) -> RunInfo:
    """run.json as a ``--resume`` starts: the run's own timing kept, this session added to ``resumes``.

    ``started_at``/``finished_at`` describe the original run (a resume an hour later must not stretch its
    duration by an hour). An original run that was interrupted never wrote its ``finished_at``: it ended
    when its last cell was recorded (``stopped_at``), else it ended as it started.
    """
    finished = info.finished_at or stopped_at or info.started_at
    return replace(info, finished_at=finished, resumes=(*info.resumes, Resume(started_at=utc_now())))


def session_finished(info: RunInfo, cells: int) -> RunInfo:
    """run.json as a session ends: a new run's ``finished_at``, or the latest resume's finish and cell count."""
    if not info.resumes:
        return replace(info, finished_at=utc_now())
    last = replace(info.resumes[-1], finished_at=utc_now(), cells=cells)
    return replace(info, resumes=(*info.resumes[:-1], last))


def last_recorded(run_dir: Path) -> str | None:
    """When the run's last result was recorded (its own, or any machine's under ``hosts/``), or None."""
    stamps = [r.finished_at for d in (run_dir, *sorted(run_dir.glob("hosts/*"))) for r in load_results(d).results
              if r.finished_at is not None]  # fmt: skip
    return max(stamps, default=None)
