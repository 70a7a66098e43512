"""Magnitude pruning: exact counts on the three networks, which weights go, the spared layers, ties,
determinism, masks that hold through fine-tuning (weights and momentum), and the committed schedule.

Fine-tuning here runs a few steps on synthetic images (no dataset, no full epoch): what is tested is
that the masks hold, not what the network learns; the committed manifest records that.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from frameworks import pruning
from frameworks.backends.numpy_backend import train
from frameworks.backends.registry import TrainOptions
from frameworks.datasets import Split
from frameworks.models import ModelSpec, fashion_mnist_network, lenet5, mobilenet_v1, vgg16
from frameworks.pruning import (
    SCHEDULE,
    MaskedTrainer,
    counted_sparsity,
    fine_tune,
    magnitude_prune,
    prunable_keys,
    prune_schedule,
    pruned_weights,
    schedule_manifest,
    sizes,
    spared_keys,
    write_schedule,
)
from frameworks.trained import WeightsMismatch, manifest
from frameworks.training import TrainData, logits_network, npz_bytes, read_npz, weights_sha256
from frameworks.weights import generate_weights


def fashion_lenet() -> ModelSpec:
    spec = fashion_mnist_network("lenet5")
    assert spec is not None
    return spec


LENET = fashion_lenet()  # one grey channel: the network the committed weights are for
Weights = dict[str, np.ndarray]


def total(spec: ModelSpec) -> int:
    return sum(int(np.prod(spec.tensors()[key])) for key in prunable_keys(spec))


def flat(weights: Weights, keys: tuple[str, ...] | list[str]) -> np.ndarray:
    return np.concatenate([weights[key].ravel() for key in keys])


def synthetic(images: int, seed: int = 1) -> Split:
    """Random images and labels: enough for the masks to meet real gradients, no dataset needed."""
    rng = np.random.default_rng(seed)
    return Split(rng.standard_normal((images, 1, 32, 32), dtype=np.float32), rng.integers(0, 10, images))


def check_exact(spec: ModelSpec, weights: Weights, sparsity: float) -> None:
    """The pruned weights are the originals but for exactly round(sparsity * prunable) zeros, masks agreeing."""
    pruned = magnitude_prune(spec, weights, sparsity)
    keys = prunable_keys(spec)
    count = round(sparsity * total(spec))
    assert sum(int((~pruned.masks[key]).sum()) for key in keys) == count
    assert sum(int((pruned.weights[key] == 0).sum()) for key in keys) == count  # the canonical weights hold no zeros
    assert pruned.sparsity == counted_sparsity(spec, pruned.weights) == count / total(spec)
    assert pruned.target == sparsity and pruned.spared == spared_keys(spec, sparsity)
    assert set(pruned.weights) == set(spec.tensors()) and set(pruned.masks) == set(keys)
    for key, original in weights.items():
        assert pruned.weights[key].dtype == np.float32
        mask = pruned.masks.get(key, np.ones(original.shape, dtype=bool))
        assert np.array_equal(pruned.weights[key][mask], original[mask]), key  # kept values untouched
    for key in pruned.spared:
        assert pruned.masks[key].all() and np.array_equal(pruned.weights[key], weights[key])


# --- what is pruned -------------------------------------------------------------------------------------


def test_prunable_keys_are_every_conv_and_dense_weight_in_layer_order() -> None:
    assert prunable_keys(LENET) == ("conv1.weight", "conv2.weight", "fc1.weight", "fc2.weight", "fc3.weight")
    keys = prunable_keys(mobilenet_v1())
    assert len(keys) == 28 and keys[:3] == ("conv0.weight", "dw1.weight", "pw1.weight") and keys[-1] == "fc.weight"
    assert all(key.endswith(".weight") for key in keys) and not any("_bn" in key for key in keys)
    assert len(prunable_keys(vgg16())) == 16 and total(vgg16()) == 138_344_128


def test_the_first_conv_and_last_dense_are_spared_strictly_above_0_8() -> None:
    assert spared_keys(LENET, 0.8) == () and spared_keys(LENET, 0.5) == ()
    assert spared_keys(LENET, 0.81) == ("conv1.weight", "fc3.weight")
    assert spared_keys(mobilenet_v1(), 0.9) == ("conv0.weight", "fc.weight")
    assert spared_keys(vgg16(), 0.92) == ("conv1_1.weight", "fc8.weight")


# --- exact counts -----------------------------------------------------------------------------------------


CASES = [(LENET, 0.5), (LENET, 0.9), (lenet5(), 0.9), (mobilenet_v1(), 0.5), (mobilenet_v1(), 0.8)]


@pytest.mark.parametrize(("spec", "sparsity"), CASES, ids=lambda p: getattr(p, "name", p))
def test_exact_sparsity_counts(spec: ModelSpec, sparsity: float) -> None:
    check_exact(spec, generate_weights(spec), sparsity)


@pytest.mark.slow
def test_exact_sparsity_counts_on_vgg16() -> None:
    """138 M weights: a selection, not a sort (about 3 s each here, with 3 s to generate them)."""
    weights = generate_weights(vgg16())
    for sparsity in (0.5, 0.9):
        check_exact(vgg16(), weights, sparsity)


def test_mobilenet_at_0_9_is_unreachable_with_its_classifier_spared() -> None:
    """Its last dense layer is 24% of its prunable weights: sparing it caps the sparsity near 0.757."""
    with pytest.raises(
        ValueError, match=r"needs 3788179 of 4209088 .* at most 3184224 can be: the target is unreachable"
    ):
        magnitude_prune(mobilenet_v1(), generate_weights(mobilenet_v1()), 0.9)


@pytest.mark.parametrize("sparsity", [-0.1, 1.0, 1.5, float("nan")])
def test_a_sparsity_outside_0_1_raises(sparsity: float) -> None:
    with pytest.raises(ValueError, match=r"sparsity must be in \[0, 1\)"):
        magnitude_prune(LENET, generate_weights(LENET), sparsity)


def test_unreachable_targets_and_foreign_weights_raise() -> None:
    with pytest.raises(ValueError, match=r"conv1\.weight, fc3\.weight spared .* unreachable"):
        magnitude_prune(LENET, generate_weights(LENET), 0.99)
    with pytest.raises(ValueError, match=r"have no 'conv1\.weight'"):
        magnitude_prune(LENET, {}, 0.5)
    with pytest.raises(ValueError, match=r"conv1\.weight has shape"):
        magnitude_prune(LENET, generate_weights(lenet5()), 0.5)  # three input channels, not one


def test_sparsity_0_changes_nothing() -> None:
    weights = generate_weights(LENET)
    pruned = magnitude_prune(LENET, weights, 0.0)
    assert pruned.sparsity == 0.0 and all(mask.all() for mask in pruned.masks.values())
    assert npz_bytes(pruned.weights) == npz_bytes(weights)


# --- which weights go -----------------------------------------------------------------------------------


@pytest.mark.parametrize("sparsity", [0.5, 0.9])
def test_the_smallest_magnitudes_go_first(sparsity: float) -> None:
    weights = generate_weights(LENET)
    pruned = magnitude_prune(LENET, weights, sparsity)
    keys = [key for key in prunable_keys(LENET) if key not in pruned.spared]
    magnitudes, kept = np.abs(flat(weights, keys)), flat(pruned.masks, keys)
    assert magnitudes[~kept].max() <= magnitudes[kept].min()


def test_the_selection_is_a_stable_argsort_ties_to_the_earliest() -> None:
    """Magnitudes rounded to two decimals tie by thousands: the zeroed set is exactly the first round(s * n) of
    a stable argsort of the concatenated |w| in layer order."""
    weights = {key: np.round(value, 2) for key, value in generate_weights(LENET).items()}
    keys = list(prunable_keys(LENET))
    for sparsity in (0.3, 0.7):
        pruned = magnitude_prune(LENET, weights, sparsity)
        order = np.argsort(np.abs(flat(weights, keys)), kind="stable")
        expected = np.ones(total(LENET), dtype=np.bool_)
        expected[order[: round(sparsity * total(LENET))]] = False
        assert np.array_equal(flat(pruned.masks, keys), expected)


def test_equal_magnitudes_go_in_layer_then_row_major_order() -> None:
    weights = {key: np.where(np.arange(value.size).reshape(value.shape) % 2, 1, -1).astype(np.float32)
               for key, value in generate_weights(LENET).items()}  # fmt: skip
    count = round(0.5 * total(LENET))
    kept = flat(magnitude_prune(LENET, weights, 0.5).masks, list(prunable_keys(LENET)))
    assert not kept[:count].any() and kept[count:].all()


def test_pruning_is_deterministic_and_leaves_its_input_alone() -> None:
    weights = generate_weights(LENET)  # read-only arrays: an in-place write would raise
    first, second = magnitude_prune(LENET, weights, 0.7), magnitude_prune(LENET, weights, 0.7)
    assert weights_sha256(first.weights) == weights_sha256(second.weights)
    assert weights_sha256(weights) == weights_sha256(generate_weights(LENET))


def test_pruning_further_keeps_the_earlier_zeros() -> None:
    half = magnitude_prune(LENET, generate_weights(LENET), 0.5)
    more = magnitude_prune(LENET, half.weights, 0.7)
    for key in prunable_keys(LENET):
        assert not (more.masks[key] & ~half.masks[key]).any() and (more.weights[key][~half.masks[key]] == 0).all()
    assert more.sparsity == round(0.7 * total(LENET)) / total(LENET)
    assert npz_bytes(magnitude_prune(LENET, half.weights, 0.5).weights) == npz_bytes(half.weights)
    assert magnitude_prune(LENET, more.weights, 0.3).sparsity == more.sparsity  # a lower target zeroes nothing new


def test_zeros_already_there_count_toward_the_target() -> None:
    weights = {key: np.array(value) for key, value in generate_weights(LENET).items()}
    weights["fc1.weight"][:5] = 0  # 2,000 zeros
    pruned = magnitude_prune(LENET, weights, 0.3)
    assert (pruned.weights["fc1.weight"][:5] == 0).all() and not pruned.masks["fc1.weight"][:5].any()
    assert pruned.sparsity == round(0.3 * total(LENET)) / total(LENET)


def test_a_spared_layer_keeps_its_earlier_zeros_and_gains_none() -> None:
    """Sparing above 0.8 adds no zeros to the first conv and the last dense layer; the zeros a lower target
    made there stay pruned, count toward the target, and stay masked."""
    weights = {key: np.array(value) for key, value in generate_weights(LENET).items()}
    weights["conv1.weight"][:2] = 0  # 50 zeros, as a 0.5 step might have left
    pruned = magnitude_prune(LENET, weights, 0.9)
    assert np.array_equal(pruned.weights["conv1.weight"], weights["conv1.weight"])
    assert np.array_equal(pruned.masks["conv1.weight"], weights["conv1.weight"] != 0)
    assert pruned.masks["fc3.weight"].all() and pruned.sparsity == round(0.9 * total(LENET)) / total(LENET)
    assert int((pruned.weights["fc1.weight"] == 0).sum()) < int((magnitude_prune(LENET, generate_weights(LENET), 0.9)
                                                                .weights["fc1.weight"] == 0).sum())  # fmt: skip


def test_gzip_is_smaller_than_raw_at_0_5() -> None:
    dense_raw, dense_gz = sizes(generate_weights(LENET))
    raw, gz = sizes(magnitude_prune(LENET, generate_weights(LENET), 0.5).weights)
    assert raw == dense_raw and gz < raw and gz < 0.75 * dense_gz
    assert gz == len(gzip.compress(npz_bytes(magnitude_prune(LENET, generate_weights(LENET), 0.5).weights), 9, mtime=0))


# --- masked fine-tuning ------------------------------------------------------------------------------------


def test_the_masks_hold_weights_and_momentum_at_zero_through_steps() -> None:
    pruned = magnitude_prune(LENET, generate_weights(LENET), 0.7)
    data = synthetic(192)
    options = TrainOptions("im2col")
    masked = MaskedTrainer(LENET, pruned.weights, pruned.masks, options)
    plain = train(logits_network(LENET), pruned.weights, options)  # the control: the same steps, no masks
    for i in range(3):
        x, y = data.x[i * 64 : (i + 1) * 64], data.y[i * 64 : (i + 1) * 64]
        masked.step(x, y)
        plain.step(x, y, False)
    for key, mask in pruned.masks.items():
        assert (masked.trainer.state[key][~mask] == 0).all() and (masked.trainer.velocity[key][~mask] == 0).all()
        assert np.abs(masked.trainer.velocity[key][mask]).max() > 0
        assert np.abs(plain.velocity[key][~mask]).max() > 0 and np.abs(plain.state[key][~mask]).max() > 0


def test_fine_tune_trains_the_kept_weights_only_and_deterministically() -> None:
    pruned = magnitude_prune(LENET, generate_weights(LENET), 0.9)
    data = synthetic(256)
    tuned = fine_tune(LENET, pruned.weights, pruned.masks, data=data, max_steps=3)
    again = fine_tune(LENET, pruned.weights, pruned.masks, data=data, max_steps=3)
    assert weights_sha256(tuned) == weights_sha256(again)
    assert set(tuned) == set(LENET.tensors()) and all(a.dtype == np.float32 for a in tuned.values())
    assert counted_sparsity(LENET, tuned) == pruned.sparsity
    assert not np.array_equal(tuned["fc1.weight"], pruned.weights["fc1.weight"])
    untouched = fine_tune(LENET, pruned.weights, pruned.masks, data=data, max_steps=0)
    assert npz_bytes(untouched) == npz_bytes(pruned.weights)
    with pytest.raises(ValueError, match="at least one batch of 64"):
        fine_tune(LENET, pruned.weights, pruned.masks, data=synthetic(63))
    with pytest.raises(ValueError, match=r"not prunable: conv1\.bias"):
        fine_tune(LENET, pruned.weights, {"conv1.bias": np.ones(6, dtype=bool)}, data=data)


# --- the schedule and its files --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def small_schedule() -> list[pruning.Step]:
    """The schedule (0.5, 0.9) on 128 synthetic images, two steps of fine-tuning each: once for the module."""
    data = TrainData(synthetic(128), synthetic(100, seed=2), "synthetic")
    return prune_schedule(LENET, generate_weights(LENET), (0.5, 0.9), data=data, max_steps=2)


def test_the_schedule_prunes_each_step_s_fine_tuned_weights_further(small_schedule: list[pruning.Step]) -> None:
    steps = small_schedule
    assert [s.target for s in steps] == [0.0, 0.5, 0.9] and [s.shuffle_seed for s in steps] == [None, 0, 1]
    assert steps[0].sparsity == 0.0 and steps[0].sha256 == weights_sha256(generate_weights(LENET))
    for step in steps[1:]:
        assert step.sparsity == round(step.target * total(LENET)) / total(LENET)
        assert step.sha256 == weights_sha256(step.weights) and (step.raw_bytes, step.gzip_bytes) == sizes(step.weights)
        assert 0 <= step.accuracy <= 1 and step.spared == spared_keys(LENET, step.target)
    for key in prunable_keys(LENET):
        assert (steps[2].weights[key][steps[1].weights[key] == 0] == 0).all()
    for bad in [(), (0.5, 0.5), (0.7, 0.5), (0.0, 0.5)]:
        with pytest.raises(ValueError, match="strictly increasing"):
            prune_schedule(LENET, generate_weights(LENET), bad, data=TrainData(synthetic(64), synthetic(1), ""))


def test_written_steps_load_back_checked_and_byte_for_byte(tmp_path: Path, small_schedule: list[pruning.Step]) -> None:
    steps = small_schedule
    first, second = tmp_path / "a", tmp_path / "b"
    written = write_schedule(steps, first, {"model": "lenet5", "input_shape": [1, 32, 32]})
    write_schedule(steps, second, {"model": "lenet5", "input_shape": [1, 32, 32]})
    assert [e["file"] for e in written["steps"]] == ["sparsity-0.50.npz.gz", "sparsity-0.90.npz.gz"]
    for name in ("sparsity-0.50.npz.gz", "sparsity-0.90.npz.gz", "manifest.json"):
        assert (first / name).read_bytes() == (second / name).read_bytes()
    loaded = pruned_weights(LENET, 0.9, first)
    assert loaded is not None and weights_sha256(loaded) == steps[2].sha256
    assert pruned_weights(LENET, 0.7, first) is None and pruned_weights(lenet5(), 0.9, first) is None
    assert schedule_manifest(tmp_path) == {} and pruned_weights(LENET, 0.5, tmp_path) is None
    (first / "sparsity-0.90.npz.gz").write_bytes(gzip.compress(npz_bytes(steps[1].weights)))
    with pytest.raises(WeightsMismatch, match="its manifest says"):
        pruned_weights(LENET, 0.9, first)
    (first / "sparsity-0.50.npz.gz").unlink()
    with pytest.raises(WeightsMismatch, match="cannot be read"):
        pruned_weights(LENET, 0.5, first)


def test_the_committed_schedule_is_its_manifest_s(tmp_path: Path) -> None:
    """Each committed file is the weights the manifest names (sha256 of the uncompressed .npz), as sparse as
    it says, pruned further than the step before it, from the committed trained weights."""
    data = schedule_manifest()
    assert data["model"] == "lenet5" and data["command"].startswith("python -m frameworks.pruning make")
    assert data["source_sha256"] == manifest("lenet5").sha256 == data["baseline"]["sha256"]
    assert [s["target"] for s in data["steps"]] == list(SCHEDULE) and data["prunable_weights"] == total(LENET)
    previous = None
    for entry in data["steps"]:
        blob = (pruning.OUT / entry["file"]).read_bytes()
        raw = gzip.decompress(blob)
        assert hashlib.sha256(raw).hexdigest() == entry["sha256"], entry["file"]
        assert (len(raw), len(blob)) == (entry["raw_bytes"], entry["gzip_bytes"])
        weights = read_npz(raw, LENET)
        assert counted_sparsity(LENET, weights) == entry["sparsity"]
        assert abs(entry["sparsity"] - entry["target"]) <= 1 / total(LENET)
        assert entry["spared"] == list(spared_keys(LENET, entry["target"])) and 0.5 < entry["accuracy"] <= 1
        if previous is not None:
            assert all((weights[key][previous[key] == 0] == 0).all() for key in prunable_keys(LENET))
        previous = weights
    loaded = pruned_weights(LENET, 0.9)
    assert loaded is not None and weights_sha256(loaded) == data["steps"][4]["sha256"]
    shutil.copytree(pruning.OUT, tmp_path / "copy")
    tampered = {**data, "steps": [{**s, "sha256": "0" * 64} for s in data["steps"]]}
    (tmp_path / "copy" / "manifest.json").write_text(json.dumps(tampered))
    with pytest.raises(WeightsMismatch, match="its manifest says 0000"):
        pruned_weights(LENET, 0.3, tmp_path / "copy")
