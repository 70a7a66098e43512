"""The train scenario's protocol: the same network, initial weights, hyperparameters and batches in
every framework, so that their learning curves must overlap and any gap is the framework's.

- The network is the spec without its final softmax (``logits_network``): every framework's loss is
  the mean softmax cross-entropy of the logits, fused the way the framework fuses it.
- The initial weights are the canonical ones (``weights.canonical_weights``), converted by each
  backend exactly as for inference; ``initial_weights_sha256`` proves which.
- The batch order is computed here, once: one seeded permutation of the training images per
  epoch (``epoch_orders``), cut into whole batches (a last partial batch is dropped, so that every
  step has one shape and nothing recompiles); every framework is fed the same arrays in the same
  order, and ``order_sha256`` proves it.
- Each epoch's steps, batch gathering included, are one timed region, synchronised at its end; the
  loss is read (which waits for the step) at the same steps in every framework: the first
  ``FIDELITY_STEPS``, every ``LOSS_EVERY``-th and the last of each epoch. The test images are then
  classified inside the framework, outside the timer.
- Before training, the cell checks that the framework's network is the spec (its logits against the
  float64 reference) and, after, that its first ``FIDELITY_STEPS`` losses are the float64 NumPy
  trainer's on the same batches (``fidelity``).

``python -m frameworks.training`` trains one framework mode for a few steps on a subset and writes
its losses and weights to an .npz: the fidelity tests reach MXNet (an environment of its own) so.
"""

from __future__ import annotations

import argparse
import base64
import gc
import hashlib
import io
import sys
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from .backends.registry import Backend, Trainer, TrainOptions, get_framework, load_backend
from .datasets import TITLE, Split, fashion_mnist
from .environment import LOAD_WARNING_CPUS, LoadMeter, peak_rss_bytes, thread_count
from .models import ModelSpec, Softmax
from .result import Epoch, Training

if TYPE_CHECKING:
    from .harness import CellRequest
    from .result import Result
    from .scenarios.train import TrainConfig

Weights = dict[str, np.ndarray]
FIDELITY_STEPS = 20  # the steps every framework's loss must match the float64 trainer's on, within FIDELITY_TOLERANCE
FIDELITY_TOLERANCE = 1e-3  # relative, per step (and per tensor of the weights after those steps, in the tests)
LOSS_EVERY = 50
ORDER_STREAM = 0x0BA7C4  # the seed stream of the batch order, apart from the weights' and the inputs'


def logits_network(spec: ModelSpec) -> ModelSpec:
    """The spec without its final softmax: what is trained (the loss takes logits)."""
    if not spec.layers or not isinstance(spec.layers[-1], Softmax):
        raise ValueError(f"{spec.name}: a trained network must end in a softmax (its loss takes the logits before it)")
    return replace(spec, layers=spec.layers[:-1])


def epoch_orders(images: int, epochs: int, seed: int) -> list[np.ndarray]:
    """One permutation of ``range(images)`` per epoch, from the seed alone (the same in every process)."""
    return [np.random.default_rng([seed, ORDER_STREAM, epoch]).permutation(images) for epoch in range(epochs)]


def order_digest(orders: list[np.ndarray], batch: int) -> str:
    """The sha256 of the images actually fed, in order (whole batches only), as little-endian int64."""
    digest = hashlib.sha256()
    for order in orders:
        used = order[: len(order) // batch * batch]
        digest.update(np.ascontiguousarray(used, dtype="<i8").tobytes())
    return digest.hexdigest()


def recorded(step: int, steps_per_epoch: int) -> bool:
    """Whether the loss of global step ``step`` (1-based) is read: the same steps in every framework."""
    return step <= FIDELITY_STEPS or step % LOSS_EVERY == 0 or step % steps_per_epoch == 0


# --- weights as a file: the canonical layout, deterministic bytes --------------------------------------


def npz_bytes(weights: Weights) -> bytes:
    """An .npz of the weights (float32, canonical keys, in key order) whose bytes depend on the values
    alone (fixed timestamps): equal weights have equal sha256s."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
        for key in sorted(weights):
            array = io.BytesIO()
            np.lib.format.write_array(array, np.ascontiguousarray(weights[key], dtype=np.float32), allow_pickle=False)
            archive.writestr(zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0)), array.getvalue())
    return buffer.getvalue()


def read_npz(data: bytes, spec: ModelSpec | None = None) -> Weights:
    """Weights from ``npz_bytes``; with ``spec``, exactly its tensors in its shapes (else ``ValueError``)."""
    with np.load(io.BytesIO(data), allow_pickle=False) as archive:
        weights = {key: np.asarray(archive[key], dtype=np.float32) for key in archive.files}
    if spec is not None:
        expected = spec.tensors()
        if set(weights) != set(expected):
            raise ValueError(f"weights for {spec.name} differ in tensors: {sorted(set(weights) ^ set(expected))}")
        wrong = [k for k, shape in expected.items() if weights[k].shape != shape]
        if wrong:
            raise ValueError(f"weights for {spec.name}: wrong shape for {', '.join(wrong)}")
    return weights


def weights_sha256(weights: Weights) -> str:
    return hashlib.sha256(npz_bytes(weights)).hexdigest()


# --- the data and the loop ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrainData:
    train: Split
    test: Split
    sha256: str


def train_data(train_images: int = 0, test_images: int = 0) -> TrainData:
    """Fashion-MNIST, or its first images (0: all of them)."""
    data = fashion_mnist()
    return TrainData(_first(data.train, train_images), _first(data.test, test_images), data.sha256)


def _first(split: Split, count: int) -> Split:
    if count <= 0 or count >= len(split):
        return split
    return Split(split.x[:count], split.y[:count])


def accuracy(predict: Callable[[np.ndarray], np.ndarray], split: Split, batch: int) -> float:
    """The share of ``split`` whose arg-max logit is its label; fixed batches, the last padded with zeros."""
    correct = 0
    for start in range(0, len(split), batch):
        x = split.x[start : start + batch]
        count = x.shape[0]
        if count < batch:
            x = np.concatenate([x, np.zeros((batch - count, *x.shape[1:]), dtype=x.dtype)])
        logits = np.asarray(predict(np.ascontiguousarray(x)))[:count]
        correct += int(np.sum(np.argmax(logits, axis=1) == split.y[start : start + count]))
    return correct / len(split)


@dataclass(frozen=True)
class Curves:
    epochs: tuple[Epoch, ...]
    loss_steps: tuple[int, ...]
    losses: tuple[float, ...]
    other_load: float | None


def train_epochs(trainer: Trainer, data: TrainData, orders: list[np.ndarray], options: TrainOptions) -> Curves:
    """Every epoch: its steps timed as one region (synchronised at the end), then the test set classified."""
    batch = options.batch
    steps = len(orders[0]) // batch
    loss_steps: list[int] = []
    losses: list[float] = []
    epochs: list[Epoch] = []
    meter = LoadMeter()
    meter.start()
    for number, order in enumerate(orders, start=1):
        trainer.sync()
        gc.collect()
        gc.disable()  # a collection inside one framework's epoch and not another's is noise
        try:
            start = time.perf_counter_ns()
            for i in range(steps):
                step = (number - 1) * steps + i + 1
                index = order[i * batch : (i + 1) * batch]
                loss = trainer.step(data.train.x[index], data.train.y[index], recorded(step, steps))
                if loss is not None:
                    loss_steps.append(step)
                    losses.append(float(loss))
            trainer.sync()
            wall = (time.perf_counter_ns() - start) * 1e-9
        finally:
            gc.enable()
        eval_start = time.perf_counter_ns()
        test_accuracy = accuracy(trainer.predict, data.test, options.eval_batch)
        eval_s = (time.perf_counter_ns() - eval_start) * 1e-9
        epochs.append(Epoch(number, wall, steps * batch, steps * batch / wall, test_accuracy, eval_s))
        print(f"  epoch {number}: {wall:.1f} s, test accuracy {test_accuracy:.4f}", file=sys.stderr, flush=True)
    return Curves(tuple(epochs), tuple(loss_steps), tuple(losses), meter.stop())


def reference_losses(spec: ModelSpec, weights: Weights, data: TrainData, order: np.ndarray, options: TrainOptions,
                     steps: int = FIDELITY_STEPS) -> list[float]:  # fmt: skip
    """The float64 NumPy trainer's loss on the first ``steps`` batches of ``order`` (the fidelity reference)."""
    from .backends.numpy_backend import reference_trainer

    trainer = reference_trainer(spec, weights, replace(options, device="cpu"))
    batch = options.batch
    out = []
    for i in range(min(steps, len(order) // batch)):
        index = order[i * batch : (i + 1) * batch]
        out.append(float(trainer.step(data.train.x[index], data.train.y[index], True)))  # type: ignore[arg-type]
    return out


def relative_errors(losses: list[float] | tuple[float, ...], reference: list[float]) -> list[float]:
    return [abs(a - b) / abs(b) if b else abs(a - b) for a, b in zip(losses, reference, strict=False)]


# --- the cell ---------------------------------------------------------------------------------------------


def train_options(request: CellRequest, config: TrainConfig) -> TrainOptions:
    return TrainOptions(request.mode, request.device, request.threads, config.batch_size, config.learning_rate,
                        config.momentum)  # fmt: skip


def train_cell(backend: Backend, spec: ModelSpec, request: CellRequest, config: TrainConfig, base: Result) -> Result:
    """Train one framework mode by the protocol above; the finished result."""
    from .backends.numpy_backend import reference_forward
    from .result import utc_now
    from .verify import compare, verification_input
    from .weights import canonical_weights

    if request.mode not in get_framework(request.framework).train_modes:
        raise ValueError(f"{request.framework} does not train in mode {request.mode!r}")
    network = logits_network(spec)
    data = train_data(config.train_images, config.test_images)
    options = train_options(request, config)
    if len(data.train) < options.batch:
        raise ValueError(f"--train-images {len(data.train)} is fewer than one batch of {options.batch}")
    initial = canonical_weights(network, request.seed)
    orders = epoch_orders(len(data.train), config.epochs, config.shuffle_seed)
    trainer = backend.train(network, initial, options)
    facts = backend.build_facts()
    x0 = verification_input(network, options.eval_batch, request.seed)
    check = compare(trainer.predict(x0), reference_forward(network, initial, x0), spec.tolerance)
    reference = reference_losses(network, initial, data, orders[0], options)
    curves = train_epochs(trainer, data, orders, options)
    pairs = zip(curves.loss_steps, curves.losses, strict=True)
    fidelity = relative_errors([loss for step, loss in pairs if step <= len(reference)], reference)
    trained = trainer.weights()
    blob = npz_bytes(trained)
    steps = len(orders[0]) // options.batch
    final = curves.epochs[-1].test_accuracy
    training = Training(
        dataset=TITLE,
        train_images=len(data.train),
        test_images=len(data.test),
        steps_per_epoch=steps,
        epochs=curves.epochs,
        loss_steps=curves.loss_steps,
        losses=curves.losses,
        final_accuracy=final,
        initial_weights_sha256=weights_sha256(initial),
        order_sha256=order_digest(orders, options.batch),
        weights_sha256=hashlib.sha256(blob).hexdigest(),
        dataset_sha256=data.sha256,
        reference_losses=tuple(reference),
        max_loss_error=max(fidelity) if fidelity else None,
        weights_npz=base64.b64encode(blob).decode("ascii"),
    )
    warnings = []
    if not check.verified:
        warnings.append(f"the network's logits do not match the reference before training (max relative error "
                        f"{check.max_error:.3g} > {check.tolerance:g})")  # fmt: skip
    if fidelity and max(fidelity) > FIDELITY_TOLERANCE:
        step = fidelity.index(max(fidelity)) + 1
        warnings.append(f"training loss differs from the float64 NumPy trainer's by {max(fidelity):.3g} (relative) "
                        f"at step {step}, more than {FIDELITY_TOLERANCE:g}")  # fmt: skip
    if curves.other_load is not None and curves.other_load > LOAD_WARNING_CPUS:
        warnings.append(f"machine busy: other processes used {curves.other_load:.2f} CPUs during training")
    return replace(
        base,
        status="ok",
        build={**base.build, **facts},
        params=trainer.params,
        threads_in_use=trainer.threads,
        peak_rss_bytes=peak_rss_bytes(),
        verified=check.verified and bool(fidelity) and max(fidelity) <= FIDELITY_TOLERANCE,
        max_error=check.max_error if np.isfinite(check.max_error) else None,
        tolerance=check.tolerance,
        other_load=curves.other_load,
        accuracy=final,
        training=training,
        warnings=tuple(warnings),
        finished_at=utc_now(),
    )


# --- a few steps on a subset, for the fidelity tests --------------------------------------------------------


def fidelity_run(framework: str, mode: str, model: str, steps: int, images: int, threads: int, seed: int = 0,
                 options: TrainOptions | None = None) -> tuple[list[float], list[Weights]]:  # fmt: skip
    """``steps`` updates of one framework mode on the first ``images`` training images in the epoch-0 order
    (shuffle seed 0): every step's loss, and the weights before the first step and after each."""
    from .models import fashion_mnist_network
    from .weights import canonical_weights

    spec = fashion_mnist_network(model)
    if spec is None:
        raise ValueError(f"{model} has no {TITLE} network")
    network = logits_network(spec)
    data = train_data(images, 1)
    base = options or TrainOptions(mode)
    options = replace(base, mode=mode, threads=threads)
    if steps * options.batch > len(data.train):
        raise ValueError(f"{steps} steps of {options.batch} need {steps * options.batch} images, not {len(data.train)}")
    order = epoch_orders(len(data.train), 1, 0)[0]
    trainer = load_backend(framework).train(network, canonical_weights(network, seed), options)
    losses, states = [], [trainer.weights()]
    for i in range(steps):
        index = order[i * options.batch : (i + 1) * options.batch]
        losses.append(float(trainer.step(data.train.x[index], data.train.y[index], True)))  # type: ignore[arg-type]
        trainer.sync()
        states.append(trainer.weights())
    return losses, states


def main(argv: list[str] | None = None) -> int:
    """``python -m frameworks.training --framework F --mode M --out PATH``: losses and weights of a short run."""
    parser = argparse.ArgumentParser(prog="python -m frameworks.training", description=main.__doc__)
    parser.add_argument("--framework", required=True)
    parser.add_argument("--mode", required=True)
    parser.add_argument("--model", default="lenet5")
    parser.add_argument("--steps", type=int, default=FIDELITY_STEPS)
    parser.add_argument("--images", type=int, default=FIDELITY_STEPS * 64)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", required=True, help="an .npz: 'losses', and per canonical key the weights "
                        "before the first step and after each, stacked")  # fmt: skip
    args = parser.parse_args(argv)
    from .datasets import DatasetError

    try:
        losses, states = fidelity_run(
            args.framework, args.mode, args.model, args.steps, args.images, thread_count(args.threads)
        )
    except (KeyError, ValueError, DatasetError) as exc:
        print(f"error: {exc.args[0] if exc.args else exc}", file=sys.stderr)
        return 2
    stacked = {key: np.stack([state[key] for state in states]) for key in states[0]}
    arrays: dict[str, Any] = {"losses": np.asarray(losses, dtype=np.float64), **stacked}  # Any: savez's stubs
    np.savez(args.out, **arrays)
    print(f"{args.framework} {args.mode}: {len(losses)} steps, last loss {losses[-1]:.6f}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
