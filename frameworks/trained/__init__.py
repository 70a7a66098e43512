"""Trained weights: the committed LeNet-5 trained on Fashion-MNIST, and the train scenario's exports.

``lenet5-fashion-mnist.npz`` is a weights file the train scenario produced (canonical layout, the
deterministic .npz of ``frameworks.training.npz_bytes``), committed with its manifest
``lenet5-fashion-mnist.json``: its sha256, the command that made it and what that run reported.
``--weights trained`` (the latency scenario) runs every LeNet-5 cell on it and measures the test
accuracy inside the framework; the file is checked against its sha256 before anything uses it.

``extract_weights`` is how a train cell's weights leave its result: predict prints them inside
the result line (base64), and the runner writes them to ``RUN_DIR/weights/<cell>.npz`` (sha256
checked) and records that path instead. Standard library only, except for reading the arrays.

``python -m frameworks.trained make --framework F --mode M --epochs N`` trains and writes both files.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import shlex
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

    from ..models import ModelSpec
    from ..result import Result

HERE = Path(__file__).resolve().parent
WEIGHTS_DIR = "weights"  # RUN_DIR/weights/: the train cells' exported weights
FILES = {"lenet5": "lenet5-fashion-mnist"}  # model -> the committed file's stem (.npz and .json)


class WeightsMismatch(RuntimeError):
    """A weights file that is not what its manifest or its result says."""


@dataclass(frozen=True)
class Manifest:
    model: str
    path: Path
    sha256: str
    command: str
    facts: dict[str, Any]


class TrainedMissing(RuntimeError):
    """Committed trained weights that are not where the package keeps them: one line, never the seeded
    weights in their place (a cell asked for trained weights measures them, or fails saying why)."""


def has_trained(model: str) -> bool:
    """Whether the project has committed trained weights for ``model``; whether they are here is
    ``trained_missing``'s question (a missing file is an error, not a model without trained weights)."""
    return model in FILES


def trained_missing(model: str) -> str | None:
    """Why ``model``'s committed trained weights cannot be read here (one line), or None."""
    if model not in FILES:
        return None
    path = HERE / f"{FILES[model]}.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        path = HERE / str(data["file"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return f"the trained weights of {model} are not readable: {path}: {getattr(exc, 'strerror', None) or exc}"
    if not path.is_file():
        return f"the trained weights of {model} are not readable: {path}: No such file or directory"
    return None


def manifest(model: str) -> Manifest:
    problem = trained_missing(model)
    if problem:
        raise TrainedMissing(problem)
    stem = FILES[model]
    data = json.loads((HERE / f"{stem}.json").read_text(encoding="utf-8"))
    return Manifest(model, HERE / data["file"], str(data["sha256"]), str(data["command"]), dict(data))


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def trained_weights(spec: ModelSpec) -> dict[str, np.ndarray]:
    """The committed trained weights of ``spec`` (its tensors, its shapes), once their sha256 is the manifest's."""
    from ..training import read_npz

    entry = manifest(spec.name)
    data = entry.path.read_bytes()
    found = sha256_bytes(data)
    if found != entry.sha256:
        raise WeightsMismatch(f"{entry.path} has sha256 {found[:16]}…, its manifest says {entry.sha256[:16]}…")
    return read_npz(data, spec)


def extract_weights(result: Result, run_dir: Path) -> Result:
    """A train result with its weights moved to ``run_dir/weights/<cell>.npz`` (sha256 checked); others as they are."""
    training = result.training
    if training is None or training.weights_npz is None:
        return result
    data = base64.b64decode(training.weights_npz.encode("ascii"), validate=True)
    if sha256_bytes(data) != training.weights_sha256:
        raise WeightsMismatch(f"{result.cell}: the weights in the result do not have the sha256 it states")
    name = "".join(c if c.isalnum() or c in "-_." else "_" for c in result.cell) + ".npz"
    relative = Path(WEIGHTS_DIR) / name
    (run_dir / WEIGHTS_DIR).mkdir(parents=True, exist_ok=True)
    (run_dir / relative).write_bytes(data)
    return replace(result, training=replace(training, weights_npz=None, weights_file=str(relative)))


def make(argv: list[str]) -> int:
    """Train one framework mode with the train scenario and commit its weights with a manifest."""
    parser = argparse.ArgumentParser(prog="python -m frameworks.trained make", description=make.__doc__)
    parser.add_argument("--framework", default="torch")
    parser.add_argument("--mode", default="eager")
    parser.add_argument("--model", default="lenet5")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--out", type=Path, default=HERE, help="where the .npz and .json go (default: this package)")
    args = parser.parse_args(argv)
    from ..predict import set_thread_env

    threads = set_thread_env(args.threads)
    from ..harness import CellRequest, run_cell
    from ..scenarios.train import TrainConfig

    result = run_cell(CellRequest(args.framework, args.model, args.mode, threads=threads), "train",
                      TrainConfig(epochs=args.epochs))  # fmt: skip
    if result.status != "ok" or result.training is None or result.training.weights_npz is None:
        print(f"error: training failed: {result.error}", file=sys.stderr)
        return 1
    data = base64.b64decode(result.training.weights_npz)
    stem = FILES[args.model]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{stem}.npz").write_bytes(data)
    t = result.training
    entry = {
        "model": args.model,
        "file": f"{stem}.npz",
        "sha256": sha256_bytes(data),
        "command": "python -m frameworks.trained make " + shlex.join(argv),
        "framework": result.framework,
        "mode": result.mode,
        "version": result.version,
        "threads": threads,
        "dataset": t.dataset,
        "dataset_sha256": t.dataset_sha256,
        "input_shape": list(result.input_shape[1:]),
        "params": result.params,
        "epochs": len(t.epochs),
        "batch_size": result.batch,
        "config": result.config,
        "initial_weights_sha256": t.initial_weights_sha256,
        "order_sha256": t.order_sha256,
        "test_accuracy_per_epoch": [e.test_accuracy for e in t.epochs],
        "final_test_accuracy": t.final_accuracy,
        "made_at": result.finished_at,
    }
    (args.out / f"{stem}.json").write_text(json.dumps(entry, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    print(f"wrote {args.out / f'{stem}.npz'} (sha256 {entry['sha256'][:16]}…, test accuracy {t.final_accuracy:.4f})")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] != "make":
        print("usage: python -m frameworks.trained make [--framework F] [--mode M] [--epochs N]", file=sys.stderr)
        return 2
    return make(args[1:])
