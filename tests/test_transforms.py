"""The transform axis: its options (bad input is one line and exit 2), the cell's key, the runner's plan,
the inputs the runner hands a transformed cell, schema 5's one measurement record, and pruned cells run
for real (NumPy and torch here; every framework in its image in the docker test at the end)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from frameworks import predict
from frameworks.environment import THREAD_ENV
from frameworks.harness import CellRequest, cell_inputs
from frameworks.models import MODELS, fashion_mnist_network
from frameworks.options import UsageError, transform_points
from frameworks.result import Result
from frameworks.training import weights_sha256
from frameworks.transforms import NONE, TransformPoint
from frameworks.transforms.prune import PruneConfig
from runner.catalog import load_catalog
from runner.plan import plan
from runner.settings import Settings
from tests.conftest import REPO_ROOT, run_runner
from tests.fixtures.make_report_fixtures import schema4_dict

PRUNE_05 = TransformPoint("prune", PruneConfig(0.5))


@pytest.fixture(autouse=True)
def _one_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in THREAD_ENV:  # predict.main sets them for this process: put them back afterwards
        monkeypatch.setenv(name, "1")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--transforms", "prune", "--sparsities", "1"], "--sparsities must be in [0, 1), got 1"),
        (["--transforms", "prune", "--sparsities", "-0.1"], "--sparsities must be in [0, 1)"),
        (["--transforms", "prune", "--sparsities", "half"], "--sparsities: expected float, got 'half'"),
        (["--transforms", "prun"], "unknown transform 'prun'; valid transforms: none, int8, prune"),
        (["--sparsities", "0.5"], "--sparsities applies to the prune transform: give --transforms prune"),
        (["--mode", "sparse", "--framework", "torch"], "runs on the prune transform's weights"),
        (["--scenario", "train", "--transforms", "prune"], "the train scenario does not run the prune transform"),
    ],
)
def test_bad_transform_input_is_one_line_and_exit_2(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["--model", "lenet5", "--iterations", "1", "--min-time", "0", "--max-time", "0"]
    framework = [] if "--framework" in args else ["--framework", "numpy"]
    assert predict.main([*framework, *base, *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err


def test_the_runner_refuses_bad_transform_input_in_one_line(tmp_path: Path) -> None:
    done = run_runner("matrix", "--variants", "cpu-numpy-openblas", "--transforms", "prune", "--sparsities", "0.5",
                      "1.5", "--out", str(tmp_path))  # fmt: skip
    assert done.returncode == 2 and done.stderr.strip().splitlines() == [
        "error: --sparsities must be in [0, 1), got 1.5"
    ]
    assert not any(tmp_path.iterdir()), "nothing was started"


def test_points_are_one_per_value_in_the_order_given() -> None:
    points = transform_points({"transforms": "none prune", "sparsities": "0.9 0 0.9"})
    assert [p.label() for p in points] == ["none", "prune sparsity=0.9", "prune sparsity=0"]
    assert transform_points({}) == [TransformPoint(NONE, points[0].config)]
    with pytest.raises(UsageError):
        transform_points({"transforms": "none", "sparsities": "0.5"})


def test_the_plan_crosses_points_with_cells_and_sparse_modes_run_on_pruned_weights_only() -> None:
    catalog = load_catalog()
    settings = Settings(("cpu-torch", "cpu-numpy-openblas"), ("lenet5",), "docker", scenarios=("latency", "train"),
                        cpus="0", transforms={"transforms": "none prune", "sparsities": "0 0.9"})  # fmt: skip
    cells = plan(catalog.select(list(settings.variants)), settings)
    latency = [(c.variant.name, c.mode, c.transform.label()) for c in cells if c.scenario == "latency"]
    assert ("cpu-torch", "sparse", "none") not in latency  # a sparse mode has no cell on unpruned weights
    assert ("cpu-torch", "sparse", "prune sparsity=0.9") in latency
    assert ("cpu-numpy-openblas", "im2col", "prune sparsity=0") in latency
    assert len(latency) == 4 + 2 * 5  # none: torch 3 + numpy; prune x2: torch 4 (sparse too) + numpy
    assert {c.transform.name for c in cells if c.scenario == "train"} == {NONE}
    args = settings.predict_args(next(c for c in cells if c.mode == "sparse"))
    assert args[args.index("--transforms") :][:4] == ["--transforms", "prune", "--sparsities", "0"]
    assert "--transforms none prune --sparsities 0 0.9" in settings.command()
    assert Settings.from_dict(settings.to_dict()).points() == settings.points()  # resume keeps them


def test_a_pruned_lenet5_runs_the_committed_schedule_and_is_checked_against_its_own_reference() -> None:
    request = CellRequest("numpy", "lenet5", "im2col", threads=1, transform=PRUNE_05)
    network = fashion_mnist_network("lenet5")
    assert network is not None
    inputs = cell_inputs(request, network, 1)
    record = inputs.transformed
    assert record is not None and record.sparsity == 0.5 and record.source == "trained"
    assert record.weights_sha256 == weights_sha256(inputs.weights) and inputs.evaluate is not None
    assert record.weights_gzip_bytes is not None and record.weights_bytes is not None
    assert record.weights_gzip_bytes < 0.6 * record.weights_bytes  # half the weights are zeros
    dense = cell_inputs(CellRequest("numpy", "lenet5", "im2col", threads=1), network, 1, trained=True)
    assert not np.allclose(dense.reference, inputs.reference), "the reference is the pruned weights' own"


def test_a_pruned_cell_through_predict(tmp_path: Path) -> None:
    out = tmp_path / "r.jsonl"
    quick = ["--framework", "numpy", "--model", "lenet5", "--iterations", "3", "--min-time", "0",
             "--max-time", "0", "--output", str(out)]  # fmt: skip
    assert predict.main([*quick, "--transforms", "prune", "--sparsities", "0", "0.9"]) == 0
    dense, pruned = (Result.from_json(line) for line in out.read_text().splitlines())
    assert dense.verified and pruned.verified and pruned.accuracy is not None and pruned.accuracy > 0.8
    assert dense.transform is not None and pruned.transform is not None and pruned.transform.sparsity == 0.9
    assert pruned.key().without("sparsity", "weights") == dense.key().without("sparsity", "weights")
    assert pruned.key() != dense.key() and pruned.cell.endswith("-prune-0.9")
    assert "conv1.weight fc3.weight" in pruned.transform.facts["spared"]


def test_the_runner_s_inputs_carry_the_transform_and_are_checked(tmp_path: Path) -> None:
    from frameworks import inputs as inputs_module

    network = fashion_mnist_network("lenet5")
    assert network is not None
    directory, sha = inputs_module.write_inputs(tmp_path, MODELS["lenet5"], 0, 2, PRUNE_05)
    manifest = json.loads((directory / "manifest.json").read_text())
    assert manifest["transform"]["name"] == "prune" and manifest["transform"]["config"] == {"sparsity": "0.5"}
    inputs_module.hand(str(directory), sha)
    try:
        handed = inputs_module.handed_transformed(PRUNE_05, network, 1, 0)
        assert handed is not None
        weights, reference, record, arrays = handed
        assert arrays == {}
        assert record.weights_sha256 == weights_sha256(weights) and reference.shape[0] == 1
        test = inputs_module.handed_test_split()  # the cell measures accuracy where its image has no dataset
        assert test is not None and test[0].shape == (10000, 1, 32, 32) and test[1].shape == (10000,)
        other = TransformPoint("prune", PruneConfig(0.9))
        assert inputs_module.handed_transformed(other, network, 1, 0) is None  # not these weights
    finally:
        inputs_module._handed = None


def test_schema_4_latency_lines_become_one_measurement() -> None:
    out = Result.from_json(Path(REPO_ROOT, "tests/fixtures/reports/runs/fixture-b1/results.jsonl").read_text()
                           .splitlines()[0])  # fmt: skip
    assert out.measurement is not None and out.points == (out.measurement,)
    old = schema4_dict(json.loads(out.to_json()))
    assert old["schema_version"] == 4 and old["samples_s"] and old["points"] == []
    assert Result.from_dict(old) == out


def test_torch_s_sparse_mode_says_from_inside_which_layers_ran_sparse() -> None:
    torch_backend = pytest.importorskip("frameworks.backends.torch_backend")
    import torch

    spec = MODELS["lenet5"]
    model = torch_backend.to_module(spec, {k: np.asarray(v) for k, v in _pruned(spec).items()})
    sparse = torch_backend.sparsify(model)
    said = torch_backend.probe_sparse(sparse, (1, *spec.input_shape), torch.device("cpu"))
    assert said.startswith("3 of 3 dense layers on CSR weights") and "conv1 conv2" in said
    assert torch_backend.probe_sparse(model, (1, *spec.input_shape), torch.device("cpu")).startswith("none")
    x = np.random.default_rng(0).standard_normal((2, *spec.input_shape), dtype=np.float32)
    with torch.no_grad():
        dense_out, sparse_out = (m(torch.from_numpy(x)).numpy() for m in (model, sparse))
    assert np.allclose(dense_out, sparse_out, rtol=1e-5, atol=1e-6)


def _pruned(spec: object) -> dict[str, np.ndarray]:
    from frameworks.pruning import magnitude_prune
    from frameworks.weights import generate_weights

    return magnitude_prune(MODELS["lenet5"], generate_weights(MODELS["lenet5"]), 0.9).weights


@pytest.mark.slow
def test_a_sweep_runs_on_pruned_weights_point_by_point(tmp_path: Path) -> None:
    """Any scenario runs any transform: a throughput sweep's points (each in a process of its own) run the pruned
    weights, each verified against their own reference at its batch size."""
    out = tmp_path / "r.jsonl"
    args = ["--framework", "numpy", "--model", "lenet5", "--scenario", "throughput", "--batches", "1", "3",
            "--iterations", "2", "--min-time", "0",
            "--max-time", "0", "--transforms", "prune", "--sparsities", "0.9"]  # fmt: skip
    args += ["--output", str(out)]
    assert predict.main(args) == 0
    (result,) = (Result.from_json(line) for line in out.read_text().splitlines())
    assert [(p.batch, p.status, p.verified) for p in result.points] == [(1, "ok", True), (3, "ok", True)]
    assert result.transform is not None and result.transform.sparsity == 0.9 and result.measurement is None
    assert all(p.accuracy is not None and p.accuracy > 0.8 for p in result.points)


def test_a_build_level_transform_reaches_the_backend_in_its_build_options() -> None:
    from frameworks.harness import build_options
    from frameworks.transforms import TRANSFORMS, Transform, TransformConfig, register_transform

    with TRANSFORMS.temporary():
        register_transform(Transform(name="int4", summary="a toy build-level transform", level="build"))
        built = build_options(
            CellRequest("numpy", "lenet5", "im2col", transform=TransformPoint("int4", TransformConfig())), 4
        )
        pruned = build_options(CellRequest("numpy", "lenet5", "im2col", transform=PRUNE_05), 1)
    assert (built.transform, built.batch) == ("int4", 4) and pruned.transform == NONE and pruned.transform_config == ()
