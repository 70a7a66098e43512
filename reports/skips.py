"""Cells that did not run, gathered by reason: one line per reason instead of one table row per cell.

On a machine without an NVIDIA runtime every CUDA cell is skipped with one reason, and a catalog variant
marked unavailable skips every model with one reason: repeated cell after cell they fill the matrix with rows
that say nothing new and push the figures off the screen. A reason shared by several cells is listed once,
with the cells it stopped; a cell skipped for a reason of its own stays in its table, where it is read.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from frameworks.result import Result

from .cells import model_title

MIN_GATHERED = 2  # a reason this many cells share is listed once instead of in every cell


@dataclass(frozen=True)
class SkippedGroup:
    """The cells that did not run for one reason."""

    reason: str  # "skipped: ..." / "failed: ..."
    cells: tuple[str, ...]  # "variant / mode · model ...", or "variant / mode (every model)"


def reason_of(result: Result) -> str:
    return f"{result.status}: {result.error or 'no reason recorded'}"


def gathered(results: Sequence[Result]) -> set[int]:
    """The skipped cells (by ``id``) whose reason at least ``MIN_GATHERED`` of ``results`` share."""
    by_reason: dict[str, list[Result]] = defaultdict(list)
    for r in results:
        if r.status == "skipped":
            by_reason[reason_of(r)].append(r)
    return {id(r) for group in by_reason.values() if len(group) >= MIN_GATHERED for r in group}


def groups_by_reason(results: Sequence[Result], labels: dict[int, str], models: Sequence[str]) -> list[SkippedGroup]:
    """``results`` (cells that did not run) by reason, in the order first met: each row label once, with the
    models it skipped, or "every model" where it skipped all of ``models``."""
    by_reason: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for r in results:
        by_reason[reason_of(r)][labels[id(r)]].append(r.model)
    groups = []
    for reason, rows in by_reason.items():
        cells = tuple(f"{label} ({_models_text(found, models)})" for label, found in rows.items())
        groups.append(SkippedGroup(reason, cells))
    return groups


def _models_text(found: list[str], models: Sequence[str]) -> str:
    if set(models) <= set(found):
        return "every model"
    return ", ".join(model_title(m) for m in models if m in found) or ", ".join(map(model_title, found))
