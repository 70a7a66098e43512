"""The Docker launcher: one fresh, locked-down container per cell.

Each container has no network, a pinned cpuset, a memory limit with no swap beyond it, a read-only
root filesystem (with a tmpfs ``/tmp`` that torch.compile and XLA can write and execute from) and a
per-cell timeout. It runs the image by ID, not by tag, so the image recorded in run.json is the
one that ran even if someone rebuilds the tag meanwhile. Whatever happens to a container (a
crash, the OOM killer, the timeout) becomes a failed cell with its reason, and the container is
always removed.
"""

from __future__ import annotations

import contextlib
from typing import Any

from frameworks.result import Result

from .catalog import ImageSpec, Variant
from .engine import DockerClient, first_line
from .matrix import Cell, Log, Prepared, Settings, interpret, runner_result

TMPFS = {"/tmp": "rw,exec,nosuid,size=2g"}  # exec: torch.compile loads the C++ it compiles from /tmp
LABEL_CELL = "dlbench.cell"
NO_NVIDIA = "no NVIDIA runtime (the Docker engine lists no 'nvidia' runtime)"


def has_nvidia_runtime(client: DockerClient) -> bool:
    return "nvidia" in (client.info().get("Runtimes") or {})


def container_options(cell: Cell, settings: Settings, image_id: str) -> dict[str, Any]:
    """The keyword arguments of ``containers.run`` for one cell: the isolation the issue asks for."""
    env = {**cell.variant.env, "BENCH_IMAGE_ID": image_id, "BENCH_VARIANT": cell.variant.name}
    options: dict[str, Any] = {
        "command": ["python", "-m", "frameworks.predict", *settings.predict_args(cell)],
        "environment": env,
        "network_mode": "none",
        "cpuset_cpus": settings.cpus,
        "mem_limit": settings.memory,
        "memswap_limit": settings.memory,  # equal to the limit: no swap, so a big model fails instead of crawling
        "read_only": True,
        "tmpfs": dict(TMPFS),
        "labels": {LABEL_CELL: cell.label},
        "detach": True,
    }
    if cell.variant.device == "cuda":
        import docker.types

        options["device_requests"] = [docker.types.DeviceRequest(count=-1, capabilities=[["gpu"]])]
    return options


class DockerLauncher:
    name = "docker"

    def __init__(self, client: DockerClient, base_image: str | None = None) -> None:
        self.client = client
        self.base_image = base_image
        self._nvidia: bool | None = None

    def version(self) -> str | None:
        from .engine import engine_version

        return engine_version(self.client)

    def describe(self) -> str:
        return f"docker (engine {self.version()})"

    def nvidia(self) -> bool:
        if self._nvidia is None:
            self._nvidia = has_nvidia_runtime(self.client)
        return self._nvidia

    def prepare(self, variants: list[Variant], log: Log) -> Prepared:
        """Build every stale image the chosen variants need, one at a time, before any cell is timed."""
        prepared = Prepared()
        built: dict[str, str] = {}  # image name -> id or error
        for variant in variants:
            if variant.device == "cuda" and not self.nvidia():
                prepared.skipped[variant.name] = NO_NVIDIA
                continue
            if variant.image.name not in built:
                built[variant.image.name] = self._build(variant.image, log)
            outcome = built[variant.image.name]
            if outcome.startswith("error: "):
                prepared.errors[variant.name] = outcome.removeprefix("error: ")
            else:
                prepared.ids[variant.name] = outcome
        return prepared

    def _build(self, image: ImageSpec, log: Log) -> str:
        """The image ID, or 'error: ...' (its cells fail with the reason; the other images go on)."""
        import docker.errors

        from .images import ImageBuildError, ImageValidationError, build_image

        try:
            return build_image(self.client, image, base_image=self.base_image, log=log)
        except (ImageBuildError, ImageValidationError, docker.errors.DockerException) as exc:
            message = first_line(exc)
            log(f"{image.name}: build failed: {message}")
            return f"error: image {image.name} did not build: {message}"

    def launch(self, cell: Cell, settings: Settings, image_id: str) -> Result:
        import docker.errors

        try:
            container = self.client.containers.run(image_id, **container_options(cell, settings, image_id))
        except docker.errors.DockerException as exc:
            return runner_result(cell, settings, "failed", f"container did not start: {first_line(exc)}")
        try:
            return self._finish(container, cell, settings)
        finally:
            _remove(container)

    def _finish(self, container: Any, cell: Cell, settings: Settings) -> Result:
        import requests.exceptions

        timeout = settings.cell_timeout(cell)
        try:
            status = container.wait(timeout=timeout)
        except (requests.exceptions.ReadTimeout, requests.exceptions.ConnectionError):
            _kill(container)
            return runner_result(cell, settings, "failed", f"timed out after {timeout:g} s")
        returncode = int(status.get("StatusCode", -1))
        stdout = container.logs(stdout=True, stderr=False).decode("utf-8", "replace")
        stderr = container.logs(stdout=False, stderr=True).decode("utf-8", "replace")
        result = interpret(cell, settings, returncode, stdout, stderr)
        if returncode != 0 and _oom_killed(container):
            return runner_result(cell, settings, "failed", f"out of memory (limit {settings.memory})")
        return result


def _oom_killed(container: Any) -> bool:
    container.reload()
    return bool(container.attrs.get("State", {}).get("OOMKilled"))


def _kill(container: Any) -> None:
    import docker.errors

    with contextlib.suppress(docker.errors.APIError):  # it ended on its own in the meantime
        container.kill()


def _remove(container: Any) -> None:
    import docker.errors

    with contextlib.suppress(docker.errors.NotFound):
        container.remove(force=True)
