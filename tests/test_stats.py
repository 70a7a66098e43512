from __future__ import annotations

import random
import statistics

import pytest

from frameworks.stats import median_ci, percentile, stability_warnings, summarize


def test_summary_of_known_samples():
    s = summarize([3.0, 1.0, 2.0, 4.0, 5.0])
    assert (s.n, s.mean, s.median, s.min, s.max) == (5, 3.0, 3.0, 1.0, 5.0)
    assert s.sd == pytest.approx(statistics.stdev([1, 2, 3, 4, 5]))
    assert s.p99 is None  # fewer than 100 samples: not shown


def test_percentile_interpolates():
    assert percentile([0.0, 10.0], 90) == pytest.approx(9.0)
    assert percentile(list(range(101)), 99) == 99


def test_median_ci_covers_the_median_at_its_level():
    rng = random.Random(1)
    misses = 0
    for _ in range(400):
        samples = sorted(rng.lognormvariate(0, 1) for _ in range(31))  # true median = 1
        low, high = median_ci(samples)
        misses += not (low <= 1.0 <= high)
    assert misses / 400 < 0.08  # 95% interval, some slack for 400 trials


def test_median_ci_of_tiny_samples_is_the_range():
    assert median_ci([1.0, 2.0, 3.0]) == (1.0, 3.0)


def test_stability_warnings():
    assert stability_warnings(summarize([1.0] * 20)) == []
    noisy = stability_warnings(summarize([1.0, 2.0] * 10))
    assert any(w.startswith("unstable: sd is") for w in noisy)
    assert any("too few samples for p90" in w for w in stability_warnings(summarize([1.0] * 5)))


def test_no_samples_is_an_error():
    with pytest.raises(ValueError):
        summarize([])
