"""The validity verdict and sampling to a stated precision (frameworks.validity, the harness's loop)."""

from __future__ import annotations

import json
import sys
from dataclasses import replace

import pytest

from frameworks.result import SCHEMA_VERSION, Measurement, Result, Stats
from frameworks.scenarios.config import ScenarioConfig
from frameworks.stats import summarize
from frameworks.validity import DEFAULT_PRECISION, judge, judge_measurement, verdict_line
from tests.conftest import run_predict

PY = sys.executable


def point(samples: list[float], **changes: object) -> Measurement:
    """An ok measurement of these samples, verified, on a quiet machine."""
    base = Measurement(batch=1, threads=2, status="ok", samples_s=tuple(samples), stats=summarize(samples),
                       verified=True, other_load=0.01)  # fmt: skip
    return replace(base, **changes)  # type: ignore[arg-type]


STEADY = [0.010 + 0.00001 * (i % 7) for i in range(200)]  # +-0.3%: precise
SHAKY = [0.010 * (1 + 0.5 * ((i * 7919) % 13) / 13) for i in range(25)]  # a median known to +-10% or so


def cell(*points: Measurement, **changes: object) -> Result:
    base = Result(framework="numpy", mode="im2col", model="lenet5", device="cpu", status="ok", points=points,
                  config={"precision": "0.02", "iterations": "20"})  # fmt: skip
    return replace(base, **changes)  # type: ignore[arg-type]


def test_a_steady_quiet_verified_measurement_is_valid():
    judged = judge_measurement(point(STEADY))
    assert judged.valid is True and judged.invalid_reasons == ()


@pytest.mark.parametrize(
    ("changes", "samples", "reason"),
    [
        ({}, SHAKY, "precision not reached: median +-"),
        ({"verified": False}, STEADY, "output unverified"),
        ({"other_load": 0.6}, STEADY, "busy machine: other processes used 0.60 CPUs"),
        ({"other_load": None}, STEADY, "unknown load"),
        ({"throttle_events": 3}, STEADY, "throttled: 3 thermal throttle events"),
        ({}, STEADY[:12], "too few samples: 12 < 20"),
    ],
)
def test_each_reason_makes_a_measurement_invalid(changes, samples, reason):
    judged = judge_measurement(point(samples, **changes))
    assert judged.valid is False
    assert any(r.startswith(reason) for r in judged.invalid_reasons), judged.invalid_reasons


def test_the_precision_is_the_cells_own():
    shaky = point(SHAKY)
    width = shaky.stats.half_width
    assert width is not None and width > DEFAULT_PRECISION
    assert judge(cell(shaky, config={"precision": f"{width * 1.01:.6f}", "iterations": "20"})).valid is True
    assert judge(cell(shaky, config={"precision": f"{width * 0.99:.6f}", "iterations": "20"})).valid is False


def test_a_sweep_names_the_point_of_each_reason_and_a_cell_that_did_not_run_has_no_verdict():
    sweep = cell(point(STEADY, batch=1), point(STEADY, batch=16, other_load=0.9),
                 Measurement(batch=64, threads=2, status="failed", error="out of memory"))  # fmt: skip
    judged = judge(replace(sweep, identity=("batch_sizes",)))
    assert judged.valid is False
    assert judged.invalid_reasons == ("batch 16: busy machine: other processes used 0.90 CPUs",)
    assert [p.valid for p in judged.points] == [True, False, None]
    skipped = judge(replace(sweep, status="skipped", error="no GPU"))
    assert skipped.valid is None and verdict_line(skipped) == "skipped"
    assert verdict_line(judged).startswith("INVALID: batch 16")


def test_a_cell_without_measurements_is_judged_on_its_load_and_verification():
    train = cell(other_load=0.02, verified=True)
    assert judge(train).valid is True
    assert judge(replace(train, other_load=None)).invalid_reasons == (
        "unknown load: no load figure for the measurement",
    )


def test_a_line_of_an_older_schema_is_judged_when_read():
    line = json.loads(cell(point(SHAKY)).to_json())
    line["schema_version"] = SCHEMA_VERSION - 1
    for name in ("valid", "invalid_reasons"):
        line.pop(name)
        line["points"][0].pop(name)
    read = Result.from_dict(line)
    assert read.valid is False and read.invalid_reasons[0].startswith("precision not reached")
    written = json.loads(cell(point(SHAKY)).to_json())  # a current line keeps what it says
    assert Result.from_dict(written).valid is None


def test_half_width_is_the_larger_side_relative_to_the_median():
    stats = Stats(n=30, mean=1, sd=0, median=2.0, min=1, max=3, p90=None, p99=None, median_ci_low=1.9,
                  median_ci_high=2.2, ci_level=0.95)  # fmt: skip
    assert stats.half_width == pytest.approx(0.1)


def test_a_longer_min_time_moves_the_default_cap_but_not_a_given_one():
    assert ScenarioConfig(min_time=20).max_time == 20
    with pytest.raises(ValueError, match="--max-time"):
        ScenarioConfig(min_time=20, max_time=3)
    with pytest.raises(ValueError, match="--precision"):
        ScenarioConfig(precision=0)


@pytest.mark.parametrize(("args", "message"), [
    (["--precision", "1.5"], "--precision must be a fraction between 0 and 1"),
    (["--max-time", "0.5"], "--max-time (0.5 s) must not be below --min-time (1 s)"),
])  # fmt: skip
def test_bad_precision_settings_are_one_line_and_exit_2(args, message):
    proc = run_predict(PY, "--framework", "numpy", "--model", "lenet5", *args)
    assert proc.returncode == 2 and message in proc.stderr and proc.stderr.strip().count("\n") == 0


def test_the_loop_samples_on_until_the_precision_is_reached():
    """LeNet-5 in NumPy: a loose target stops at the minimum, a tight one samples on to the cap, and each
    records the precision it reached."""
    loose = Result.from_json(run_predict(PY, "--framework", "numpy", "--model", "lenet5", "--iterations", "20",
                                         "--min-time", "0", "--precision", "0.9").stdout.strip())  # fmt: skip
    assert loose.stats is not None and loose.stats.n < 200
    tight = Result.from_json(run_predict(PY, "--framework", "numpy", "--model", "lenet5", "--iterations", "20",
                                         "--min-time", "0", "--precision", "0.00001",
                                         "--max-time", "0.6").stdout.strip())  # fmt: skip
    assert tight.stats is not None and tight.stats.n > loose.stats.n
    assert sum(tight.samples_s) > 0.3  # it sampled to the cap
    assert tight.valid is False and any(r.startswith("precision not reached") for r in tight.invalid_reasons)
    assert tight.config["precision"] == "1e-05" and tight.config["max_time"] == "0.6"


def test_a_short_loop_takes_the_whole_cells_load_or_says_it_has_none():
    """A loop shorter than /proc/stat can measure: the load of the whole cell, or the verdict says unknown."""
    proc = run_predict(PY, "--framework", "numpy", "--model", "mobilenet_v1", "--iterations", "1", "--warmup", "0",
                       "--min-time", "0", "--precision", "0.9")  # fmt: skip
    result = Result.from_json(proc.stdout.strip())
    assert len(result.samples_s) < 5
    if result.other_load is None:
        assert "unknown load: no load figure for the measurement" in result.invalid_reasons
    else:
        assert 0 <= result.other_load < result.environment.cpu_count  # from the build on
