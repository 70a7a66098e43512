"""The framework registry reads each backend module's declaration without importing the framework."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest

from frameworks.backends.registry import BACKENDS_DIR, FRAMEWORKS, declared_framework, get_framework
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
    code = (f"import dataclasses, json, {FRAMEWORKS[framework].module} as m; "
            "print(json.dumps(dataclasses.asdict(m.FRAMEWORK)))")  # fmt: skip
    out = subprocess.run([python, "-c", code], capture_output=True, text=True, check=True, cwd=BACKENDS_DIR.parents[1])
    imported = json.loads(out.stdout)
    declared = dataclasses.asdict(get_framework(framework))
    declared["module"] = ""  # the declaration in the module leaves it to discovery
    assert imported == json.loads(json.dumps(declared))


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
