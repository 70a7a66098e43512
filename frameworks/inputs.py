"""The canonical inputs of a model, computed once per run and handed to every cell read-only.

Generating VGG-16's 138 M canonical weights and its float64 NumPy reference output takes seconds
that are the same for every cell of the model; a matrix used to spend them 16 times over. The
runner writes them once (``python -m frameworks.inputs``, into a cache directory), and each cell
gets the directory and the sha256 of its manifest (``predict --inputs DIR --inputs-sha256 H``):
the cell checks the manifest against that hash and every file it reads against the manifest, so
a mismatch fails the cell instead of measuring other weights. The cell still verifies its own
first output against the reference.

Layout of one directory (one model and seed): ``manifest.json`` (file name -> sha256, and what
it was made from), one ``<tensor key>.npy`` per canonical tensor (memory-mapped read-only: the
backends copy what they convert), and ``reference.npy``, the float64 reference output for the
verification input of the largest batch any cell needs. The verification input of a smaller
batch is a prefix of the larger one's (one random stream, drawn in order), so its reference is a
prefix too.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tempfile
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .models import ModelSpec, get_model
from .options import UsageError, add_transform_options, transform_points
from .transforms import NONE, TransformPoint

if TYPE_CHECKING:
    from .result import Transformed

MANIFEST = "manifest.json"
REFERENCE = "reference.npy"
TEST_X, TEST_Y = "test_x.npy", "test_y.npy"  # the test split, for transformed trained weights (accuracy in the cell)
FORMAT = 3  # 2: transformed trained weights come with the test split; 3: a transform's data (data.<name>.npy)
DATA = "data."


class InputsMismatch(RuntimeError):
    """Handed inputs that are not what the runner made: the cell fails with this message."""


def directory_name(spec: ModelSpec, seed: int, point: TransformPoint | None = None) -> str:
    """One directory per model (as specified: a changed spec is another directory), seed and transform."""
    digest = hashlib.sha256(repr(spec).encode()).hexdigest()[:12]
    tail = ""
    if point is not None and point.name != NONE:
        tail = "".join(f"-{v}" for v in (point.name, *point.config.to_strings().values()))
    return f"{spec.name}-seed{seed}-{digest}{tail}"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


# --- writing (the runner, once per run) --------------------------------------------------------------


def write_inputs(
    root: Path, spec: ModelSpec, seed: int, batch: int, point: TransformPoint | None = None
) -> tuple[Path, str]:
    """The directory for (spec, seed, transform) holding a reference for at least ``batch`` images, and its
    manifest's sha256. Reused when a complete one is there already (same spec, seed, transform, at least this batch).

    With a weights-level transform the directory holds the weights it made, the reference on them and,
    in the manifest, what it did (``Transformed``): the cell's key needs its weights' sha256 before it runs.
    """
    from .verify import compute_reference
    from .weights import generate_weights

    point = point if point is not None and point.name != NONE else None
    apply = None
    if point is not None:
        from .harness import transformed_record

        apply = point.transform.apply
        if apply is None:
            raise ValueError(f"the {point.name} transform makes no weights")
        network = point.transform.network(spec, point.config)
    else:
        network = spec
    directory = root / directory_name(network, seed, point)
    current = _complete(directory, batch)
    if current is not None:
        return directory, current
    directory.mkdir(parents=True, exist_ok=True)
    record = None
    arrays: dict[str, np.ndarray] = {}
    if point is not None and apply is not None:
        from .harness import transform_reference

        made = apply(spec, seed, point.config)
        weights, record, arrays = made.weights, transformed_record(point, made), made.arrays
        reference = transform_reference(point, network, weights, arrays, batch, seed, record.source == "trained")
    else:
        weights = generate_weights(spec, seed)
        reference = compute_reference(network, batch, seed, weights)
    files: dict[str, str] = {}
    for key, array in weights.items():
        files[f"{key}.npy"] = _save(directory / f"{key}.npy", array)
    for name, array in arrays.items():  # a transform's data (int8: calibration images and scales)
        files[f"{DATA}{name}.npy"] = _save(directory / f"{DATA}{name}.npy", array)
    files[REFERENCE] = _save(directory / REFERENCE, reference)
    if record is not None and record.source == "trained":  # the cell measures test accuracy: images lack the dataset
        from .datasets import test_split

        test = test_split()
        files[TEST_X], files[TEST_Y] = _save(directory / TEST_X, test.x), _save(directory / TEST_Y, test.y)
    manifest: dict[str, object] = {"format": FORMAT, "model": spec.name, "seed": seed, "batch": batch, "files": files}
    if record is not None:
        manifest["transform"] = asdict(record)
    text = json.dumps(manifest, sort_keys=True, indent=1) + "\n"
    _atomic(directory / MANIFEST, text.encode())
    return directory, hashlib.sha256(text.encode()).hexdigest()


def _complete(directory: Path, batch: int) -> str | None:
    """The manifest's sha256 when the directory already holds everything for ``batch``, else None."""
    try:
        data = (directory / MANIFEST).read_bytes()
        manifest = json.loads(data)
    except (OSError, ValueError):
        return None
    if manifest.get("format") != FORMAT or manifest.get("batch", 0) < batch:
        return None
    files = manifest.get("files", {})
    if not all((directory / name).is_file() and sha256_file(directory / name) == sha for name, sha in files.items()):
        return None  # damaged: made again (a second of hashing per run, against a run of failed cells)
    return hashlib.sha256(data).hexdigest()


def _save(path: Path, array: np.ndarray) -> str:
    with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".tmp", delete=False) as tmp:
        np.save(tmp, np.ascontiguousarray(array), allow_pickle=False)
    os.chmod(tmp.name, 0o644)  # readable by the cells' unprivileged user, writable by nobody but its maker
    os.replace(tmp.name, path)
    return sha256_file(path)


def _atomic(path: Path, data: bytes) -> None:
    with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".tmp", delete=False) as tmp:
        tmp.write(data)
    os.chmod(tmp.name, 0o644)
    os.replace(tmp.name, path)


# --- reading (every cell) ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Handed:
    """Inputs a cell was handed: the directory and the manifest's expected sha256."""

    directory: Path
    sha256: str

    def manifest(self) -> dict[str, object]:
        return _manifest(self.directory, self.sha256)

    def matches(self, spec: ModelSpec, seed: int, point: TransformPoint | None = None) -> bool:
        return self.directory.name == directory_name(spec, seed, point)

    def load(self, name: str) -> np.ndarray:
        """One file, checked against the manifest, memory-mapped read-only."""
        files = self.manifest().get("files")
        expected = files.get(name) if isinstance(files, dict) else None
        path = self.directory / name
        if expected is None:
            raise InputsMismatch(f"inputs: {name} is not in {self.directory / MANIFEST}")
        found = sha256_file(path)
        if found != expected:
            raise InputsMismatch(f"inputs: {path} has sha256 {found[:16]}…, its manifest says {str(expected)[:16]}…")
        return np.load(path, mmap_mode="r", allow_pickle=False)


@lru_cache(maxsize=8)
def _manifest(directory: Path, sha256: str) -> dict[str, object]:
    """The manifest, once its own sha256 is the one the runner handed over."""
    path = directory / MANIFEST
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputsMismatch(f"inputs: cannot read {path}: {exc.strerror or exc}") from None
    found = hashlib.sha256(data).hexdigest()
    if found != sha256:
        raise InputsMismatch(f"inputs: {path} has sha256 {found[:16]}…, the runner made {sha256[:16]}…")
    manifest: dict[str, object] = json.loads(data)
    return manifest


_handed: Handed | None = None


def hand(directory: str, sha256: str) -> None:
    """Use these inputs in this process (predict's ``--inputs``; a sweep passes them to its points)."""
    global _handed
    _handed = Handed(Path(directory), sha256)


def handed() -> Handed | None:
    return _handed


def handed_weights(spec: ModelSpec, seed: int) -> dict[str, np.ndarray] | None:
    """The canonical weights from the handed directory, or None when none was handed for this model."""
    if _handed is None or not _handed.matches(spec, seed):
        return None
    return {key: _handed.load(f"{key}.npy") for key in spec.tensors()}


def handed_reference(spec: ModelSpec, batch: int, seed: int) -> np.ndarray | None:
    """The reference for ``batch`` images (a prefix of the stored one), or None when none was handed."""
    if _handed is None or not _handed.matches(spec, seed):
        return None
    return _reference_prefix(_handed, batch)


def _reference_prefix(handed: Handed, batch: int) -> np.ndarray:
    reference = handed.load(REFERENCE)
    if reference.shape[0] < batch:
        raise InputsMismatch(f"inputs: the reference holds {reference.shape[0]} images, batch {batch} needs more")
    return reference[:batch]


def handed_test_split() -> tuple[np.ndarray, np.ndarray] | None:
    """The test images and labels the runner handed with transformed trained weights, or None (checked by sha256)."""
    if _handed is None:
        return None
    files = _handed.manifest().get("files")
    if not isinstance(files, dict) or TEST_X not in files:
        return None
    return _handed.load(TEST_X), _handed.load(TEST_Y)


def handed_record(point: TransformPoint, network: ModelSpec, seed: int) -> Transformed | None:
    """The transform record the runner made for this point (its manifest's), or None when none was handed."""
    from .result import parse_transformed

    if _handed is None or not _handed.matches(network, seed, point):
        return None
    return parse_transformed(_handed.manifest().get("transform"))


def handed_transformed(
    point: TransformPoint, network: ModelSpec, batch: int, seed: int
) -> tuple[dict[str, np.ndarray], np.ndarray, Transformed, dict[str, np.ndarray]] | None:
    """A transform's weights, reference, record and data from the handed directory, or None when
    none was handed for this model, seed and transform (the cell then makes them itself)."""
    from .result import parse_transformed

    if _handed is None or not _handed.matches(network, seed, point):
        return None
    record = parse_transformed(_handed.manifest().get("transform"))
    if record.name != point.name or record.config != point.config.to_strings():
        raise InputsMismatch(f"inputs: {_handed.directory} holds {record.name} {record.config}, not {point.label()}")
    weights = {key: _handed.load(f"{key}.npy") for key in network.tensors()}
    files = _handed.manifest().get("files")
    names = [n for n in files if n.startswith(DATA)] if isinstance(files, dict) else []
    arrays = {n[len(DATA) : -len(".npy")]: _handed.load(n) for n in names}
    return weights, _reference_prefix(_handed, batch), record, arrays


def main(argv: list[str] | None = None) -> int:
    """``python -m frameworks.inputs --root DIR --model M --seed S --batch B``: print the directory and sha256."""
    parser = argparse.ArgumentParser(prog="python -m frameworks.inputs", description=main.__doc__)
    parser.add_argument("--root", type=Path, required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch", type=int, default=1)
    add_transform_options(parser)
    args = parser.parse_args(argv)
    try:
        spec = get_model(args.model)
        points = transform_points(args)
        if len(points) != 1:
            raise UsageError("inputs are made for one transform point at a time")
    except (KeyError, UsageError) as exc:
        print(f"error: {exc.args[0]}", file=sys.stderr)
        return 2
    point = points[0]
    directory, sha = write_inputs(args.root, spec, args.seed, max(1, args.batch), point)
    answer: dict[str, object] = {"directory": str(directory), "sha256": sha}
    if point.name != NONE:
        record = json.loads((directory / MANIFEST).read_text(encoding="utf-8"))["transform"]
        from .result import parse_transformed

        answer["transform_key"] = [list(pair) for pair in parse_transformed(record).key()]
    print(json.dumps(answer))
    return 0


if __name__ == "__main__":
    sys.exit(main())
