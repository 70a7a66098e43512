"""The framework registry reads each backend module's declaration without importing the framework."""

from __future__ import annotations

import ast
import dataclasses
import importlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from frameworks.backends.registry import (
    BACKENDS_DIR,
    FRAMEWORKS,
    BuildOptions,
    TrainOptions,
    declared_framework,
    get_framework,
)
from frameworks.registry import Registry
from tests.conftest import require_framework, run_predict


def test_every_backend_module_is_registered_by_its_declaration() -> None:
    modules = sorted(p.stem.removesuffix("_backend") for p in BACKENDS_DIR.glob("*_backend.py"))
    assert sorted(FRAMEWORKS) == modules
    for info in FRAMEWORKS.values():
        assert info.module == f"frameworks.backends.{info.name}_backend" and info.title and info.modes
        assert all(a in info.modes and b in info.modes for a, b in info.comparisons())


@pytest.mark.framework
@pytest.mark.parametrize("framework", list(FRAMEWORKS))
def test_the_declaration_read_from_source_is_the_modules_own(framework: str) -> None:
    """What the host reads statically equals what the module defines when imported."""
    python = require_framework(framework)
    module = FRAMEWORKS[framework].module
    if python == sys.executable:  # imported here (the framework's tests in this process import it anyway)
        imported = json.loads(json.dumps(dataclasses.asdict(importlib.import_module(module).FRAMEWORK)))
    else:
        code = f"import dataclasses, json, {module} as m; print(json.dumps(dataclasses.asdict(m.FRAMEWORK)))"
        root = BACKENDS_DIR.parents[1]
        out = subprocess.run([python, "-c", code], capture_output=True, text=True, check=True, cwd=root)
        imported = json.loads(out.stdout)
    declared = dataclasses.asdict(get_framework(framework))
    declared["module"] = ""  # the declaration in the module leaves it to discovery
    assert imported == json.loads(json.dumps(declared))


@pytest.mark.parametrize("framework", list(FRAMEWORKS))
def test_the_shared_check_refuses_what_the_declaration_lacks_and_names_the_valid_ones(framework: str) -> None:
    info = FRAMEWORKS[framework]
    for mode in info.modes:
        for device in info.devices:
            info.check(BuildOptions(mode, device))
    with pytest.raises(ValueError, match=f"unknown {framework} mode 'nope'; valid modes: {', '.join(info.modes)}$"):
        info.check(BuildOptions("nope"))
    with pytest.raises(ValueError, match=f"unknown device 'tpu'; valid devices: {', '.join(info.devices)}$"):
        info.check(BuildOptions(info.modes[0], "tpu"))
    for mode in info.modes:
        if mode in info.train_modes:
            info.check(TrainOptions(mode))
        else:
            with pytest.raises(ValueError, match=f"unknown {framework} training mode {mode!r}; valid training modes"):
                info.check(TrainOptions(mode))


def _first_call(function: ast.FunctionDef) -> str:
    body = [s for s in function.body if not (isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant))]
    return ast.unparse(body[0]) if body else ""


@pytest.mark.parametrize("framework", list(FRAMEWORKS))
def test_every_build_and_trainer_starts_with_the_shared_check(framework: str) -> None:
    """The one check runs before a backend touches its framework, in build and in train alike."""
    source = BACKENDS_DIR.parents[1].joinpath(*FRAMEWORKS[framework].module.split(".")).with_suffix(".py")
    tree = ast.parse(source.read_text())
    functions = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}
    assert _first_call(functions["build"]) == "FRAMEWORK.check(options)"
    if FRAMEWORKS[framework].train_modes:
        trainers = [n for n in ast.walk(tree) if isinstance(n, ast.ClassDef) and n.name.endswith("Trainer")]
        starts = {_first_call(functions["train"])} | {
            _first_call(f) for c in trainers for f in c.body if isinstance(f, ast.FunctionDef) and f.name == "__init__"
        }
        assert "FRAMEWORK.check(options)" in starts, starts


def test_a_declaration_that_is_not_literal_is_one_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "odd_backend.py"
    path.write_text(
        'MODES = ("a",)\nFRAMEWORK = FrameworkInfo(name="odd", title="Odd", import_name="odd", modes=MODES)\n'
    )
    with pytest.raises(ValueError, match="literal keyword arguments"):
        declared_framework(path)
    path.write_text("x = 1\n")
    with pytest.raises(ValueError, match="no FRAMEWORK = FrameworkInfo"):
        declared_framework(path)
    path.write_text('FRAMEWORK = FrameworkInfo(name="odd", title="Odd", import_name="odd", modes=("a",), '
                    'mode_pairs=(("a", "b"),))\n')  # fmt: skip
    with pytest.raises(ValueError, match="mode_pairs name modes it does not have"):
        declared_framework(path)


def test_the_generic_registry() -> None:
    reg: Registry[int] = Registry("widget")
    reg.register("a", 1)
    with pytest.raises(ValueError, match="already registered"):
        reg.register("a", 2)
    assert reg.register("a", 3, replace=True) == 3
    with reg.temporary():
        reg.register("b", 4)
        assert list(reg) == ["a", "b"]
    assert list(reg) == ["a"] and reg["a"] == 3
    with pytest.raises(KeyError, match="unknown widget 'b'; valid widgets: a"):
        reg.get_entry("b")


def test_an_unknown_framework_lists_every_registered_one() -> None:
    proc = run_predict(sys.executable, "--framework", "nosuch", "--model", "lenet5")
    assert proc.returncode == 2 and f"valid frameworks: {', '.join(FRAMEWORKS)}" in proc.stderr
