"""Speedup ratios of medians, with a bootstrap interval and a Mann-Whitney U test (NumPy only).

A ratio of two medians says nothing on its own: with 2 cores and a noisy neighbour, a 3%
"speedup" is often noise. Each comparison therefore carries a percentile-bootstrap confidence
interval on the ratio and a two-sided Mann-Whitney U p-value, and is marked significant only
when both agree (p below ``ALPHA`` and an interval that excludes 1).

Which cells are compared is derived from the results themselves: variants of one framework
whose build facts name different math libraries, the modes of one variant (the pairs each
framework declares in its registry entry), one framework on CPU and on CUDA, one build in a
container and in a local environment, pruned weights against the unpruned ones. Two cells are
paired only when their keys (``Result.key``: scenario, variant, launcher, host, framework, mode,
model, device, the scenario's identity and the transform's) are equal once the one axis compared
is blanked (``CellKey.without``): each comparison is that declaration and no ad-hoc grouping, so a
pruned cell never meets a dense one by accident. Only latency cells are compared: a sweep's
points are shown in their own section, never paired here. The test statistic
mirrors SciPy's ``mannwhitneyu(method="auto")`` so the tests can check against it, but SciPy
is not needed at run time.
"""

from __future__ import annotations

import itertools
import math
from collections import defaultdict
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass, replace

import numpy as np

from frameworks.backends.registry import FRAMEWORKS, SPARSE_KERNELS
from frameworks.result import Result

from .cells import (
    GENERIC_LIBRARIES,
    VENDOR_LIBRARIES,
    effective_build,
    framework_title,
    head,
    latency_results,
    mode_rank,
    per_image_samples,
)

ALPHA = 0.05
CI_LEVEL = 0.95
RESAMPLES = 2000
SEED = 0  # fixed: the same files always give the same intervals (the golden report depends on it)
EXACT_MAX_N = 8  # SciPy's rule: exact null distribution when a sample is this small and nothing ties
_CHUNK_ELEMENTS = 2_000_000  # bootstrap matrix size per step, to bound memory for long sample lists

GROUP_BUILD = "Build: vendor library vs portable library"
GROUP_DEVICE = "CPU vs CUDA"
GROUP_LAUNCHER = "Container vs local"
GROUP_PRUNE = "Pruned vs unpruned weights (the same kernels)"
GROUP_SPARSE = "Sparse kernels vs the framework's dense kernels (the same pruned weights)"


@dataclass(frozen=True)
class Speedup:
    """How many times faster the candidate is than the baseline, at the median."""

    ratio: float  # median(baseline) / median(candidate)
    ci_low: float
    ci_high: float
    p_value: float
    n_baseline: int
    n_candidate: int

    @property
    def significant(self) -> bool:
        """The rank test and the interval agree that the difference is not noise."""
        return self.p_value < ALPHA and (self.ci_low > 1.0 or self.ci_high < 1.0)


@dataclass(frozen=True)
class Comparison:
    """One drawn comparison: two cells that differ in exactly one respect."""

    group: str  # the section it belongs to
    title: str  # "oneDNN vs Eigen": candidate first
    model: str
    context: str  # what both cells share, e.g. "tensorflow / graph"
    baseline_label: str
    candidate_label: str
    baseline: Result
    candidate: Result
    speedup: Speedup

    @property
    def invalid_sides(self) -> tuple[str, ...]:
        """Which side's validity verdict is INVALID ("baseline", "candidate"): a significant ratio between
        figures that are not to be trusted is no finding."""
        return tuple(name for name, r in (("baseline", self.baseline), ("candidate", self.candidate))
                     if r.valid is False)  # fmt: skip

    @property
    def significance(self) -> str:
        """``yes`` / ``no``, and which side is invalid when one is."""
        text = "yes" if self.speedup.significant else "no"
        return f"{text} (invalid {' and '.join(self.invalid_sides)})" if self.invalid_sides else text


# --- statistics ---------------------------------------------------------------------------


def rank_with_ties(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Average ranks (1-based) and the size of every tie group (1 for untied values)."""
    order = np.argsort(values, kind="mergesort")
    ordered = values[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    counts = np.diff(np.r_[starts, ordered.size])
    average = starts + (counts + 1) / 2.0  # mean of 1-based ranks start+1 .. start+count
    ranks = np.empty(values.size)
    ranks[order] = np.repeat(average, counts)
    return ranks, counts


def mann_whitney_u(a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray) -> tuple[float, float]:
    """Two-sided Mann-Whitney U test: (U of ``a``, p-value).

    Exact null distribution when one sample has at most 8 values and nothing ties, the normal
    approximation with tie and continuity corrections otherwise (SciPy's ``method="auto"``).
    """
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    n1, n2 = x.size, y.size
    if n1 == 0 or n2 == 0:
        raise ValueError("both samples need at least one value")
    ranks, ties = rank_with_ties(np.concatenate([x, y]))
    u1 = float(ranks[:n1].sum() - n1 * (n1 + 1) / 2)
    u = max(u1, n1 * n2 - u1)
    if min(n1, n2) <= EXACT_MAX_N and not np.any(ties > 1):
        p = 2.0 * _exact_sf(round(u), n1, n2)
    else:
        p = 2.0 * _normal_sf(u, n1, n2, ties)
    return u1, min(max(p, 0.0), 1.0)


def _normal_sf(u: float, n1: int, n2: int, ties: np.ndarray) -> float:
    """P(U >= u) under the normal approximation (tie-corrected variance, continuity 0.5)."""
    n = n1 + n2
    tie_term = float(np.sum(ties.astype(float) ** 3 - ties))
    variance = n1 * n2 / 12.0 * ((n + 1) - tie_term / (n * (n - 1)))
    if variance <= 0:
        return 0.5  # every value equal: no evidence of a difference (p = 1 after doubling)
    z = (u - n1 * n2 / 2.0 - 0.5) / math.sqrt(variance)
    return 0.5 * math.erfc(z / math.sqrt(2.0))


def _exact_sf(u: int, n1: int, n2: int) -> float:
    """P(U >= u) from the exact null distribution (no ties).

    The counts of U are the coefficients of the Gaussian binomial [n1+n2 choose n1]_q, built as
    prod_{i=1..m} (1 - q^(n+i)) / (1 - q^i) with m = min(n1, n2): polynomial steps, no recursion.
    """
    m, n = min(n1, n2), max(n1, n2)
    coeffs = np.zeros(m * n + 1)
    coeffs[0] = 1.0
    for i in range(1, m + 1):
        shift = n + i
        coeffs[shift:] -= coeffs[:-shift].copy()  # multiply by (1 - q^shift)
        for k in range(i, coeffs.size):  # divide by (1 - q^i): a running sum with stride i
            coeffs[k] += coeffs[k - i]
    total = coeffs.sum()
    return float(coeffs[u:].sum() / total) if u < coeffs.size else 0.0


def bootstrap_ratio_ci(
    baseline: np.ndarray,
    candidate: np.ndarray,
    resamples: int = RESAMPLES,
    level: float = CI_LEVEL,
    seed: int = SEED,
) -> tuple[float, float]:
    """Percentile bootstrap interval for median(baseline) / median(candidate).

    Each side is resampled independently (the cells ran at different times), in chunks so a
    cell with many thousands of samples does not need a huge matrix.
    """
    rng = np.random.default_rng(seed)
    ratios = np.empty(resamples)
    size = max(baseline.size, candidate.size)
    step = max(1, _CHUNK_ELEMENTS // size)
    for start in range(0, resamples, step):
        count = min(step, resamples - start)
        base = np.median(baseline[rng.integers(0, baseline.size, (count, baseline.size))], axis=1)
        cand = np.median(candidate[rng.integers(0, candidate.size, (count, candidate.size))], axis=1)
        ratios[start : start + count] = base / cand
    tail = (1.0 - level) / 2.0 * 100.0
    low, high = np.percentile(ratios, [tail, 100.0 - tail])
    return float(low), float(high)


def compare_samples(baseline: np.ndarray, candidate: np.ndarray) -> Speedup:
    """The speedup of ``candidate`` over ``baseline`` (any time unit, the same for both)."""
    if baseline.size < 2 or candidate.size < 2:
        raise ValueError("a comparison needs at least two samples on each side")
    low, high = bootstrap_ratio_ci(baseline, candidate)
    _, p = mann_whitney_u(baseline, candidate)
    return Speedup(
        ratio=float(np.median(baseline) / np.median(candidate)),
        ci_low=low,
        ci_high=high,
        p_value=p,
        n_baseline=int(baseline.size),
        n_candidate=int(candidate.size),
    )


# --- which cells to compare ------------------------------------------------------------------


@dataclass(frozen=True)
class Pair:
    """Two cells a comparison declaration paired: the baseline first; the labels as the report prints them."""

    group: str
    title: str
    context: str
    baseline: Result
    candidate: Result
    baseline_label: str
    candidate_label: str


def find_comparisons(results: Iterable[Result], show_launcher: bool = False) -> tuple[list[Comparison], list[str]]:
    """Every comparison the latency cells support, and notes on the ones they cannot support.

    Results of other scenarios are ignored. ``show_launcher`` names the launcher in each context,
    for runs that hold container and local cells.
    """
    usable = [r for r in latency_results(results) if r.status == "ok" and per_image_samples(r).size >= 2]
    notes: list[str] = []
    pairs = build_pairs(usable, notes) + mode_pairs(usable) + device_pairs(usable) + launcher_pairs(usable)
    pairs += prune_pairs(usable) + sparse_pairs(usable)
    if show_launcher:
        pairs = [_with_launcher(p) for p in pairs]
    return [_measure(pair) for pair in pairs], notes


def _with_launcher(pair: Pair) -> Pair:
    if pair.group == GROUP_LAUNCHER:
        return pair  # the launcher is what differs: the labels already say which is which
    return replace(pair, context=f"{pair.context} ({pair.baseline.launcher or 'unknown launcher'})")


def _measure(pair: Pair) -> Comparison:
    speedup = compare_samples(per_image_samples(pair.baseline), per_image_samples(pair.candidate))
    return Comparison(
        group=pair.group,
        title=pair.title,
        model=pair.baseline.model,
        context=pair.context,
        baseline_label=pair.baseline_label,
        candidate_label=pair.candidate_label,
        baseline=pair.baseline,
        candidate=pair.candidate,
        speedup=speedup,
    )


def _group_by(results: Iterable[Result], key: Callable[[Result], Hashable]) -> dict[Hashable, list[Result]]:
    groups: dict[Hashable, list[Result]] = defaultdict(list)
    for result in results:
        groups[key(result)].append(result)
    return groups


def pairable(results: Iterable[Result], *axes: str) -> list[list[Result]]:
    """The cells that differ in the named axes alone, group by group (``CellKey.without``)."""
    return list(_group_by(results, lambda r: r.key().without(*axes)).values())


def transform_context(result: Result) -> str:
    """`` [prune sparsity=0.5]`` for a transformed cell, so that its comparisons say which weights ran."""
    t = result.transform
    if t is None:
        return ""
    return " [" + " ".join([t.name, *(f"{n}={t.config.get(n, '')}" for n in t.identity)]) + "]"


def _library_rank(label: str) -> int:
    """Vendor libraries first, portable ones after, anything else last: the candidate ranks lower."""
    order = (*VENDOR_LIBRARIES, *GENERIC_LIBRARIES)
    return order.index(label) if label in order else len(order)


def build_pairs(results: list[Result], notes: list[str]) -> list[Pair]:
    """Variants of one framework, device, launcher and mode whose build facts name different libraries.

    Two variants that report the same library in effect are not compared (the build switch did
    not take); that is said in a note, once per pair of variants.
    """
    pairs: list[Pair] = []
    noted: set[tuple[str, str]] = set()
    for cell in pairable(results, "variant"):
        for one, two in itertools.combinations(sorted(cell, key=head), 2):
            pair = _build_pair(one, two, noted, notes)
            if pair is not None:
                pairs.append(pair)
    return pairs


def _build_pair(one: Result, two: Result, noted: set[tuple[str, str]], notes: list[str]) -> Pair | None:
    if head(one) == head(two):
        return None
    first, second = effective_build(one), effective_build(two)
    if first is None or second is None or first == second:
        if (head(one), head(two)) not in noted:
            noted.add((head(one), head(two)))
            notes.append(
                f"{head(one)} and {head(two)} report the same math library in effect "
                f"({first or 'not stated'}): no build comparison drawn"
            )
        return None
    if _library_rank(second) < _library_rank(first):
        one, two, first, second = two, one, second, first
    return Pair(
        GROUP_BUILD,
        f"{first} vs {second}",
        f"{framework_title(one.framework)} / {one.mode}{transform_context(one)}",
        baseline=two,
        candidate=one,
        baseline_label=f"{head(two)} ({second})",
        candidate_label=f"{head(one)} ({first})",
    )


def mode_group(framework: str, present: Iterable[str] | None = None) -> str:
    """The section title for a framework's mode comparisons, e.g. 'TensorFlow: graph vs eager, xla vs graph':
    the declared pairs, those of the ``present`` modes alone when given (a sparse mode ran only if pruned)."""
    title = framework_title(framework)
    info = FRAMEWORKS.get(framework)
    if info is None:
        return f"{title}: modes"
    modes = set(info.modes if present is None else present)
    drawn = [(b, c) for b, c in info.comparisons() if b in modes and c in modes]
    return f"{title}: " + ", ".join(f"{candidate} vs {baseline}" for baseline, candidate in drawn)


def _mode_pairs_for(framework: str, modes: Iterable[str]) -> list[tuple[str, str]]:
    """The pairs the framework's registry entry declares; for a framework it does not know (a result
    file from elsewhere), every mode present against the first of them."""
    info = FRAMEWORKS.get(framework)
    if info is not None:
        return list(info.comparisons())
    ordered = sorted(modes, key=lambda m: (mode_rank(framework, m), m))
    return [(ordered[0], other) for other in ordered[1:]]


def mode_pairs(results: list[Result]) -> list[Pair]:
    """The modes of one variant (same launcher, device, model) against each other."""
    pairs: list[Pair] = []
    present: dict[str, set[str]] = defaultdict(set)
    for result in results:
        present[result.framework].add(result.mode)
    for cell in pairable(results, "mode"):
        by_mode = {r.mode: r for r in cell}
        framework = cell[0].framework
        group = mode_group(framework, present[framework])
        for baseline, candidate in _mode_pairs_for(framework, by_mode):
            if baseline in by_mode and candidate in by_mode:
                base, cand = by_mode[baseline], by_mode[candidate]
                context = head(base) + transform_context(base)
                pairs.append(Pair(group, f"{candidate} vs {baseline}", context, base, cand, baseline, candidate))
    return pairs


def device_pairs(results: list[Result]) -> list[Pair]:
    """One framework and mode on the CPU and on a GPU; every CPU build against every GPU one."""
    pairs: list[Pair] = []
    for cell in pairable(results, "device", "variant"):
        cpus = sorted((r for r in cell if r.device == "cpu"), key=head)
        gpus = sorted((r for r in cell if r.device != "cpu"), key=head)
        for cpu, gpu in itertools.product(cpus, gpus):
            context = f"{framework_title(cpu.framework)} / {cpu.mode}{transform_context(cpu)}"
            pairs.append(Pair(GROUP_DEVICE, f"{gpu.device} vs cpu", context, cpu, gpu, head(cpu), head(gpu)))
    return pairs


def launcher_pairs(results: list[Result]) -> list[Pair]:
    """One build in a container and in a local environment (the container's cost, or gain)."""
    pairs: list[Pair] = []
    for group in pairable(results, "launcher", "variant"):
        for cell in _group_by(group, effective_build).values():  # the same build, launched two ways
            pairs += _launcher_pairs(cell)
    return pairs


def _launcher_pairs(cell: list[Result]) -> list[Pair]:
    """Every local cell of one build against every container cell of it."""
    pairs: list[Pair] = []
    local = sorted((r for r in cell if r.launcher == "local"), key=head)
    docker = sorted((r for r in cell if r.launcher == "docker"), key=head)
    for loc, dock in itertools.product(local, docker):
        context = f"{framework_title(loc.framework)} / {loc.mode} ({loc.device}){transform_context(loc)}"
        pairs.append(
            Pair(
                GROUP_LAUNCHER, "docker vs local", context, loc, dock, f"{head(loc)} (local)", f"{head(dock)} (docker)"
            )
        )
    return pairs


def prune_pairs(results: list[Result]) -> list[Pair]:
    """Each pruned cell against the same variant and mode on the unpruned weights (sparsity 0) of the same
    pruning: what pruning alone buys with the framework's ordinary kernels (a sparse mode is its own mode)."""
    pairs: list[Pair] = []
    for cell in pairable(results, "sparsity", "weights"):
        pruned = [r for r in cell if r.transform is not None and r.transform.name == "prune"]
        dense = [r for r in pruned if _target(r) == 0.0]  # the target asked for: trained weights may hold zeros
        for base in dense:
            for cand in sorted((r for r in pruned if r is not base), key=_sparsity):
                sparsity = cand.transform.config.get("sparsity", "") if cand.transform else ""
                context = f"{framework_title(base.framework)} / {head(base)} {base.mode}"
                pairs.append(Pair(GROUP_PRUNE, f"sparsity {sparsity} vs 0", context, base, cand, "sparsity 0",
                                   f"sparsity {sparsity}"))  # fmt: skip
    return pairs


def _sparsity(result: Result) -> float:
    return result.transform.sparsity or 0.0 if result.transform is not None else 0.0


def _target(result: Result) -> float | None:
    """The sparsity a pruned cell asked for (its config), None where it says none."""
    try:
        return float(result.transform.config["sparsity"]) if result.transform is not None else None
    except (KeyError, ValueError):
        return None


def dense_mode(result: Result) -> str | None:
    """The framework's first mode (its dense baseline); None for a framework the registry does not know."""
    info = FRAMEWORKS.get(result.framework)
    return info.modes[0] if info is not None and info.modes else None


def sparse_pairs(results: list[Result]) -> list[Pair]:
    """Each cell whose framework says which sparse kernels ran (the ``sparse_kernels`` fact) against the same
    variant's first mode on the same weights (its key minus the mode): what the sparse kernels buy. A framework
    whose first mode is itself (DeepSparse's one engine) has nothing to pair with here."""
    pairs: list[Pair] = []
    for cell in pairable(results, "mode"):
        for cand in (r for r in cell if SPARSE_KERNELS in r.build and r.mode != dense_mode(r)):
            base = next((r for r in cell if r.mode == dense_mode(cand)), None)
            if base is not None:
                context = f"{framework_title(base.framework)} / {head(base)}{transform_context(base)}"
                pairs.append(Pair(GROUP_SPARSE, f"{cand.mode} vs {base.mode}", context, base, cand, base.mode,
                                  cand.mode))  # fmt: skip
    return pairs
