"""Figures and names derived from one result, shared by every table, chart and comparison.

Everything here is computed from the result itself (its raw samples first, its stored summary only
as a fallback), so the page can never show a number that the result file does not support.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from frameworks.backends.registry import FRAMEWORKS, IN_EFFECT
from frameworks.models import MODELS
from frameworks.result import Measurement, Result, RunInfo
from frameworks.scenarios import DEFAULT_SCENARIO
from frameworks.stats import median_ci

VENDOR_LIBRARIES = ("MKL", "oneDNN")  # the vendor-tuned side of a build comparison
GENERIC_LIBRARIES = ("OpenBLAS", "Eigen", "BLIS", "BLAS")  # the portable side
_NAME_TOKENS = {"mkl": "MKL", "openblas": "OpenBLAS", "eigen": "Eigen", "mkldnn": "oneDNN", "onednn": "oneDNN"}


@dataclass(frozen=True)
class Figures:
    """Per-image figures of an ok cell, in milliseconds, from its raw samples."""

    samples_ms: np.ndarray  # per image
    median_ms: float
    mean_ms: float
    sd_ms: float
    ci_low_ms: float
    ci_high_ms: float
    images_per_s: float
    gflops: float | None  # None when the result carries no FLOP count


def per_image_samples(result: Result | Measurement) -> np.ndarray:
    """Samples in seconds per image; non-finite or non-positive samples are unusable and dropped.

    A cell reads through its one measurement; a sweep's point (a ``Measurement``) is read directly."""
    batch = result.batch if result.batch > 0 else 1
    samples = np.asarray(result.samples_s, dtype=float) / batch
    return samples[np.isfinite(samples) & (samples > 0)]


def figures(result: Result) -> Figures | None:
    """The cell's figures, or None when it has no usable timing (failed, skipped, or empty)."""
    if result.status != "ok":
        return None
    samples = per_image_samples(result)
    if samples.size == 0:
        return _figures_from_stats(result)
    ordered = np.sort(samples)
    low, high = median_ci(ordered.tolist())
    median = float(np.median(ordered))
    return Figures(
        samples_ms=ordered * 1e3,
        median_ms=median * 1e3,
        mean_ms=float(ordered.mean()) * 1e3,
        sd_ms=float(ordered.std(ddof=1)) * 1e3 if ordered.size > 1 else 0.0,
        ci_low_ms=low * 1e3,
        ci_high_ms=high * 1e3,
        images_per_s=1.0 / median,
        gflops=result.flops / median / 1e9 if result.flops > 0 else None,
    )


def _figures_from_stats(result: Result) -> Figures | None:
    """A result whose raw samples were not kept: its stored summary is all there is."""
    stats = result.stats
    batch = result.batch if result.batch > 0 else 1
    if stats is None or not (math.isfinite(stats.median) and stats.median > 0):
        return None
    median = stats.median / batch
    return Figures(
        samples_ms=np.empty(0),
        median_ms=median * 1e3,
        mean_ms=stats.mean / batch * 1e3,
        sd_ms=stats.sd / batch * 1e3,
        ci_low_ms=stats.median_ci_low / batch * 1e3,
        ci_high_ms=stats.median_ci_high / batch * 1e3,
        images_per_s=1.0 / median,
        gflops=result.flops / median / 1e9 if result.flops > 0 else None,
    )


def head(result: Result) -> str:
    """The row's leading name: the catalog variant, else the framework (with a non-CPU device)."""
    if result.variant:
        return result.variant
    return result.framework if result.device == "cpu" else f"{result.framework} ({result.device})"


def row_label(result: Result, show_launcher: bool) -> str:
    """``variant / mode``, with the launcher when a run holds both container and local cells."""
    label = f"{head(result)} / {result.mode}"
    return f"{label} ({result.launcher or 'unknown launcher'})" if show_launcher else label


def mixed_launchers(results: Iterable[Result]) -> bool:
    """Whether both container and local cells ran: only then is the launcher worth a label."""
    return len({r.launcher for r in results}) > 1


def is_latency(result: Result) -> bool:
    """The matrix, the study tables, the comparisons and the history show the latency scenario only.

    A sweep's result has no timing of its own at the top level (its points carry them), so letting
    one into those views would show an empty cell at best and a wrong comparison at worst.
    """
    return result.scenario == DEFAULT_SCENARIO


def latency_results(results: Iterable[Result]) -> list[Result]:
    return [r for r in results if is_latency(r)]


def is_transformed(result: Result) -> bool:
    """A cell that ran a transformed model (pruned weights, ...): its transform's section shows it.

    The matrix, the per-model tables, the published figures and the history show the model as specified
    only: a pruned cell's row would carry the same label as the dense one's, and its timing answers another
    question (what the zeros buy). The comparisons still see it: they pair cells by their whole keys.
    """
    return result.transform is not None


def matrix_results(results: Iterable[Result]) -> list[Result]:
    """The latency cells of the model as specified: the matrix's and the per-model tables' cells."""
    return [r for r in results if is_latency(r) and not is_transformed(r)]


def framework_title(framework: str) -> str:
    """The registry's display name ("PyTorch"); a framework it does not know shows its raw name."""
    info = FRAMEWORKS.get(framework)
    return info.title if info is not None else framework


def mode_rank(framework: str, mode: str) -> int:
    """A framework's modes in the registry's order (eager before graph before xla), unknown last."""
    info = FRAMEWORKS.get(framework)
    return info.modes.index(mode) if info is not None and mode in info.modes else 99


def row_sort_key(result: Result) -> tuple[str, int, str, str, str, int, str]:
    """CPU before CUDA, frameworks in registry order, then variant, launcher and mode."""
    order = list(FRAMEWORKS)
    rank = order.index(result.framework) if result.framework in order else len(order)
    return (
        "0" if result.device == "cpu" else result.device,
        rank,
        result.framework,
        head(result),
        result.launcher or "",
        mode_rank(result.framework, result.mode),
        result.mode,
    )


def model_order(models: Iterable[str]) -> list[str]:
    """Known models in the spec order (small to large as the project lists them), unknown ones after."""
    present = set(models)
    known = [m for m in MODELS if m in present]
    return known + sorted(present - set(known))


def model_title(model: str) -> str:
    return MODELS[model].title if model in MODELS else model


def effective_build(result: Result) -> str | None:
    """The math library in effect, as the framework itself states it (the build fact ``in_effect``).

    Variant names say what was asked for; the fact says what ran (oneDNN switched off by an
    environment variable, libblas.so.3 pointing at MKL). The name is only a fallback, for a
    framework that states no library (ONNX Runtime) or a hand-written result without facts.
    """
    return stated_build(result) or requested_build(result)


def stated_build(result: Result) -> str | None:
    """The ``in_effect`` build fact, if the result states one (schema 1 lines get it on migration)."""
    return result.build.get(IN_EFFECT) or None


def requested_build(result: Result) -> str | None:
    """What the variant's name asks for (``cpu-tensorflow-eigen`` asks for Eigen), if anything."""
    if not result.variant:
        return None
    prefix = f"{result.device}-{result.framework}-"
    if not result.variant.startswith(prefix):
        return None
    token = result.variant[len(prefix) :]
    return _NAME_TOKENS.get(token.lower())


def build_mismatch(result: Result) -> str | None:
    """A sentence when the variant's name and the framework's stated facts disagree about the build."""
    asked, facts_say = requested_build(result), stated_build(result)
    if asked is None or facts_say is None or asked == facts_say:
        return None
    return f"{result.variant} asks for {asked} but {result.framework} reports {facts_say} in effect"


def matmul_peak(result: Result, info: RunInfo | None) -> float | None:
    """The float32 matmul peak measured in this run: the cell's own, else the run's, else none."""
    candidates: Sequence[float | None] = (
        result.environment.matmul_peak_gflops if result.environment is not None else None,
        info.matmul_peak_gflops if info is not None else None,
        info.host.matmul_peak_gflops if info is not None else None,
    )
    for value in candidates:
        if value is not None and math.isfinite(value) and value > 0:
            return value
    return None


@dataclass(frozen=True)
class SweepLine:
    """One chart line: a row's figure at each x (NaN where the point has none). The sweep charts, the
    training curves, the sparsity and the calibration charts all draw these (``charts.Line``)."""

    label: str
    group: str  # colour key: the framework
    xs: tuple[float, ...]  # batch sizes and thread counts are ints; a sparsity is not
    ys: tuple[float, ...]
    unverified: tuple[bool, ...]


def distinct_labels(cells: Sequence[Result], show_launcher: bool, point: Callable[[Result], str]) -> dict[int, str]:
    """Each cell's row label (by ``id``): ``variant / mode``, with the scenario identity where two cells of one
    label, model and transform point (``point``: a sparsity, an int8 config) differ in it (batch 1 and batch 8)."""
    base = {id(r): row_label(r, show_launcher) for r in cells}
    seen: set[tuple[str, str, str]] = set()
    clashing: set[str] = set()
    for r in cells:
        key = (base[id(r)], r.model, point(r))
        if key in seen:
            clashing.add(key[0])
        seen.add(key)
    return {id(r): f"{base[id(r)]} [{identity_text(r)}]" if base[id(r)] in clashing else base[id(r)] for r in cells}


def identity_text(result: Result) -> str:
    return ", ".join(f"{name}={value}" for name, value in result.key().identity) or "no identity"


def machines_of(cells: Iterable[Result]) -> list[tuple[str, Result]]:
    """Each machine the cells ran on, once, with the first cell seen there: keyed by fingerprint, or by CPU model
    for a cell without a machine record (cells without an environment are left out)."""
    seen: dict[str, Result] = {}
    for r in cells:
        env = r.environment
        if env is None:
            continue
        key = f"machine:{env.machine.fingerprint}" if env.machine is not None else f"cpu:{env.cpu_model}"
        seen.setdefault(key, r)
    return list(seen.items())
