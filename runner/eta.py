"""The time-left estimate: each remaining cell's wall time from what is known of that very cell.

Cells differ by far more than their model: torch.compile spends half a minute compiling LeNet-5,
MXNet without MKL-DNN takes VGG-16 three times as long as with it, and untuned TVM takes VGG-16
two hundred times as long as ONNX Runtime. No rule over models and frameworks predicts that from a
run's first cells, so each remaining cell's wall comes, in this order, from

1. this machine's history (``walls.json`` in the runner's cache: the last wall of each cell here),
   scaled by how this run compares with it on the cells both have;
2. the reference walls shipped with the project (``reference-walls.json``: every cell of a whole
   default matrix, from one real run whose command, machine and date the file names), scaled the
   same way: what a first run on a new machine has;
3. the mean of this run's cells of its model and scenario, times how its framework mode compared
   with the others so far.

A wall depends on every option that sets how long a cell runs (iterations, minimum time, epochs...),
so a cell's key in these tables is its variant, mode, model, scenario and its whole config.

``python -m runner.eta RUN_DIR`` prints the reference walls of a finished run (what the shipped file
was made with; several run directories make one file, a later run's wall of a cell winning).
"""

from __future__ import annotations

import contextlib
import json
import os
import statistics
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from frameworks.result import Result

    from .cell import Cell

REFERENCE_FILE = Path(__file__).with_name("reference-walls.json")
REFERENCE_FORMAT = 1


def wall_key(variant: str, mode: str, model: str, scenario: str, config: dict[str, str]) -> str:
    """A cell as the wall tables know it (no machine): everything that sets how long it runs."""
    options = ",".join(f"{k}={v}" for k, v in sorted(config.items()))
    return f"{variant}|{mode}|{model}|{scenario}|{options}"


def cell_wall_key(cell: Cell) -> str:
    return wall_key(cell.variant.name, cell.mode, cell.model, cell.scenario, cell.config.to_strings())


def history_key(cell: Cell, machine: str) -> str:
    """A cell on a machine, as the wall-time history knows it."""
    return f"{machine}|{cell_wall_key(cell)}"


@dataclass
class Eta:
    """Time left in a run: see the module's docstring for where each remaining cell's wall comes from."""

    history: dict[str, float] = field(default_factory=dict)
    machine: str = ""
    reference: dict[str, float] = field(default_factory=dict)  # wall_key -> seconds (``load_reference``)
    seen: list[tuple[Cell, float]] = field(default_factory=list)

    def add(self, cell: Cell, wall: float) -> None:
        self.seen.append((cell, wall))

    def left(self, remaining: Iterable[Cell]) -> float | None:
        if not self.seen:
            return None
        return sum(self._estimate(c) for c in remaining)

    def recorded(self, cell: Cell) -> tuple[float, str] | None:
        """The cell's wall before any cell of the run has run (a dry run's estimate), with where it comes from:
        this machine's history, else the reference run's; None when neither has the cell."""
        own = self.history.get(history_key(cell, self.machine))
        if own is not None:
            return own, "this machine's last run of it"
        shipped = self.reference.get(cell_wall_key(cell))
        return (shipped, "the reference run's") if shipped is not None else None

    def _estimate(self, cell: Cell) -> float:
        own = self.history.get(history_key(cell, self.machine))
        if own is not None:
            return own * self._pace(self.history, lambda c: history_key(c, self.machine))
        shipped = self.reference.get(cell_wall_key(cell))
        if shipped is not None:
            return shipped * self._pace(self.reference, cell_wall_key)
        by_model = [w for c, w in self.seen if (c.model, c.scenario) == (cell.model, cell.scenario)]
        base = statistics.fmean(by_model) if by_model else statistics.fmean(w for _, w in self.seen)
        return base * self._factor(cell)

    def _pace(self, table: dict[str, float], key: Callable[[Cell], str]) -> float:
        """This run's walls over the table's, for the cells both have (1 when none)."""
        pairs = [(w, table[k]) for c, w in self.seen if (k := key(c)) in table]
        spent = sum(t for _, t in pairs)
        return sum(w for w, _ in pairs) / spent if pairs and spent > 0 else 1.0

    def _factor(self, cell: Cell) -> float:
        """How much slower than its model's mean this run's cells of the same variant mode (else framework) were."""
        means: dict[tuple[str, str], float] = {}
        for c, _ in self.seen:
            key = (c.model, c.scenario)
            means.setdefault(key, statistics.fmean(w for d, w in self.seen if (d.model, d.scenario) == key))
        for same in (lambda c: (c.variant.name, c.mode) == (cell.variant.name, cell.mode),
                     lambda c: c.variant.framework == cell.variant.framework):  # fmt: skip
            ratios = [w / means[(c.model, c.scenario)] for c, w in self.seen if same(c)]
            if ratios:
                return statistics.median(ratios)
        return 1.0

    def remember(self, path: Path) -> None:
        """Add this run's walls to the history file (the latest wall of each cell wins)."""
        walls = {**self.history, **{history_key(c, self.machine): w for c, w in self.seen}}
        with contextlib.suppress(OSError):  # a history that cannot be written only makes estimates worse
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps(walls, indent=0, sort_keys=True))
            os.replace(tmp, path)


def load_history(path: Path) -> dict[str, float]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return {str(k): float(v) for k, v in data.items() if isinstance(v, int | float)} if isinstance(data, dict) else {}


def load_reference(path: Path = REFERENCE_FILE) -> dict[str, float]:
    """The shipped reference walls (empty when the file is missing or of another format: estimates get worse,
    nothing fails)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict) or data.get("format") != REFERENCE_FORMAT or not isinstance(data.get("walls"), dict):
        return {}
    return {str(k): float(v) for k, v in data["walls"].items() if isinstance(v, int | float) and v >= 0}


def reference_walls(results: Iterable[Result], started_at: str) -> dict[str, float]:
    """Each run cell's wall in a finished run: the time from the previous result (or the run's start) to its own.

    A run records its results one after another as the cells end, so the gap between two results is
    everything the second cell cost (container start, imports, build, verification, measuring);
    cells that did not run (skipped) are left out. Timestamps are whole seconds.
    """
    walls: dict[str, float] = {}
    previous = datetime.fromisoformat(started_at)
    for result in results:
        if result.finished_at is None:  # not a result of a run (no timestamp): nothing to measure by
            continue
        finished = datetime.fromisoformat(result.finished_at)
        if result.status != "skipped" and result.variant is not None:
            key = wall_key(result.variant, result.mode, result.model, result.scenario, dict(result.config))
            walls[key] = max(0.0, (finished - previous).total_seconds())
        previous = finished
    return walls


def main(argv: list[str] | None = None) -> int:
    """Print the reference walls of finished runs (a later run's wall of a cell wins), with their sources."""
    from .rundir import RunDirError, load_results, read_run_info

    args = sys.argv[1:] if argv is None else argv
    if not args:
        print("usage: python -m runner.eta RUN_DIR [RUN_DIR ...]", file=sys.stderr)
        return 2
    sources: list[dict[str, Any]] = []
    walls: dict[str, float] = {}
    for arg in args:
        run_dir = Path(arg)
        try:
            info = read_run_info(run_dir)
        except RunDirError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        found = reference_walls(load_results(run_dir).results, info.started_at)
        walls.update(found)
        host = info.host
        sources.append({"run": info.run_id, "command": info.command, "started_at": info.started_at,
                        "cpu_model": host.cpu_model, "cpus": host.cpus_available, "cells": len(found)})  # fmt: skip
    print(json.dumps({"format": REFERENCE_FORMAT, "sources": sources, "walls": walls}, indent=1, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
