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
from .models import MaxPool, ModelSpec, ReLU, Softmax
from .result import Epoch, Training

if TYPE_CHECKING:
    from .harness import CellRequest
    from .result import Result
    from .scenarios.train import TrainConfig

Weights = dict[str, np.ndarray]
Batch = tuple[np.ndarray, np.ndarray]  # images and their labels
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
    states: tuple[Weights, ...] = ()  # the weights before step 1 and after each of the first ``watch`` steps


def train_epochs(trainer: Trainer, data: TrainData, orders: list[np.ndarray], options: TrainOptions,
                 watch: int = 0) -> Curves:  # fmt: skip
    """Every epoch: its steps timed as one region (synchronised at the end), then the test set classified.

    The weights after each of the first ``watch`` steps are read for the fidelity verdict with the clock
    stopped (the framework synchronised first): those steps already wait for their loss."""
    batch = options.batch
    steps = len(orders[0]) // batch
    loss_steps: list[int] = []
    losses: list[float] = []
    epochs: list[Epoch] = []
    states = [trainer.weights()] if watch else []
    meter = LoadMeter()
    meter.start()
    for number, order in enumerate(orders, start=1):
        trainer.sync()
        gc.collect()
        gc.disable()  # a collection inside one framework's epoch and not another's is noise
        try:
            paused = 0
            start = time.perf_counter_ns()
            for i in range(steps):
                step = (number - 1) * steps + i + 1
                index = order[i * batch : (i + 1) * batch]
                loss = trainer.step(data.train.x[index], data.train.y[index], recorded(step, steps))
                if loss is not None:
                    loss_steps.append(step)
                    losses.append(float(loss))
                if step <= watch:
                    stop = time.perf_counter_ns()
                    trainer.sync()
                    states.append(trainer.weights())
                    paused += time.perf_counter_ns() - stop
            trainer.sync()
            wall = (time.perf_counter_ns() - start - paused) * 1e-9
        finally:
            gc.enable()
        eval_start = time.perf_counter_ns()
        test_accuracy = accuracy(trainer.predict, data.test, options.eval_batch)
        eval_s = (time.perf_counter_ns() - eval_start) * 1e-9
        epochs.append(Epoch(number, wall, steps * batch, steps * batch / wall, test_accuracy, eval_s))
        print(f"  epoch {number}: {wall:.1f} s, test accuracy {test_accuracy:.4f}", file=sys.stderr, flush=True)
    return Curves(tuple(epochs), tuple(loss_steps), tuple(losses), meter.stop(), tuple(states))


def reference_losses(spec: ModelSpec, weights: Weights, data: TrainData, order: np.ndarray, options: TrainOptions,
                     steps: int = FIDELITY_STEPS) -> list[float]:  # fmt: skip
    """The float64 NumPy trainer's loss on the first ``steps`` batches of ``order`` (the fidelity reference)."""
    from .backends.numpy_backend import reference_trainer

    trainer = reference_trainer(spec, weights, replace(options, device="cpu"))
    out = []
    for i in range(min(steps, len(order) // options.batch)):
        out.append(float(trainer.step(*_batch(data, order, i, options.batch), True)))  # type: ignore[arg-type]
    return out


def _batch(data: TrainData, order: np.ndarray, i: int, batch: int) -> Batch:
    """The ``i``-th whole batch of ``order``: images and labels."""
    index = order[i * batch : (i + 1) * batch]
    return data.train.x[index], data.train.y[index]


def relative_errors(losses: list[float] | tuple[float, ...], reference: list[float]) -> list[float]:
    return [abs(a - b) / abs(b) if b else abs(a - b) for a, b in zip(losses, reference, strict=False)]


# --- the fidelity verdict: the same on every CPU ---------------------------------------------------------

TIE_ULPS = 4  # a max-pool window whose two largest inputs are this close (in float32 ulps) is float32's to break
EPS32 = float(np.finfo(np.float32).eps)


def relative_to(a: Weights, b: Weights) -> float:
    """The largest, over tensors, of max |a - b| / max |b|."""
    return max(float(np.max(np.abs(a[k] - b[k])) / np.max(np.abs(b[k]))) for k in b)


def near_ties(network: ModelSpec, weights: Weights, x: np.ndarray) -> list[str]:
    """Discrete decisions float32 rounding can flip, in the float64 forward at these weights: max-pool windows
    whose two largest inputs differ by at most TIE_ULPS float32 ulps (not exactly: an exact tie of identical
    windows sends the same gradient either way), and ReLU inputs that close to 0."""
    from .backends.numpy_backend import reference_trainer

    trainer = reference_trainer(network, weights, TrainOptions("im2col"))
    found = []
    y = np.asarray(x, dtype=np.float64)
    for op, layer in zip(trainer.ops, network.layers, strict=True):
        if isinstance(layer, MaxPool):
            n, c, h, w = y.shape
            windows = y[:, :, : h // 2 * 2, : w // 2 * 2].reshape(n, c, h // 2, 2, w // 2, 2).swapaxes(3, 4)
            top = np.sort(windows.reshape(n, c, h // 2, w // 2, 4), axis=-1)
            gap = top[..., -1] - top[..., -2]
            near = (gap > 0) & (gap <= TIE_ULPS * EPS32 * np.abs(top[..., -1]))
            if near.any():
                worst = float(np.min(gap[near] / np.abs(top[..., -1][near])))
                found.append(f"{layer.name}: {int(near.sum())} window(s) whose two largest inputs differ by "
                             f"{worst:.1e} (relative) in float64, under {TIE_ULPS} float32 ulps")  # fmt: skip
        if isinstance(layer, ReLU):
            near = (y != 0) & (np.abs(y) <= TIE_ULPS * EPS32 * np.max(np.abs(y)))
            if near.any():
                found.append(f"{layer.name}: {int(near.sum())} input(s) within {TIE_ULPS} float32 ulps of 0")
        y, _ = op.forward(y, trainer.state)
    return found


@dataclass(frozen=True)
class Fidelity:
    """A train cell's fidelity to the float64 trainer, judged so that no CPU's float32 rounding decides it.

    Every step is checked at the framework's own weights (its loss against float64's there, and its
    update against float64's update from the same weights and momentum). The trajectory (its losses
    against the float64 trainer's from the initial weights) is judged up to the first step whose
    gradient leaves float64's at the same weights; when float32 rounding breaks a near-tie there
    (``near_tie``, recorded), what follows is that tie amplified by training, not the framework's
    error, and is not judged. A departure with no near-tie is a defect: the cell is not verified.
    """

    steps: int  # steps judged at the framework's own weights
    max_local_loss_error: float
    max_local_update_error: float
    judged_steps: int  # the trajectory is judged on steps 1..judged_steps
    max_judged_error: float  # the largest relative loss difference over those steps
    max_loss_error: float  # over every step with a reference, judged or not
    first_departure: int | None  # 1-based step whose gradient leaves float64's at the same weights
    near_tie: str | None  # what float32 rounding broke at that step, if anything
    verified: bool
    reason: str  # why not verified; or, when verified past a near-tie, what was not judged and why

    def summary(self) -> str:
        return (f"loss within {self.max_judged_error:.1e} of float64 on steps 1-{self.judged_steps}; at the "
                f"framework's own weights loss within {self.max_local_loss_error:.1e}, update within "
                f"{self.max_local_update_error:.1e}" + (f"; {self.reason}" if self.reason else ""))  # fmt: skip


def judge_fidelity(network: ModelSpec, states: list[Weights], losses: list[float] | tuple[float, ...],
                   batches: list[Batch], reference: list[float], options: TrainOptions) -> Fidelity:  # fmt: skip
    """The verdict on ``len(batches)`` steps: ``states[t]`` are the framework's weights before step t + 1
    (``states[0]`` the initial ones, one more state than steps), ``losses[t]`` its loss at step t + 1 and
    ``reference`` the float64 trainer's losses from the initial weights on the same batches."""
    from .backends.numpy_backend import reference_trainer

    steps = min(len(batches), len(states) - 1, len(losses), len(reference))
    if steps < 1:
        raise ValueError("the fidelity verdict needs at least one step with the weights before and after it")
    lr, mu = np.float64(options.learning_rate), np.float64(options.momentum)
    f64 = [{k: v.astype(np.float64) for k, v in state.items()} for state in states[: steps + 1]]
    local_loss, local_update, departure = [], [], None
    for t, (x, y) in enumerate(batches[:steps]):
        w = f64[t]
        velocity = {k: (f64[t - 1][k] - w[k]) / lr if t else 0 * w[k] for k in w}
        loss64, grads = reference_trainer(network, w, TrainOptions("im2col")).gradients(x, y)
        local_loss.append(abs(losses[t] - loss64) / abs(loss64))
        predicted = {k: w[k] - lr * (mu * velocity[k] + grads[k]) for k in w}
        local_update.append(relative_to(f64[t + 1], predicted))
        derived = {k: (w[k] - f64[t + 1][k]) / lr - mu * velocity[k] for k in w}
        if departure is None and relative_to(derived, grads) > FIDELITY_TOLERANCE:
            departure = t
    trajectory = relative_errors(list(losses[:steps]), reference[:steps])
    judged, tie, reason = steps, None, ""
    if max(local_loss) > FIDELITY_TOLERANCE or max(local_update) > FIDELITY_TOLERANCE:
        worst = int(np.argmax(np.maximum(local_loss, local_update))) + 1
        reason = (
            f"at step {worst}, at the framework's own weights, its loss or update differs from float64's "
            f"(loss {max(local_loss):.3g}, update {max(local_update):.3g}, more than {FIDELITY_TOLERANCE:g})"
        )
    elif departure is not None:
        ties = near_ties(network, states[departure], batches[departure][0])
        if ties:
            judged, tie = departure + 1, f"step {departure + 1}: {'; '.join(ties)}"
        else:
            reason = (f"at step {departure + 1} the gradient leaves float64's at the same weights with no decision "
                      "float32 rounding could flip there: a defect")  # fmt: skip
    judged_error = max(trajectory[:judged])
    if not reason and judged_error > FIDELITY_TOLERANCE:
        step = trajectory.index(judged_error) + 1
        reason = (f"training loss differs from the float64 NumPy trainer's by {judged_error:.3g} (relative) at step "
                  f"{step}, more than {FIDELITY_TOLERANCE:g}")  # fmt: skip
    verified = not reason
    if verified and tie is not None and judged < steps:
        reason = (f"float32 rounding breaks a near-tie at {tie}; the trajectory is judged to step {judged} (after "
                  f"it, up to {max(trajectory):.2g} from float64's: the tie amplified by training)")  # fmt: skip
    return Fidelity(steps, max(local_loss), max(local_update), judged, judged_error, max(trajectory),
                    None if departure is None else departure + 1, tie, verified, reason)  # fmt: skip


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
    curves = train_epochs(trainer, data, orders, options, watch=len(reference))
    pairs = zip(curves.loss_steps, curves.losses, strict=True)
    judged_losses = [loss for step, loss in pairs if step <= len(reference)]
    batches = [_batch(data, orders[0], i, options.batch) for i in range(len(reference))]
    fidelity = judge_fidelity(network, list(curves.states), judged_losses, batches, reference, options)
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
        max_loss_error=fidelity.max_loss_error,
        weights_npz=base64.b64encode(blob).decode("ascii"),
        fidelity_judged_steps=fidelity.judged_steps,
        max_judged_loss_error=fidelity.max_judged_error,
        max_local_error=max(fidelity.max_local_loss_error, fidelity.max_local_update_error),
        near_tie=fidelity.near_tie,
    )
    warnings = []
    if not check.verified:
        warnings.append(f"the network's logits do not match the reference before training (max relative error "
                        f"{check.max_error:.3g} > {check.tolerance:g})")  # fmt: skip
    if not fidelity.verified:
        warnings.append(fidelity.reason)
    if curves.other_load is not None and curves.other_load > LOAD_WARNING_CPUS:
        warnings.append(f"machine busy: other processes used {curves.other_load:.2f} CPUs during training")
    return replace(
        base,
        status="ok",
        build={**base.build, **facts},
        params=trainer.params,
        peak_rss_bytes=peak_rss_bytes(),
        verified=check.verified and fidelity.verified,
        max_error=check.max_error if np.isfinite(check.max_error) else None,
        tolerance=check.tolerance,
        other_load=curves.other_load,
        training=replace(training, threads_in_use=trainer.threads),
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
