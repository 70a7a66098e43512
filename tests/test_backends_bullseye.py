"""Caffe, Caffe2, Chainer and NNabla: the comparison's other frameworks, in their Debian bullseye images.

They run on Python 3.9 (bullseye's python3: the last Debian with ``python3-caffe``; the last Python
their wheels have), so they cannot share the host's interpreter: ``python -m frameworks.check`` runs
inside the images, with this checkout's ``frameworks/`` mounted read-only over the image's copy (the
tree under test, on the image's libraries). tests/test_equivalence.py covers each framework and mode
in one image (``conftest.other_python_image``); this file covers every other variant (each BLAS of
Caffe, Chainer on MKL), the build facts that prove the BLAS, and the Python 3.9 imports. CI builds
every CPU image first (``.ci/setup``); a missing image or engine fails there and skips elsewhere.

The host-side tests keep ``frameworks/`` importable on Python 3.9 (the grammar, and every module
under the image's interpreter), and check the catalog's unavailable iDeep variant.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path
from typing import Any

import pytest

from frameworks.backends.registry import FRAMEWORKS, IN_EFFECT
from frameworks.models import MODELS, get_model
from runner.catalog import Variant, load_catalog
from tests.checks import parse_lines
from tests.conftest import IN_CI, REPO_ROOT, assert_short_facts, other_python_image

FRAMEWORKS_DIR = REPO_ROOT / "frameworks"
APP_FRAMEWORKS = "/app/frameworks"
PYTHON_39 = (3, 9)
TIMEOUT_S = 900


def bullseye_variants(*, available: bool = True) -> list[Variant]:
    """The catalog's CPU variants built on Debian bullseye (available ones, or the unavailable ones)."""
    return [
        v
        for v in load_catalog().variants.values()
        if v.image.release == "bullseye" and v.device == "cpu" and (v.unavailable is None) == available
    ]


# tests/test_equivalence.py runs each framework and mode in one image (conftest.other_python_image); these
# are the other variants of the same mode: the same Caffe on its other BLAS libraries, Chainer on MKL.
CELLS = [
    (v.name, mode, model)
    for v in bullseye_variants()
    for mode in v.modes
    if other_python_image(v.framework, mode) != v.image.name
    for model in MODELS
]


def _variant(name: str) -> Variant:
    return load_catalog().variants[name]


def _require_image(client: Any, tag: str) -> None:
    from docker.errors import ImageNotFound

    try:
        client.images.get(tag)
    except ImageNotFound:
        if IN_CI:
            pytest.fail(f"{tag} is missing: CI builds every CPU image (.ci/setup: python -m runner build)")
        pytest.skip(f"{tag} is not built here (python -m runner build {tag.split('/')[-1].split(':')[0]})")


def run_in_image(client: Any, variant: Variant, command: list[str]) -> str:
    """``command`` in the variant's image, sealed like a cell (no network, read-only root, its env),
    with this tree's frameworks/ mounted; its stdout (a failing command fails the test with its stderr)."""
    from docker.errors import ContainerError

    _require_image(client, variant.image.tag)
    try:
        out = client.containers.run(
            variant.image.tag, command, environment={**variant.env, "MPLCONFIGDIR": "/tmp/matplotlib"},
            network_mode="none", read_only=True, tmpfs={"/tmp": "rw,size=256m"}, working_dir="/app",
            volumes={str(FRAMEWORKS_DIR): {"bind": APP_FRAMEWORKS, "mode": "ro"}}, remove=True,
            stdout=True, stderr=False,
        )  # fmt: skip
    except ContainerError as exc:
        stderr = exc.stderr.decode("utf-8", "replace") if isinstance(exc.stderr, bytes) else str(exc.stderr)
        pytest.fail(f"{variant.name}: {' '.join(command)} exited {exc.exit_status}:\n{stderr[-3000:]}")
    return str(out.decode("utf-8", "replace"))


def last_json(text: str) -> Any:
    """The JSON object a command printed last (frameworks may log lines before it)."""
    lines = [line for line in text.splitlines() if line.startswith("{")]
    assert lines, f"no JSON line in the output:\n{text[-2000:]}"
    return json.loads(lines[-1])


# --- equivalence, in the images ----------------------------------------------------------------------------


@pytest.mark.docker
@pytest.mark.framework
@pytest.mark.slow
@pytest.mark.parametrize(("variant", "mode", "model"), CELLS)
def test_matches_spec_and_reference_in_image(docker_client: Any, variant: str, mode: str, model: str) -> None:
    report = _variant_reports(docker_client, variant).get((mode, model))
    assert report is not None, f"{variant}: no report for {mode} {model}"
    assert "error" not in report, report["error"]
    spec = get_model(model)
    assert (report["spec_params"], report["spec_buffers"]) == (spec.params, spec.buffers)
    assert report["params"] == spec.params, "trainable parameter count differs from the spec"
    assert report["buffers"] == spec.buffers, "batch-norm running statistics differ from the spec"
    assert report["max_error"] <= report["tolerance"] == spec.tolerance, (
        f"max relative error {report['max_error']:.3g} > {report['tolerance']:g}"
    )
    assert report["verified"]


_REPORTS: dict[str, dict[tuple[str, str], dict[str, Any]]] = {}


def _variant_reports(client: Any, variant: str) -> dict[tuple[str, str], dict[str, Any]]:
    """Every (mode, model) of CELLS for ``variant``, checked in one container of its image (one import of the
    framework, each model's weights and reference made once), the first time a test asks."""
    if variant not in _REPORTS:
        v = _variant(variant)
        modes = sorted({mode for name, mode, _ in CELLS if name == variant})
        command = ["python", "-m", "frameworks.check", "--framework", v.framework, "--model", *MODELS,
                   "--mode", *modes, "--seed", "3"]  # fmt: skip
        _REPORTS[variant] = parse_lines(run_in_image(client, v, command))
    return _REPORTS[variant]


FACTS_SCRIPT = """
import json, sys
from frameworks.backends.registry import BuildOptions, load_backend
from frameworks.models import get_model
from frameworks.verify import verification_input
from frameworks.weights import canonical_weights
framework, mode = sys.argv[1:3]
backend = load_backend(framework)
spec = get_model("lenet5")
built = backend.build(spec, canonical_weights(spec, 0), BuildOptions(mode, "cpu", threads=0, batch=1))
built.forward(verification_input(spec, 1, 0))
print(json.dumps(backend.build_facts()))
"""

# What each bullseye variant's math library in effect must be, as its process states it.
IN_EFFECT_EXPECTED = {
    ("cpu-caffe-atlas", "net"): "ATLAS",
    ("cpu-caffe-openblas", "net"): "OpenBLAS",
    ("cpu-caffe-mkl", "net"): "MKL",
    ("cpu-chainer-openblas", "numpy"): "OpenBLAS",
    ("cpu-chainer-mkl", "numpy"): "MKL",
    ("cpu-caffe2", "default"): "MKL",
    ("cpu-caffe2", "ideep"): "MKL-DNN (iDeep)",
}


@pytest.mark.docker
@pytest.mark.framework
@pytest.mark.parametrize(("variant", "mode"), [(v.name, m) for v in bullseye_variants() for m in v.modes])
def test_build_facts_state_the_math_library_loaded(docker_client: Any, variant: str, mode: str) -> None:
    """The BLAS proof: the build facts name the library the process has mapped (Caffe: exactly the one
    the image pointed libblas.so.3 at, never another), not the image's name."""
    v = _variant(variant)
    facts = last_json(run_in_image(docker_client, v, ["python", "-c", FACTS_SCRIPT, v.framework, mode]))
    assert_short_facts(facts)
    expected = IN_EFFECT_EXPECTED.get((variant, mode))
    if expected is not None:
        assert facts[IN_EFFECT] == expected, facts
    if v.framework == "caffe":
        blas = v.image.build_args["BLAS"]
        assert all(blas in name for name in facts["blas_loaded"].split(",")), f"another BLAS is mapped too: {facts}"
        assert facts["image_blas"] == v.image.build_args["BLAS"]
    if v.framework == "nnabla":
        assert facts["context"].startswith("cpu"), facts


IMPORT_SCRIPT = """
import importlib, json, pkgutil, sys
import frameworks
problems = {}
for info in pkgutil.walk_packages(frameworks.__path__, "frameworks."):
    if info.name.endswith(".__main__"):  # a command line: it runs when imported
        continue
    try:
        importlib.import_module(info.name)
    except ModuleNotFoundError as exc:  # another framework's package (onnx, keras, caffe in the NNabla image): fine
        if not exc.name or exc.name.split(".")[0] == "frameworks":
            problems[info.name] = f"{type(exc).__name__}: {exc}"
    except Exception as exc:
        problems[info.name] = f"{type(exc).__name__}: {exc}"
print(json.dumps({"python": sys.version.split()[0], "problems": problems}))
"""


@pytest.mark.docker
@pytest.mark.parametrize("image", sorted({v.image.name for v in bullseye_variants()}))
def test_every_frameworks_module_imports_on_the_images_python(docker_client: Any, image: str) -> None:
    """No 3.10+ syntax or runtime construct (``X | Y`` evaluated, ``zip(strict=)``, slots dataclasses)
    in any module: each one imports under the image's Python 3.9, except a backend whose framework is
    not in that image (a ModuleNotFoundError naming a package outside frameworks/)."""
    variant = next(v for v in bullseye_variants() if v.image.name == image)
    found = last_json(run_in_image(docker_client, variant, ["python", "-c", IMPORT_SCRIPT]))
    assert found["python"].startswith(variant.image.python + "."), found["python"]
    assert not found["problems"], found["problems"]


# --- on the host ----------------------------------------------------------------------------------------------


def _sources() -> list[Path]:
    return sorted(FRAMEWORKS_DIR.rglob("*.py"))


@pytest.mark.parametrize("path", _sources(), ids=lambda p: str(p.relative_to(REPO_ROOT)))
def test_frameworks_parse_as_python_39(path: Path) -> None:
    """The bullseye images run frameworks/ on Python 3.9: its grammar only (no match statement,
    no parenthesised context managers), and postponed annotations wherever a module annotates."""
    source = path.read_text(encoding="utf-8")
    tree = ast.parse(source, str(path), feature_version=PYTHON_39)
    annotated = any(
        (isinstance(node, (ast.AnnAssign, ast.arg)) and node.annotation is not None)
        or (isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.returns is not None)
        for node in ast.walk(tree)
    )
    if annotated:
        assert "from __future__ import annotations" in source, f"{path.name}: annotations without the future import"


def _runs_on_python_39(path: Path) -> bool:
    """Whether a bullseye image's cells can reach the module: not a backend of a framework whose images
    are all on bookworm, not the train scenario (no bullseye framework trains: asserted below). The
    NumPy reference is reached (verify.py), but its training half is not: its one ``zip(strict=)`` is
    in ``gradients``."""
    relative = path.relative_to(FRAMEWORKS_DIR).as_posix()
    if relative == "training.py":
        return False
    if relative.startswith("backends/") and relative.endswith("_backend.py"):
        name = relative[len("backends/") : -len("_backend.py")]
        return name in BULLSEYE_FRAMEWORKS
    return True


BULLSEYE_FRAMEWORKS = ("caffe", "caffe2", "chainer", "nnabla")
RUNTIME_3_10 = {"zip": {"strict"}, "dataclass": {"slots", "kw_only"}}


def test_no_3_10_call_keywords_where_python_39_runs() -> None:
    """What parses on 3.9 but fails there at run time: ``zip(strict=...)``, ``dataclass(slots=/kw_only=)``
    (the latter anywhere: it fails at import)."""
    assert all(not FRAMEWORKS[f].train_modes for f in BULLSEYE_FRAMEWORKS), "a bullseye framework trains now"
    bad = []
    for path in _sources():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call):
                continue
            name = node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", "")
            words = {str(k.arg) for k in node.keywords} & RUNTIME_3_10.get(name, set())
            if not words:  # (the enclosing function is looked up only for the few calls that have such words)
                continue
            if name == "dataclass" or (_runs_on_python_39(path) and "gradients" not in _enclosing(path, node)):
                bad.append(f"{path.relative_to(REPO_ROOT)}:{node.lineno}: {name}({', '.join(sorted(words))}=)")
    assert not bad, "\n".join(bad)


def _enclosing(path: Path, call: ast.Call) -> str:
    """The name of the function that holds ``call`` (innermost), or "" at module level."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = [
        node.name
        for node in ast.walk(tree)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
        and node.lineno <= call.lineno <= (node.end_lineno or node.lineno)
    ]
    return names[-1] if names else ""


def test_every_bullseye_image_names_its_release_and_python() -> None:
    images = [v.image for v in (*bullseye_variants(), *bullseye_variants(available=False))]
    assert {i.framework for i in images} == set(BULLSEYE_FRAMEWORKS)
    assert all(i.python == "3.9" for i in images)


def test_chainer_ideep_is_unavailable_with_the_attempts_error() -> None:
    (variant,) = [v for v in bullseye_variants(available=False) if v.framework == "chainer"]
    assert variant.modes == ("ideep",)
    assert variant.unavailable is not None and "ideep4py" in variant.unavailable
    assert "No matching distribution found" in variant.unavailable
    assert variant.unavailable_reason == f"unavailable: {variant.unavailable}"
