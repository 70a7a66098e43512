"""Reading a run directory: ``run.json`` and ``results.jsonl``, tolerant of damage.

``results.jsonl`` is appended line by line while a run goes on, so a crashed or interrupted run
leaves a truncated last line, and a hand-edited file can hold anything. A report must still come
out: every unreadable line becomes a ``LoadProblem`` naming its line number, is skipped, and is
shown on the page instead of crashing the render.

A run on several machines keeps each machine's files apart, ``RUN_DIR/hosts/NAME/run.json`` and
``results.jsonl``, under the top ``run.json`` that names the hosts. Its ``Run`` holds one ``Run``
per machine (``hosts``), and all their results; their problems are named by file
(``hosts/NAME/results.jsonl line 7``).

Which machine a run measured is its ``MachineIdentity``: the fingerprint of what its kernels
dispatch on (run.json's ``host.machine``, else its cells'), because a CPU model string may be the
same ("AMD EPYC") for very different parts under a hypervisor. Results written before schema 3
carry no fingerprint: they are a machine of their own, known by their CPU model as before.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from frameworks.result import (
    RESULTS_FILE,
    RUN_FILE,
    BadLine,
    CellKey,
    Machine,
    Result,
    RunInfo,
    parse_results_jsonl,
)

MAX_PROBLEM_CHARS = 300  # a problem quotes the parser's message, never a whole megabyte line
HOSTS_DIR = "hosts"  # RUN_DIR/hosts/NAME/: one machine of a several-machine run
FINGERPRINT_KEY = "fingerprint:"  # machine keys: by fingerprint (schema 3), else by CPU model
CPU_MODEL_KEY = "cpu-model:"
_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,79}")  # the runner's host names are [a-z0-9-]


@dataclass(frozen=True)
class MachineIdentity:
    """Which machine measured a run: what keeps tables and histories of different machines apart."""

    key: str  # "fingerprint:<16 hex digits>", or "cpu-model:<model string>" for results without one
    name: str  # the runner's host name in a several-machine run, else the CPU model
    cpu_model: str
    machine: Machine | None  # None: written before schema 3 (or nothing of the machine was recorded)

    @property
    def fingerprint(self) -> str | None:
        return self.machine.fingerprint if self.machine is not None else None


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
    hosts: tuple[Run, ...] = ()  # a several-machine run: one Run per machine (its run.json and results)
    host_name: str | None = None  # one machine of a several-machine run: the runner's name for it
    parent_id: str | None = None  # and the id of the run it belongs to

    @property
    def several(self) -> bool:
        """Whether this is a run on several machines (its results are its machines' results)."""
        return bool(self.hosts)

    @property
    def recorded(self) -> bool:
        """Whether anything of this run was read (a host that never wrote a file has nothing)."""
        return self.info is not None or bool(self.results)

    @property
    def run_id(self) -> str:
        """run.json's id, or the directory name when run.json is missing or unreadable.

        One machine of a several-machine run is named by the run it belongs to (``RUN_DIR/hosts/NAME``).
        """
        if self.info is not None:
            return self.info.run_id
        return self.parent_id if self.parent_id is not None else self.run_dir.name

    @property
    def started_at(self) -> str:
        """When the run began: run.json's time, else the earliest cell's, else empty (sorts first)."""
        if self.info is not None:
            return self.info.started_at
        times = sorted(r.started_at for r in self.results if r.started_at)
        return times[0] if times else ""

    @property
    def cpu_model(self) -> str:
        """The machine's CPU model string (a several-machine run: its machines', joined)."""
        if self.several:
            return " / ".join(dict.fromkeys(h.cpu_model for h in self.hosts))
        if self.info is not None and self.info.host.cpu_model:
            return self.info.host.cpu_model
        models = sorted({r.environment.cpu_model for r in self.results if r.environment is not None})
        return models[0] if models else "unknown CPU"

    @property
    def machine(self) -> Machine | None:
        """The machine's identity: run.json's (the host as the runner saw it), else the one most of
        its cells report; None for results written before schema 3 (and for a several-machine run,
        whose machines are its ``hosts``)."""
        if self.several:
            return None
        if self.info is not None and self.info.host.machine is not None:
            return self.info.host.machine
        return cells_machine(self.results)

    @property
    def identity(self) -> MachineIdentity:
        """This run's machine: by fingerprint, or by CPU model where no fingerprint was recorded."""
        machine = self.machine
        cpu = self.cpu_model
        key = FINGERPRINT_KEY + machine.fingerprint if machine is not None else CPU_MODEL_KEY + cpu
        return MachineIdentity(key, self.host_name if self.host_name is not None else cpu, cpu, machine)

    @property
    def machine_runs(self) -> tuple[Run, ...]:
        """The run as one Run per machine: its hosts, or itself on one machine."""
        return self.hosts if self.several else (self,)


def cells_machine(results: tuple[Result, ...]) -> Machine | None:
    """The machine most cells report (ties: the smallest fingerprint), or None when none reports one."""
    machines = [r.environment.machine for r in results if r.environment is not None and r.environment.machine]
    if not machines:
        return None
    tally = Counter(m.fingerprint for m in machines)
    best = min(tally, key=lambda fp: (-tally[fp], fp))
    return next(m for m in machines if m.fingerprint == best)


def host_dir_name(name: str) -> str:
    """Where a machine's files and report go under ``hosts/``: its name as the runner writes it, or,
    for any other name, a safe slug of it with a digest (no separator, no dot-dot, bounded)."""
    if _SAFE_NAME.fullmatch(name) and not name.startswith("."):
        return name
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip(".-")[:40] or "host"
    return f"{cleaned}-{hashlib.sha256(name.encode()).hexdigest()[:8]}"


def load_run(run_dir: Path) -> Run:
    """Read a run directory; never raises on bad content, only on a directory that is not there.

    A run on several machines (run.json names ``hosts``, or ``hosts/`` holds machines' files) is
    read machine by machine; its top results are all of theirs.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"{run_dir}: not a run directory")
    info, info_problems = read_run_info(run_dir / RUN_FILE)
    hosts = host_dirs(run_dir, info)
    if not hosts:
        results, result_problems = read_results(run_dir / RESULTS_FILE)
        return Run(run_dir, info, tuple(results), tuple(info_problems + result_problems))
    run_id = info.run_id if info is not None else run_dir.name
    machines = tuple(load_host(run_dir, name, path, run_id) for name, path in hosts)
    problems = list(info_problems)
    if (run_dir / RESULTS_FILE).exists():
        problems.append(LoadProblem(RESULTS_FILE, None, f"not read: a run on several machines keeps its results "
                                    f"in {HOSTS_DIR}/NAME/{RESULTS_FILE}"))  # fmt: skip
    for machine in machines:
        prefix = f"{HOSTS_DIR}/{machine.host_name}/"
        problems += [LoadProblem(prefix + p.file, p.line, p.message) for p in machine.problems]
    every = tuple(r for machine in machines for r in machine.results)
    return Run(run_dir, info, every, tuple(problems), hosts=machines)


def host_dirs(run_dir: Path, info: RunInfo | None) -> list[tuple[str, Path | None]]:
    """The machines of a run: run.json's ``hosts`` in its order, then any other ``hosts/NAME`` holding
    a machine's files; a name run.json gives but the disk lacks has no path (it is never made a path:
    run.json may say anything)."""
    found: dict[str, Path] = {}
    hosts_dir = run_dir / HOSTS_DIR
    if hosts_dir.is_dir():
        for path in sorted(hosts_dir.iterdir()):
            if path.is_dir() and ((path / RUN_FILE).exists() or (path / RESULTS_FILE).exists()):
                found[path.name] = path
    named = list(info.hosts) if info is not None else []
    order = named + [name for name in found if name not in named]
    return [(name, found.get(name)) for name in order]


def load_host(run_dir: Path, name: str, path: Path | None, run_id: str) -> Run:
    """One machine's Run (its problems named by its own files, as its own report shows them)."""
    if path is None:
        missing = LoadProblem(RUN_FILE, None, "missing, and no results either: nothing of this machine was recorded")
        return Run(run_dir / HOSTS_DIR / host_dir_name(name), None, (), (missing,), host_name=name, parent_id=run_id)
    info, info_problems = read_run_info(path / RUN_FILE)
    results, result_problems = read_results(path / RESULTS_FILE)
    problems = tuple(info_problems + result_problems)
    return Run(path, info, tuple(results), problems, host_name=name, parent_id=run_id)


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
