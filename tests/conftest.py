"""Shared fixtures and the rules for markers.

- ``framework``: a test that runs a deep-learning framework skips with the reason when that
  framework is not installed here (CI installs all five, so nothing skips there).
- ``docker``: needs an engine; fails (never skips) in CI when none answers.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from frameworks.backends.registry import is_installed

REPO_ROOT = Path(__file__).resolve().parent.parent
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def framework_python(framework: str) -> str | None:
    """The interpreter that has ``framework``: this one, or an environment of its own.

    MXNet 1.9.1 cannot share an environment with TensorFlow, so its tests run through the
    interpreter named by ``BENCH_PYTHON_MXNET`` or the runner's local-backend virtualenv.
    """
    if is_installed(framework):
        return sys.executable
    override = os.environ.get(f"BENCH_PYTHON_{framework.upper()}")
    if override:
        return override
    try:
        from runner.local_launcher import venv_python
    except ImportError:
        return None
    path = venv_python(framework)
    return str(path) if path else None


def require_framework(framework: str) -> str:
    python = framework_python(framework)
    if python is None:
        if IN_CI:
            pytest.fail(f"{framework} is not installed: CI installs all five frameworks (.ci/setup)")
        pytest.skip(f"{framework} is not installed here (and no BENCH_PYTHON_{framework.upper()} environment)")
    return python


def run_predict(python: str, *args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    """Run ``python -m frameworks.predict`` from the repository root."""
    return subprocess.run(
        [python, "-m", "frameworks.predict", *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def run_runner(*args: str, env: dict[str, str] | None = None, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """Run ``python -m runner`` from the repository root, with extra environment variables."""
    return subprocess.run(
        [sys.executable, "-m", "runner", *args],
        cwd=REPO_ROOT,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def assert_short_facts(facts: dict[str, str]) -> None:
    """Build facts as a report shows them: a non-empty dict of short strings."""
    assert facts and all(isinstance(v, str) and 0 < len(v) <= 80 for v in facts.values()), facts


def assert_matches_reference(forward: Any, model: str, batch: int = 2, seed: int = 5) -> None:
    """A batch of 2 (the equivalence test runs batch 1) through ``forward``, against the float64 reference."""
    import numpy as np

    from frameworks.backends.numpy_backend import reference_forward
    from frameworks.models import get_model
    from frameworks.verify import compare
    from frameworks.weights import canonical_weights, make_input

    spec = get_model(model)
    x = make_input(spec, batch, np.random.default_rng(seed))
    out = forward(x)
    assert isinstance(out, np.ndarray) and out.dtype == np.float32
    assert out.shape == (batch, spec.classes)
    check = compare(out, reference_forward(spec, canonical_weights(spec, seed), x), 1e-4)
    assert check.verified, check


@pytest.fixture(scope="session")
def chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        if IN_CI:
            pytest.fail("chromium is not installed (CI installs Debian's chromium)")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    return path


@pytest.fixture(scope="session")
def docker_client() -> Iterator[Any]:
    """A client of the local Docker engine; no engine fails the test in CI and skips it elsewhere."""
    from runner.engine import EngineUnavailable, connect

    try:
        client = connect()
    except EngineUnavailable as exc:
        if IN_CI:
            pytest.fail(f"docker tests need an engine in CI: {exc}")
        pytest.skip(str(exc))
    yield client
    client.close()
