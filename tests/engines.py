"""A second Docker engine on this machine for the tests that stop an engine or need two: its own socket,
data root, exec root and pid file, no bridge, no iptables (as .ci/install-docker starts the first).

Stopping it never disturbs the main engine, on which other work (image builds) may be going on.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import IN_CI

ENGINE2 = Path("/run/dlbench-engine2")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


def _answers(socket_path: Path) -> bool:
    proc = subprocess.run(["docker", "-H", f"unix://{socket_path}", "version"], capture_output=True, check=False)
    return proc.returncode == 0


class Engine:
    """A second dockerd on this machine: its own socket, data root, exec root and pid file, no bridge."""

    def __init__(self, root: Path) -> None:
        self.root, self.socket = root, root / "docker.sock"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        log = (self.root / "dockerd.log").open("ab")
        self.proc = subprocess.Popen(
            ["dockerd", "--host", f"unix://{self.socket}", "--data-root", "/var/lib/dlbench-engine2",
             "--exec-root", str(self.root / "exec"), "--pidfile", str(self.root / "dockerd.pid"),
             "--bridge=none", "--iptables=false", "--ip-masq=false", "--ip-forward=false"],
            stdout=log, stderr=log,
        )  # fmt: skip
        wait_for(lambda: _answers(self.socket), 90, "the second engine")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=60)
        self.proc = None

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"


def need_root(what: str = "dockerd") -> None:
    tools = [shutil.which("dockerd")] + ([shutil.which("sshd", path="/usr/sbin:/usr/bin")] if what == "sshd" else [])
    if os.geteuid() != 0 or not all(tools):
        if IN_CI:
            pytest.fail(f"these tests need root and {what} (.ci/setup installs it)")
        pytest.skip(f"needs root and {what}")


def load_image(engine: Engine, image_id: str) -> None:
    """The main engine's image, saved and loaded into the second one (no registry here)."""
    if subprocess.run(["docker", "-H", engine.url, "image", "inspect", image_id], capture_output=True).returncode == 0:
        return
    tags = subprocess.run(["docker", "image", "inspect", "--format", "{{join .RepoTags \" \"}}", image_id],
                          capture_output=True, text=True, check=True).stdout.split()  # fmt: skip
    save = subprocess.Popen(["docker", "save", *(tags or [image_id])], stdout=subprocess.PIPE)  # tags come along
    subprocess.run(["docker", "-H", engine.url, "load"], stdin=save.stdout, check=True, capture_output=True)
    save.wait(timeout=600)
