"""The main job end to end: ``python -m runner matrix`` over every CPU variant, in containers.

CI builds every CPU image first (``.ci/setup``); this test then requires every cell of LeNet-5
and MobileNet v1, in every CPU variant and mode, to be ok and verified against the reference.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from frameworks.backends.registry import FRAMEWORKS, INT8_KERNELS, SPARSE_KERNELS, THREADS_FIXED
from frameworks.result import Result
from runner.catalog import load_catalog
from tests.conftest import REPO_ROOT

pytestmark = [pytest.mark.docker, pytest.mark.slow]

MODELS = ("lenet5", "mobilenet_v1")


def _below_float32(result: Result) -> bool:
    """An unverified cell that is right to be: its compiled model computed below float32 (OpenVINO's
    ``auto`` on a bf16 CPU), as its build facts and its warning say."""
    precision = result.build.get("inference_precision")
    return precision not in (None, "f32") and any(f"computes in {precision}" in w for w in result.warnings)


def _every_mode(variants: list) -> list[str]:
    """``--modes`` naming every mode of these variants: the opt-in ones (TVM's untuned and default) run too."""
    return ["--modes", *sorted({m for v in variants for m in v.modes})]


def _modes(variant: object, transform: str = "none") -> list[str]:
    """The variant's modes that run under the transform (a sparse mode: on pruned weights only)."""
    info = FRAMEWORKS[variant.framework]  # type: ignore[attr-defined]
    return [m for m in variant.modes if info.runs_mode(m, transform)]  # type: ignore[attr-defined]


def test_every_cpu_cell_runs_ok_and_verified(docker_client: object, tmp_path: Path) -> None:
    """Timed briefly (one warm-up, three iterations, no minimum time): what is asserted is that every cell runs
    and is verified; the matmul peak is measured, as a run measures it."""
    variants = [v for v in load_catalog().variants.values() if v.device == "cpu"]
    cmd = [sys.executable, "-m", "runner", "matrix", "--backend", "docker", "--variants", *[v.name for v in variants],
           "--models", *MODELS, "--iterations", "3", "--warmup", "1", "--min-time", "0", "--max-time", "0",
           *_every_mode(variants), "--out", str(tmp_path)]  # fmt: skip
    proc = subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True, timeout=3000, check=False)
    run_dirs = [p for p in tmp_path.iterdir() if (p / "results.jsonl").exists()]
    assert len(run_dirs) == 1, proc.stderr[-3000:]
    results = [Result.from_json(line) for line in (run_dirs[0] / "results.jsonl").read_text().splitlines()]
    expected = {(v.name, mode, model) for v in variants for mode in _modes(v) for model in MODELS}
    assert {(r.variant, r.mode, r.model) for r in results} == expected
    unavailable = {v.name: v.unavailable_reason for v in variants if v.unavailable_reason}
    assert all(r.status == "skipped" and r.error == unavailable[r.variant] for r in results if r.variant in unavailable)
    results = [r for r in results if r.variant not in unavailable]
    bad = [f"{r.cell}: {r.status} {r.error or ''} verified={r.verified}" for r in results
           if r.status != "ok" or not (r.verified or _below_float32(r))]  # fmt: skip
    assert not bad, "\n".join(bad)
    assert all(r.launcher == "docker" and r.environment and r.environment.in_container for r in results)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (run_dirs[0] / "report.md").exists() and (run_dirs[0] / "report.html").exists()


def test_every_cpu_variant_sweeps_batches_and_threads_in_containers(docker_client: object, tmp_path: Path) -> None:
    variants = [v for v in load_catalog().variants.values() if v.device == "cpu"]
    cmd = [sys.executable, "-m", "runner", "matrix", "--launcher", "docker", "--variants", *[v.name for v in variants],
           "--models", "lenet5", "--scenarios", "throughput", "threads", "--batches", "1", "4",
           "--iterations", "3", "--warmup", "1", "--min-time", "0",
           "--max-time", "0", "--no-peak", *_every_mode(variants), "--out", str(tmp_path)]  # fmt: skip
    proc = subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True, timeout=3000, check=False)
    (run_dir,) = [p for p in tmp_path.iterdir() if (p / "results.jsonl").exists()]
    results = [Result.from_json(line) for line in (run_dir / "results.jsonl").read_text().splitlines()]
    expected = {(s, v.name, mode) for s in ("throughput", "threads") for v in variants for mode in _modes(v)}
    assert {(r.scenario, r.variant, r.mode) for r in results} == expected
    results = [r for r in results if not load_catalog().variants[r.variant].unavailable]  # skipped: the first test
    bad = [
        f"{r.cell}: {r.status} {r.error or ''} {[p.error for p in r.points if p.status != 'ok']}"
        for r in results
        if r.status != "ok" or not (r.verified or _below_float32(r)) or any(p.status != "ok" for p in r.points)
    ]
    assert not bad, "\n".join(bad)
    cpus = len(os.sched_getaffinity(0))
    for r in results:
        axis = [p.batch for p in r.points] if r.scenario == "throughput" else [p.threads for p in r.points]
        assert axis == ([1, 4] if r.scenario == "throughput" else list(range(1, cpus + 1))), r.cell
    threads = [r for r in results if r.scenario == "threads"]
    other = [f"{r.cell}: asked {p.threads}, used {p.threads_in_use}" for r in threads for p in r.points
             if not _ran_what_it_says(r.build, p.threads, p.threads_in_use)]  # fmt: skip
    assert not other, "a framework ran another count than it states:\n" + "\n".join(other)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = (run_dir / "report.md").read_text()
    assert "Throughput over batch size" in report and "Thread scaling" in report


def _ran_what_it_says(build: dict[str, str], asked: int, used: int | None) -> bool:
    """The count asked for; or, for a build that states one fixed count (Debian's serial ATLAS, NNabla's
    CPU context), that count; or nothing read back where the framework says it cannot tell."""
    if THREADS_FIXED in build:
        return used == int(build[THREADS_FIXED])
    return used == asked or (used is None and "threads_unreported" in build)


def test_every_cpu_variant_runs_pruned_weights_and_sparse_modes_say_what_ran(
    docker_client: object, tmp_path: Path
) -> None:
    """LeNet-5 pruned to 90% (the committed fine-tuned schedule) in every CPU variant and mode, in containers:
    every dense cell ok, verified against the pruned weights' own reference, with the same weights (sha256)
    and nearly the same test accuracy everywhere; every sparse mode either ok with the sparse kernels its
    framework says ran, or skipped with the framework's reason, never a dense timing called sparse; and the
    run resumes to nothing left."""
    variants = [v for v in load_catalog().variants.values() if v.device == "cpu" and not v.unavailable]
    cmd = [sys.executable, "-m", "runner", "matrix", "--launcher", "docker", "--variants", *[v.name for v in variants],
           "--models", "lenet5", "--transforms", "prune", "--sparsities", "0.9", "--iterations", "3", "--warmup", "1",
           "--min-time", "0", "--max-time", "0", "--no-peak", "--no-report", *_every_mode(variants),
           "--out", str(tmp_path)]  # fmt: skip
    proc = subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True, timeout=3000, check=False)
    (run_dir,) = [p for p in tmp_path.iterdir() if (p / "results.jsonl").exists()]
    results = [Result.from_json(line) for line in (run_dir / "results.jsonl").read_text().splitlines()]
    expected = {(v.name, mode) for v in variants for mode in _modes(v, "prune")}
    assert {(r.variant, r.mode) for r in results} == expected, proc.stderr[-3000:]
    sparse = [r for r in results if SPARSE_KERNELS in r.build or r.mode == "sparse"]
    dense = [r for r in results if r not in sparse]
    bad = [f"{r.cell}: {r.status} {r.error or ''} verified={r.verified}" for r in dense
           if r.status != "ok" or not (r.verified or _below_float32(r))]  # fmt: skip
    assert not bad, "\n".join(bad)
    assert len({r.transform.weights_sha256 for r in results if r.transform}) == 1  # the same weights everywhere
    accuracies = [r.accuracy for r in dense if r.accuracy is not None and not _below_float32(r)]
    assert (
        len(accuracies) == len([r for r in dense if not _below_float32(r)])
        and max(accuracies) - min(accuracies) < 0.005
    )
    for r in sparse:
        said = r.build.get(SPARSE_KERNELS, "")
        assert (r.status == "ok" and said and not said.startswith("none")) or (
            r.status == "skipped" and "no sparse kernel ran" in (r.error or "")
        ), f"{r.cell}: {r.status} {r.error} {said}"
    torch_sparse = next(r for r in sparse if r.framework == "torch")
    assert torch_sparse.status == "ok" and torch_sparse.verified  # CSR dense layers run on every x86 CPU
    resumed = subprocess.run([sys.executable, "-m", "runner", "matrix", "--resume", str(run_dir), "--no-report"],
                             cwd=REPO_ROOT, capture_output=True, text=True, timeout=600, check=False)  # fmt: skip
    assert resumed.returncode in (0, 1) and f"{len(results)} cells ({len(results)} already done)" in resumed.stderr


def test_int8_cells_are_int8_or_say_why_not_in_every_variant_that_quantizes(
    docker_client: object, tmp_path: Path
) -> None:
    """LeNet-5 int8, calibrated on 100 Fashion-MNIST training images, with both toolchains, in containers, in
    every CPU variant whose framework quantizes: each cell either ran int8 kernels its framework names (never
    "none"), verified and within one point of float32's test accuracy, or is skipped with the reason (no int8
    kernel ran, or a toolchain the framework does not have); the project's QDQ graph has the same scales in
    every framework; ONNX Runtime's fused levels run both toolchains. No speed is asserted: it is the CPU's."""
    variants = [v for v in load_catalog().variants.values()
                if v.device == "cpu" and not v.unavailable and FRAMEWORKS[v.framework].transforms]  # fmt: skip
    cmd = [sys.executable, "-m", "runner", "matrix", "--launcher", "docker", "--variants", *[v.name for v in variants],
           "--models", "lenet5", "--transforms", "int8", "--calibration-sizes", "100", "--iterations", "3",
           "--warmup", "1", "--min-time", "0",
           "--max-time", "0", "--no-peak", "--no-report", *_every_mode(variants), "--out", str(tmp_path)]  # fmt: skip
    proc = subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True, timeout=3000, check=False)
    (run_dir,) = [p for p in tmp_path.iterdir() if (p / "results.jsonl").exists()]
    results = [Result.from_json(line) for line in (run_dir / "results.jsonl").read_text().splitlines()]
    expected = {(v.name, m, toolchain) for v in variants for m in _modes(v, "int8") for toolchain in ("qdq", "native")}
    assert {
        (r.variant, r.mode, r.transform.config["toolchain"] if r.transform else "?") for r in results
    } == expected, proc.stderr[-3000:]
    for r in results:
        said = r.build.get(INT8_KERNELS, "")
        if r.status == "ok":
            assert said and not said.startswith("none") and r.verified, f"{r.cell}: {said} verified={r.verified}"
            assert r.accuracy is not None and abs(r.accuracy - 0.8745) <= 0.01, f"{r.cell}: accuracy {r.accuracy}"
        else:
            assert r.status == "skipped", f"{r.cell}: {r.status} {r.error}"
            assert "no int8 kernel ran" in (r.error or "") or "does not run the int8 transform" in (r.error or "")
    ok = {(r.framework, r.mode, r.transform.config["toolchain"]) for r in results if r.status == "ok" and r.transform}
    assert {("onnxruntime", "session", "qdq"), ("onnxruntime", "session", "native")} <= ok
    scales = {
        r.transform.facts.get("scales_sha256")
        for r in results
        if r.transform and r.transform.config["toolchain"] == "qdq"
    }
    assert len(scales) == 1 and None not in scales  # one QDQ model for every runtime
