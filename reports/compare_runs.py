"""Two runs compared measurement by measurement: what got faster, what got slower, what cannot be said.

``runner compare BASE NEW`` (``dlbench compare``) asks whether a change moved anything, so a pair must be the
same measurement in both runs and nothing else. Two measurements pair only when their whole identity is equal
(``identity``, the one definition, pyperf-style: an explicit list of what must match). Each pair gets the ratio
of medians NEW / BASE with the reports' percentile-bootstrap 95% interval and Mann-Whitney U test
(``reports.compare.compare_samples``: significant only when both agree), and a verdict: faster, slower, not
significant, or unreliable where either side's figure is not to be trusted (its validity verdict is INVALID,
it ran beside other load, or its spread is unstable), naming the side and the reason. On a 2-core machine a
ratio measured beside a build is noise with a p-value: saying so is the point.

A measurement is one shape wherever it is made (``Measurement``): a latency cell's one, or each point of a
sweep, so a sweep pairs point by point. Pure functions of the two runs' results: no framework is imported.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from frameworks.result import Measurement, Result
from frameworks.stats import UNSTABLE_CV
from frameworks.validity import load_reasons

from .cells import head, per_image_samples
from .compare import Speedup, compare_samples

BASE, NEW = "BASE", "NEW"
FASTER, SLOWER, NOT_SIGNIFICANT, UNRELIABLE = "faster", "slower", "not significant", "unreliable"
NOT_MEASURED = "not measured"  # paired, but one side has no timing to compare (failed, skipped, no samples)
ONLY_BASE, ONLY_NEW = f"only in {BASE}", f"only in {NEW}"
VERDICTS = (FASTER, SLOWER, NOT_SIGNIFICANT, UNRELIABLE, NOT_MEASURED, ONLY_BASE, ONLY_NEW)

# What must match, in this order: every field of the cell's key (``Result.key``) by name, then the identity
# fields its scenario config declares and its transform's (name, identity settings, weights), then the
# measurement's own batch and threads (a sweep's point; a latency cell's one measurement).
KEY_FIELDS = ("scenario", "variant", "launcher", "host", "framework", "mode", "model", "device")
Identity = tuple[tuple[str, str], ...]


def identity(result: Result, point: Measurement | None) -> Identity:
    """The one definition of which measurements of two runs are the same measurement.

    ``point`` is the measurement (None for a cell that made none: failed, skipped, a train cell). An entry the
    scenario's identity already holds with the same value (a latency cell's ``batch``) is kept once.
    """
    key = result.key()
    named = tuple((name, str(getattr(key, name))) for name in KEY_FIELDS)
    batch = point.batch if point is not None else result.batch
    threads = point.threads if point is not None else result.threads
    entries = (*named, *key.identity, *key.transform, ("batch", str(batch)), ("threads", str(threads)))
    return tuple(dict.fromkeys(entries))


@dataclass(frozen=True)
class Side:
    """One run's measurement of a pair: the cell, and its measurement (None where the cell made none)."""

    result: Result
    point: Measurement | None

    @property
    def samples(self) -> np.ndarray:
        """Seconds per image; empty where nothing was timed."""
        if self.point is None or self.point.status != "ok":
            return np.empty(0)
        return per_image_samples(self.point)

    @property
    def median_ms(self) -> float | None:
        samples = self.samples
        return float(np.median(samples)) * 1e3 if samples.size else None

    def missing(self) -> str | None:
        """Why this side has no timing to compare (None: it has one): its status and error, or too few samples."""
        status = self.point.status if self.point is not None else self.result.status
        error = self.point.error if self.point is not None and self.point.error else self.result.error
        if status != "ok":
            return f"{status}: {error}" if error else status
        if self.samples.size < 2:
            return "fewer than 2 timed samples"
        return None

    def doubts(self) -> tuple[str, ...]:
        """Why this side's figure is not to be trusted: its INVALID verdict's reasons, a busy or unknown load,
        an unstable spread (sd at least ``UNSTABLE_CV`` of the mean); () when it is sound."""
        point = self.point
        if point is None:
            return ()
        reasons = [*point.invalid_reasons, *load_reasons(point.other_load)]
        stats = point.stats
        if stats is not None and stats.mean > 0 and stats.sd >= UNSTABLE_CV * stats.mean:
            reasons.append(f"unstable spread: sd is {100 * stats.sd / stats.mean:.0f}% of the mean")
        return tuple(dict.fromkeys(reasons))


@dataclass(frozen=True)
class Change:
    """One measurement in BASE and NEW (either may be absent), its ratio and its verdict."""

    identity: Identity
    label: str
    base: Side | None
    new: Side | None
    verdict: str
    speedup: Speedup | None = None  # ``ratio``: median(NEW) / median(BASE) per image, with its 95% interval
    why: str = ""  # the side and the reason behind an unreliable or unmeasured verdict

    @property
    def ratio(self) -> float | None:
        return self.speedup.ratio if self.speedup is not None else None

    def regression(self, threshold: float) -> bool:
        """A reliable, significant slowdown by more than ``threshold`` (a NEW / BASE ratio, 1.05: 5% slower)."""
        return self.verdict == SLOWER and self.speedup is not None and self.speedup.ratio > threshold


@dataclass(frozen=True)
class Comparison:
    """Every measurement of two runs: the pairs in identity order, then those only one run made."""

    changes: tuple[Change, ...]

    def count(self, verdict: str) -> int:
        return sum(c.verdict == verdict for c in self.changes)

    @property
    def paired(self) -> int:
        return sum(c.base is not None and c.new is not None for c in self.changes)

    def regressions(self, threshold: float) -> list[Change]:
        return [c for c in self.changes if c.regression(threshold)]

    def summary(self) -> str:
        """``1 faster, 2 slower, 5 not significant, 2 unreliable, 0 not measured, 3 only in one run``."""
        base, new = self.count(ONLY_BASE), self.count(ONLY_NEW)
        counts = ", ".join(f"{self.count(v)} {v}" for v in (FASTER, SLOWER, NOT_SIGNIFICANT, UNRELIABLE, NOT_MEASURED))
        return f"{counts}, {base + new} only in one run ({base} {ONLY_BASE}, {new} {ONLY_NEW})"


def measurements(results: Iterable[Result]) -> dict[Identity, Side]:
    """Each measurement of a run by its identity: a cell's points, or the cell itself where it made none."""
    out: dict[Identity, Side] = {}
    for result in results:
        for point in result.points or (None,):
            out[identity(result, point)] = Side(result, point)
    return out


def compare_runs(base: Iterable[Result], new: Iterable[Result]) -> Comparison:
    """Pair BASE's and NEW's measurements by identity and judge each pair."""
    before, after = measurements(base), measurements(new)
    paired = [judge_pair(key, before[key], after[key]) for key in _ordered(set(before) & set(after))]
    only = [Change(k, label(before[k]), before[k], None, ONLY_BASE) for k in _ordered(set(before) - set(after))]
    only += [Change(k, label(after[k]), None, after[k], ONLY_NEW) for k in _ordered(set(after) - set(before))]
    return Comparison(tuple(paired + only))


def _ordered(keys: Iterable[Identity]) -> list[Identity]:
    """Identities in field order, numbers as numbers (batch 4 before batch 16)."""
    return sorted(keys, key=lambda k: tuple((n, (0, int(v), "") if v.isdigit() else (1, 0, v)) for n, v in k))


def judge_pair(key: Identity, base: Side, new: Side) -> Change:
    """The verdict of one pair: not measured, unreliable (which side, why), or the test's answer."""
    name = label(new)
    missing = [f"{side} {why}" for side, s in ((BASE, base), (NEW, new)) if (why := s.missing()) is not None]
    if missing:
        return Change(key, name, base, new, NOT_MEASURED, why="; ".join(missing))
    speedup = compare_samples(new.samples, base.samples)  # ratio = median(NEW) / median(BASE): above 1 is slower
    doubts = [f"{side}: {'; '.join(d)}" for side, s in ((BASE, base), (NEW, new)) if (d := s.doubts())]
    if doubts:
        return Change(key, name, base, new, UNRELIABLE, speedup, why=" | ".join(doubts))
    verdict = NOT_SIGNIFICANT if not speedup.significant else SLOWER if speedup.ratio > 1 else FASTER
    return Change(key, name, base, new, verdict, speedup)


def label(side: Side) -> str:
    """``cpu-torch eager lenet5 latency batch=1``: the measurement as a row names it (a sweep adds its point,
    a transform its settings; a local or remote cell its launcher and host)."""
    r, point = side.result, side.point
    key = r.key()
    parts = [head(r), r.mode, r.model, r.scenario]
    parts += [f"{n}={v}" for n, v in key.identity if " " not in v]  # a sweep's list of points is its rows
    parts += [f"{n}={v}" for n, v in key.transform if n != "weights"]
    if point is not None and len(r.points) > 1:
        parts.append(f"threads={point.threads}" if "thread_counts" in r.identity else f"batch={point.batch}")
    if r.launcher not in (None, "docker"):
        parts.append(f"({r.launcher})")
    if r.host:
        parts.append(f"on {r.host}")
    return " ".join(parts)


def rows(comparison: Comparison, unpaired: bool = False) -> list[list[str]]:
    """The table: measurement, BASE and NEW median per image, NEW / BASE with its interval, verdict, why; the
    measurements only one run made only when ``unpaired`` (a quick run against a full one would be all of them)."""
    shown = (c for c in comparison.changes if unpaired or (c.base is not None and c.new is not None))
    return [[c.label, _ms(c.base), _ms(c.new), _ratio(c.speedup), c.verdict, c.why] for c in shown]


HEADERS = ["measurement", f"{BASE} ms", f"{NEW} ms", f"{NEW}/{BASE} [95% CI]", "verdict", "why"]


def _ms(side: Side | None) -> str:
    median = side.median_ms if side is not None else None
    return f"{median:.4g}" if median is not None else "—"


def _ratio(speedup: Speedup | None) -> str:
    if speedup is None:
        return "—"
    return f"{speedup.ratio:.3f} [{speedup.ci_low:.3f}, {speedup.ci_high:.3f}]"


def decreased_line(change: Change, threshold: float) -> str:
    """asv's wording for a regression that fails the comparison."""
    assert change.speedup is not None
    s = change.speedup
    return (f"PERFORMANCE DECREASED: {change.label}: {NEW}/{BASE} {s.ratio:.3f} [{s.ci_low:.3f}, {s.ci_high:.3f}] "
            f"above {threshold:g}")  # fmt: skip
