"""Speedups: the statistics (checked against SciPy where it is installed) and which cells get paired."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from frameworks.result import Result
from reports.cells import build_mismatch, effective_build, framework_title
from reports.compare import (
    GROUP_BUILD,
    GROUP_DEVICE,
    GROUP_LAUNCHER,
    bootstrap_ratio_ci,
    compare_samples,
    find_comparisons,
    mann_whitney_u,
    mode_group,
    rank_with_ties,
)
from reports.load import load_run

RUNS = Path(__file__).parent / "fixtures" / "reports" / "runs"
GOLDEN_RUN = RUNS / "fixture-a2"

CASES = [
    ([1.0, 2.0, 3.0], [4.0, 5.0, 6.0, 7.0, 8.0]),  # exact, complete separation
    ([0.5, 2.5, 3.5, 9.0], [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]),  # exact, interleaved
    (list(np.linspace(0, 1, 8)), list(np.linspace(0.3, 1.3, 20))),  # exact (n1 = 8)
    ([1.0, 1.0, 2.0, 3.0], [1.0, 2.0, 2.0, 4.0, 5.0]),  # ties: normal approximation
    (list(np.random.default_rng(1).lognormal(0, 0.1, 30)), list(np.random.default_rng(2).lognormal(0.05, 0.1, 40))),
]


@pytest.mark.parametrize(("a", "b"), CASES)
def test_mann_whitney_matches_scipy(a: list[float], b: list[float]) -> None:
    stats = pytest.importorskip("scipy.stats")
    u, p = mann_whitney_u(a, b)
    expected = stats.mannwhitneyu(a, b, alternative="two-sided", method="auto")
    assert u == pytest.approx(expected.statistic)
    assert p == pytest.approx(expected.pvalue, rel=1e-9, abs=1e-12)


def test_mann_whitney_known_values() -> None:
    # Complete separation of 3 and 5 values: P(U >= 15) = 1 / C(8, 3), doubled.
    u, p = mann_whitney_u([1.0, 2.0, 3.0], [4.0, 5.0, 6.0, 7.0, 8.0])
    assert u == 0.0
    assert p == pytest.approx(2 / 56)
    assert mann_whitney_u([1.0, 1.0, 1.0], [1.0, 1.0])[1] == 1.0  # nothing to tell apart
    with pytest.raises(ValueError):
        mann_whitney_u([], [1.0])


def test_ranks_average_ties() -> None:
    ranks, ties = rank_with_ties(np.array([3.0, 1.0, 3.0, 2.0, 3.0]))
    assert ranks.tolist() == [4.0, 1.0, 4.0, 2.0, 4.0]
    assert sorted(ties.tolist()) == [1, 1, 3]


def test_bootstrap_interval_is_deterministic_and_covers_the_ratio() -> None:
    rng = np.random.default_rng(7)
    baseline = rng.lognormal(np.log(2.0), 0.05, 50)
    candidate = rng.lognormal(np.log(1.0), 0.05, 50)
    low, high = bootstrap_ratio_ci(baseline, candidate)
    assert (low, high) == bootstrap_ratio_ci(baseline, candidate)
    assert low < np.median(baseline) / np.median(candidate) < high
    assert 1.8 < low < high < 2.2


def test_speedup_significance_needs_both_tests() -> None:
    rng = np.random.default_rng(3)
    same = rng.normal(1.0, 0.01, 40)
    noisy = compare_samples(same, rng.normal(1.0, 0.01, 40))
    assert not noisy.significant
    faster = compare_samples(same, same * 0.8)
    assert faster.significant and faster.ratio == pytest.approx(1.25)
    flat = compare_samples(np.ones(5), np.ones(5))
    assert (flat.ratio, flat.ci_low, flat.ci_high, flat.p_value, flat.significant) == (1.0, 1.0, 1.0, 1.0, False)
    with pytest.raises(ValueError):
        compare_samples(np.ones(1), np.ones(5))


def test_large_samples_are_bootstrapped_in_chunks() -> None:
    rng = np.random.default_rng(5)
    low, high = bootstrap_ratio_ci(rng.normal(2, 0.1, 20_000), rng.normal(1, 0.05, 20_000), resamples=300)
    assert 1.99 < low < high < 2.01


def test_fixture_comparisons_are_the_seeds() -> None:
    comparisons, notes = find_comparisons(load_run(GOLDEN_RUN).results)
    kinds = Counter((c.group, c.title) for c in comparisons)
    assert kinds[(GROUP_BUILD, "MKL vs OpenBLAS")] == 3
    assert kinds[(GROUP_BUILD, "oneDNN vs Eigen")] == 8  # xla / MobileNet v1 was skipped
    assert kinds[(GROUP_BUILD, "oneDNN vs OpenBLAS")] == 5  # hybrid / VGG-16 failed
    assert kinds[("TensorFlow: graph vs eager, xla vs graph", "graph vs eager")] == 6
    assert kinds[("TensorFlow: graph vs eager, xla vs graph", "xla vs graph")] == 5
    assert kinds[("MXNet: hybrid vs imperative", "hybrid vs imperative")] == 5
    assert kinds[("PyTorch: jit vs eager, compile vs eager", "jit vs eager")] == 6  # cpu and cuda
    assert kinds[("PyTorch: jit vs eager, compile vs eager", "compile vs eager")] == 6
    assert kinds[(GROUP_DEVICE, "cuda vs cpu")] == 12  # torch x 3 modes + onnxruntime, 3 models each
    assert kinds[(GROUP_LAUNCHER, "docker vs local")] == 3
    assert notes == []
    mkl = next(c for c in comparisons if c.title == "MKL vs OpenBLAS")
    assert mkl.baseline.variant == "cpu-numpy-openblas" and mkl.candidate.variant == "cpu-numpy-mkl"
    assert all(c.baseline.model == c.candidate.model for c in comparisons)


def _results() -> list[Result]:
    return [r for r in load_run(GOLDEN_RUN).results if r.status == "ok" and r.model == "lenet5"]


def test_build_pairs_follow_the_facts_not_the_names() -> None:
    tf = [r for r in _results() if r.framework == "tensorflow" and r.mode == "graph" and r.launcher == "docker"]
    renamed = [replace(r, variant=f"cpu-tensorflow-build{i}") for i, r in enumerate(tf)]
    comparisons, _ = find_comparisons(renamed)
    assert [(c.title, c.candidate.build["in_effect"]) for c in comparisons] == [("oneDNN vs Eigen", "oneDNN")]


def test_a_build_switch_that_did_not_take_is_noted_not_compared() -> None:
    tf = [r for r in _results() if r.framework == "tensorflow" and r.mode == "graph" and r.launcher == "docker"]
    same = [replace(r, build={**r.build, "in_effect": "oneDNN"}) for r in tf]
    comparisons, notes = find_comparisons(same)
    assert comparisons == []
    assert notes == [
        "cpu-tensorflow and cpu-tensorflow-eigen report the same math library in effect (oneDNN): "
        "no build comparison drawn"
    ]
    eigen = next(r for r in same if r.variant == "cpu-tensorflow-eigen")
    assert build_mismatch(eigen) == "cpu-tensorflow-eigen asks for Eigen but tensorflow reports oneDNN in effect"


def test_effective_build_is_the_stated_fact_else_the_name() -> None:
    base = _results()[0]
    stated = replace(base, framework="numpy", variant="cpu-numpy-openblas", build={"in_effect": "MKL"})
    assert effective_build(stated) == "MKL"  # the fact wins over what the name asks for
    assert build_mismatch(stated) == "cpu-numpy-openblas asks for OpenBLAS but numpy reports MKL in effect"
    assert effective_build(replace(base, framework="numpy", variant="cpu-numpy-openblas", build={})) == "OpenBLAS"
    assert effective_build(replace(base, framework="torch", variant="cpu-torch", build={"blas": "mkl"})) is None
    assert effective_build(replace(base, framework="onnxruntime", variant="cpu-onnxruntime", build={})) is None


def test_schema1_facts_reach_effective_build_through_the_migration() -> None:
    """Schema 1 lines had no in_effect fact: the migration derives it from the facts they did state."""
    a1 = load_run(RUNS / "fixture-a1")
    assert a1.info is not None and a1.info.launcher == "docker"
    found = {(r.variant, effective_build(r)) for r in a1.results}
    assert found == {
        ("cpu-numpy-openblas", "OpenBLAS"),
        ("cpu-numpy-mkl", "MKL"),
        ("cpu-torch", "MKL"),
        ("cpu-tensorflow", "oneDNN"),
        ("cpu-tensorflow-eigen", "Eigen"),
        ("cpu-mxnet-mkldnn", "oneDNN"),
        ("cpu-mxnet-openblas", "OpenBLAS"),
        ("cpu-onnxruntime", None),
    }
    assert all(r.launcher == "docker" and r.scenario == "latency" for r in a1.results)
    comparisons, notes = find_comparisons(a1.results)
    assert {c.title for c in comparisons if c.group == GROUP_BUILD} == {
        "MKL vs OpenBLAS",
        "oneDNN vs Eigen",
        "oneDNN vs OpenBLAS",
    }
    assert notes == []


def test_mode_pairs_come_from_the_registry() -> None:
    assert mode_group("tensorflow") == "TensorFlow: graph vs eager, xla vs graph"
    assert mode_group("torch") == "PyTorch: jit vs eager, compile vs eager"
    assert mode_group("torch", ["eager", "compile", "sparse"]) == "PyTorch: compile vs eager"
    assert mode_group("mxnet") == "MXNet: hybrid vs imperative"
    assert mode_group("somethingelse") == "somethingelse: modes"


def test_an_unknown_framework_still_renders_and_compares_its_modes() -> None:
    """A framework not in the registry (a result file from elsewhere): raw name, every mode against the first."""
    tf = [r for r in _results() if r.variant == "cpu-tensorflow" and r.launcher == "docker"]
    renamed = [replace(r, framework="jaxish", variant="cpu-jaxish") for r in tf]
    comparisons, _ = find_comparisons(renamed)
    pairs = sorted((c.baseline.mode, c.candidate.mode) for c in comparisons)
    assert pairs == [("eager", "graph"), ("eager", "xla")]
    assert {c.group for c in comparisons} == {"jaxish: modes"}
    assert framework_title("jaxish") == "jaxish" and framework_title("onnxruntime") == "ONNX Runtime"


def test_sweep_results_are_never_compared() -> None:
    run = load_run(GOLDEN_RUN)
    sweeps = [r for r in run.results if r.scenario != "latency"]
    assert sweeps and all(r.points for r in sweeps)
    assert find_comparisons(sweeps) == ([], [])
    with_samples = [r.with_flat(samples_s=r.points[0].samples_s) for r in sweeps]  # even with top-level samples
    assert find_comparisons(with_samples) == ([], [])
    everything, _ = find_comparisons(run.results)
    assert all(c.baseline.scenario == c.candidate.scenario == "latency" for c in everything)


def test_too_few_samples_are_not_compared() -> None:
    results = [r.with_flat(samples_s=r.samples_s[:1]) for r in _results()]
    assert find_comparisons(results) == ([], [])
