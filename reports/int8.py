"""The int8 section: what the cells that ran the ``int8`` transform say, computed once for both renderers.

An int8 cell runs the model quantized after training (``frameworks.transforms.int8``): the project's one QDQ
graph (toolchain ``qdq``) or the framework's own PTQ toolchain (``native``), its activation ranges calibrated
on a number of images. Its timing answers a question of its own, so it never stands in the matrix or the
per-model tables (``cells.is_transformed``); this section shows:

- the CPU features that decide whether int8 can be fast here (AVX2, AVX512-VNNI, AVX-VNNI, AMX-INT8), once per
  machine the cells ran on: without VNNI or AMX an int8 dot product widens through 16-bit steps and is often no
  faster than float32, and the reader should know that before reading a speedup;
- per framework (variant and mode), model, toolchain, calibrator and calibration size: the int8 median against
  the float32 one of the same cell (a bootstrap interval on the ratio, a rank test), the int8 kernels the
  framework says ran, verbatim, and the model's size against the float32 one; a cell whose int8 is slower than
  its float32 (the whole interval below 1) is marked so that no reader takes int8 for a free speedup;
- test accuracy against calibration size for a model with trained weights (LeNet-5 on Fashion-MNIST), with the
  float32 accuracy as the reference; a model quantized from seeded weights has no accuracy to show;
- the int8 cells that did not run (no int8 kernel, a toolchain the framework does not have), with the reasons.

An int8 cell is paired with its float32 counterpart by key (``CellKey.without("transform")``: the same variant,
mode, model, device and scenario identity, batch included, and the model as specified), never by its label,
and only at the same thread count. Every figure comes from the cells' own records; nothing here measures.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from frameworks.backends.registry import INT8_KERNELS
from frameworks.environment import INT8_FLAGS
from frameworks.result import NO_TRANSFORM, CellKey, Result
from frameworks.transforms.int8 import CALIBRATORS, TOOLCHAINS

from . import fmt
from .cells import (
    SweepLine,
    distinct_labels,
    figures,
    is_latency,
    machines_of,
    model_order,
    model_title,
    per_image_samples,
    row_label,
)
from .compare import ALPHA, CI_LEVEL, RESAMPLES, Speedup, compare_samples
from .skips import SkippedGroup, reason_of
from .verdicts import trust_flags

INT8 = "int8"
CALIBRATION, TOOLCHAIN, CALIBRATOR = "calibration", "toolchain", "calibrator"  # ``Int8Config.IDENTITY``
MODEL_BYTES = "model_bytes"  # the build fact: the serialized model the framework ran, bytes
INT8_MODEL = "int8_model"  # the build fact: how the framework's int8 model was made
FLOAT32 = "float32"
# How the page names each of ``INT8_FLAGS`` (/proc/cpuinfo's names) and which of them give int8 a fast dot product.
FEATURE_TITLES = {"avx2": "AVX2", "avx512_vnni": "AVX512-VNNI", "avx_vnni": "AVX-VNNI", "amx_int8": "AMX-INT8"}
FAST_INT8 = ("avx512_vnni", "avx_vnni", "amx_int8")
NO_ACCURACY = "n/a (seeded weights)"
NOT_RECORDED = "not recorded"
SLOWER = "slower than float32"
FASTER = "faster"
UNCLEAR = "no clear difference"


def is_int8(result: Result) -> bool:
    """A latency cell that ran the int8 transform: this section's cells."""
    return is_latency(result) and result.transform is not None and result.transform.name == INT8


def is_float32(result: Result) -> bool:
    """A latency cell of the model as specified: an int8 cell's counterpart."""
    return is_latency(result) and (result.transform is None or result.transform.name == NO_TRANSFORM)


def setting(result: Result, name: str) -> str:
    """One of the int8 config's settings, as the cell's record holds it ("100", "qdq", "minmax")."""
    return result.transform.config.get(name, "") if result.transform is not None else ""


@dataclass(frozen=True)
class FeatureLine:
    """One machine the int8 cells ran on: whether it has each int8-deciding feature, and what that means."""

    machine: str  # the CPU's model name, with its fingerprint
    features: tuple[tuple[str, str], ...]  # (title, "present" / "absent" / "not recorded")
    verdict: str  # why int8 is, or is not, expected to be fast on it

    @property
    def text(self) -> str:
        """The whole line, as the Markdown report prints it."""
        listed = ", ".join(f"{title} {state}" for title, state in self.features)
        return f"{self.machine}: {listed}. {self.verdict}"


@dataclass(frozen=True)
class Int8Row:
    """One int8 cell against its float32 counterpart: median(float32) / median(int8), with its interval."""

    label: str  # variant / mode
    model: str  # the model's title
    toolchain: str
    calibrator: str
    calibration: str  # images the scales were calibrated on
    int8_ms: str  # ms per image
    int8_interval: str  # the median's confidence interval, ms per image
    float_ms: str  # "—" without a float32 cell
    ratio: str  # "—" without a float32 cell
    interval: str
    p_value: str
    verdict: str  # FASTER, SLOWER, UNCLEAR, or why there is no speedup
    slower: bool  # int8 is slower than float32: ratio below 1, the whole interval below 1
    kernels: str  # the framework's own int8_kernels fact, verbatim; "not stated" without one
    made: str  # how the int8 model was made (the int8_model fact), "" where the cell states none
    size: str  # the int8 model, bytes
    float_size: str  # the float32 model, bytes (its model_bytes, else params x 4), "—" where unknown
    size_share: str  # size over float_size: "26.1%"
    flags: tuple[str, ...]  # the cell's warnings, an output that did not match its reference
    speedup: Speedup | None


@dataclass(frozen=True)
class Reference:
    """A float32 test accuracy (%) the int8 lines are read against: one horizontal line of the chart."""

    label: str
    group: str  # colour key: the framework, as its int8 lines
    value: float


@dataclass(frozen=True)
class AccuracyRow:
    label: str  # variant / mode · toolchain · calibrator
    values: tuple[str, ...]  # test accuracy at each calibration size, "—" where the row has none
    reference: str  # the float32 cell's test accuracy, "—" where no float32 cell measured one


@dataclass(frozen=True)
class Int8Model:
    """Test accuracy against calibration size for one model whose int8 cells measured it."""

    model: str
    title: str
    sizes: tuple[str, ...]  # the calibration sizes the cells ran, in order
    rows: tuple[AccuracyRow, ...]
    lines: tuple[SweepLine, ...]
    references: tuple[Reference, ...]


@dataclass(frozen=True)
class Int8Section:
    intro: str
    legend: str
    machines: tuple[FeatureLine, ...]
    rows: tuple[Int8Row, ...]
    models: tuple[Int8Model, ...]
    accuracy_note: str  # the models without an accuracy, and why ("" when every model has one)
    skipped: tuple[SkippedGroup, ...]
    notes: tuple[str, ...]
    made: tuple[tuple[str, str], ...] = ()  # (the rows that state it, how their int8 model was made), each once

    @property
    def any_slower(self) -> bool:
        return any(r.slower for r in self.rows)


INTRO = (
    "Cells that ran the int8 transform: post-training static quantization, calibrated on real images, with the "
    "project's one QDQ graph (toolchain qdq) or the framework's own PTQ toolchain (native). They are shown here "
    "only, not in the matrix or the per-model tables. Whether int8 is faster than float32 depends on the CPU: "
    "with VNNI or AMX an int8 dot product is one instruction; with AVX2 alone it widens through 16-bit steps "
    "and is often no faster than float32."
)
LEGEND = (
    "Each int8 cell is compared with the float32 cell of the same variant, mode, model, batch and threads. "
    "Latency: the median of the cell's timed samples at its batch, in ms per image. Speedup = median time per "
    "image of float32 / that of int8 (above 1: int8 is faster), "
    f"{CI_LEVEL:.0%} percentile-bootstrap interval ({RESAMPLES} resamples), p from a two-sided Mann-Whitney U "
    f"test (significant below {ALPHA}); ⚠ {SLOWER}: the speedup and its whole interval are below 1. Int8 kernels: "
    "what the framework says ran, verbatim. Size: the model the framework ran (model_bytes), against the float32 "
    "one's (its model_bytes, else its parameters x 4 bytes)."
)


def int8_section(results: Sequence[Result], show_launcher: bool) -> Int8Section | None:
    """The section for the run's int8 cells, or None when no cell ran the int8 transform (the page unchanged)."""
    cells = _ordered([r for r in results if is_int8(r)], results)
    if not cells:
        return None
    labels = int8_labels(cells, show_launcher)
    counterparts = _by_key(r for r in results if is_float32(r))
    ran = [r for r in cells if r.status == "ok"]
    rows, notes = speedup_rows(ran, labels, counterparts)
    models, accuracy_note = accuracy_models(ran, labels, show_launcher, counterparts, list(results))
    return Int8Section(
        intro=INTRO,
        legend=LEGEND,
        machines=tuple(feature_lines(cells)),
        rows=tuple(rows),
        models=tuple(models),
        accuracy_note=accuracy_note,
        skipped=tuple(skipped_groups([r for r in cells if r.status != "ok"], labels)),
        notes=tuple(notes),
        made=made_by(rows),
    )


def _ordered(cells: list[Result], results: Sequence[Result]) -> list[Result]:
    """Model, then toolchain, calibrator and calibration size, then the run's row order (``row_sort_key``)."""
    models = model_order(r.model for r in results)
    place = {id(r): i for i, r in enumerate(results)}

    def key(result: Result) -> tuple[int, int, int, tuple[bool, float, str], int]:
        return (
            models.index(result.model),
            _rank(TOOLCHAINS, setting(result, TOOLCHAIN)),
            _rank(CALIBRATORS, setting(result, CALIBRATOR)),
            _size_rank((setting(result, CALIBRATION), calibration_value(result))),
            place[id(result)],
        )

    return sorted(cells, key=key)


def _rank(known: tuple[str, ...], value: str) -> int:
    return known.index(value) if value in known else len(known)


def calibration_value(result: Result) -> float:
    """The calibration size as a number (NaN when the record holds something else: shown, ordered last)."""
    try:
        value = float(setting(result, CALIBRATION))
    except ValueError:
        return math.nan
    return value if math.isfinite(value) and value > 0 else math.nan


def _config_text(result: Result) -> str:
    return f"{setting(result, TOOLCHAIN)} {setting(result, CALIBRATOR)} {setting(result, CALIBRATION)}"


def int8_labels(cells: Sequence[Result], show_launcher: bool) -> dict[int, str]:
    """Each cell's row label (``cells.distinct_labels``), told apart by its int8 config."""
    return distinct_labels(cells, show_launcher, _config_text)


def _by_key(results: Iterable[Result], *also: str) -> dict[CellKey, list[Result]]:
    """Cells by their key without the transform (and the ``also`` axes): where an int8 cell finds its float32."""
    found: dict[CellKey, list[Result]] = defaultdict(list)
    for r in results:
        found[r.key().without("transform", *also)].append(r)
    return found


def float32_of(cell: Result, counterparts: dict[CellKey, list[Result]]) -> Result | None:
    """The float32 cell of the same key, less the transform, at the same thread count: ok ones first."""
    same = [r for r in counterparts.get(cell.key().without("transform"), []) if r.threads == cell.threads]
    return next((r for r in same if r.status == "ok"), same[0] if same else None)


def timed(result: Result) -> bool:
    """Whether a speedup can be computed from the cell: ok, with at least two usable samples."""
    return result.status == "ok" and per_image_samples(result).size >= 2


def made_by(rows: Iterable[Int8Row]) -> tuple[tuple[str, str], ...]:
    """Each distinct account of how an int8 model was made (the int8_model fact), with the variants, modes and
    toolchains that state it: the qdq graph is one model for every framework, a native toolchain one each."""
    who: dict[str, dict[str, None]] = defaultdict(dict)
    for r in rows:
        if r.made:
            who[r.made][f"{r.label} · {r.toolchain}"] = None
    return tuple((", ".join(names), how) for how, names in who.items())


# --- the CPU features ----------------------------------------------------------------------------------


def feature_lines(cells: Sequence[Result]) -> list[FeatureLine]:
    """Each machine the int8 cells ran on, once (``cells.machines_of``), with its int8-deciding features."""
    lines = []
    for _, r in machines_of(cells):
        env = r.environment
        assert env is not None
        machine = env.machine
        if machine is None:
            states = tuple((FEATURE_TITLES[f], NOT_RECORDED) for f in INT8_FLAGS)
            lines.append(FeatureLine(f"{env.cpu_model} (no machine record)", states, "Its features were not recorded."))
            continue
        have = set(machine.flags)
        states = tuple((FEATURE_TITLES[f], "present" if f in have else "absent") for f in INT8_FLAGS)
        name = f"{machine.model_name or env.cpu_model} (machine {machine.fingerprint})"
        lines.append(FeatureLine(name, states, int8_verdict(have)))
    return lines


def int8_verdict(flags: set[str]) -> str:
    """What the CPU's features let an int8 kernel do, in a sentence."""
    fast = [FEATURE_TITLES[f] for f in FAST_INT8 if f in flags]
    if fast:
        return f"{' and '.join(fast)}: an int8 dot product is one instruction here, so int8 kernels can beat float32."
    if "avx2" in flags:
        return ("No VNNI or AMX: int8 dot products widen through 16-bit steps (VPMADDUBSW, VPMADDWD), so int8 "
                "is often no faster than float32 here.")  # fmt: skip
    return "No AVX2, VNNI or AMX: int8 kernels have no wide integer dot product here; expect no speedup."


# --- int8 against float32 --------------------------------------------------------------------------------


def speedup_rows(
    cells: list[Result], labels: dict[int, str], counterparts: dict[CellKey, list[Result]]
) -> tuple[list[Int8Row], list[str]]:
    """One row per int8 cell that ran, with its speedup over its float32 cell where both are timed, and a note
    for each cell that has no float32 cell to compare with."""
    rows: list[Int8Row] = []
    notes: list[str] = []
    for cell in cells:
        base = float32_of(cell, counterparts)
        label = labels[id(cell)]
        where = f"{label} · {model_title(cell.model)} · {_config_text(cell)}"
        if base is None:
            notes.append(f"{where}: no float32 cell of the same variant, mode, batch and threads to compare with")
        elif base.input_shape and cell.input_shape and base.input_shape != cell.input_shape:
            notes.append(f"{where}: its float32 cell ran another input shape ({_shape(base)} against "
                         f"{_shape(cell)}: canonical against trained weights' network)")  # fmt: skip
        rows.append(int8_row(cell, base, label))
    return rows, notes


def _shape(result: Result) -> str:
    return " x ".join(str(n) for n in result.input_shape)


def int8_row(cell: Result, base: Result | None, label: str) -> Int8Row:
    """The int8 cell's figures, and its speedup over ``base`` where both are timed."""
    figs = figures(cell)
    speedup = None
    if base is not None and timed(base) and timed(cell):
        speedup = compare_samples(per_image_samples(base), per_image_samples(cell))
    ratio = interval = p = "—"
    verdict = "no float32 cell" if base is None else "no speedup: a cell without two timed samples"
    if speedup is not None:
        ratio, interval = fmt.ratio(speedup.ratio), fmt.interval(speedup.ci_low, speedup.ci_high)
        p, verdict = fmt.p_value(speedup.p_value), _verdict(speedup)
    size, float_size, share = _sizes(cell, base)
    flags = list(cell.warnings)
    if cell.verified is False and not any("reference" in w for w in flags):
        flags.insert(0, "output does not match its reference")
    flags = list(trust_flags(cell, flags))
    return Int8Row(
        label=label,
        model=model_title(cell.model),
        toolchain=setting(cell, TOOLCHAIN),
        calibrator=setting(cell, CALIBRATOR),
        calibration=setting(cell, CALIBRATION),
        int8_ms=fmt.sig(figs.median_ms) if figs is not None else "—",
        int8_interval=f"{fmt.sig(figs.ci_low_ms)}–{fmt.sig(figs.ci_high_ms)}" if figs is not None else "—",
        float_ms=_ms_text(base),
        ratio=ratio,
        interval=interval,
        p_value=p,
        verdict=verdict,
        slower=verdict == SLOWER,
        kernels=cell.build.get(INT8_KERNELS) or "not stated",
        made=cell.build.get(INT8_MODEL, ""),
        size=size,
        float_size=float_size,
        size_share=share,
        flags=tuple(flags),
        speedup=speedup,
    )


def _verdict(speedup: Speedup) -> str:
    """SLOWER only when the speedup and its whole interval are below 1: noise never reads as a slowdown."""
    if speedup.ratio < 1.0 and speedup.ci_high < 1.0:
        return SLOWER
    if speedup.ratio > 1.0 and speedup.ci_low > 1.0:
        return FASTER
    return UNCLEAR


def _ms_text(result: Result | None) -> str:
    figs = figures(result) if result is not None else None
    return fmt.sig(figs.median_ms) if figs is not None else "—"


def model_bytes(result: Result) -> int | None:
    """The serialized model the framework ran, as its build fact states it; None where it states none."""
    try:
        value = int(result.build.get(MODEL_BYTES, ""))
    except ValueError:
        return None
    return value if value > 0 else None


def _sizes(cell: Result, base: Result | None) -> tuple[str, str, str]:
    """The int8 model's bytes, the float32 model's (its own fact, else its parameters at 4 bytes) and the share."""
    size = model_bytes(cell)
    float_bytes = model_bytes(base) if base is not None else None
    float_text = fmt.count(float_bytes) if float_bytes is not None else "—"
    if float_bytes is None and base is not None and base.params > 0:
        float_bytes = 4 * base.params
        float_text = f"{fmt.count(float_bytes)} (params x 4)"
    share = fmt.percent(100.0 * size / float_bytes) if size is not None and float_bytes else "—"
    return (fmt.count(size) if size is not None else "—"), float_text, share


# --- accuracy against calibration size ----------------------------------------------------------------


def accuracy_models(
    cells: list[Result],
    labels: dict[int, str],
    show_launcher: bool,
    counterparts: dict[CellKey, list[Result]],
    results: list[Result],
) -> tuple[list[Int8Model], str]:
    """Per model whose int8 cells measured a test accuracy: a row per variant, mode, toolchain and calibrator
    across the calibration sizes, with the float32 accuracy beside it; the other models named in one note."""
    loose = _by_key((r for r in results if is_float32(r)), "weights")  # a float32 cell on the trained weights
    models: list[Int8Model] = []
    without: list[str] = []
    for model in model_order(r.model for r in cells):
        measured = [r for r in cells if r.model == model and r.accuracy is not None]
        if not measured:
            without.append(model_title(model))
            continue
        models.append(_accuracy_model(model, measured, labels, show_launcher, counterparts, loose))
    note = f"{', '.join(without)}: test accuracy {NO_ACCURACY}" if without else ""
    return models, note


def _accuracy_model(
    model: str,
    cells: list[Result],
    labels: dict[int, str],
    show_launcher: bool,
    counterparts: dict[CellKey, list[Result]],
    loose: dict[CellKey, list[Result]],
) -> Int8Model:
    by_size = sorted({setting(r, CALIBRATION): calibration_value(r) for r in cells}.items(), key=_size_rank)
    sizes = tuple(size for size, _ in by_size)
    rows: dict[str, dict[str, Result]] = defaultdict(dict)
    references: dict[str, Reference] = {}
    row_reference: dict[str, str] = {}
    for r in cells:
        name = f"{labels[id(r)]} · {setting(r, TOOLCHAIN)} · {setting(r, CALIBRATOR)}"
        rows[name][setting(r, CALIBRATION)] = r
        base = _accuracy_reference(r, counterparts, loose)
        if base is not None and base.accuracy is not None:
            label = f"{row_label(base, show_launcher)} {FLOAT32}"
            references.setdefault(label, Reference(label, base.framework, 100.0 * base.accuracy))
            row_reference[name] = fmt.accuracy(base.accuracy)
    table = tuple(AccuracyRow(name, tuple(_accuracy_text(v.get(s)) for s in sizes), row_reference.get(name, "—"))
                  for name, v in rows.items())  # fmt: skip
    return Int8Model(model, model_title(model), sizes, table, tuple(_lines(rows)), tuple(references.values()))


def _accuracy_text(result: Result | None) -> str:
    return fmt.accuracy(result.accuracy) if result is not None and result.accuracy is not None else "—"


def _size_rank(item: tuple[str, float]) -> tuple[bool, float, str]:
    text, value = item
    return math.isnan(value), 0.0 if math.isnan(value) else value, text


def _accuracy_reference(
    cell: Result, counterparts: dict[CellKey, list[Result]], loose: dict[CellKey, list[Result]]
) -> Result | None:
    """The float32 cell whose accuracy the int8 one is read against: its own counterpart where that measured
    one, else one of the same key but for the latency config's weights (the int8 transform quantizes a model's
    trained weights even in a run on canonical ones, whose float32 cells measure no accuracy)."""
    own = float32_of(cell, counterparts)
    if own is not None and own.accuracy is not None:
        return own
    key = cell.key()
    same = counterparts.get(key.without("transform"), []) + loose.get(key.without("transform", "weights"), [])
    return next((r for r in same if r.status == "ok" and r.accuracy is not None), None)


def _lines(rows: dict[str, dict[str, Result]]) -> list[SweepLine]:
    """One line per row: test accuracy (%) at each calibration size that is a number (a row with no point draws
    nothing)."""
    lines = []
    for name, by_size in rows.items():
        points = sorted(
            (calibration_value(r), 100.0 * r.accuracy, r.verified is False)
            for r in by_size.values()
            if r.accuracy is not None and not math.isnan(calibration_value(r))
        )
        if not points:
            continue
        xs, ys, bad = zip(*points, strict=True)
        group = next(iter(by_size.values())).framework
        lines.append(SweepLine(name, group, tuple(xs), tuple(ys), tuple(bad)))
    return lines


# --- the cells that did not run ------------------------------------------------------------------------


def skipped_groups(cells: list[Result], labels: dict[int, str]) -> list[SkippedGroup]:
    """The int8 cells that did not run, one entry per reason (in the order first met)."""
    groups: dict[str, list[str]] = defaultdict(list)
    for r in cells:
        groups[reason_of(r)].append(f"{labels[id(r)]} · {model_title(r.model)} · {_config_text(r)}")
    return [SkippedGroup(reason, tuple(found)) for reason, found in groups.items()]
