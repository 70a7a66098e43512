"""The scenario axis: the registry and its configs, and each scenario run for real through predict
(the NumPy backend, real subprocesses: a sweep's points are processes of their own)."""

from __future__ import annotations

import dataclasses
import os
import resource
import subprocess
import sys
import time

import pytest

from frameworks.backends.registry import FRAMEWORKS, THREADS_FIXED
from frameworks.models import MODELS
from frameworks.options import UsageError, scenario_configs
from frameworks.result import Result
from frameworks.scenarios import SCENARIOS, get_scenario, list_scenarios
from frameworks.scenarios.config import DEFAULT_ITERATIONS, DEFAULT_MIN_TIME_S, DEFAULT_WARMUP, fields_of
from frameworks.scenarios.threads import default_thread_counts, with_scaling
from tests.conftest import REPO_ROOT, framework_marks, require_framework, run_predict

PY = sys.executable
QUICK = [
    "--framework",
    "numpy",
    "--model",
    "lenet5",
    "--iterations",
    "5",
    "--warmup",
    "1",
    "--min-time",
    "0",
    "--max-time",
    "0",
]


def test_the_registry_lists_the_three_scenarios_latency_first() -> None:
    assert list_scenarios()[:3] == ["latency", "throughput", "threads"]
    with pytest.raises(KeyError, match="unknown scenario 'cold'; valid scenarios: latency, throughput, threads, train"):
        get_scenario("cold")


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_each_config_has_the_timing_defaults_once_and_round_trips_through_strings(name: str) -> None:
    config_type = SCENARIOS[name].config
    config = config_type()
    assert (config.iterations, config.warmup, config.min_time) == (DEFAULT_ITERATIONS, DEFAULT_WARMUP,
                                                                     DEFAULT_MIN_TIME_S)  # fmt: skip
    field_names = {f.name for f, _ in fields_of(config_type)}
    assert set(config_type.IDENTITY) <= field_names, "identity names fields of the config"
    resolved = config.resolve(MODELS["vgg16"], 2)
    assert config_type.from_strings(resolved.to_strings()) == resolved
    assert resolved.to_args() and all(a.startswith("--") for a in resolved.to_args()[::2] if not a[0].isdigit())


@pytest.mark.parametrize("name", list(SCENARIOS))
@pytest.mark.parametrize(("field", "value"), [("iterations", 0), ("warmup", -1), ("min_time", -0.5)])
def test_each_config_validates_itself(name: str, field: str, value: float) -> None:
    with pytest.raises(ValueError, match=f"--{field.replace('_', '-')}"):
        SCENARIOS[name].config(**{field: value})


def test_sweep_configs_refuse_bad_sweeps() -> None:
    throughput, threads = SCENARIOS["throughput"].config, SCENARIOS["threads"].config
    for bad in ((0, 1), (4, 4)):
        with pytest.raises(ValueError, match="--batches"):
            throughput(batches=bad)
        with pytest.raises(ValueError, match="--thread-counts"):
            threads(thread_counts=bad)
    with pytest.raises(ValueError, match="--point-timeout"):
        throughput(point_timeout=0)


def test_defaults_resolve_per_model_and_per_cpuset() -> None:
    throughput = SCENARIOS["throughput"].config()
    assert throughput.resolve(MODELS["lenet5"], 2).batches == (1, 4, 16, 64)
    assert throughput.resolve(MODELS["mobilenet_v1"], 2).batches == (1, 4, 16, 64)
    assert throughput.resolve(MODELS["vgg16"], 2).batches == (1, 4, 16)
    assert dataclasses.replace(throughput, batches=(2,)).resolve(MODELS["vgg16"], 2).batches == (2,)
    threads = SCENARIOS["threads"].config()
    assert threads.resolve(MODELS["vgg16"], 2).thread_counts == (1, 2)
    assert default_thread_counts(1) == (1,) and default_thread_counts(6) == (1, 2, 3, 4, 5, 6)
    assert default_thread_counts(48) == (1, 2, 3, 4, 5, 6, 7, 8, 16, 32, 48)


def test_an_option_no_chosen_scenario_takes_is_a_usage_error() -> None:
    latency = SCENARIOS["latency"]
    with pytest.raises(UsageError, match="--batches applies to the throughput scenario, not to latency"):
        scenario_configs([latency], {"batches": "1 4"})
    configs = scenario_configs([latency, SCENARIOS["throughput"]], {"batches": "1 4", "iterations": "3"})
    assert configs["throughput"].batches == (1, 4) and configs["latency"].iterations == 3  # type: ignore[attr-defined]
    with pytest.raises(UsageError, match="throughput: --batches: expected int values"):
        scenario_configs([SCENARIOS["throughput"]], {"batches": "1 x"})


def test_with_scaling_is_relative_to_the_fewest_threads() -> None:
    from frameworks.result import Measurement
    from frameworks.stats import summarize

    def point(threads: int, median: float) -> Measurement:
        return Measurement(1, threads, "ok", samples_s=(median,) * 3, stats=summarize([median] * 3))

    scaled = with_scaling([point(2, 0.6), point(4, 0.4), Measurement(1, 8, "failed", error="boom")])
    assert scaled[0].speedup == pytest.approx(1.0) and scaled[0].efficiency == pytest.approx(1.0)
    assert scaled[1].speedup == pytest.approx(1.5) and scaled[1].efficiency == pytest.approx(0.75)
    assert scaled[2].speedup is None and scaled[2].status == "failed"


# --- through predict, for real ------------------------------------------------------------------------


def _one_result(proc: subprocess.CompletedProcess[str]) -> Result:
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    return Result.from_json(lines[0])


def test_latency_is_todays_protocol_with_its_config_and_key() -> None:
    result = _one_result(run_predict(PY, *QUICK))
    assert result.scenario == "latency" and result.points == (result.measurement,)  # one measurement, one shape
    assert result.config == {
        "batch": "1",
        "iterations": "5",
        "warmup": "1",
        "min_time": "0",
        "max_time": "0",
        "precision": "0.02",
        "weights": "canonical",
    }
    assert result.key().identity == (("batch", "1"),)  # canonical weights keep the identity latency always had
    assert len(result.samples_s) == 5 and result.build.get("in_effect") == "OpenBLAS"


def test_throughput_measures_each_batch_in_its_own_process_and_verifies_it() -> None:
    proc = run_predict(PY, *QUICK, "--scenario", "throughput", "--batches", "1", "4")
    assert proc.returncode == 0, proc.stderr
    result = _one_result(proc)
    assert result.scenario == "throughput" and result.status == "ok" and result.verified
    assert [p.batch for p in result.points] == [1, 4] and result.config["batches"] == "1 4"
    for point in result.points:
        assert point.status == "ok" and point.verified and point.max_error is not None and point.max_error < 1e-4
        assert point.stats is not None and len(point.samples_s) == 5
        assert point.throughput_ips == pytest.approx(point.batch / point.stats.median)
        assert point.peak_rss_bytes and point.peak_rss_bytes > 10 << 20
    assert result.cell == "numpy-im2col-lenet5-throughput"
    assert "batch 1 " in result.summary_line() and "batch 4 " in result.summary_line()


def test_threads_sweeps_thread_counts_with_speedup_and_efficiency() -> None:
    proc = run_predict(PY, *QUICK, "--scenario", "threads", "--thread-counts", "1", "2")
    assert proc.returncode == 0, proc.stderr
    result = _one_result(proc)
    assert [p.threads for p in result.points] == [1, 2] and result.key().identity == (
        ("batch", "1"), ("thread_counts", "1 2"),
    )  # fmt: skip
    one, two = result.points
    assert one.speedup == pytest.approx(1.0) and one.efficiency == pytest.approx(1.0)
    assert two.stats is not None and one.stats is not None
    assert two.speedup == pytest.approx(one.stats.median / two.stats.median)
    assert two.efficiency == pytest.approx(two.speedup / 2)  # type: ignore[operator]


@pytest.mark.parametrize("framework", [pytest.param(f, marks=framework_marks(f, slow=True)) for f in FRAMEWORKS])
def test_each_thread_count_is_set_and_read_back_by_the_framework(framework: str) -> None:
    """Each point's process runs with its count, set through the framework's own setting, and the
    framework says so (torch.get_num_threads, the ORT session option, TF's intra-op pool, libgomp,
    the BLAS through threadpoolctl)."""
    python = require_framework(framework)
    mode = FRAMEWORKS[framework].modes[0]
    args = ["--framework", framework, "--model", "lenet5", "--mode", mode, *QUICK[4:], "--scenario", "threads"]
    proc = run_predict(python, *args, "--thread-counts", "2", "1")
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = _one_result(proc)
    assert [p.threads for p in result.points] == [2, 1]
    fixed = result.build.get(THREADS_FIXED)
    if fixed is not None:  # a build that runs one count whatever is asked (Debian's serial ATLAS, NNabla's CPU)
        assert [p.threads_in_use for p in result.points] == [int(fixed)] * 2, "it ran another count than it states"
        return
    assert [p.threads_in_use for p in result.points] == [2, 1], "the framework did not report the count it used"
    assert result.points[1].speedup == pytest.approx(1.0), "speedups are over the fewest threads"


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))


@pytest.mark.slow
def test_a_batch_that_runs_out_of_memory_is_a_failed_point_and_the_sweep_goes_on() -> None:
    # 3 GiB of address space: batch 20000's im2col columns (4.4 GiB) cannot be allocated, batch 1 can. (Batch
    # 100000 took 70 s to fail the same way; 20000 takes 15 s.)
    proc = subprocess.run(
        [PY, "-m", "frameworks.predict", *QUICK, "--scenario", "throughput", "--batches", "20000", "1"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=300, check=False, preexec_fn=_limit_memory,
    )  # fmt: skip
    result = _one_result(proc)
    big, small = result.points
    assert big.status == "failed" and "MemoryError" in (big.error or "")
    assert small.status == "ok" and small.verified
    assert result.status == "ok" and any("batch 20000" in w for w in result.warnings)
    assert proc.returncode == 0


def test_a_point_that_runs_out_of_time_is_failed_and_the_sweep_goes_on() -> None:
    start = time.monotonic()
    args = [*QUICK[:-2], "--min-time", "60", "--scenario", "threads", "--thread-counts", "1", "2"]
    proc = run_predict(PY, *args, "--point-timeout", "1")
    result = _one_result(proc)
    assert [p.error for p in result.points] == ["timed out after 1 s"] * 2
    assert result.status == "failed" and proc.returncode == 1
    assert time.monotonic() - start < 40, "each point was killed at its timeout"


def test_the_scenario_comes_from_the_environment_where_no_flag_gives_it() -> None:
    env = {**os.environ, "DLBENCH_SCENARIO": "throughput"}
    proc = subprocess.run([PY, "-m", "frameworks.predict", *QUICK, "--batches", "2"], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=300, check=False)  # fmt: skip
    result = _one_result(proc)
    assert result.scenario == "throughput" and [p.batch for p in result.points] == [2]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--scenario", "cold"], "unknown scenario 'cold'; valid scenarios: latency, throughput, threads, train"),
        (["--batches", "1", "4"], "--batches applies to the throughput scenario, not to latency"),
        (["--scenario", "threads", "--thread-counts", "0"], "--thread-counts must be positive integers"),
        (["--scenario", "throughput", "--batches", "4", "4"], "--batches lists a value twice"),
    ],
)
def test_bad_scenario_input_is_one_line_and_exit_2(args: list[str], message: str) -> None:
    proc = run_predict(PY, *QUICK, *args)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().count("\n") == 0 and message in proc.stderr
