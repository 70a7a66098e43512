"""The training section: what the train scenario's cells say, computed once for both renderers.

Per model (LeNet-5): one row per variant and mode (framework, version, mode, first epoch, epoch
time, images/s, final test accuracy, peak memory, the cell's own fidelity check, and its training
time relative to PyTorch eager), the test accuracy after each epoch, the learning curves (loss
against step, test accuracy against epoch: one line per framework and mode), and how far the
cells' losses are apart at step 20 and at the end of epoch 1. Every figure is computed from the
cells' recorded epochs and losses; nothing here measures.

The first epoch includes compilation (torch.compile, XLA, hybridization), so epoch time, images/s
and the relative time use the epochs after it; a cell that ran one epoch shows that epoch, marked.
The relative time is the median epoch time of the cell over that of PyTorch eager (above 1: slower),
with a percentile-bootstrap interval over the epochs after the first (at least two on each side).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from frameworks.backends.registry import FRAMEWORKS
from frameworks.result import Result, Training
from frameworks.scenarios.train import NAME as TRAIN

from . import fmt
from .cells import SweepLine, framework_title, model_order, model_title
from .compare import CI_LEVEL, RESAMPLES, bootstrap_ratio_ci
from .verdicts import trust_flags

BASELINE = ("torch", "eager")  # what every training time is relative to
STEP_OF_INTEREST = 20  # the fidelity window's last step: how far the frameworks' losses are apart there


def is_training(result: Result) -> bool:
    """Results of the train scenario: they have this section (and no place in the matrix or the sweeps)."""
    return result.scenario == TRAIN


@dataclass(frozen=True)
class TrainingRow:
    label: str  # variant / mode
    framework: str  # "PyTorch"
    version: str
    mode: str
    ok: bool
    reason: str  # why it has no figures ("failed: ...")
    first_epoch: str  # "63.0 s"
    epoch_time: str  # median of the epochs after the first
    images_per_s: str
    accuracy: str  # final test accuracy
    peak_memory: str
    fidelity: str  # the cell's largest relative loss difference from the float64 trainer, first 20 steps
    relative: str  # "1.12×", "1 (baseline)", "—"
    interval: str  # "[1.05, 1.20]" or "—"
    flags: tuple[str, ...]  # the cell's warnings, and figures that stand for something else


@dataclass(frozen=True)
class Agreement:
    """How far apart the cells' losses are at one step: (largest - smallest) / smallest."""

    step: int
    what: str  # "step 20", "end of epoch 1 (step 937)"
    spread: str  # "3.2e-03" or "—"
    between: str  # "cpu-torch / eager (1.0933) and cpu-numpy-openblas / im2col (1.0967)"


@dataclass(frozen=True)
class TrainingModel:
    model: str
    title: str
    baseline: str  # the row label of the PyTorch eager cell, or why there is none
    rows: tuple[TrainingRow, ...]
    epochs: tuple[int, ...]  # the epoch numbers of the accuracy table
    accuracy_rows: tuple[tuple[str, tuple[str, ...]], ...]  # label, accuracy after each epoch
    loss_lines: tuple[SweepLine, ...]
    accuracy_lines: tuple[SweepLine, ...]
    agreement: tuple[Agreement, ...]
    notes: tuple[str, ...]


@dataclass(frozen=True)
class TrainingSection:
    intro: str
    legend: str
    models: tuple[TrainingModel, ...]


def training_section(results: Sequence[Result], labels: dict[int, str]) -> TrainingSection | None:
    """The section for the run's train cells (``labels`` by ``id``), or None when it has none."""
    cells = [r for r in results if is_training(r)]
    if not cells:
        return None
    models = tuple(_model(m, [r for r in cells if r.model == m], labels) for m in model_order(r.model for r in cells))
    return TrainingSection(intro=_intro(cells), legend=LEGEND, models=models)


LEGEND = (
    "Epoch time and images/s: the median of the epochs after the first (the first includes compilation, and is "
    "shown apart); ↺ marks a cell that ran one epoch, whose figures are that epoch's. Accuracy: on the test "
    "images after the last epoch, measured inside the framework. Fidelity: the cell's largest relative "
    "difference of the training loss from the float64 NumPy trainer's on the same batches over the first 20 "
    "steps; ‡: to the step where float32 rounding broke a near-tie on this CPU (a max-pool window or a ReLU input "
    "within a few float32 ulps, recorded with the cell), after which the trajectories separate as training "
    "amplifies it, so it is not judged; every step is also checked at the framework's own weights. "
    f"Relative time: the cell's median epoch time over PyTorch eager's (above 1: slower), with a "
    f"{CI_LEVEL:.0%} percentile-bootstrap interval ({RESAMPLES} resamples) over the epochs after the first, "
    "which needs two of them on each side."
)


def _fidelity(training: Training) -> str:
    """The loss difference the cell was judged on; past a near-tie float32 broke, to the step before it."""
    if training.max_loss_error is None:
        return "—"
    if training.near_tie and training.max_judged_loss_error is not None:
        return f"{training.max_judged_loss_error:.1e} to step {training.fidelity_judged_steps} ‡"
    return f"{training.max_loss_error:.1e}"


def _intro(cells: list[Result]) -> str:
    first = next((r for r in cells if r.training is not None), None)
    setup = ""
    if first is not None:
        c = first.config
        setup = (
            f" SGD, learning rate {c.get('learning_rate', '?')}, momentum {c.get('momentum', '?')}, batches of "
            f"{c.get('batch_size', '?')}, {c.get('epochs', '?')} epoch(s) of {first.training.train_images:,} "  # type: ignore[union-attr]
            f"{first.training.dataset} training images, tested on {first.training.test_images:,}."  # type: ignore[union-attr]
        )
    untrained = [info.title for info in FRAMEWORKS.values() if not info.train_modes]
    tail = f" Not trained (their backends have no train step): {', '.join(untrained)}." if untrained else ""
    return (
        "Each framework trains the same network from the same initial weights on the same batches in the same "
        "order, with its own training machinery (autograd, GradientTape, Gluon's Trainer, a hand-written backward "
        f"pass), so the curves should overlap and any gap is the framework's.{setup}{tail}"
    )


def _model(model: str, cells: list[Result], labels: dict[int, str]) -> TrainingModel:
    baseline = _baseline(cells)
    base_walls = _steady(baseline.training) if baseline is not None and baseline.training is not None else []
    rows = tuple(_row(r, labels[id(r)], r is baseline, base_walls) for r in cells)
    trained = [r for r in cells if r.status == "ok" and r.training is not None]
    epochs = tuple(sorted({e.epoch for r in trained for e in r.training.epochs}))  # type: ignore[union-attr]
    accuracy_rows = tuple((labels[id(r)], tuple(_epoch_accuracy(r.training, n) for n in epochs)) for r in trained)  # type: ignore[arg-type]
    return TrainingModel(
        model=model,
        title=model_title(model),
        baseline=labels[id(baseline)] if baseline is not None else "no PyTorch eager cell: no relative times",
        rows=rows,
        epochs=epochs,
        accuracy_rows=accuracy_rows,
        loss_lines=tuple(_loss_line(r, labels[id(r)]) for r in trained),
        accuracy_lines=tuple(_accuracy_line(r, labels[id(r)]) for r in trained),
        agreement=tuple(_agreement(trained, labels)),
        notes=tuple(_protocol_notes(trained, labels)),
    )


def _baseline(cells: list[Result]) -> Result | None:
    for r in cells:
        if (r.framework, r.mode) == BASELINE and r.device == "cpu" and r.status == "ok" and r.training is not None:
            return r
    return None


def _steady(training: Training) -> list[float]:
    """The wall times of the epochs after the first (the first includes compilation); the first if alone."""
    walls = [e.wall_s for e in training.epochs if math.isfinite(e.wall_s) and e.wall_s > 0]
    return walls[1:] if len(walls) > 1 else walls


def _epoch_accuracy(training: Training, number: int) -> str:
    for epoch in training.epochs:
        if epoch.epoch == number:
            return fmt.accuracy(epoch.test_accuracy)
    return "—"


def _row(result: Result, label: str, is_baseline: bool, base_walls: list[float]) -> TrainingRow:
    framework, version = framework_title(result.framework), result.version or ""
    training = result.training
    if result.status != "ok" or training is None or not training.epochs:
        reason = f"{result.status}: {result.error or 'no epoch was recorded'}"
        dash = "—"
        return TrainingRow(label, framework, version, result.mode, False, reason, dash, dash, dash, dash, dash, dash,
                           dash, dash, tuple(result.warnings))  # fmt: skip
    walls = _steady(training)
    flags = list(trust_flags(result, result.warnings))
    alone = len(training.epochs) == 1
    median = float(np.median(walls))
    images = training.epochs[-1].images
    relative, interval = _relative(walls, base_walls, is_baseline)
    fidelity = _fidelity(training)
    return TrainingRow(
        label=label,
        framework=framework,
        version=version,
        mode=result.mode,
        ok=True,
        reason="",
        first_epoch=f"{fmt.sig(training.epochs[0].wall_s)} s",
        epoch_time=f"{fmt.sig(median)} s" + (" ↺" if alone else ""),
        images_per_s=fmt.sig(images / median) + (" ↺" if alone else ""),
        accuracy=fmt.accuracy(training.final_accuracy),
        peak_memory=fmt.gib(result.peak_rss_bytes) if result.peak_rss_bytes else "—",
        fidelity=fidelity,
        relative=relative,
        interval=interval,
        flags=tuple(flags),
    )


def _relative(walls: list[float], base: list[float], is_baseline: bool) -> tuple[str, str]:
    if is_baseline:
        return "1 (baseline)", "—"
    if not walls or not base:
        return "—", "—"
    ratio = float(np.median(walls) / np.median(base))
    if len(walls) < 2 or len(base) < 2:
        return fmt.ratio(ratio), "—"
    low, high = bootstrap_ratio_ci(np.asarray(walls), np.asarray(base))  # median(cell) / median(PyTorch eager)
    return fmt.ratio(ratio), fmt.interval(low, high)


def _loss_line(result: Result, label: str) -> SweepLine:
    t = result.training
    assert t is not None
    return SweepLine(label, result.framework, t.loss_steps, t.losses, tuple(False for _ in t.losses))


def _accuracy_line(result: Result, label: str) -> SweepLine:
    t = result.training
    assert t is not None
    xs = tuple(e.epoch for e in t.epochs)
    return SweepLine(label, result.framework, xs, tuple(100.0 * e.test_accuracy for e in t.epochs), (False,) * len(xs))


def _loss_at(training: Training, step: int) -> float | None:
    for s, loss in zip(training.loss_steps, training.losses, strict=False):
        if s == step:
            return loss
    return None


def _agreement(trained: list[Result], labels: dict[int, str]) -> list[Agreement]:
    """The spread of the cells' losses at step 20 and at the end of epoch 1 (cells of one protocol only)."""
    if not trained:
        return []
    first = trained[0].training
    assert first is not None
    steps = [(STEP_OF_INTEREST, f"step {STEP_OF_INTEREST}")]
    steps.append((first.steps_per_epoch, f"end of epoch 1 (step {first.steps_per_epoch:,})"))
    found = []
    for step, what in dict(steps).items():  # one entry when an epoch is 20 steps
        values = [(r, loss) for r in trained if (loss := _loss_at(r.training, step)) is not None]  # type: ignore[arg-type]
        if len(values) < 2:
            found.append(Agreement(step, what, "—", "fewer than two cells recorded this step"))
            continue
        low = min(values, key=lambda v: v[1])
        high = max(values, key=lambda v: v[1])
        spread = (high[1] - low[1]) / abs(low[1]) if low[1] else math.inf
        between = f"{labels[id(high[0])]} ({high[1]:.6g}) and {labels[id(low[0])]} ({low[1]:.6g})"
        found.append(Agreement(step, what, f"{spread:.1e}", between))
    return found


def _protocol_notes(trained: list[Result], labels: dict[int, str]) -> list[str]:
    """Cells that did not start from the same weights, feed the same batches or read the same data."""
    notes = []
    for field_name, what in (
        ("initial_weights_sha256", "initial weights"),
        ("order_sha256", "batch order"),
        ("dataset_sha256", "dataset files"),
    ):
        groups: dict[str, list[str]] = defaultdict(list)
        for r in trained:
            groups[getattr(r.training, field_name)].append(labels[id(r)])
        if len(groups) > 1:
            parts = "; ".join(f"{digest[:12] or 'none'}…: {', '.join(names)}" for digest, names in groups.items())
            notes.append(f"the cells differ in their {what} ({parts}): their curves are not the same experiment")
    return notes
