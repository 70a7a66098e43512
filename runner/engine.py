"""The Docker engine: one place that connects, so every caller reports a missing engine the same way."""

from __future__ import annotations

from typing import Any

# docker-py ships no type hints, and for mypy the repository's docker/ folder shadows the package:
# the client is typed as Any under a name that says what it is.
DockerClient = Any

HINT = "start one with: bash .ci/install-docker"


class EngineUnavailable(RuntimeError):
    """No Docker engine answers: one line, with how to start one."""


def connect(timeout: int = 600) -> DockerClient:
    """A client for the engine named by DOCKER_HOST (default: the local socket), checked with a ping.

    ``timeout`` is per API call: image builds stream for minutes, so it is generous.
    """
    try:
        import docker.errors  # binds ``docker`` too
    except ImportError:
        raise EngineUnavailable("the docker Python package is not installed (pip install docker)") from None
    try:
        client = docker.from_env(timeout=timeout)  # type: ignore[attr-defined]
        client.ping()
    except (docker.errors.DockerException, OSError) as exc:  # OSError: a socket error the SDK did not wrap
        raise EngineUnavailable(f"no Docker engine answers ({first_line(exc, 200)}); {HINT}") from None
    return client


def engine_version(client: DockerClient) -> str:
    """The engine's version and API version, e.g. ``20.10.24+dfsg1 (API 1.41)``: recorded with results."""
    info = client.version()
    return f"{info.get('Version', '?')} (API {info.get('ApiVersion', '?')})"


def first_line(exc: BaseException, limit: int = 300) -> str:
    """An exception as one short line for a log or a failed cell (a Docker error can be pages long)."""
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:limit]
