"""Reading a run directory: ``run.json`` and ``results.jsonl``, tolerant of damage.

``results.jsonl`` is appended line by line while a run goes on, so a crashed or interrupted run
leaves a truncated last line, and a hand-edited file can hold anything. A report must still come
out: every unreadable line becomes a ``LoadProblem`` naming its line number, is skipped, and is
shown on the page instead of crashing the render.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from frameworks.result import RESULTS_FILE, RUN_FILE, BadLine, CellKey, Result, RunInfo, parse_results_jsonl

MAX_PROBLEM_CHARS = 300  # a problem quotes the parser's message, never a whole megabyte line


@dataclass(frozen=True)
class LoadProblem:
    """Something in the run directory that could not be used as it is."""

    file: str
    line: int | None  # 1-based line of results.jsonl; None for file-level problems
    message: str

    def __str__(self) -> str:
        where = f"{self.file} line {self.line}" if self.line is not None else self.file
        return f"{where}: {self.message}"


@dataclass(frozen=True)
class Run:
    """One run as the reports see it: what run.json says, the readable cells, and what was skipped."""

    run_dir: Path
    info: RunInfo | None
    results: tuple[Result, ...]
    problems: tuple[LoadProblem, ...]

    @property
    def run_id(self) -> str:
        """run.json's id, or the directory name when run.json is missing or unreadable."""
        return self.info.run_id if self.info is not None else self.run_dir.name

    @property
    def started_at(self) -> str:
        """When the run began: run.json's time, else the earliest cell's, else empty (sorts first)."""
        if self.info is not None:
            return self.info.started_at
        times = sorted(r.started_at for r in self.results if r.started_at)
        return times[0] if times else ""

    @property
    def cpu_model(self) -> str:
        """The machine's CPU model: what decides which runs may share a table."""
        if self.info is not None and self.info.host.cpu_model:
            return self.info.host.cpu_model
        models = sorted({r.environment.cpu_model for r in self.results if r.environment is not None})
        return models[0] if models else "unknown CPU"


def load_run(run_dir: Path) -> Run:
    """Read a run directory; never raises on bad content, only on a directory that is not there."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"{run_dir}: not a run directory")
    info, info_problems = read_run_info(run_dir / RUN_FILE)
    results, result_problems = read_results(run_dir / RESULTS_FILE)
    return Run(run_dir, info, tuple(results), tuple(info_problems + result_problems))


def read_run_info(path: Path) -> tuple[RunInfo | None, list[LoadProblem]]:
    """run.json, or None with the reason (a report without it still shows the cells)."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return None, [LoadProblem(RUN_FILE, None, "missing: run facts (machine, command, times) are not shown")]
    except OSError as exc:
        return None, [LoadProblem(RUN_FILE, None, _clip(f"unreadable: {exc}"))]
    try:
        return RunInfo.from_dict(json.loads(text)), []
    except json.JSONDecodeError as exc:
        return None, [LoadProblem(RUN_FILE, None, f"not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})")]
    except (ValueError, TypeError) as exc:
        return None, [LoadProblem(RUN_FILE, None, _clip(str(exc)))]


def read_results(path: Path) -> tuple[list[Result], list[LoadProblem]]:
    """Every parseable line of results.jsonl; bad lines skipped and reported by line number.

    A cell that appears twice (a retried cell) keeps its last line: the file is a log, and the
    later line is the newer measurement. The earlier one is reported, not silently dropped. What
    makes two lines one cell is ``Result.key()``, the definition the runner's resume uses too.
    """
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return [], [LoadProblem(RESULTS_FILE, None, "missing: no cell finished in this run")]
    except OSError as exc:
        return [], [LoadProblem(RESULTS_FILE, None, _clip(f"unreadable: {exc}"))]
    numbered, bad = parse_results_jsonl(data)
    problems = [_problem(b) for b in bad]
    kept: dict[CellKey, tuple[int, Result]] = {}
    for number, result in numbered:
        key = result.key()
        if key in kept:
            earlier = kept[key][0]
            problems.append(LoadProblem(RESULTS_FILE, earlier, f"superseded by line {number} (same cell, newer line)"))
            del kept[key]  # re-insert so the cell keeps the position of its newest line
        kept[key] = (number, result)
    problems.sort(key=lambda p: p.line or 0)
    return [result for _, result in kept.values()], problems


def _problem(bad: BadLine) -> LoadProblem:
    if bad.truncated:
        return LoadProblem(
            RESULTS_FILE, bad.lineno, "skipped (truncated last line: was the run killed while writing it?)"
        )
    return LoadProblem(RESULTS_FILE, bad.lineno, _clip(f"skipped: {bad.reason}"))


def _clip(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= MAX_PROBLEM_CHARS else text[: MAX_PROBLEM_CHARS - 1] + "…"
