"""The Docker launcher: the container's isolation, and real containers for the happy path, an
out-of-memory kill and a timeout. Tests marked ``docker`` fail in CI without an engine."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from runner.catalog import load_catalog
from runner.cell import Cell, Inputs
from runner.docker_launcher import LABEL_CELL, NO_NVIDIA, DockerLauncher, container_options
from runner.launcher import Prepared
from runner.limits import parse_cpuset
from runner.plan import plan
from runner.rundir import load_results, read_run_info
from runner.settings import Settings
from tests.conftest import REPO_ROOT

CATALOG = load_catalog()
OPENBLAS = CATALOG.variant("cpu-numpy-openblas")
CPUS = "0" if len(os.sched_getaffinity(0)) == 1 else "0-1"
SETTINGS = Settings(("cpu-numpy-openblas",), ("lenet5",), "docker", cpus=CPUS, timeout=120).with_options(
    iterations=3, warmup=1
)


def test_container_options_lock_the_cell_down() -> None:
    cell = Cell(CATALOG.variant("cpu-tensorflow-eigen"), "xla", "vgg16")
    options = container_options(cell, replace(SETTINGS, memory="4g"), "sha256:abc")
    assert options["network_mode"] == "none" and options["read_only"] is True
    assert options["cpuset_cpus"] == CPUS and options["mem_limit"] == options["memswap_limit"] == "4g"
    assert "exec" in options["tmpfs"]["/tmp"].split(",")
    assert options["environment"] == {
        "TF_ENABLE_ONEDNN_OPTS": "0", "BENCH_IMAGE_ID": "sha256:abc", "BENCH_VARIANT": "cpu-tensorflow-eigen",
    }  # fmt: skip
    assert options["cap_drop"] == ["ALL"] and options["security_opt"] == ["no-new-privileges:true"]
    assert options["user"] == "10001:10001" and options["pids_limit"] == 4096
    assert options["volumes"] == {}, "no mount at all without inputs; never a writable one"
    assert options["log_config"]["Config"] == {"max-size": "16m", "max-file": "1"}
    labels = options["labels"]
    assert labels["dlbench.cell"] == cell.label and labels["dlbench.runner"].endswith(f":{os.getpid()}")
    command = options["command"]
    assert command[:3] == ["python", "-m", "frameworks.predict"]
    assert command[command.index("--threads") + 1] == str(len(parse_cpuset(CPUS)))
    assert "device_requests" not in options
    cuda = container_options(Cell(CATALOG.variant("cuda-torch"), "eager", "lenet5"), SETTINGS, "sha256:abc")
    assert cuda["device_requests"][0].capabilities == [["gpu"]]
    with_inputs = replace(cell, inputs=Inputs("vgg16-seed0-abc", "f" * 64))
    handed = container_options(with_inputs, SETTINGS, "sha256:abc")
    assert list(handed["volumes"].values()) == [{"bind": "/inputs", "mode": "ro"}], "the inputs, read-only"
    assert handed["command"][handed["command"].index("--inputs") + 1] == "/inputs/vgg16-seed0-abc"


@pytest.fixture(scope="module")
def backend(docker_client: Any) -> DockerLauncher:
    return DockerLauncher(docker_client)


@pytest.fixture(scope="module")
def openblas_image(backend: DockerLauncher) -> str:
    """The image ID, built first when stale (cached: a no-op when current)."""
    prepared = backend.prepare([OPENBLAS], log=lambda line: None)
    assert not prepared.errors, prepared.errors
    return prepared.ids[OPENBLAS.name]


def _leftovers(client: Any) -> list[Any]:
    return client.containers.list(all=True, filters={"label": LABEL_CELL})


_PROBE = """
import os, socket, pathlib
print("interfaces", sorted(name for _, name in socket.if_nameindex()))
print("cpus", sorted(os.sched_getaffinity(0)))
try:
    pathlib.Path("/app/x").write_text("x"); print("root writable")
except OSError:
    print("root read-only")
pathlib.Path("/tmp/x").write_text("x"); print("tmp writable")
print("limit", pathlib.Path("/sys/fs/cgroup/memory/memory.limit_in_bytes").read_text().strip()
      if pathlib.Path("/sys/fs/cgroup/memory/memory.limit_in_bytes").exists()
      else pathlib.Path("/sys/fs/cgroup/memory.max").read_text().strip())
"""


@pytest.mark.docker
def test_the_container_is_isolated_as_configured(docker_client: Any, openblas_image: str) -> None:
    options = container_options(Cell(OPENBLAS, "im2col", "lenet5"), replace(SETTINGS, memory="256m"), openblas_image)
    options.update(command=["python", "-c", _PROBE], detach=False, remove=True)
    out = docker_client.containers.run(openblas_image, **options).decode()
    assert "interfaces ['lo']" in out
    assert f"cpus {parse_cpuset(CPUS)}" in out
    assert "root read-only" in out and "tmp writable" in out
    assert f"limit {256 << 20}" in out


@pytest.mark.docker
def test_happy_path_through_the_cli(docker_client: Any, openblas_image: str, tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "runner", "matrix", "--backend", "docker", "--variants", "cpu-numpy-openblas",
         "--models", "lenet5", "--iterations", "3", "--warmup", "1", "--cpus", CPUS, "--memory", "768m", "--no-peak",
         "--out", str(tmp_path)],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "launcher: docker (engine " in proc.stderr
    (run_dir,) = list(tmp_path.iterdir())
    (result,) = load_results(run_dir).results
    assert result.status == "ok" and result.verified and result.launcher == "docker"
    assert result.environment is not None and result.environment.in_container
    assert result.environment.image_id == openblas_image and result.environment.cpuset == CPUS
    assert result.environment.memory_limit_bytes == 768 << 20  # the container's limit, not the host's memory
    info = read_run_info(run_dir)
    assert info.images == {"cpu-numpy-openblas": openblas_image} and info.docker_version
    assert not _leftovers(docker_client)


@pytest.mark.docker
def test_out_of_memory_is_a_failed_cell(backend: DockerLauncher, openblas_image: str) -> None:
    # VGG-16's weights alone are 528 MB.
    result = backend.launch(Cell(OPENBLAS, "im2col", "vgg16"), replace(SETTINGS, memory="160m"), openblas_image)
    assert result.status == "failed" and result.error == "out of memory (limit 160m)"
    assert result.model == "vgg16" and result.launcher == "docker"
    assert not _leftovers(backend.client)


@pytest.mark.docker
def test_timeout_kills_and_removes_the_container(backend: DockerLauncher, openblas_image: str) -> None:
    settings = replace(SETTINGS, timeout=6).with_options(iterations=10**8)
    (cell,) = plan([OPENBLAS], settings)  # the cell carries its scenario config, resolved from the settings
    result = backend.launch(cell, settings, openblas_image)
    assert result.status == "failed" and result.error == "timed out after 6 s"
    assert not _leftovers(backend.client)


@pytest.mark.docker
def test_cuda_variants_are_skipped_without_the_nvidia_runtime(backend: DockerLauncher) -> None:
    if backend.nvidia():
        pytest.skip("this engine has the NVIDIA runtime")
    prepared = backend.prepare([CATALOG.variant("cuda-onnxruntime")], log=lambda line: None)
    assert prepared == Prepared(skipped={"cuda-onnxruntime": NO_NVIDIA})


@pytest.mark.docker
@pytest.mark.slow
def test_an_out_of_memory_point_fails_alone_and_the_sweep_goes_on(backend: DockerLauncher, openblas_image: str) -> None:
    """In a 3 GB container VGG-16's float64 reference at batch 16 (3.7 GB of im2col columns) is
    killed by the kernel's OOM killer; the sweep's own process survives and measures batch 1."""
    from frameworks.scenarios.throughput import ThroughputConfig

    config = ThroughputConfig(iterations=2, warmup=0, min_time=0, max_time=0, batches=(16, 1), point_timeout=300)
    cell = Cell(OPENBLAS, "im2col", "vgg16", "throughput", config)
    result = backend.launch(cell, replace(SETTINGS, memory="3g", timeout=300), openblas_image)
    big, small = result.points
    assert big.status == "failed" and big.error == "out of memory (killed by the OOM killer)"
    assert small.status == "ok" and small.verified and small.peak_rss_bytes and small.peak_rss_bytes < 3 << 30
    assert result.status == "ok" and result.launcher == "docker" and result.scenario == "throughput"
    assert not _leftovers(backend.client)
