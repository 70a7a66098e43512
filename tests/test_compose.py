"""docker-compose.yml: generated from the catalog, committed, and accepted by docker-compose.

The ``docker`` test runs ``config`` of whichever compose is installed (v2 plugin, v1 docker-compose);
in CI (CI=true) it fails when neither is, elsewhere it skips.
"""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
from pathlib import Path

import pytest

from runner.catalog import load_catalog
from runner.compose import COMPOSE_PATH, ComposeError, compose_is_current, render_compose, service, write_compose
from tests.conftest import IN_CI

CATALOG = load_catalog()


def test_committed_compose_file_is_current() -> None:
    assert compose_is_current(CATALOG), (
        "docker-compose.yml is stale: regenerate it with `python -m runner compose` (runner.compose.write_compose)"
    )


def test_render_is_deterministic_and_write_reports_changes(tmp_path: Path) -> None:
    assert render_compose(CATALOG) == render_compose(load_catalog())
    path = tmp_path / "docker-compose.yml"
    assert write_compose(CATALOG, path) is True
    assert write_compose(CATALOG, path) is False
    assert path.read_text(encoding="utf-8") == COMPOSE_PATH.read_text(encoding="utf-8")


def test_one_service_per_variant() -> None:
    text = render_compose(CATALOG)
    services = [line.strip().rstrip(":") for line in text.splitlines() if line.startswith("  ") and line[2] != " "]
    assert services == list(CATALOG.variants)


@pytest.mark.parametrize("name", list(CATALOG.variants))
def test_service_runs_only_its_variant(name: str) -> None:
    variant = CATALOG.variants[name]
    body = service(variant)
    assert body["image"] == variant.image.tag
    assert body["build"]["context"] == "." and body["build"]["dockerfile"] == variant.image.dockerfile
    assert body["build"]["network"] == "host", "the engine has no bridge network: builds use the host's"
    assert body["build"]["args"]["REQUIREMENTS"] == " ".join(variant.image.requirements)
    assert body["build"]["args"]["BASE_IMAGE"] == "${DLBENCH_BASE_IMAGE:-python:3.11-slim}"
    command = body["command"]
    assert command[:3] == ["python", "-m", "frameworks.predict"]
    assert command[command.index("--framework") + 1] == variant.framework and "--all" in command
    assert command[command.index("--device") + 1] == variant.device
    assert command[-2:] == ["--output", f"/results/{name}.jsonl"]
    assert command[command.index("--scenario") + 1] == "${DLBENCH_SCENARIO:-latency}", "compose picks the scenario"
    assert body.get("environment", {}) == variant.env
    assert body["network_mode"] == "none" and body["read_only"] is True
    assert body["tmpfs"] == ["/tmp:exec"] and body["volumes"] == ["./results:/results"]
    if variant.device == "cuda":
        devices = body["deploy"]["resources"]["reservations"]["devices"]
        assert devices == [{"driver": "nvidia", "count": "all", "capabilities": ["gpu"]}]
    else:
        assert "deploy" not in body


def test_mode_subsets_and_dollars() -> None:
    variant = CATALOG.variants["cpu-torch"]
    one = dataclasses.replace(variant, modes=("jit",), env={"A": "x$y"})
    body = service(one)
    assert body["command"][-6:-4] == ["--mode", "jit"]
    assert body["environment"] == {"A": "x$$y"}, "a literal $ is escaped from compose interpolation"
    with pytest.raises(ComposeError, match="cpu-torch: predict takes one --mode or all of them"):
        service(dataclasses.replace(variant, modes=("eager", "jit")))


def _compose_commands() -> list[list[str]]:
    commands = []
    if shutil.which("docker") and subprocess.run(
        ["docker", "compose", "version"], capture_output=True, check=False
    ).returncode == 0:  # fmt: skip
        commands.append(["docker", "compose"])
    if shutil.which("docker-compose"):
        commands.append(["docker-compose"])
    return commands


@pytest.mark.docker
def test_compose_accepts_the_file() -> None:
    commands = _compose_commands()
    if not commands:
        message = "neither `docker compose` (v2) nor `docker-compose` (v1) is installed (bash .ci/install-docker)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    for command in commands:
        proc = subprocess.run(
            [*command, "-f", str(COMPOSE_PATH), "config", "-q"],
            capture_output=True,
            text=True,
            cwd=COMPOSE_PATH.parent,
            check=False,
            timeout=120,
        )
        assert proc.returncode == 0, f"{' '.join(command)} config: {proc.stderr.strip()}"
        assert "WARNING" not in proc.stderr.replace("`version` is obsolete", ""), proc.stderr
