"""The variant catalog: the real one loads, every malformed one is a one-line CatalogError, hashes move."""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path
from typing import Any

import pytest
import tomllib

import runner.source as source_module
from frameworks.backends.registry import DEVICES, FRAMEWORKS
from runner.catalog import CATALOG_PATH, CatalogError, ImageSpec, load_catalog, parse_catalog


@pytest.fixture(scope="module")
def raw() -> dict[str, Any]:
    return tomllib.loads(CATALOG_PATH.read_text(encoding="utf-8"))


def test_real_catalog_loads() -> None:
    catalog = load_catalog()
    assert catalog.variants and catalog.images
    for variant in catalog.variants.values():
        assert variant.name.startswith(f"{variant.device}-{variant.framework}")
        assert set(variant.modes) <= set(FRAMEWORKS[variant.framework].modes)
        assert variant.device in DEVICES
    for image in catalog.images.values():
        assert all("==" in r for r in image.requirements)
        assert image.tag == f"dlbench/{image.name}:latest"


def test_every_image_is_used_and_every_cpu_framework_has_a_variant() -> None:
    catalog = load_catalog()
    used = {v.image.name for v in catalog.variants.values()}
    assert used == set(catalog.images)
    assert {v.framework for v in catalog.select(device="cpu")} == set(FRAMEWORKS)


def test_select_filters_by_name_and_device() -> None:
    catalog = load_catalog()
    assert [v.name for v in catalog.select(["cpu-torch"])] == ["cpu-torch"]
    assert all(v.device == "cuda" for v in catalog.select(device="cuda"))
    with pytest.raises(CatalogError, match="unknown variant 'nope'; valid variants: cpu-"):
        catalog.select(["nope"])


def _error(data: dict[str, Any]) -> str:
    with pytest.raises(CatalogError) as info:
        parse_catalog(data, "cat.toml")
    message = str(info.value)
    assert "\n" not in message, "a catalog error is one line"
    return message


def _broken(raw: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A deep copy of the catalog with the value at dotted ``path`` replaced (None deletes it)."""
    data = copy.deepcopy(raw)
    *parents, last = path.split(".")
    table = data
    for key in parents:
        table = table[key]
    if value is None:
        del table[last]
    else:
        table[last] = value
    return data


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        (
            "images.torch.framework",
            "theano",
            "images.torch: unknown framework 'theano'; valid frameworks: caffe2, caffe",
        ),
        ("images.caffe-atlas.release", "buster", "unknown release 'buster'; valid releases: bookworm, bullseye"),
        ("images.caffe-atlas.python", "3.11", "python '3.11' is not bullseye's python3 (3.9)"),
        ("defaults.release", "sid", "images.numpy-openblas: unknown release 'sid'"),
        ("variants.cpu-chainer-ideep.unavailable", " ", "cpu-chainer-ideep.unavailable must be the attempt's error"),
        ("images.torch.device", "tpu", "images.torch: unknown device 'tpu'"),
        ("images.torch.requirements", ["torch>=2"], "requirement 'torch>=2' is not pinned"),
        ("images.torch.requirements", "torch==2.13.0", "images.torch.requirements must be a list of strings"),
        ("images.torch.dockerfile", "docker/Nope.Dockerfile", "dockerfile 'docker/Nope.Dockerfile' not found"),
        ("images.torch.colour", "red", "images.torch: unknown key(s) colour"),
        ("images.torch.requirements", None, "images.torch: missing 'requirements'"),
        ("variants.cpu-torch.image", "pytorch", "variants.cpu-torch: unknown image 'pytorch'; valid images:"),
        ("variants.cpu-torch.modes", ["eager", "graph"], "unknown mode 'graph' for torch; valid modes: eager"),
        ("variants.cpu-torch.env", {"A": 1}, "variants.cpu-torch.env must be a table of strings"),
        ("variants.cpu-torch.image", "tensorflow", "name must be <device>-<framework>[-<build>]"),
        ("schema", 2, "schema must be 1, got 2"),
        ("flavour", "x", "unknown top-level key(s) flavour"),
    ],
)
def test_malformed_entries_are_one_line_errors(raw: dict[str, Any], path: str, value: Any, expected: str) -> None:
    message = _error(_broken(raw, path, value))
    assert message.startswith("cat.toml: ")
    assert expected in message


def test_bad_names_and_no_variants(raw: dict[str, Any]) -> None:
    data = copy.deepcopy(raw)
    data["variants"]["CPU_Torch"] = data["variants"]["cpu-torch"]
    assert "lower-case letters, digits and dashes" in _error(data)
    assert "no variants" in _error(_broken(raw, "variants", {}))


def test_malformed_toml_and_missing_file(tmp_path: Path) -> None:
    bad = tmp_path / "catalog.toml"
    bad.write_text('schema = 1\n[images.torch\nframework = "torch"\n', encoding="utf-8")
    with pytest.raises(CatalogError, match=r"catalog.toml: not valid TOML") as info:
        load_catalog(bad)
    assert "\n" not in str(info.value)
    with pytest.raises(CatalogError, match="catalog not found"):
        load_catalog(tmp_path / "missing.toml")


def test_defaults_base_image_applies(raw: dict[str, Any]) -> None:
    data = _broken(raw, "defaults.base_image", "dlbench/base:bookworm")
    own = {name for name, t in raw["images"].items() if "base_image" in t}  # the bullseye images name theirs
    images = parse_catalog(data).images.values()
    assert {i.base_image for i in images if i.name not in own} == {"dlbench/base:bookworm"}
    assert {i.release for i in images if i.name in own} == {"bullseye"}


# --- spec hashes: what makes the runner rebuild ---------------------------------------------------


def test_spec_hash_is_stable_and_moves_with_the_entry() -> None:
    image = load_catalog().images["torch"]
    assert image.spec_hash() == load_catalog().images["torch"].spec_hash()
    assert len(image.spec_hash()) == 16
    for change in (
        {"requirements": ("torch==2.12.0", "numpy==2.4.6")},
        {"apt": ()},
        {"base_image": "dlbench/base:bookworm"},
        {"build_args": {"PYTHON_HEADERS": "0"}},
    ):
        assert dataclasses.replace(image, **change).spec_hash() != image.spec_hash(), change


def test_spec_hash_covers_the_dockerfile_and_frameworks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "docker").mkdir()
    (tmp_path / "frameworks" / "__pycache__").mkdir(parents=True)
    dockerfile = tmp_path / "docker" / "Dockerfile"
    dockerfile.write_text("FROM scratch\n", encoding="utf-8")
    module = tmp_path / "frameworks" / "predict.py"
    module.write_text("x = 1\n", encoding="utf-8")
    monkeypatch.setattr(source_module, "SOURCE_ROOT", tmp_path)
    image = ImageSpec("x", "docker/Dockerfile", "numpy", "cpu", ("numpy==2.4.6",))
    first = image.spec_hash()
    (tmp_path / "frameworks" / "__pycache__" / "predict.cpython-311.pyc").write_bytes(b"\0")
    assert image.spec_hash() == first, "bytecode is not baked in"
    module.write_text("x = 2\n", encoding="utf-8")
    second = image.spec_hash()
    assert second != first
    dockerfile.write_text("FROM scratch\nUSER 1\n", encoding="utf-8")
    assert image.spec_hash() != second
