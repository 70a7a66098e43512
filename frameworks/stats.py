"""Statistics over raw timing samples (standard library only, so the host can reuse it)."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence

from .result import Stats

CI_LEVEL = 0.95
MIN_SAMPLES_P90 = 10
MIN_SAMPLES_P99 = 100
UNSTABLE_CV = 0.10  # sd at least 10% of the mean


def percentile(sorted_samples: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile (q in [0, 100]) of already sorted samples."""
    if not sorted_samples:
        raise ValueError("no samples")
    pos = (len(sorted_samples) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(sorted_samples) - 1)
    return sorted_samples[lo] + (sorted_samples[hi] - sorted_samples[lo]) * (pos - lo)


def median_ci(sorted_samples: Sequence[float], level: float = CI_LEVEL) -> tuple[float, float]:
    """Distribution-free confidence interval for the median from order statistics.

    The number of samples below the true median is Binomial(n, 1/2); pick the narrowest
    symmetric pair of order statistics whose coverage reaches ``level``. Timings are skewed
    and heavy-tailed, so no normality is assumed.
    """
    n = len(sorted_samples)
    if n == 0:
        raise ValueError("no samples")
    cdf = _binomial_half_cdf(n)
    for k in range(n // 2, -1, -1):  # interval [x_(k), x_(n-1-k)] (0-based)
        coverage = cdf[n - k - 1] - (cdf[k - 1] if k > 0 else 0.0)
        if coverage >= level:
            return sorted_samples[k], sorted_samples[n - 1 - k]
    return sorted_samples[0], sorted_samples[-1]


def _binomial_half_cdf(n: int) -> list[float]:
    """P(B <= j) for B ~ Binomial(n, 1/2), j = 0..n (log-space, safe for large n)."""
    log_half_n = -n * math.log(2.0)
    total, out = 0.0, []
    for j in range(n + 1):
        total += math.exp(math.lgamma(n + 1) - math.lgamma(j + 1) - math.lgamma(n - j + 1) + log_half_n)
        out.append(min(total, 1.0))
    return out


def summarize(samples: Sequence[float]) -> Stats:
    if not samples:
        raise ValueError("no samples to summarize")
    ordered = sorted(samples)
    n = len(ordered)
    low, high = median_ci(ordered)
    return Stats(
        n=n,
        mean=statistics.fmean(ordered),
        sd=statistics.stdev(ordered) if n > 1 else 0.0,
        median=statistics.median(ordered),
        min=ordered[0],
        max=ordered[-1],
        p90=percentile(ordered, 90),
        p99=percentile(ordered, 99) if n >= MIN_SAMPLES_P99 else None,
        median_ci_low=low,
        median_ci_high=high,
        ci_level=CI_LEVEL,
    )


def stability_warnings(stats: Stats) -> list[str]:
    """What makes these figures less trustworthy, in words a report can show as they are."""
    warnings = []
    if stats.mean > 0 and stats.sd >= UNSTABLE_CV * stats.mean:
        warnings.append(f"unstable: sd is {100 * stats.sd / stats.mean:.0f}% of the mean")
    if stats.n < MIN_SAMPLES_P90:
        warnings.append(f"too few samples for p90: {stats.n} < {MIN_SAMPLES_P90}")
    return warnings
