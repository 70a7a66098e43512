"""What every cell of a model shares, computed once per run: its canonical weights and float64 reference,
and the weights each transform point makes (``python -m frameworks.inputs`` in a subprocess)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path

from frameworks.transforms import NO_POINT, NONE, TransformPoint

from .catalog import REPO_ROOT
from .cell import Cell, Inputs
from .interpret import describe_exit, error_line
from .launcher import Log
from .paths import inputs_root


def prepare_inputs(cells: Iterable[Cell], seed: int, log: Log, timeout: float = 1800) -> dict[str, Inputs]:
    """Each model's canonical weights and float64 reference, made once for every cell of the run.

    One subprocess per model (the runner never imports NumPy), covering the largest batch any of
    the model's cells runs. A model whose inputs cannot be made is left out: its cells compute
    their own, as predict does by hand.
    """
    largest: dict[str, int] = {}
    for cell in (c for c in cells if c.transform.name == NONE):  # a transform's cells have inputs of their own
        largest[cell.model] = max(largest.get(cell.model, 1), cell.config.largest_batch())
    made: dict[str, Inputs] = {}
    for model, batch in largest.items():
        start = time.monotonic()
        inputs, problem, _ = _make_inputs(model, batch, seed, timeout)
        if inputs is None:
            log(f"inputs: {model}: not made ({problem}); its cells compute their own")
            continue
        made[model] = inputs
        log(f"inputs: {model} (up to batch {batch}) ready in {time.monotonic() - start:.1f} s")
    return made


def with_inputs(cells: list[Cell], made: dict[str, Inputs]) -> list[Cell]:
    """The cells with the canonical inputs of their model (a transform's cells keep their own)."""
    return [c if c.transform.name != NONE else replace(c, inputs=made.get(c.model)) for c in cells]


def prepare_transforms(cells: list[Cell], seed: int, log: Log, timeout: float = 1800) -> list[Cell]:
    """The weights each transform point makes for each model, once per run (and cached between runs), with
    their reference; each cell gets them and the key they give it (the weights' sha256 is part of the key,
    so this comes before resume looks for what is done). Weights that cannot be made leave the cells to make
    their own, said in the log: such a cell's key is known only once it has run.
    """
    largest: dict[tuple[str, TransformPoint], int] = {}
    for cell in (c for c in cells if c.transform.name != NONE):
        pair = (cell.model, cell.transform)
        largest[pair] = max(largest.get(pair, 1), cell.config.largest_batch())
    made: dict[tuple[str, TransformPoint], tuple[Inputs, tuple[tuple[str, str], ...]]] = {}
    for (model, point), batch in largest.items():
        start = time.monotonic()
        inputs, problem, key = _make_inputs(model, batch, seed, timeout, point)
        if inputs is None:
            log(f"inputs: {model} {point.label()}: not made ({problem}); its cells make their own")
            continue
        made[(model, point)] = (inputs, key)
        log(f"inputs: {model} {point.label()} (up to batch {batch}) ready in {time.monotonic() - start:.1f} s")
    return [replace(c, inputs=made[(c.model, c.transform)][0], transform_key=made[(c.model, c.transform)][1])
            if (c.model, c.transform) in made else c for c in cells]  # fmt: skip


def _make_inputs(
    model: str, batch: int, seed: int, timeout: float, point: TransformPoint = NO_POINT
) -> tuple[Inputs | None, str, tuple[tuple[str, str], ...]]:
    args = ["--root", str(inputs_root()), "--model", model, "--seed", str(seed), "--batch", str(batch)]
    args += point.to_args()
    try:
        proc = subprocess.run([sys.executable, "-m", "frameworks.inputs", *args], cwd=REPO_ROOT,
                              capture_output=True, text=True, timeout=timeout, check=False)  # fmt: skip
    except subprocess.TimeoutExpired:
        return None, f"took more than {timeout:.0f} s", ()
    if proc.returncode != 0:
        return None, error_line(proc.stderr) or describe_exit(proc.returncode), ()
    try:
        answer = json.loads(proc.stdout.strip().splitlines()[-1])
        key = tuple((str(name), str(value)) for name, value in answer.get("transform_key", []))
        return Inputs(Path(answer["directory"]).name, str(answer["sha256"])), "", key
    except (ValueError, IndexError, KeyError, TypeError):
        return None, f"printed {proc.stdout.strip()[:80]!r}", ()
