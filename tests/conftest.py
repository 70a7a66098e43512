"""Shared fixtures, the rules for markers, and the test tiers.

- ``framework``: a test that runs a deep-learning framework skips with the reason when that
  framework is not installed here (CI installs every one, so nothing skips there).
- ``docker``: needs an engine; fails (never skips) in CI when none answers.
- Tiers: every test that is not ``slow``, ``docker`` or ``faults`` is also ``fast`` (added here, at
  collection): ``python -m pytest -m fast`` is the few-minute tier for every change; the full suite
  (``python -m pytest``) is what CI runs.
- In CI a skip is a failure (``pytest_runtest_makereport``): the one skip allowed is a variant the catalog
  marks unavailable, with its recorded reason.
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
NOT_FAST = ("slow", "docker", "faults")  # markers that keep a test out of the fast tier


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The fast tier is everything that is not slow, needs no engine and stops nothing."""
    for item in items:
        if not any(item.get_closest_marker(name) for name in NOT_FAST):
            item.add_marker(pytest.mark.fast)


def allowed_skip(reason: str) -> bool:
    """The one skip CI allows: a catalog variant marked unavailable, skipped with its recorded reason."""
    from runner.catalog import CatalogError, load_catalog

    try:
        reasons = [v.unavailable for v in load_catalog().variants.values() if v.unavailable]
    except CatalogError:
        return False
    return any(r in reason for r in reasons)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """In CI a skip fails the test (a skipped test tests nothing), unless the catalog says why it must."""
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    if not (IN_CI and report.skipped) or hasattr(report, "wasxfail"):
        return
    reason = str(report.longrepr[2]) if isinstance(report.longrepr, tuple) else str(report.longrepr)
    if not allowed_skip(reason):
        report.outcome = "failed"
        report.longrepr = f"skipped in CI, where a skip is a failure (tests/conftest.py): {reason}"


def mode_image(framework: str, mode: str | None = None) -> str:
    """The catalog image whose environment runs ``framework`` in ``mode``: the one named after the
    framework, unless only another image's CPU variants run that mode (ONNX Runtime's ``openvino``
    mode needs the onnxruntime-openvino wheel, which replaces the onnxruntime module)."""
    if mode is None:
        return framework
    from runner.catalog import CatalogError, load_catalog

    try:
        variants = load_catalog().variants.values()
    except CatalogError:
        return framework
    images = [v.image.name for v in variants if v.framework == framework and v.device == "cpu" and mode in v.modes]
    return framework if not images or framework in images else images[0]


def _cpu_variants(framework: str, mode: str | None) -> list[Any]:
    from runner.catalog import CatalogError, load_catalog

    try:
        variants = load_catalog().variants.values()
    except CatalogError:
        return []
    return [v for v in variants if v.framework == framework and v.device == "cpu" and (mode is None or mode in v.modes)]


def other_python_image(framework: str, mode: str | None = None) -> str | None:
    """The image ``framework`` (in ``mode``) runs in when every image of it is on another Python than
    this one (Caffe, Caffe2, Chainer, NNabla: Debian bullseye's 3.9): its tests run in that image
    (``tests/image_python.py``). None for a framework this interpreter or a venv of it can run."""
    host = f"{sys.version_info.major}.{sys.version_info.minor}"
    variants = [v for v in _cpu_variants(framework, mode) if not v.unavailable]
    if variants and all(v.image.python != host for v in variants):
        return str(variants[0].image.name)
    return None


def unavailable_mode(framework: str, mode: str | None) -> str | None:
    """The catalog's recorded error when every CPU variant of ``framework`` that runs ``mode`` is
    unavailable here (Chainer's iDeep: no ideep4py for Python 3.9): its tests skip with it, in CI too."""
    variants = _cpu_variants(framework, mode) if mode is not None else []
    if variants and all(v.unavailable for v in variants):
        return str(variants[0].unavailable_reason)
    return None


def framework_python(framework: str, mode: str | None = None) -> str | None:
    """The interpreter that has ``framework`` (in ``mode``): this one, or an environment of its own.

    Frameworks that cannot share an environment with TensorFlow and torch (MXNet 1.9.1, OpenVINO,
    TVM) and modes that need another wheel of a framework (``mode_image``) run their tests through
    the interpreter named by ``BENCH_PYTHON_<IMAGE>`` (``BENCH_PYTHON_MXNET``,
    ``BENCH_PYTHON_ONNXRUNTIME_OPENVINO``) or the runner's local-backend virtualenv of that image.
    """
    other = other_python_image(framework, mode)
    if other is not None:
        from tests.image_python import image_python

        return os.environ.get(_override_variable(other)) or image_python(other)
    image = mode_image(framework, mode)
    if image == framework and is_installed(framework):
        return sys.executable
    override = os.environ.get(_override_variable(image))
    if override:
        return override
    try:
        from runner.local_launcher import venv_python
    except ImportError:
        return None
    path = venv_python(image)
    return str(path) if path else None


def _override_variable(image: str) -> str:
    return f"BENCH_PYTHON_{image.upper().replace('-', '_')}"


def require_framework(framework: str, mode: str | None = None) -> str:
    unavailable = unavailable_mode(framework, mode)
    if unavailable:
        pytest.skip(f"{framework} {mode}: {unavailable}")
    python = framework_python(framework, mode)
    other = other_python_image(framework, mode)
    if python is None and other is not None:
        message = (f"{framework} runs in its image only (Python of Debian bullseye): dlbench/{other} is not built "
                   f"or no engine answers (python -m runner build; CI builds every CPU image)")  # fmt: skip
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    if python is None:
        image = mode_image(framework, mode)
        if IN_CI:
            pytest.fail(f"{framework} ({image}) is not installed: CI installs every framework (.ci/setup)")
        pytest.skip(
            f"{framework} is not installed here (no {_override_variable(image)} environment, "
            f"no venv: python -m runner venv {image})"
        )
    return python


def framework_marks(framework: str, mode: str | None = None, *, slow: bool = False) -> list[pytest.MarkDecorator]:
    """The markers of a test that runs ``framework`` (in ``mode``): ``framework``; ``docker`` and ``slow`` where
    it runs only in its image (another Python: a container per process); ``slow`` where the caller says so."""
    in_image = other_python_image(framework, mode) is not None
    marks = [pytest.mark.framework]
    marks += [pytest.mark.docker] if in_image else []
    marks += [pytest.mark.slow] if in_image or slow else []
    return marks


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
