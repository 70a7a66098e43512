"""docker-compose.yml: generated from the catalog, committed, and accepted by docker-compose.

The ``docker`` test runs ``config`` of whichever compose is installed (v2 plugin, v1 docker-compose);
in CI (CI=true) it fails when neither is, elsewhere it skips.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from frameworks.result import Result
from runner.catalog import load_catalog
from runner.compose import COMPOSE_PATH, compose_is_current, render_compose, service, write_compose
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
    base_var = "DLBENCH_BASE_IMAGE" if variant.image.release == "bookworm" else "DLBENCH_BASE_IMAGE_BULLSEYE"
    assert body["build"]["args"]["BASE_IMAGE"] == f"${{{base_var}:-{variant.image.base_image}}}", "its release's base"
    command = body["command"]
    assert command[:3] == ["python", "-m", "frameworks.predict"]
    assert command[command.index("--framework") + 1] == variant.framework and "--all" in command
    assert command[command.index("--device") + 1] == variant.device
    assert command[-2:] == ["--output", f"/results/{name}.jsonl"]
    assert command[command.index("--scenario") + 1] == "${DLBENCH_SCENARIO:-latency}", "compose picks the scenario"
    assert body["environment"] == {**variant.env, "DLBENCH_USER": "${DLBENCH_USER:-}"}
    assert body["network_mode"] == "none" and body["read_only"] is True
    assert body["tmpfs"] == ["/tmp:exec"] and body["volumes"] == ["./results:/results"]
    # sealed like the runner's containers: the entrypoint keeps only what it needs to change users
    assert body["cap_drop"] == ["ALL"] and body["cap_add"] == ["SETUID", "SETGID", "CHOWN"]
    assert body["security_opt"] == ["no-new-privileges:true"] and body["pids_limit"] == 4096
    assert body["entrypoint"] == ["python", "-m", "frameworks.compose_entry"] and body["user"] == "0:0"
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
    assert body["environment"]["A"] == "x$$y", "a literal $ is escaped from compose interpolation"
    two = service(dataclasses.replace(variant, modes=("eager", "jit")))["command"]
    assert two[two.index("--all") :][3:7] == ["--mode", "eager", "--mode", "jit"], "predict takes --mode once per mode"
    assert "--mode" not in service(variant)["command"], "all of the framework's modes: none named"


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


# --- `docker compose up <variant>` exactly as the README gives it ----------------------------------------

USER = "dlbench-compose"  # an ordinary user, made for the test where it is missing (CI runs as root)
SERVICE = "cpu-numpy-openblas"


def _ordinary_user() -> tuple[int, int]:
    import pwd

    try:
        entry = pwd.getpwnam(USER)
    except KeyError:
        subprocess.run(["useradd", "--create-home", "--groups", "docker", USER], check=True)
        entry = pwd.getpwnam(USER)
    return entry.pw_uid, entry.pw_gid


def _fresh_clone(tmp_path: Path, uid: int, gid: int) -> Path:
    """What `git clone` gives its caller: the compose file and what it builds from, and results/ with its
    .gitignore, all owned by the caller (the working tree as it is, so the test runs what CI checks out).

    Under /tmp itself: pytest's own temporary directories are closed to other users.
    """
    clone = Path(tempfile.mkdtemp(prefix="dlbench-compose-", dir="/tmp"))
    clone.chmod(0o755)
    for name in ("docker-compose.yml", "docker", "frameworks", "results", ".dockerignore"):
        source = COMPOSE_PATH.parent / name
        if source.is_dir():
            shutil.copytree(source, clone / name, ignore=shutil.ignore_patterns("__pycache__", "*.jsonl"))
        else:
            shutil.copy2(source, clone / name)
    for path in [clone, *clone.rglob("*")]:
        os.chown(path, uid, gid)
    return clone


def _as(uid: int, command: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    import pwd

    prefix = [] if uid == 0 else ["runuser", "-u", pwd.getpwuid(uid).pw_name, "--"]
    env = {k: v for k, v in os.environ.items() if k not in ("DLBENCH_USER", "DLBENCH_SCENARIO")}
    if uid != 0:
        env["HOME"] = pwd.getpwuid(uid).pw_dir
    return subprocess.run([*prefix, *command], cwd=cwd, env=env, capture_output=True, text=True, timeout=900,
                          check=False)  # fmt: skip


def _compose_or_skip(name: str) -> list[str]:
    command = name.split()
    if command in _compose_commands():
        return command
    message = f"`{name}` is not installed (bash .ci/install-docker installs Compose v1 and v2)"
    if IN_CI:
        pytest.fail(message)
    pytest.skip(message)


@pytest.mark.docker
@pytest.mark.slow
@pytest.mark.parametrize("compose", ["docker compose", "docker-compose"])
@pytest.mark.parametrize("caller", ["root", "ordinary user"])
def test_compose_up_as_written_in_a_fresh_clone(docker_client: object, compose: str, caller: str, tmp_path: Path):
    """The README's line works for root and for an ordinary user, with Compose v2 and v1: the results
    file is written, the caller can read and remove it, and the benchmark ran unprivileged."""
    if os.geteuid() != 0:
        pytest.skip("needs root to act as both callers")
    command = _compose_or_skip(compose)
    from runner.catalog import load_catalog
    from runner.docker_launcher import DockerLauncher

    DockerLauncher(docker_client).prepare([load_catalog().variant(SERVICE)], log=lambda line: None)  # the image
    uid, gid = (0, 0) if caller == "root" else _ordinary_user()
    clone = _fresh_clone(tmp_path, uid, gid)
    networks = {n.name for n in docker_client.networks.list()}  # type: ignore[attr-defined]
    try:
        up = _as(uid, [*command, "up", SERVICE], clone)
        assert up.returncode == 0, up.stderr + up.stdout
        results = clone / "results" / f"{SERVICE}.jsonl"
        assert results.is_file(), up.stdout[-3000:]
        lines = [Result.from_json(line) for line in results.read_text().splitlines()]
        assert {r.model for r in lines} == {"lenet5", "vgg16", "mobilenet_v1"} and all(r.status == "ok" for r in lines)
        owner = results.stat().st_uid
        assert owner == (uid if uid != 0 else 10001), "the caller's own file (root: made over to the image's user)"
        assert _as(uid, ["rm", str(results)], clone).returncode == 0, "the caller can remove what it wrote"
        assert {n.name for n in docker_client.networks.list()} == networks, "compose made no network"  # type: ignore[attr-defined]
    finally:
        _as(uid, [*command, "down", "--remove-orphans"], clone)
        shutil.rmtree(clone, ignore_errors=True)


@pytest.mark.docker
@pytest.mark.parametrize("compose", ["docker compose", "docker-compose"])
def test_an_unwritable_results_directory_is_one_line_naming_the_fix(docker_client: object, compose: str, tmp_path):
    if os.geteuid() != 0:
        pytest.skip("needs root to act as the ordinary user")
    command = _compose_or_skip(compose)
    uid, gid = _ordinary_user()
    clone = _fresh_clone(tmp_path, uid, gid)
    (clone / "results").chmod(0o555)
    try:
        up = _as(uid, [*command, "up", SERVICE], clone)
        output = up.stdout + up.stderr
        assert "error: cannot write /results/cpu-numpy-openblas.jsonl" in output and "chmod u+w results" in output
        assert "Traceback" not in output
    finally:
        _as(uid, [*command, "down", "--remove-orphans"], clone)
        shutil.rmtree(clone, ignore_errors=True)
