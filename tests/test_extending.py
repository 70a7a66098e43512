"""Extending the matrix is one file per idea, proven: a toy scenario, a toy model and a toy framework.

Each is written here as the files a contributor would add (a scenario module; a model spec; a
backend module and a catalog entry), registered in temporary registries, then run through
``python -m frameworks.predict`` (in this process, so the temporary registrations apply), planned by
the runner and rendered by the reports, with nothing else touched. The files the test writes are
the diff such an addition makes: the README's "Extending" section quotes their count.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from frameworks.backends.registry import FRAMEWORKS, declared_framework, register_framework
from frameworks.environment import THREAD_ENV, environment
from frameworks.models import MODELS
from frameworks.result import RESULTS_FILE, RUN_FILE, Result, RunInfo
from frameworks.scenarios import SCENARIOS
from runner.catalog import CATALOG_PATH, load_catalog
from runner.plan import plan
from runner.settings import Settings

SCENARIO_FILE = '''
"""``cold``: the first forward pass of a freshly built model, per size (a toy scenario)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import ClassVar

from frameworks.scenarios import ReportSpec, Scenario, register_scenario
from frameworks.scenarios.config import ScenarioConfig, option


@dataclass(frozen=True)
class ColdConfig(ScenarioConfig):
    IDENTITY: ClassVar[tuple[str, ...]] = ("sizes",)

    sizes: tuple[int, ...] = field(default=(1, 2), metadata=option("batch sizes, each built afresh"))


def measure(request, spec, config, base):
    from frameworks.backends.registry import BuildOptions
    from frameworks.harness import open_backend
    from frameworks.result import Measurement
    from frameworks.stats import summarize
    from frameworks.verify import compare, reference_output, verification_input
    from frameworks.weights import canonical_weights

    backend, base = open_backend(request, base)
    points = []
    for batch in config.sizes:
        options = BuildOptions(request.mode, request.device, request.threads, batch)
        built = backend.build(spec, canonical_weights(spec, request.seed), options)
        start = time.perf_counter()
        out = built.forward(verification_input(spec, batch, request.seed))
        seconds = time.perf_counter() - start
        check = compare(out, reference_output(spec, batch, request.seed), spec.tolerance)
        points.append(Measurement(batch, request.threads, "ok", samples_s=(seconds,), stats=summarize([seconds]),
                            throughput_ips=batch / seconds, verified=check.verified, max_error=check.max_error))
    return replace(base, status="ok", points=tuple(points), verified=all(p.verified for p in points))


SCENARIO = register_scenario(Scenario(
    name="cold", summary="first forward pass of a fresh build, per batch size", config=ColdConfig, measure=measure,
    report=ReportSpec(title="Cold start", intro="The first call after each build.", x="batch",
                      x_label="batch size", y="images_per_s", y_label="images/s"),
))
'''

MODEL_FILE = '''
"""TinyNet: a toy model built from existing layer kinds: one spec."""

from frameworks.models import Conv, Dense, GlobalAvgPool, ModelSpec, ReLU, Softmax, register_model

register_model(ModelSpec("tinynet", "TinyNet", (3, 8, 8), (
    Conv("conv1", 4, 3, pad=1), ReLU("relu1"), GlobalAvgPool("pool"), Dense("fc", 5), Softmax("softmax"),
), tolerance=1e-4, batches=(1, 2)))
'''

BACKEND_FILE = '''
"""A toy framework: the spec run by NumPy einsum convolutions instead of im2col."""

from __future__ import annotations

import numpy as np

from frameworks.backends.numpy_backend import compile_network
from frameworks.backends.registry import BuildOptions, Built, FrameworkInfo

FRAMEWORK = FrameworkInfo(name="toyfw", title="Toy Framework", import_name="numpy", modes=("plain", "double"))


def version() -> str:
    return "0.1"


def build_facts() -> dict[str, str]:
    return {"toyfw": version(), "in_effect": "toy"}


def cuda_available() -> bool:
    return False


def build(spec, weights, options: BuildOptions) -> Built:
    dtype = np.float64 if options.mode == "double" else np.float32
    forward = compile_network(spec, weights, dtype)
    return Built(lambda x: forward(x).astype(np.float32), params=spec.params, buffers=spec.buffers, threads=1)
'''

TRANSFORM_FILE = '''
"""``fp16``: every weight rounded to float16 and back (a toy weights-level transform): one module."""

from frameworks.transforms import Prepared, Transform, register_transform


def apply(spec, seed, config):
    import numpy as np

    from frameworks.weights import generate_weights

    weights = {k: v.astype(np.float16).astype(np.float32) for k, v in generate_weights(spec, seed).items()}
    return Prepared(spec, weights, "canonical", False, {"rounded": "float16"})


TRANSFORM = register_transform(Transform(name="fp16", summary="weights rounded to float16", level="weights",
                                         apply=apply))
'''

CATALOG_ENTRY = """
[images.toyfw]
dockerfile = "docker/Dockerfile"
framework = "toyfw"
device = "cpu"
requirements = ["numpy==2.4.6"]

[variants.cpu-toyfw]
image = "toyfw"
modes = ["plain", "double"]
"""


def _import(path: Path, name: str) -> None:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)


@contextlib.contextmanager
def temporary_registries() -> Iterator[None]:
    with MODELS.temporary(), FRAMEWORKS.temporary(), SCENARIOS.temporary():
        yield


@pytest.fixture
def toys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, list[Path]]]:
    """The toy additions as files, registered for the test's duration only."""
    added = {
        "scenario": [tmp_path / "cold_scenario.py"],
        "model": [tmp_path / "tinynet_model.py"],
        "framework": [tmp_path / "toyfw_backend.py", tmp_path / "catalog.toml"],
    }
    added["scenario"][0].write_text(textwrap.dedent(SCENARIO_FILE))
    added["model"][0].write_text(textwrap.dedent(MODEL_FILE))
    added["framework"][0].write_text(textwrap.dedent(BACKEND_FILE))
    added["framework"][1].write_text(CATALOG_PATH.read_text() + CATALOG_ENTRY)  # the repository's catalog + one entry
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in THREAD_ENV:  # predict.main sets them for this process: put them back afterwards
        monkeypatch.setenv(name, "1")
    with temporary_registries():
        _import(added["scenario"][0], "cold_scenario")
        _import(added["model"][0], "tinynet_model")
        register_framework(declared_framework(added["framework"][0], module="toyfw_backend"))
        yield added
    for name in ("cold_scenario", "tinynet_model", "toyfw_backend"):
        sys.modules.pop(name, None)


def test_the_registrations_are_temporary() -> None:
    assert "tinynet" not in MODELS and "toyfw" not in FRAMEWORKS and "cold" not in SCENARIOS


def test_a_scenario_a_model_and_a_framework_each_one_addition(toys: dict[str, list[Path]], tmp_path: Path) -> None:
    from frameworks import predict
    from reports import render_run

    counts = {idea: len(files) for idea, files in toys.items()}
    assert counts == {"scenario": 1, "model": 1, "framework": 2}, "a framework adds its pyproject extra too"

    # predict knows all three, the new option included, and runs every mode of the framework
    out = tmp_path / "run"
    out.mkdir()
    results_file = out / RESULTS_FILE
    for mode in ("plain", "double"):
        args = ["--framework", "toyfw", "--model", "tinynet", "--mode", mode, "--scenario", "cold", "--sizes", "1", "3"]
        assert predict.main([*args, "--output", str(results_file)]) == 0
        latency = ["--framework", "toyfw", "--model", "tinynet", "--mode", mode, "--iterations", "3", "--min-time", "0",
                   "--max-time", "0"]  # fmt: skip
        assert predict.main([*latency, "--output", str(results_file)]) == 0
    results = [Result.from_json(line) for line in results_file.read_text().splitlines()]
    assert [(r.scenario, r.status, r.verified) for r in results] == [("cold", "ok", True), ("latency", "ok", True)] * 2
    cold = results[0]
    assert [p.batch for p in cold.points] == [1, 3] and cold.key().identity == (("sizes", "1 3"),)
    assert cold.params == MODELS["tinynet"].params and cold.build["in_effect"] == "toy"

    # the runner plans the toy variant with the toy scenario, and hands predict its option
    variant = load_catalog(toys["framework"][1]).variant("cpu-toyfw")
    settings = Settings(("cpu-toyfw",), ("tinynet",), "local", scenarios=("cold", "latency"), cpus="0")
    cells = plan([variant], settings.with_options(sizes=(2,)))
    assert [(c.scenario, c.mode) for c in cells] == [("cold", "plain"), ("cold", "double"),
                                                     ("latency", "plain"), ("latency", "double")]  # fmt: skip
    args = settings.with_options(sizes=(2,)).predict_args(cells[0])
    assert args[args.index("--scenario") + 1] == "cold" and args[args.index("--sizes") + 1] == "2"

    # and the reports render the toy scenario's section, model and framework
    info = RunInfo("toy-run", "pytest", "local", "2026-01-01T00:00:00+00:00", environment())
    (out / RUN_FILE).write_text(info.to_json())
    markdown, html = (p.read_text() for p in render_run(out))
    for page in (markdown, html):
        assert "Cold start" in page and "TinyNet" in page and "Toy Framework" in page
    assert "toyfw / plain" in markdown and "toyfw / double" in markdown
    assert json.loads(results_file.read_text().splitlines()[0])["config"]["sizes"] == "1 3"


def test_a_transform_is_one_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A toy weights-level transform in one file: predict runs it (verified against the float64 reference of
    its own weights, its key apart from the untransformed cell's), the runner plans it beside ``none``; a
    build-level transform no backend declares is a skipped cell with the reason."""
    import numpy as np

    from frameworks import predict
    from frameworks.training import weights_sha256
    from frameworks.transforms import TRANSFORMS, Transform, register_transform
    from frameworks.weights import generate_weights

    module = tmp_path / "fp16_transform.py"
    module.write_text(textwrap.dedent(TRANSFORM_FILE))
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in THREAD_ENV:
        monkeypatch.setenv(name, "1")
    out = tmp_path / "results.jsonl"
    with TRANSFORMS.temporary():
        _import(module, "fp16_transform")
        register_transform(Transform(name="int4", summary="a build-level toy no backend declares", level="build"))
        quick = [
            "--framework",
            "numpy",
            "--model",
            "lenet5",
            "--iterations",
            "3",
            "--min-time",
            "0",
            "--output",
            str(out),
        ]
        assert predict.main([*quick, "--transforms", "none", "fp16"]) == 0
        assert predict.main([*quick, "--transforms", "int4"]) == 1
        settings = Settings(("cpu-numpy-openblas",), ("lenet5",), "local", cpus="0",
                            transforms={"transforms": "none fp16"})  # fmt: skip
        cells = plan(load_catalog().select(["cpu-numpy-openblas"]), settings)
        assert [c.transform.name for c in cells] == ["none", "fp16"]
        assert "--transforms" in settings.predict_args(cells[1]) and "--transforms" not in settings.predict_args(
            cells[0]
        )
    sys.modules.pop("fp16_transform", None)
    plain, rounded, skipped = (Result.from_json(line) for line in out.read_text().splitlines())
    assert plain.transform is None and rounded.transform is not None and rounded.verified
    expected = {k: v.astype(np.float16).astype(np.float32) for k, v in generate_weights(MODELS["lenet5"]).items()}
    assert rounded.transform.weights_sha256 == weights_sha256(expected)
    assert rounded.key() != plain.key() and rounded.key().without("transform") == plain.key()
    assert skipped.status == "skipped" and "does not run the int4 transform" in (skipped.error or "")
    assert [module] == [p for p in tmp_path.iterdir() if p.suffix == ".py"], "one file, nothing else touched"
