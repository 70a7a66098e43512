from __future__ import annotations

import json

import pytest

from frameworks import environment as env_module
from frameworks.environment import environment, format_cpuset
from frameworks.result import SCHEMA_VERSION, Result, RunInfo
from frameworks.stats import summarize


def _result(**overrides) -> Result:
    base = dict(framework="numpy", mode="im2col", model="lenet5", device="cpu", status="ok",
                samples_s=(0.1, 0.2, 0.3), stats=summarize([0.1, 0.2, 0.3]), environment=environment(),
                build={"blas": "openblas"}, warnings=("w",))  # fmt: skip
    base.update(overrides)
    return Result.from_flat(**base)


def test_round_trip_is_lossless():
    r = _result()
    line = r.to_json()
    assert "\n" not in line
    assert Result.from_json(line) == r


def test_summary_line_in_the_seed_format():
    assert _result().summary_line() == "numpy-im2col-lenet5 : 0.200000 (sd 0.100000)"
    assert _result(variant="cpu-numpy-mkl").cell == "cpu-numpy-mkl-im2col-lenet5"


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d.update(schema_version=99), "unsupported schema_version 99"),
        (lambda d: d.update(status="great"), "result.status"),
        (lambda d: d.update(batch="1"), "result.batch: must be an integer"),
        (lambda d: d["points"][0].update(samples_s=[0.1, "x"]), r"result.points\[0\].samples_s\[1\]: must be a number"),
        (lambda d: d["points"][0]["stats"].pop("median"), "missing 1 required"),
        (lambda d: d.update(samples_s=[0.1]), "unknown field"),  # schema 4's place for them
        (lambda d: d.update(extra=1), "unknown field"),
        (lambda d: d.pop("framework"), "framework"),
    ],
)
def test_malformed_results_are_one_clear_error(mutate, message):
    data = json.loads(_result().to_json())
    mutate(data)
    with pytest.raises(ValueError, match=message):
        Result.from_dict(data)


def test_truncated_line_is_a_value_error():
    with pytest.raises(ValueError, match="not valid JSON"):
        Result.from_json(_result().to_json()[:-7])


def test_failed_results_are_data():
    r = _result(status="failed", error="out of memory", stats=None, samples_s=())
    assert Result.from_json(r.to_json()).error == "out of memory"
    assert r.summary_line() == "numpy-im2col-lenet5 : failed (out of memory)"


def test_run_info_round_trip():
    info = RunInfo("r", "python -m runner matrix", "local", "2026-01-01T00:00:00+00:00", environment())
    assert RunInfo.from_dict(json.loads(info.to_json())) == info
    assert info.schema_version == SCHEMA_VERSION


def test_cpuset_format():
    assert format_cpuset([0, 1, 2, 5, 7, 8]) == "0-2,5,7-8"


def test_memory_limit_is_the_tightest_cgroup_limit_below_the_host(tmp_path, monkeypatch):
    files = {"outer": "4294967296\n", "inner": "max\n", "huge": "9223372036854771712\n"}
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    monkeypatch.setattr(env_module, "memory_bytes", lambda: 8 << 30)
    paths = [str(tmp_path / n) for n in ("inner", "outer", "huge", "missing")]
    monkeypatch.setattr(env_module, "_cgroup_memory_files", lambda: paths)
    assert env_module.memory_limit_bytes() == 4 << 30
    monkeypatch.setattr(env_module, "_cgroup_memory_files", lambda: paths[2:])  # v1's "no limit" is a huge number
    assert env_module.memory_limit_bytes() is None


def test_load_meter_gives_no_figure_for_a_window_shorter_than_its_ticks(monkeypatch):
    clock = iter([100.0, 100.002, 200.0, 201.0])
    monkeypatch.setattr(env_module.time, "monotonic", lambda: next(clock))
    busy = iter([10.0, 10.01, 20.0, 20.5])  # one 10 ms tick in 2 ms would read as 5 CPUs
    monkeypatch.setattr(env_module, "_machine_busy_seconds", lambda: next(busy))
    monkeypatch.setattr(env_module, "_own_cpu_seconds", lambda: 0.0)
    meter = env_module.LoadMeter()
    meter.start()
    assert meter.stop() is None
    meter.start()
    assert meter.stop() == pytest.approx(0.5)


# --- schema 2: the scenario axis, and schema 1 lines migrated on load ------------------------------------

# A line exactly as schema 1 wrote it (the seed's runner, MXNet on oneDNN, launched in a container).
V1_LINE = json.dumps({
    "schema_version": 1, "framework": "mxnet", "mode": "hybrid", "model": "lenet5", "device": "cpu", "status": "ok",
    "variant": "cpu-mxnet-mkldnn", "backend": "docker", "version": "1.9.1", "batch": 1, "threads": 2,
    "build": {"mxnet": "1.9.1", "mkldnn_in_use": "True", "blas_open": "True"},
    "samples_s": [0.001, 0.0011, 0.0012], "stats": None, "warnings": [],
})  # fmt: skip


def test_schema_1_lines_load_as_the_latency_scenario():
    result = Result.from_json(V1_LINE)
    assert result.schema_version == SCHEMA_VERSION == 6
    assert result.scenario == "latency" and result.config == {"batch": "1"} and result.identity == ("batch",)
    assert result.launcher == "docker" and result.points == (result.measurement,)
    assert result.build["in_effect"] == "oneDNN"  # derived from the facts schema 1 did state
    assert result.samples_s == (0.001, 0.0011, 0.0012)
    assert result.key() == Result.from_json(Result.from_json(V1_LINE).to_json()).key()


@pytest.mark.parametrize(
    ("framework", "build", "in_effect"),
    [
        ("numpy", {"blas": "blas", "blas_loaded": "libblas.so.3,libmkl_rt.so.2"}, "MKL"),
        ("numpy", {"blas": "scipy-openblas"}, "OpenBLAS"),
        ("tensorflow", {"onednn_enabled": "False"}, "Eigen"),
        ("mxnet", {"mkldnn_in_use": "False", "blas_open": "True"}, "OpenBLAS"),
        ("torch", {"blas": "open"}, "OpenBLAS"),
        ("torch", {"blas": "mkl"}, "MKL"),
        ("onnxruntime", {"providers": "CPUExecutionProvider"}, None),
    ],
)
def test_schema_1_build_facts_gain_the_library_in_effect(framework, build, in_effect):
    data = {**json.loads(V1_LINE), "framework": framework, "build": build}
    assert Result.from_dict(data).build.get("in_effect") == in_effect


def test_schema_1_run_json_loads_with_its_launcher():
    info = RunInfo("r", "c", "local", "2026-01-01T00:00:00+00:00", environment(), settings={"launcher": "local"})
    data = json.loads(info.to_json())
    data.update(schema_version=1, backend=data.pop("launcher"), settings={"backend": "local", "models": "lenet5"})
    old = RunInfo.from_dict(data)
    assert old.launcher == "local" and old.settings == {"launcher": "local", "models": "lenet5"}


def test_the_key_is_the_cells_identity():
    base = _result(variant="cpu-numpy-openblas", launcher="docker", config={"batch": "1", "iterations": "20"},
                   identity=("batch",))  # fmt: skip
    assert base.key() == _result(variant="cpu-numpy-openblas", launcher="docker",
                                 config={"batch": "1", "iterations": "7"}, identity=("batch",)).key()  # fmt: skip
    others = [
        _result(variant="cpu-numpy-openblas", launcher="docker", config={"batch": "4"}, identity=("batch",)),
        _result(variant="cpu-numpy-openblas", launcher="local", config={"batch": "1"}, identity=("batch",)),
        _result(variant="cpu-numpy-openblas", launcher="docker", scenario="threads", config={"batch": "1"},
                identity=("batch",)),
    ]  # fmt: skip
    assert all(o.key() != base.key() for o in others)
    assert str(base.key()) == "cpu-numpy-openblas im2col lenet5 latency batch=1"


def test_points_round_trip_and_are_validated():
    from frameworks.result import Measurement

    point = Measurement(4, 2, "ok", samples_s=(0.1, 0.2), stats=summarize([0.1, 0.2]), speedup=1.5, efficiency=0.75)
    r = _result(scenario="throughput", config={"batches": "4"}, identity=("batches",), points=(point,))
    assert Result.from_json(r.to_json()) == r
    data = json.loads(r.to_json())
    data["points"][0]["batch"] = "4"
    with pytest.raises(ValueError, match=r"result.points\[0\].batch: must be an integer"):
        Result.from_dict(data)
