"""The pruning section: what the cells that ran the ``prune`` transform say, computed once for both renderers.

A pruned cell runs weights with a share of zeros (``frameworks.transforms.prune``). Its timing answers a
question of its own, so it never stands in the matrix or the per-model tables beside the model as specified
(``cells.is_transformed``); this section shows, per model:

- test accuracy against sparsity, for a model whose weights are trained (LeNet-5 on Fashion-MNIST): one line
  per variant and mode; a model pruned from its canonical (seeded, untrained) weights has no accuracy to show;
- the weights' size at each sparsity (the .npz raw and gzip'd, the gzip size against the dense weights', the
  sha256): the weights are made once per model and sparsity and every framework runs them, so the cells of one
  sparsity must name one sha256, and a note says so when they do not;
- latency against sparsity, and two speedups with a bootstrap interval and a rank test: each cell against the
  same variant and mode on the unpruned weights (a dense kernel multiplies zeros as fast as any other number,
  so pruning alone should buy nothing there), and a sparse mode (its build facts carry ``sparse_kernels``, which
  the framework itself filled with the layers a sparse kernel ran) against the framework's first, dense, mode on
  the same weights: what a sparse kernel buys. A skipped cell (a sparse path this CPU cannot use) is listed
  with its reason, never with a timing;
- the CPU features that decide sparse and int8 kernels' speed, once per machine the cells ran on.

Cells are paired by their keys (``CellKey.without``), never by their labels: the sparsity-0 baseline is the
cell whose key differs in the sparsity and the weights alone, the dense mode the one whose key differs in the
mode alone. Every figure comes from the cells' own records; nothing here measures.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from frameworks.backends.registry import SPARSE_KERNELS
from frameworks.result import Result

from . import fmt
from .cells import (
    SweepLine,
    distinct_labels,
    figures,
    framework_title,
    is_latency,
    machines_of,
    model_order,
    model_title,
    per_image_samples,
)
from .compare import ALPHA, CI_LEVEL, RESAMPLES, Speedup, compare_samples, dense_mode, prune_pairs, sparse_pairs
from .verdicts import trust_flags

PRUNE = "prune"
SPARSITY = "sparsity"  # the prune config's identity field (``PruneConfig.IDENTITY``)
WEIGHTS = "weights"  # the transform key's entry for the weights' sha256 (``Transformed.key``)
DENSE_TARGET = 0.0  # the sparsity of the unpruned weights every pruned cell is compared with
SHA_SHOWN = 12  # hex digits of a sha256 on the page
# The CPU features that decide the speed of sparse and int8 kernels (as /proc/cpuinfo names them): AVX2 and
# AVX-512 for the gathers and masked loads of sparse kernels, VNNI (AVX-512 or AVX) and AMX for int8 dot products.
FEATURES = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_tile", "amx_int8", "amx_bf16")
NOT_APPLICABLE = "accuracy: not applicable (canonical weights, not trained)"


def is_pruned(result: Result) -> bool:
    """A latency cell that ran the prune transform: this section's cells."""
    return is_latency(result) and result.transform is not None and result.transform.name == PRUNE


@dataclass(frozen=True)
class SizeRow:
    """One sparsity's weights: the target, what the weights hold, their sizes and sha256."""

    target: str  # the configured sparsity, "0.5"
    counted: str  # zeros among the prunable weights, counted from the weights: "0.5000"
    raw: str  # the canonical-layout .npz, bytes
    gzip: str  # the same, gzip -9
    share: str  # gzip size over the dense weights' gzip size: "38.2%", "—" without a dense cell
    sha: str  # sha256, first SHA_SHOWN hex digits
    made: str  # how the transform made them (its facts: fine-tuning, spared layers)
    cells: int  # how many cells ran these weights


@dataclass(frozen=True)
class AccuracyRow:
    label: str  # variant / mode
    values: tuple[str, ...]  # test accuracy at each target sparsity, "—" where the row has none


@dataclass(frozen=True)
class LatencyRow:
    """One cell: its median per image, or why it has none; the sparse kernels it ran, verbatim."""

    label: str
    target: str
    ok: bool
    median: str  # ms per image
    interval: str  # the median's confidence interval, ms per image
    reason: str  # "skipped: ..." when not ok
    sparse_kernels: str  # the framework's own sparse_kernels fact, verbatim; "" where the cell states none
    kernels: str  # what the table shows: that fact, "— (dense)" for a timed cell without it, else "—"
    flags: tuple[str, ...]  # the cell's warnings, an output that did not match the reference


@dataclass(frozen=True)
class SpeedupRow:
    """The candidate cell against its baseline: median(baseline) / median(candidate), with its interval."""

    label: str  # the candidate's variant / mode
    target: str  # the candidate's sparsity
    baseline: str  # what it is compared with: "sparsity 0", "cpu-torch / eager"
    baseline_ms: str
    candidate_ms: str
    ratio: str
    interval: str
    p_value: str
    significant: bool
    speedup: Speedup


@dataclass(frozen=True)
class PruningModel:
    model: str
    title: str
    source: str  # what the weights were pruned from: "trained", "canonical"
    targets: tuple[str, ...]  # the sparsities the cells ran, in order
    sizes: tuple[SizeRow, ...]
    accuracy: tuple[AccuracyRow, ...]
    accuracy_note: str  # why there is no accuracy table ("" when there is one)
    accuracy_lines: tuple[SweepLine, ...]
    latency: tuple[LatencyRow, ...]
    latency_lines: tuple[SweepLine, ...]
    vs_unpruned: tuple[SpeedupRow, ...]
    vs_dense: tuple[SpeedupRow, ...]
    notes: tuple[str, ...]


@dataclass(frozen=True)
class FeatureRow:
    """One machine the pruned cells ran on: whether it has each of ``FEATURES``."""

    machine: str  # its fingerprint, or why there is none
    cpu: str
    values: tuple[str, ...]  # "present" / "absent" per feature; "not recorded" without a machine record


@dataclass(frozen=True)
class PruningSection:
    intro: str
    legend: str
    models: tuple[PruningModel, ...]
    features: tuple[str, ...]
    machines: tuple[FeatureRow, ...]


INTRO = (
    "Cells that ran the prune transform: global unstructured magnitude pruning of the conv and dense weights to "
    "each sparsity, made once per model and sparsity and run by every framework. They are shown here only, not "
    "in the matrix or the per-model tables. A dense kernel multiplies a zero as fast as any other number, so "
    "pruned weights are expected to run no faster there; a sparse mode (its framework states which layers ran a "
    "sparse kernel, shown verbatim) can skip them. Sparsity 0 is the unpruned weights."
)
LEGEND = (
    "Sparsity: the target, and the share of zeros among the prunable weights counted from the weights (the "
    "charts' x). Latency: the median of the cell's timed samples at its batch, in ms per image, with its "
    "confidence interval. Speedup = median time per image of the baseline / that of the candidate (above 1: the "
    f"candidate is faster), {CI_LEVEL:.0%} percentile-bootstrap interval ({RESAMPLES} resamples), p from a two-sided "
    f"Mann-Whitney U test; significant when p < {ALPHA} and the interval excludes 1. Size: the weights' "
    "canonical-layout .npz, raw and gzip -9, and the gzip size against that of the unpruned weights."
)


def pruning_section(results: Sequence[Result], show_launcher: bool) -> PruningSection | None:
    """The section for the run's pruned cells, or None when no cell ran the prune transform."""
    cells = [r for r in results if is_pruned(r)]
    if not cells:
        return None
    labels = pruned_labels(cells, show_launcher)
    models = tuple(_model(m, [r for r in cells if r.model == m], labels) for m in model_order(r.model for r in cells))
    return PruningSection(INTRO, LEGEND, models, FEATURES, tuple(feature_rows(cells)))


def pruned_labels(cells: Sequence[Result], show_launcher: bool) -> dict[int, str]:
    """Each cell's row label (``cells.distinct_labels``), told apart by its sparsity."""
    return distinct_labels(cells, show_launcher, target_of)


def target_of(result: Result) -> str:
    """The configured sparsity, as the cell's config holds it ("0.5")."""
    return result.transform.config.get(SPARSITY, "") if result.transform is not None else ""


def target_value(text: str) -> float:
    """The configured sparsity as a number (NaN when it is not one: shown, ordered last, never a baseline)."""
    try:
        value = float(text)
    except ValueError:
        return math.nan
    return value if math.isfinite(value) else math.nan


def target_order(targets: Iterable[str]) -> list[str]:
    """Sparsities by value, anything that is not a number after them (alphabetically)."""
    return sorted(set(targets), key=_target_rank)


def _target_rank(text: str) -> tuple[bool, float, str]:
    value = target_value(text)
    return math.isnan(value), 0.0 if math.isnan(value) else value, text


def is_dense_target(result: Result) -> bool:
    return target_value(target_of(result)) == DENSE_TARGET


def sparse_kernels(result: Result) -> str | None:
    """The framework's own account of the sparse kernels it ran; None for a dense mode."""
    return result.build.get(SPARSE_KERNELS)


def timed(result: Result) -> bool:
    """Whether a speedup can be computed from the cell: ok, with at least two usable samples."""
    return result.status == "ok" and per_image_samples(result).size >= 2


def _model(model: str, cells: list[Result], labels: dict[int, str]) -> PruningModel:
    targets = tuple(target_order(target_of(r) for r in cells))
    sizes, size_notes = size_rows(cells, labels, targets)
    accuracy, accuracy_note = accuracy_rows(cells, labels, targets)
    vs_unpruned, unpruned_notes = unpruned_pairs(cells, labels)
    vs_dense, dense_notes = dense_pairs(cells, labels)
    rows = list(dict.fromkeys(labels[id(r)] for r in cells))  # the run's row order (``row_sort_key``)
    ordered = sorted(cells, key=lambda r: (rows.index(labels[id(r)]), targets.index(target_of(r))))
    return PruningModel(
        model=model,
        title=model_title(model),
        source=_distinct(r.transform.source for r in cells if r.transform is not None) or "not recorded",
        targets=targets,
        sizes=sizes,
        accuracy=accuracy,
        accuracy_note=accuracy_note,
        accuracy_lines=tuple(_lines(ordered, labels, _accuracy_percent)),
        latency=tuple(latency_row(r, labels[id(r)]) for r in ordered),
        latency_lines=tuple(_lines(ordered, labels, _median_ms)),
        vs_unpruned=tuple(vs_unpruned),
        vs_dense=tuple(vs_dense),
        notes=tuple(size_notes + unpruned_notes + dense_notes),
    )


def _distinct(values: Iterable[str]) -> str:
    return " / ".join(dict.fromkeys(v for v in values if v))


# --- the weights at each sparsity ----------------------------------------------------------------------


def size_rows(
    cells: list[Result], labels: dict[int, str], targets: tuple[str, ...]
) -> tuple[tuple[SizeRow, ...], list[str]]:
    """One row per sparsity (one per distinct weights, where cells of a sparsity ran different ones), and a note
    for each sparsity whose cells did not all run the same weights."""
    by_weights: dict[tuple[str, str], list[Result]] = defaultdict(list)
    for r in cells:
        if r.transform is not None and r.transform.weights_sha256:
            by_weights[(target_of(r), r.transform.weights_sha256)].append(r)
    dense = next((group for (target, _), group in by_weights.items() if target_value(target) == DENSE_TARGET), None)
    dense_gzip = dense[0].transform.weights_gzip_bytes if dense and dense[0].transform else None
    rows: list[SizeRow] = []
    notes: list[str] = []
    for target in targets:
        groups = [(sha, group) for (t, sha), group in by_weights.items() if t == target]
        rows += [_size_row(target, sha, group, dense_gzip) for sha, group in groups]
        if len(groups) > 1:
            parts = "; ".join(f"{sha[:SHA_SHOWN]}…: {', '.join(labels[id(r)] for r in group)}" for sha, group in groups)
            notes.append(f"the cells at sparsity {target} ran different weights ({parts}): their figures are not "
                         "of the same model")  # fmt: skip
    if dense is None:
        notes.append("no cell ran the unpruned weights (sparsity 0): no size share and no speedup over them")
    return tuple(rows), notes


def _size_row(target: str, sha: str, group: list[Result], dense_gzip: int | None) -> SizeRow:
    t = group[0].transform
    assert t is not None
    share = "—"
    if t.weights_gzip_bytes is not None and dense_gzip:
        share = fmt.percent(100.0 * t.weights_gzip_bytes / dense_gzip)
    return SizeRow(
        target=target,
        counted=f"{t.sparsity:.4f}" if t.sparsity is not None else "not counted",
        raw=fmt.count(t.weights_bytes) if t.weights_bytes is not None else "—",
        gzip=fmt.count(t.weights_gzip_bytes) if t.weights_gzip_bytes is not None else "—",
        share=share,
        sha=sha[:SHA_SHOWN],
        made="; ".join(f"{k}: {v}" for k, v in sorted(t.facts.items())) or "—",
        cells=len(group),
    )


# --- accuracy and latency against sparsity ---------------------------------------------------------------


def accuracy_rows(
    cells: list[Result], labels: dict[int, str], targets: tuple[str, ...]
) -> tuple[tuple[AccuracyRow, ...], str]:
    """Test accuracy per row and sparsity; none, with the reason, for weights that were never trained."""
    measured = [r for r in cells if r.status == "ok" and r.accuracy is not None]
    if not measured:
        sources = {r.transform.source for r in cells if r.transform is not None}
        return (), NOT_APPLICABLE if sources <= {"canonical"} else "accuracy: no cell measured a test accuracy"
    by_label: dict[str, dict[str, float]] = defaultdict(dict)
    for r in measured:
        by_label[labels[id(r)]][target_of(r)] = r.accuracy  # type: ignore[assignment]
    rows = tuple(
        AccuracyRow(label, tuple(fmt.accuracy(v[t]) if t in v else "—" for t in targets))
        for label, v in by_label.items()
    )
    return rows, ""


def latency_row(result: Result, label: str) -> LatencyRow:
    figs = figures(result)
    kernels = sparse_kernels(result) or ""
    flags = list(result.warnings)
    if result.verified is False and not any("reference" in w for w in flags):
        flags.insert(0, "output does not match the reference")
    flags = list(trust_flags(result, flags))
    if figs is None:
        missing = "no timing recorded" if result.status == "ok" else "no reason recorded"
        reason = f"{result.status}: {result.error or missing}"
        return LatencyRow(label, target_of(result), False, "—", "—", reason, kernels, kernels or "—", tuple(flags))
    interval = f"{fmt.sig(figs.ci_low_ms)}–{fmt.sig(figs.ci_high_ms)}"
    shown = kernels or "— (dense)"  # a sparse mode always states its kernels (``SPARSE_KERNELS``)
    return LatencyRow(label, target_of(result), True, fmt.sig(figs.median_ms), interval, "", kernels, shown,
                      tuple(flags))  # fmt: skip


def _median_ms(result: Result) -> float | None:
    figs = figures(result)
    return figs.median_ms if figs is not None else None


def _accuracy_percent(result: Result) -> float | None:
    return 100.0 * result.accuracy if result.status == "ok" and result.accuracy is not None else None


def _lines(cells: list[Result], labels: dict[int, str], value: Callable[[Result], float | None]) -> list[SweepLine]:
    """One line per row label: the figure ``value(cell)`` at each cell's counted sparsity (cells without one,
    or without the figure, are left out; a row with no point draws nothing)."""
    points: dict[str, list[tuple[float, float, bool]]] = defaultdict(list)
    groups: dict[str, str] = {}
    for r in cells:
        y = value(r)
        x = r.transform.sparsity if r.transform is not None else None
        if y is None or x is None:
            continue
        points[labels[id(r)]].append((x, y, r.verified is False))
        groups[labels[id(r)]] = r.framework
    lines = []
    for label, found in points.items():
        found.sort()
        xs, ys, bad = zip(*found, strict=True)
        lines.append(SweepLine(label, groups[label], tuple(xs), tuple(ys), tuple(bad)))
    return lines


# --- speedups ----------------------------------------------------------------------------------------


def unpruned_pairs(cells: list[Result], labels: dict[int, str]) -> tuple[list[SpeedupRow], list[str]]:
    """Each pruned cell against the same variant and mode on the unpruned weights (``compare.prune_pairs``:
    the cell whose key differs in the sparsity and the weights alone, at sparsity 0)."""
    usable = [r for r in cells if timed(r)]
    pairs = prune_pairs(usable)
    rows = [speedup_row(p.candidate, p.baseline, labels[id(p.candidate)], "sparsity 0") for p in pairs]
    paired = {id(p.candidate) for p in pairs}
    notes = [f"{labels[id(r)]} at sparsity {target_of(r)}: no timed cell of the same variant and mode on the "
             "unpruned weights (sparsity 0) to compare with"
             for r in usable if not is_dense_target(r) and id(r) not in paired]  # fmt: skip
    return rows, notes


def dense_pairs(cells: list[Result], labels: dict[int, str]) -> tuple[list[SpeedupRow], list[str]]:
    """Each sparse-mode cell against the framework's first mode on the same weights (``compare.sparse_pairs``).
    A framework whose first mode is the sparse one (DeepSparse's one engine) has no dense mode to compare
    with: one note says so, and its pruned cells have their speedup over sparsity 0 only."""
    usable = [r for r in cells if timed(r)]
    pairs = sparse_pairs(usable)
    rows = [speedup_row(p.candidate, p.baseline, labels[id(p.candidate)], labels[id(p.baseline)]) for p in pairs]
    paired = {id(p.candidate) for p in pairs}
    notes: dict[str, None] = {}  # in order, once each
    for r in (r for r in usable if sparse_kernels(r) is not None and id(r) not in paired):
        mode = dense_mode(r)
        if mode == r.mode:
            notes[
                f"{framework_title(r.framework)} {r.mode} is its framework's first mode: no dense mode to compare "
                "its kernels with on the same weights (its pruned cells are compared with sparsity 0 only)"
            ] = None
        else:
            wanted = f"its framework's first mode ({mode})" if mode is not None else "a dense mode of its framework"
            notes[f"{labels[id(r)]} at sparsity {target_of(r)}: no timed cell of {wanted} on the same weights to "
                  "compare with"] = None  # fmt: skip
    return rows, list(notes)


def speedup_row(candidate: Result, baseline: Result, label: str, baseline_label: str) -> SpeedupRow:
    s = compare_samples(per_image_samples(baseline), per_image_samples(candidate))
    return SpeedupRow(
        label=label,
        target=target_of(candidate),
        baseline=baseline_label,
        baseline_ms=_ms_text(baseline),
        candidate_ms=_ms_text(candidate),
        ratio=fmt.ratio(s.ratio),
        interval=fmt.interval(s.ci_low, s.ci_high),
        p_value=fmt.p_value(s.p_value),
        significant=s.significant,
        speedup=s,
    )


def _ms_text(result: Result) -> str:
    median = _median_ms(result)
    return fmt.sig(median) if median is not None else "—"


# --- the machines' CPU features ----------------------------------------------------------------------------


def feature_rows(cells: Sequence[Result]) -> list[FeatureRow]:
    """Each machine the cells ran on, once (``cells.machines_of``), with the features that decide sparse speed."""
    rows = []
    for _, r in machines_of(cells):
        env = r.environment
        assert env is not None
        machine = env.machine
        if machine is None:
            rows.append(
                FeatureRow("not recorded (no machine record)", env.cpu_model, ("not recorded",) * len(FEATURES))
            )
        else:
            values = tuple("present" if f in machine.flags else "absent" for f in FEATURES)
            rows.append(FeatureRow(machine.fingerprint, machine.model_name or env.cpu_model, values))
    return rows
