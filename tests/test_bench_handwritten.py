"""The hand-written-script benchmark's block size: long enough that switching models costs nothing."""

from __future__ import annotations

import pytest

from benchmarks.bench_handwritten import block_size, paired_ratio


@pytest.mark.parametrize(
    ("per_iteration_s", "block", "block_time", "expected"),
    [
        (70e-6, 10, 0.2, 2858),  # LeNet-5 under ONNX Runtime: ten iterations would last 0.7 ms
        (0.2, 10, 0.2, 10),  # VGG-16: ten iterations are already 2 s
        (0.05, 10, 1.0, 20),
        (0.0, 10, 0.2, 200_000_000),  # a clock that read zero cannot make the block empty or infinite
    ],
)
def test_a_block_lasts_at_least_block_time_and_block_iterations(
    per_iteration_s: float, block: int, block_time: float, expected: int
) -> None:
    assert block_size([per_iteration_s] * 9, block, block_time) == expected


def test_the_median_decides_not_a_first_slow_call() -> None:
    assert block_size([1.0, 1e-3, 1e-3, 1e-3], 10, 0.2) == 200


def test_the_ratio_pairs_the_blocks_of_a_round_so_a_slow_minute_cancels() -> None:
    """The machine slows down threefold halfway through: every round's pair still says ours is 5% slower."""
    speed = [1.0] * 8 + [3.0] * 8
    ours = [1.05e-3 * s for s in speed for _ in range(10)]
    theirs = [1.00e-3 * s for s in speed for _ in range(10)]
    ratio, low, high = paired_ratio(ours, theirs, 10)
    assert ratio == pytest.approx(1.05) and low == pytest.approx(1.05) and high == pytest.approx(1.05)


def test_the_interval_widens_with_the_rounds_disagreement() -> None:
    ratios = [0.8, 0.85, 0.9, 0.95, 0.97, 0.99, 1.0, 1.0, 1.0, 1.0, 1.01, 1.03, 1.05, 1.1, 1.2, 1.3]
    ours = [r for r in ratios for _ in range(3)]
    ratio, low, high = paired_ratio(ours, [1.0] * len(ours), 3)
    assert ratio == 1.0 and (low, high) == (0.97, 1.03)
