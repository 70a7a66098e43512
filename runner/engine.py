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


ENGINE_LOST = "the Docker engine stopped answering"


class EngineLost(RuntimeError):
    """The engine stopped answering mid-run: the matrix ends with one line and a distinct exit code.

    ``result`` is the failed result of the cell it took with it, if any (recorded before the run
    ends, and redone by ``--resume`` once an engine answers).
    """

    def __init__(self, message: str, result: Any = None) -> None:
        super().__init__(message)
        self.result = result


def engine_answers(client: DockerClient, attempts: int = 3, delay_s: float = 1.0) -> bool:
    """Whether the engine answers a ping, asked a few times (one dropped request is no lost engine)."""
    import contextlib
    import time

    for attempt in range(attempts):
        try:
            # Fresh connections: a pooled one to an engine that is shutting down may still answer
            # while new ones (its socket already removed) cannot.
            with contextlib.suppress(Exception):
                client.api.close()
            client.ping()
            return True
        except Exception:  # any failure to get an answer counts: the SDK raises several kinds
            if attempt + 1 < attempts:
                time.sleep(delay_s)
    return False
