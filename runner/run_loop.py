"""The loop that runs a machine's cells strictly one at a time, and what it records of each.

Every cell runs in its own container (or its own subprocess for the local launcher) so that
nothing one framework loads can slow the next one down, and cells never overlap: on a small
machine two benchmarks at once would each time the other. Each result is appended to
``results.jsonl`` the moment it arrives, so an interrupted run loses at most the cell in flight,
and ``--resume`` redoes exactly the cells whose key (``Result.key``) has no line.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TextIO

from frameworks.result import RESULTS_FILE, CellKey, Environment, Result
from frameworks.trained import WeightsMismatch, extract_weights

from .cell import Cell
from .engine import ENGINE_LOST, EngineLost
from .eta import Eta, load_history, load_reference
from .interpret import runner_result
from .launcher import Launcher, Prepared
from .limits import memory_bytes, parse_cpuset
from .rundir import append_result
from .settings import Settings


class ResultsUnwritable(OSError):
    """results.jsonl could not take a line (a full disk): the run ends; ``result`` is the line it lost."""

    def __init__(self, message: str, result: Result) -> None:
        super().__init__(message)
        self.result = result


UNREACHABLE = "the host's Docker engine did not answer"


def redo_on_resume(result: Result) -> bool:
    """A failure that says nothing about the cell (its machine's engine went away, or never answered):
    resume runs it again."""
    return result.status == "failed" and result.error in (ENGINE_LOST, UNREACHABLE)


def finished_keys(results: Iterable[Result]) -> set[CellKey]:
    """The cells a resumed run need not run again."""
    return {r.key() for r in results if not redo_on_resume(r)}


def format_duration(seconds: float) -> str:
    """Seconds under 90 s; minutes and tens of seconds under 10 min (whole minutes there would round
    "2 min 40 s" to "3 min", a quarter of it); whole minutes, then hours, beyond."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 10 * 60 - 5:
        minutes, rest = divmod(round(seconds / 10) * 10, 60)
        return f"{minutes:.0f} min {rest:.0f} s" if rest else f"{minutes:.0f} min"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def outcome(result: Result) -> str:
    """The progress line's verdict: '0.6 ms (ok)', 'failed: out of memory (limit 8g)'."""
    verdict = "ok" if result.verified else "ok, NOT VERIFIED"
    if result.status == "ok" and result.stats is not None:
        return f"{result.stats.median * 1e3:.3g} ms ({verdict})"
    if result.status == "ok" and result.points:
        measured = sum(p.status == "ok" for p in result.points)
        return f"{measured}/{len(result.points)} points ({verdict})"
    if result.status == "ok" and result.training is not None:
        return f"{result.training.summary()} ({verdict})"
    return f"{result.status}: {result.error}"


@dataclass
class MatrixRun:
    """One pass over one machine's cells: everything the loop needs, nothing it computes.

    ``finished`` holds the results of this pass as they are recorded, so that a caller still has
    them when the engine goes away mid-run. ``prefix`` names the machine on each progress line
    (several machines write to one terminal: then each line is written whole); ``stop`` ends the
    pass before the next cell.
    """

    cells: list[Cell]
    launcher: Launcher
    settings: Settings
    run_dir: Path
    prepared: Prepared
    host: Environment | None = None  # for the results the runner makes itself
    done: set[CellKey] = field(default_factory=set)
    stream: TextIO = field(default_factory=lambda: sys.stderr)
    history: Path | None = None  # wall times of earlier runs on this machine, for the time-left estimate
    host_name: str = ""  # the runner's name for the machine, in a run on several ("" on one)
    prefix: str = ""
    stop: threading.Event | None = None
    finished: list[Result] = field(default_factory=list)

    def run(self) -> list[Result]:
        """Run every cell not in ``done``, one at a time, appending each result as it arrives."""
        launcher, host = self.settings.launcher, self.host_name
        todo = [c for c in self.cells if c.key(launcher, host) not in self.done]
        timed = [c for c in todo if self._preset(c) is None]
        machine = self._machine()
        history = load_history(self.history) if self.history is not None else {}
        eta = Eta(history, machine, load_reference())
        n = len(self.cells)
        for k, cell in enumerate(self.cells, start=1):
            if cell.key(launcher, host) in self.done:
                continue
            if self.stop is not None and self.stop.is_set():
                raise KeyboardInterrupt
            head = f"{self.prefix}[{k}/{n}] {cell.label} ... "
            if not self.prefix:
                self.stream.write(head)
                self.stream.flush()
            load = os.getloadavg()[0]
            start = time.monotonic()
            try:
                result = self._run_one(cell, load)
            except EngineLost as lost:  # the cell it took with it is recorded, then the run ends
                if lost.result is not None:
                    self._record(self._stamped(cell, lost.result, load))
                    self.stream.write(f"{head if self.prefix else ''}{outcome(lost.result)}\n")
                raise
            self._record(result)
            if cell in timed:
                eta.add(cell, time.monotonic() - start)
                timed.remove(cell)
                if self.history is not None:
                    eta.remember(self.history)
            left = eta.left(timed)
            tail = f" — ~{format_duration(left)} left" if left is not None and timed else ""
            self.stream.write(f"{head if self.prefix else ''}{outcome(result)}{tail}\n")
            self.stream.flush()
        return list(self.finished)

    def _machine(self) -> str:
        """What the wall-time history knows this machine by: its fingerprint, else its CPU model."""
        if self.host is None:
            return ""
        return self.host.machine.fingerprint if self.host.machine is not None else self.host.cpu_model

    def _record(self, result: Result) -> None:
        """On disk (one whole line, fsynced) before the next cell starts; a full disk ends the run.

        A train cell's weights go to a file of their own first (``RUN_DIR/weights/``), not into the line.
        """
        try:
            result = kept_weights(result, self.run_dir)
            append_result(self.run_dir, result)
        except OSError as exc:
            raise ResultsUnwritable(
                f"cannot write {self.run_dir / RESULTS_FILE}: {exc.strerror or exc}", result
            ) from None
        self.finished.append(result)

    def _preset(self, cell: Cell) -> Result | None:
        """The result of a cell that will not run (its variant was skipped or failed to build)."""
        name = cell.variant.name
        if name in self.prepared.skipped:
            return runner_result(cell, self.settings, "skipped", self.prepared.skipped[name])
        if name in self.prepared.errors:
            return runner_result(cell, self.settings, "failed", self.prepared.errors[name])
        return None

    def _run_one(self, cell: Cell, load: float) -> Result:
        result = self._preset(cell)
        if result is None:
            result = self.launcher.launch(cell, self.settings, self.prepared.ids[cell.variant.name])
        return self._stamped(cell, result, load)

    def _stamped(self, cell: Cell, result: Result, load: float) -> Result:
        # Resume finds finished cells by their key: every line carries these, whoever made the result.
        result = replace(
            result, variant=cell.variant.name, launcher=self.settings.launcher, host=self.host_name or None
        )
        return with_peak(with_load(result, load, self._cell_environment(cell)), self.host)

    def _cell_environment(self, cell: Cell) -> Environment | None:
        if self.host is None:
            return None
        cpus = parse_cpuset(self.settings.cpus)
        docker = self.settings.launcher == "docker"
        return replace(
            self.host,
            cpus_available=len(cpus),
            cpuset=self.settings.cpus,
            in_container=docker,
            image_id=self.prepared.ids.get(cell.variant.name),
            memory_limit_bytes=memory_bytes(self.settings.memory) if docker else self.host.memory_limit_bytes,
        )


def kept_weights(result: Result, run_dir: Path) -> Result:
    """The result with its trained weights written to ``RUN_DIR/weights/`` (``frameworks.trained``); weights
    that do not have the sha256 the result states are dropped with a warning instead."""
    try:
        return extract_weights(result, run_dir)
    except (WeightsMismatch, ValueError) as exc:  # ValueError: not base64
        assert result.training is not None
        training = replace(result.training, weights_npz=None)
        return replace(result, training=training, warnings=(*result.warnings, f"trained weights not kept: {exc}"))


def with_load(result: Result, load: float, fallback: Environment | None) -> Result:
    """Record the machine's 1-minute load before the cell: predict's own reading when it has one."""
    if result.environment is not None:
        if result.environment.load_avg_1m is None:
            return replace(result, environment=replace(result.environment, load_avg_1m=load))
        return result
    if fallback is None:
        return result
    return replace(result, environment=replace(fallback, load_avg_1m=load))


def with_peak(result: Result, host: Environment | None) -> Result:
    """Each result carries the run's GEMM peak (measured once, outside every cell), so a line read alone
    can still say what share of the machine it reached."""
    env, peak = result.environment, host.matmul_peak_gflops if host is not None else None
    if env is None or peak is None or env.matmul_peak_gflops is not None:
        return result
    return replace(result, environment=replace(env, matmul_peak_gflops=peak))
