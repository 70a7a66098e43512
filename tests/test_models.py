"""The architectures, weights and reference: the figures the issue fixes, and the checks can fail."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from frameworks.backends.numpy_backend import compile_network, im2col, reference_forward
from frameworks.models import MODELS, Dense, ReLU, get_model, lenet5, mobilenet_v1, vgg16
from frameworks.verify import compare, reference_output, verification_input
from frameworks.weights import canonical_weights


@pytest.mark.parametrize(
    ("spec", "params"),
    [(lenet5(), 62_006), (lenet5(7), 61_751), (vgg16(), 138_357_544), (mobilenet_v1(), 4_231_976)],
)
def test_parameter_counts(spec, params):
    assert spec.params == params


def test_mobilenet_batchnorm_state_counted_apart():
    # gamma and beta are trainable parameters; the 21,888 running means and variances are state.
    assert mobilenet_v1().buffers == 21_888
    assert mobilenet_v1().params + mobilenet_v1().buffers == 4_253_864


@pytest.mark.parametrize(("name", "gflop"), [("lenet5", 0.0013), ("vgg16", 30.9), ("mobilenet_v1", 1.14)])
def test_flops_from_spec(name, gflop):
    assert get_model(name).flops / 1e9 == pytest.approx(gflop, rel=0.02)


def test_vgg_has_relu_after_fc6_and_fc7_and_ends_in_softmax():
    names = [layer.name for layer in vgg16().layers]
    assert names[-7:] == ["flatten", "fc6", "relu6", "fc7", "relu7", "fc8", "softmax"]
    assert sum(isinstance(layer, Dense) for layer in vgg16().layers) == 3


@pytest.mark.parametrize("name", list(MODELS))
def test_every_model_ends_in_softmax_over_its_classes(name):
    spec = get_model(name)
    assert type(spec.layers[-1]).__name__ == "Softmax"
    assert spec.output_shape == (spec.classes,)


def test_unknown_model_lists_valid_ones():
    with pytest.raises(KeyError, match="valid models: lenet5, vgg16, mobilenet_v1"):
        get_model("resnet50")


def test_weights_are_deterministic_and_seeded():
    spec = lenet5()
    a, b, c = canonical_weights(spec, 0), canonical_weights(spec, 0), canonical_weights(spec, 1)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not np.array_equal(a["conv1.weight"], c["conv1.weight"])
    assert {k: v.shape for k, v in a.items()} == spec.tensors()


def test_weights_are_he_scaled():
    w = canonical_weights(mobilenet_v1(), 0)["pw13.weight"]  # fan_in 1024
    assert np.std(w) == pytest.approx(np.sqrt(2 / 1024), rel=0.05)


def test_mobilenet_activations_stay_meaningful():
    # With a default init MobileNet's output collapses to ~1e-10 differences; ours must not.
    spec = mobilenet_v1()
    out = reference_output(spec, 1, 0)
    assert out.max() > 10 / spec.classes
    assert np.isclose(out.sum(), 1.0)


def test_im2col_matches_a_direct_convolution():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 7, 6))
    w = rng.standard_normal((4, 3, 3, 3))
    cols, oh, ow = im2col(x, 3, 2, 1)
    got = (w.reshape(4, -1) @ cols).reshape(2, 4, oh, ow)
    xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    want = np.zeros_like(got)
    for i in range(oh):
        for j in range(ow):
            patch = xp[:, :, 2 * i : 2 * i + 3, 2 * j : 2 * j + 3]
            want[:, :, i, j] = np.einsum("nchw,ochw->no", patch, w)
    np.testing.assert_allclose(got, want, rtol=1e-12)


def test_float32_network_matches_the_float64_reference():
    spec = lenet5()
    weights = canonical_weights(spec, 0)
    x = verification_input(spec, 2, 0)
    check = compare(compile_network(spec, weights, np.float32)(x), reference_forward(spec, weights, x), 1e-4)
    assert check.verified and check.max_error < 1e-5


def test_the_equivalence_check_catches_a_missing_relu():
    # The defect of the project this one answers: no ReLU after one dense layer.
    spec = lenet5()
    broken = replace(spec, layers=tuple(layer for layer in spec.layers if layer.name != "relu3"))
    assert not any(isinstance(layer, ReLU) and layer.name == "relu3" for layer in broken.layers)
    weights = canonical_weights(spec, 0)
    x = verification_input(spec, 1, 0)
    check = compare(compile_network(broken, weights, np.float32)(x), reference_forward(spec, weights, x), 1e-4)
    assert not check.verified


def test_the_equivalence_check_catches_a_wrong_flatten_order():
    spec = lenet5()
    weights = dict(canonical_weights(spec, 0))
    # Rows of fc1 permuted as if the activations were flattened H, W, C instead of C, H, W.
    w = weights["fc1.weight"].reshape(120, 16, 5, 5).transpose(0, 2, 3, 1).reshape(120, 400)
    weights["fc1.weight"] = w
    x = verification_input(spec, 1, 0)
    check = compare(
        compile_network(spec, weights, np.float32)(x), reference_forward(spec, canonical_weights(spec, 0), x), 1e-4
    )
    assert not check.verified


def test_a_wrong_shape_never_verifies():
    ref = np.ones((1, 10)) / 10
    assert not compare(np.ones((1, 9)), ref, 1).verified
    assert not compare(np.full((1, 10), np.nan), ref, 1).verified


def test_the_model_registry_lists_refuses_duplicates_and_forgets_temporary_entries():
    from frameworks.models import list_models, register_model

    assert list_models() == ["lenet5", "vgg16", "mobilenet_v1"]
    with pytest.raises(ValueError, match="model 'lenet5' is already registered"):
        register_model(lenet5())
    with MODELS.temporary():
        register_model(replace(lenet5(), name="lenet5b"))
        assert get_model("lenet5b").params == 62_006
    with pytest.raises(KeyError, match="unknown model 'lenet5b'; valid models: lenet5, vgg16, mobilenet_v1"):
        get_model("lenet5b")


def test_a_spec_validates_its_tolerance_and_batches():
    with pytest.raises(ValueError, match="tolerance must be positive"):
        replace(lenet5(), tolerance=0.0)
    with pytest.raises(ValueError, match="batches must be positive"):
        replace(lenet5(), batches=(0,))
    assert get_model("vgg16").batches == (1, 4, 16) and get_model("lenet5").tolerance == 1e-4
