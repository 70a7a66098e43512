"""Global unstructured L1 (magnitude) pruning of the canonical weights, and masked fine-tuning.

Framework-neutral on purpose: pruning acts on the canonical layout (``frameworks.models``), so every
backend converts a pruned network exactly as it converts a dense one, and a zero is a zero everywhere.

- What is pruned: the weight of every convolution (depthwise and grouped included) and dense layer
  (``prunable_keys``). Biases and batch-norm tensors never are: they are few, and a zeroed batch-norm
  variance or scale changes the function, not just its cost.
- How: one global threshold over all those weights together (not per layer), so that layers with many
  small weights give up more; ``round(target * all prunable weights)`` are zeroed, the smallest |w|
  first, ties broken by position in the concatenation of the flattened weights in layer order (what a
  stable argsort gives), so the result is bit-identical on every machine. Zeros already there count
  toward the target and stay zero: pruning a pruned network further keeps its earlier zeros.
- Above ``SPARE_ABOVE`` (0.8) the first convolution and the last dense layer are spared, as in the
  study this follows: they are small, and the input's and the classes' only paths. Sparing adds no new
  zeros there; the zeros earlier, lower targets made in them stay (a schedule only ever adds zeros).
- Fine-tuning (``fine_tune``): the project's own float32 NumPy trainer (``NumpyTrainer``, SGD with
  momentum), with the masks applied after every step to both the weights and the momentum buffers, so
  pruned weights stay exactly zero and no stale momentum waits behind them.

``python -m frameworks.pruning make`` runs ``SCHEDULE`` from the committed trained LeNet-5 (each step
prunes the previous step's fine-tuned weights further, then fine-tunes) and writes one
``sparsity-0.30.npz.gz`` per step and a ``manifest.json`` into ``lenet5-fashion-mnist-pruned/`` beside the
trained weights; ``pruned_weights`` reads a step back, once its sha256 is the manifest's.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import shlex
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .backends.registry import TrainOptions
from .datasets import Split
from .models import Conv, Dense, ModelSpec, Softmax

if TYPE_CHECKING:
    from .training import TrainData

Weights = dict[str, np.ndarray]
Masks = dict[str, np.ndarray]  # True: the weight is kept
Log = Callable[[str], None]

SCHEDULE = (0.3, 0.5, 0.7, 0.8, 0.9, 0.92)
SPARE_ABOVE = 0.8  # strictly above this target the first conv and the last dense layer are spared
GZIP_LEVEL = 9
MODEL = "lenet5"  # the one network trained on Fashion-MNIST, hence the one schedule made
OUT = Path(__file__).resolve().parent / "trained" / "lenet5-fashion-mnist-pruned"
MANIFEST = "manifest.json"
EVAL_BATCH = TrainOptions("im2col").eval_batch  # the train scenario's fixed test batch


# --- what is pruned ---------------------------------------------------------------------------------


def prunable_keys(spec: ModelSpec) -> tuple[str, ...]:
    """The weight keys of every conv (depthwise too) and dense layer, in layer order: the tensors whose
    multiply-adds a zero removes (biases and batch norm stay: few values, and not multiply-adds)."""
    return tuple(f"{layer.name}.weight" for layer, _, _ in spec.walk() if isinstance(layer, (Conv, Dense)))


def spared_keys(spec: ModelSpec, sparsity: float) -> tuple[str, ...]:
    """The keys left dense at ``sparsity``: above ``SPARE_ABOVE``, the first conv's and the last dense
    layer's weights (the study this follows spared them at high sparsity); else none."""
    check_sparsity(sparsity)
    if sparsity <= SPARE_ABOVE:
        return ()
    convs = [layer.name for layer in spec.layers if isinstance(layer, Conv)]
    denses = [layer.name for layer in spec.layers if isinstance(layer, Dense)]
    chosen = {f"{names[i]}.weight" for names, i in ((convs, 0), (denses, -1)) if names}
    return tuple(key for key in prunable_keys(spec) if key in chosen)


def check_sparsity(sparsity: float) -> None:
    """A target must leave something: [0, 1); NaN and anything else is a ``ValueError``."""
    if not (0.0 <= sparsity < 1.0):
        raise ValueError(f"sparsity must be in [0, 1) (the share of prunable weights zeroed), got {sparsity!r}")


# --- pruning ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Pruned:
    """Pruned weights (every tensor of the spec, float32) and their masks (prunable keys; True: kept, False:
    pruned, every zero included, so that fine-tuning keeps each one at zero)."""

    weights: Weights
    masks: Masks
    spared: tuple[str, ...]
    target: float
    sparsity: float  # counted: exact zeros over every prunable weight, spared layers included


def magnitude_prune(spec: ModelSpec, weights: Weights, sparsity: float, *, spare: bool = True) -> Pruned:
    """Zero weights of ``spec`` until ``round(sparsity * prunable weights)`` are zero, the smallest |w| of the
    non-spared prunable layers together first, ties in layer-then-row-major order.

    Zeros already there count toward the target and stay pruned (their mask is False), in spared layers too:
    each step of a schedule only adds zeros, and a layer spared above 0.8 keeps what earlier steps pruned
    (sparing it means no new zeros, not regrowing old ones in fine-tuning). ``spare=False`` spares nothing."""
    check_sparsity(sparsity)
    out = float32_copy(spec, weights)
    keys = prunable_keys(spec)
    spared = spared_keys(spec, sparsity) if spare else ()
    candidates = [key for key in keys if key not in spared]
    total = sum(out[key].size for key in keys)
    count = round(sparsity * total)
    spared_zeros = sum(out[key].size - int(np.count_nonzero(out[key])) for key in spared)
    size = sum(out[key].size for key in candidates)
    if count - spared_zeros > size:
        raise ValueError(
            f"{spec.name}: sparsity {sparsity:g} needs {count} of {total} prunable weights zero, but with "
            f"{', '.join(spared)} spared (above {SPARE_ABOVE:g}) at most {size + spared_zeros} can be: "
            "the target is unreachable"
        )
    masks = {key: out[key] != 0 for key in keys}
    if count - spared_zeros > 0:
        chosen = smallest(concatenated_magnitudes(out, candidates, size), count - spared_zeros)
        offset = 0
        for key in candidates:
            n = out[key].size
            masks[key] &= ~chosen[offset : offset + n].reshape(out[key].shape)
            np.copyto(out[key], 0, where=~masks[key])  # our copy: in place, +0.0
            offset += n
    return Pruned(out, masks, spared, float(sparsity), counted_sparsity(spec, out))


def float32_copy(spec: ModelSpec, weights: Weights) -> Weights:
    """Every tensor of ``spec`` as a fresh float32 array (the caller's stay untouched), shapes checked."""
    out: Weights = {}
    for key, shape in spec.tensors().items():
        if key not in weights:
            raise ValueError(f"{spec.name}: the weights have no {key!r}")
        array = np.array(weights[key], dtype=np.float32)
        if array.shape != shape:
            raise ValueError(f"{spec.name}: {key} has shape {array.shape}, the spec says {shape}")
        out[key] = array
    return out


def concatenated_magnitudes(weights: Weights, keys: Sequence[str], size: int) -> np.ndarray:
    """|w| of ``keys`` flattened and concatenated in order, written into one buffer (VGG-16: 550 MB once,
    not twice)."""
    flat = np.empty(size, dtype=np.float32)
    offset = 0
    for key in keys:
        n = weights[key].size
        np.abs(weights[key].ravel(), out=flat[offset : offset + n])
        offset += n
    return flat


def smallest(magnitudes: np.ndarray, count: int) -> np.ndarray:
    """A bool mask of the ``count`` smallest values, ties going to the lowest index: exactly the first
    ``count`` of a stable argsort, in O(n) (a selection, then one pass) rather than a 138 M-element sort."""
    threshold = np.partition(magnitudes, count - 1)[count - 1]
    if np.isnan(threshold):
        raise ValueError("the weights hold NaN where the pruning threshold falls: nothing to rank them by")
    chosen = magnitudes < threshold
    ties = count - int(np.count_nonzero(chosen))
    chosen[np.flatnonzero(magnitudes == threshold)[:ties]] = True
    return chosen


def counted_sparsity(spec: ModelSpec, weights: Weights) -> float:
    """Exact zeros over every prunable weight (spared layers in the denominator): what the file holds."""
    keys = prunable_keys(spec)
    total = sum(int(weights[key].size) for key in keys)
    zeros = sum(int(weights[key].size) - int(np.count_nonzero(weights[key])) for key in keys)
    return zeros / total


def gzip_bytes(data: bytes) -> bytes:
    """gzip at level 9 with no timestamp: the same bytes in every run, so a committed file only changes
    when its weights do."""
    return gzip.compress(data, compresslevel=GZIP_LEVEL, mtime=0)


def sizes(weights: Weights) -> tuple[int, int]:
    """Bytes of the deterministic .npz (``training.npz_bytes``) and of its gzip: unstructured zeros save
    nothing stored dense, and what a compressor makes of them is the size they can buy."""
    from .training import npz_bytes

    raw = npz_bytes(weights)
    return len(raw), len(gzip_bytes(raw))


# --- masked fine-tuning -----------------------------------------------------------------------------


def trainable(spec: ModelSpec) -> ModelSpec:
    """The network as it trains: without its final softmax (the loss takes logits); as it is if it has none."""
    from .training import logits_network

    return logits_network(spec) if spec.layers and isinstance(spec.layers[-1], Softmax) else spec


class MaskedTrainer:
    """The float32 NumPy trainer whose pruned weights stay exactly zero: after every step the masks zero
    the pruned weights and their momentum (the gradient of a zero weight is not zero; left in the momentum
    it would push the weight back the moment the mask is lifted, and ``velocity`` would not be the
    pruned network's)."""

    def __init__(self, spec: ModelSpec, weights: Weights, masks: Masks, options: TrainOptions) -> None:
        from .backends.numpy_backend import train

        network = trainable(spec)
        self.pruned = pruned_positions(network, masks)
        self.trainer = train(network, weights, options)
        self.apply_masks()

    def apply_masks(self) -> None:
        for key, pruned in self.pruned.items():
            np.copyto(self.trainer.state[key], 0, where=pruned)
            np.copyto(self.trainer.velocity[key], 0, where=pruned)

    def step(self, x: np.ndarray, y: np.ndarray) -> float:
        """One SGD step on a batch, then the masks; the batch's loss before the step."""
        loss = self.trainer.step(x, y, True)
        self.apply_masks()
        assert loss is not None
        return loss

    def weights(self) -> Weights:
        return self.trainer.weights()


def pruned_positions(spec: ModelSpec, masks: Masks) -> Masks:
    """The inverted masks (True: pruned), checked against the spec's prunable tensors."""
    shapes = spec.tensors()
    unknown = sorted(set(masks) - set(prunable_keys(spec)))
    if unknown:
        raise ValueError(f"{spec.name}: masks for tensors that are not prunable: {', '.join(unknown)}")
    wrong = [key for key, mask in masks.items() if mask.shape != shapes[key]]
    if wrong:
        raise ValueError(f"{spec.name}: masks of the wrong shape for {', '.join(wrong)}")
    return {key: ~np.asarray(mask, dtype=bool) for key, mask in masks.items()}


def fine_tune(
    spec: ModelSpec,
    weights: Weights,
    masks: Masks,
    epochs: int = 1,
    *,
    seed: int = 0,
    batch: int = 64,
    learning_rate: float = 0.01,
    momentum: float = 0.9,
    threads: int = 0,
    data: Split | None = None,
    train_images: int = 0,
    max_steps: int | None = None,
) -> Weights:
    """``epochs`` of masked SGD over Fashion-MNIST's training set (``data`` instead, or its first
    ``train_images``), in ``training.epoch_orders(seed)`` order in whole batches, as the train scenario
    trains; ``max_steps`` stops early (the tests). Float32 weights in the canonical layout."""
    from .training import epoch_orders, train_data

    split = data if data is not None else train_data(train_images, 1).train
    if len(split) < batch:
        raise ValueError(f"fine-tuning needs at least one batch of {batch} images, got {len(split)}")
    from .environment import thread_count

    options = TrainOptions("im2col", "cpu", thread_count(threads), batch, learning_rate, momentum)
    trainer = MaskedTrainer(spec, weights, masks, options)
    steps = len(split) // batch
    budget = epochs * steps if max_steps is None else min(max_steps, epochs * steps)
    with blas_threads(threads):
        for done, order in enumerate(epoch_orders(len(split), epochs, seed)):
            for i in range(min(steps, budget - done * steps)):
                index = order[i * batch : (i + 1) * batch]
                trainer.step(split.x[index], split.y[index])
    return trainer.weights()


def blas_threads(threads: int) -> AbstractContextManager[object]:
    """BLAS limited to ``threads`` (0: every CPU) where threadpoolctl is installed; else as it is."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return nullcontext()
    from .environment import thread_count

    return threadpool_limits(limits=thread_count(threads), user_api="blas")


def measure_accuracy(spec: ModelSpec, weights: Weights, test: Split | None = None) -> float:
    """The share of the test images (Fashion-MNIST's 10,000 unless given) the float32 NumPy forward
    classifies right, in the train scenario's fixed batches."""
    from .backends.numpy_backend import compile_network
    from .training import accuracy, train_data

    split = test if test is not None else train_data(1, 0).test
    return accuracy(compile_network(trainable(spec), weights, np.float32), split, EVAL_BATCH)


# --- the schedule -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Step:
    """One point of the schedule: pruned to ``target`` and fine-tuned (target 0: the dense baseline)."""

    target: float
    sparsity: float  # counted
    spared: tuple[str, ...]
    accuracy: float  # after fine-tuning
    pruned_accuracy: float  # right after pruning, before fine-tuning
    raw_bytes: int
    gzip_bytes: int
    sha256: str  # of training.npz_bytes(weights)
    weights: Weights
    shuffle_seed: int | None  # None: the baseline, not fine-tuned
    fine_tune_s: float  # wall time of the fine-tuning epochs
    other_load: float | None = None  # other processes' CPU use meanwhile, in CPUs (a busy machine's wall is longer)


def prune_schedule(
    spec: ModelSpec,
    trained: Weights,
    schedule: Sequence[float] = SCHEDULE,
    fine_tune_epochs: int = 1,
    *,
    seed: int = 0,
    batch: int = 64,
    learning_rate: float = 0.01,
    momentum: float = 0.9,
    threads: int = 0,
    data: TrainData | None = None,
    max_steps: int | None = None,
    log: Log | None = None,
) -> list[Step]:
    """The dense baseline, then each target in turn: the previous step's fine-tuned weights pruned to it
    and fine-tuned ``fine_tune_epochs`` with its masks (shuffle seed ``seed + i`` for the i-th, so each
    step sees its own order). ``data``: a ``training.TrainData`` (default: all of Fashion-MNIST)."""
    from .environment import LoadMeter
    from .training import train_data, weights_sha256

    check_schedule(schedule)
    data = data if data is not None else train_data()
    say = log or (lambda _: None)
    current = float32_copy(spec, trained)
    dense_accuracy = measure_accuracy(spec, current, data.test)
    steps = [Step(0.0, counted_sparsity(spec, current), (), dense_accuracy, dense_accuracy, *sizes(current),
                  weights_sha256(current), current, None, 0.0)]  # fmt: skip
    say(f"dense: test accuracy {dense_accuracy:.4f}")
    for i, target in enumerate(schedule):
        pruned = magnitude_prune(spec, current, target)
        before = measure_accuracy(spec, pruned.weights, data.test)
        meter = LoadMeter()
        meter.start()
        start = time.perf_counter()
        current = fine_tune(spec, pruned.weights, pruned.masks, fine_tune_epochs, seed=seed + i, batch=batch,
                            learning_rate=learning_rate, momentum=momentum, threads=threads, data=data.train,
                            max_steps=max_steps)  # fmt: skip
        wall = time.perf_counter() - start
        other = meter.stop()
        after = measure_accuracy(spec, current, data.test)
        steps.append(Step(target, counted_sparsity(spec, current), pruned.spared, after, before, *sizes(current),
                          weights_sha256(current), current, seed + i, wall, other))  # fmt: skip
        load = "" if other is None else f", other processes {other:.2f} CPUs"
        say(f"sparsity {target:.2f} (counted {steps[-1].sparsity:.4f}): test accuracy {before:.4f} pruned, "
            f"{after:.4f} after fine-tuning ({wall:.1f} s{load})")  # fmt: skip
    return steps


def check_schedule(schedule: Iterable[float]) -> None:
    """Targets in (0, 1), strictly increasing: each step only adds zeros to the last one's."""
    targets = list(schedule)
    for target in targets:
        check_sparsity(target)
    if not targets or targets[0] <= 0 or any(b <= a for a, b in zip(targets, targets[1:])):
        raise ValueError(f"a schedule is targets above 0, strictly increasing; got {targets}")


# --- the committed schedule ---------------------------------------------------------------------------


def file_name(target: float) -> str:
    """``sparsity-0.30.npz.gz``: the target to two decimals (the schedule's own precision)."""
    return f"sparsity-{target:.2f}.npz.gz"


def step_entry(step: Step) -> dict[str, Any]:
    """What the manifest says of a step (its weights are the file)."""
    return {
        "target": step.target,
        "sparsity": step.sparsity,
        "spared": list(step.spared),
        "accuracy": step.accuracy,
        "pruned_accuracy": step.pruned_accuracy,
        "raw_bytes": step.raw_bytes,
        "gzip_bytes": step.gzip_bytes,
        "sha256": step.sha256,
        "shuffle_seed": step.shuffle_seed,
        "fine_tune_s": round(step.fine_tune_s, 3),
        "other_load": None if step.other_load is None else round(step.other_load, 2),
    }


def write_schedule(steps: Sequence[Step], out: Path, facts: dict[str, Any]) -> dict[str, Any]:
    """Each pruned step as ``file_name(target)`` (gzip of ``npz_bytes``, no timestamp: the same bytes for
    the same weights) and ``manifest.json``: ``facts``, the baseline and the steps. The manifest written."""
    from .training import npz_bytes

    out.mkdir(parents=True, exist_ok=True)
    entries = []
    for step in steps[1:]:
        name = file_name(step.target)
        (out / name).write_bytes(gzip_bytes(npz_bytes(step.weights)))
        entries.append({**step_entry(step), "file": name})
    unmeasured = ("shuffle_seed", "fine_tune_s", "other_load")  # the baseline is not fine-tuned
    baseline = {key: value for key, value in step_entry(steps[0]).items() if key not in unmeasured}
    manifest = {**facts, "baseline": baseline, "steps": entries}
    (out / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    return manifest


def schedule_manifest(directory: Path | None = None) -> dict[str, Any]:
    """The committed schedule's manifest; empty when there is none."""
    path = (directory or OUT) / MANIFEST
    if not path.is_file():
        return {}
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def pruned_weights(spec: ModelSpec, target: float, directory: Path | None = None) -> Weights | None:
    """The committed step pruned to ``target`` for ``spec``, once its sha256 is the manifest's
    (``WeightsMismatch`` else); None when the manifest has no such step or is for another network."""
    from .trained import WeightsMismatch
    from .training import read_npz

    root = directory or OUT
    manifest = schedule_manifest(root)
    if manifest.get("model") != spec.name or manifest.get("input_shape") != list(spec.input_shape):
        return None
    entry = next((s for s in manifest.get("steps", []) if abs(float(s["target"]) - target) < 1e-9), None)
    if entry is None:
        return None
    path = root / entry["file"]
    try:
        data = gzip.decompress(path.read_bytes())
    except (OSError, EOFError) as exc:
        raise WeightsMismatch(f"{path}: the manifest lists it but it cannot be read ({exc})") from None
    found = hashlib.sha256(data).hexdigest()
    if found != entry["sha256"]:
        raise WeightsMismatch(
            f"{path} holds weights with sha256 {found[:16]}…, its manifest says {entry['sha256'][:16]}…"
        )
    return read_npz(data, spec)


# --- python -m frameworks.pruning make ----------------------------------------------------------------


def trainer_facts() -> dict[str, Any]:
    """The fine-tuning trainer as the manifest records it: NumPy's float32 trainer and its BLAS."""
    from .backends.numpy_backend import build_facts

    return {"framework": "numpy", "dtype": "float32", "numpy": np.__version__, **build_facts()}


def make(argv: list[str]) -> int:
    """Run the schedule from the committed trained LeNet-5 and write its files and manifest."""
    parser = argparse.ArgumentParser(prog="python -m frameworks.pruning make", description=make.__doc__)
    parser.add_argument("--epochs", type=int, default=1, help="fine-tuning epochs per step (default 1)")
    parser.add_argument("--threads", type=int, default=0, help="BLAS threads (default 0: every CPU)")
    parser.add_argument("--out", type=Path, default=OUT, help=f"where the files go (default {OUT})")
    args = parser.parse_args(argv)
    from .datasets import TITLE
    from .environment import thread_count
    from .models import fashion_mnist_network
    from .trained import trained_weights
    from .training import train_data, weights_sha256

    spec = fashion_mnist_network(MODEL)
    assert spec is not None
    trained = trained_weights(spec)
    data = train_data()
    options = TrainOptions("im2col")
    start = time.perf_counter()
    steps = prune_schedule(spec, trained, SCHEDULE, args.epochs, threads=args.threads, data=data,
                           log=lambda line: print(line, file=sys.stderr, flush=True))  # fmt: skip
    wall = time.perf_counter() - start
    keys = prunable_keys(spec)
    facts = {
        "model": MODEL,
        "input_shape": list(spec.input_shape),
        "dataset": TITLE,
        "dataset_sha256": data.sha256,
        "train_images": len(data.train),
        "test_images": len(data.test),
        "command": "python -m frameworks.pruning " + shlex.join(["make", *argv]),
        "source_file": "../lenet5-fashion-mnist.npz",
        "source_sha256": weights_sha256(trained),
        "method": f"global unstructured L1 magnitude pruning of {', '.join(keys)}; above {SPARE_ABOVE:g} "
        "the first conv and the last dense layer are spared; each step prunes the previous step's "
        "fine-tuned weights, then fine-tunes with the masks on the weights and the momentum",
        "prunable_weights": sum(int(np.prod(spec.tensors()[key])) for key in keys),
        "trainer": trainer_facts(),
        "threads": thread_count(args.threads),
        "fine_tune_epochs": args.epochs,
        "batch": options.batch,
        "learning_rate": options.learning_rate,
        "momentum": options.momentum,
        "wall_s": round(wall, 1),
        "made_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    write_schedule(steps, args.out, facts)
    print(f"wrote {len(steps) - 1} steps and {MANIFEST} to {args.out} in {wall:.0f} s", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] != "make":
        print("usage: python -m frameworks.pruning make [--epochs N] [--threads N] [--out DIR]", file=sys.stderr)
        return 2
    return make(args[1:])


if __name__ == "__main__":
    sys.exit(main())
