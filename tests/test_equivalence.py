"""Every framework x mode x model computes the spec's network: same parameter count, same output.

These are the tests that make a timing publishable: a cell that passes here measured the same
model with the same weights as every other cell.
"""

from __future__ import annotations

import pytest

from frameworks.backends.registry import FLOAT32, FRAMEWORKS
from frameworks.models import MODELS
from tests.checks import shared_check
from tests.conftest import framework_marks

# The fast tier checks LeNet-5 in every mode of every framework this machine runs outside an image; MobileNet
# v1, VGG-16 (15.5 GFLOP and 138 M weights per cell), torch.compile's compilations and the frameworks that run
# only in their images are the full suite's.
CELLS = [
    pytest.param(fw.name, mode, model, id=f"{fw.name}-{mode}-{model}",
                 marks=framework_marks(fw.name, mode, slow=model != "lenet5" or mode == "compile"))
    for fw in FRAMEWORKS.values()
    for mode in fw.modes
    for model in MODELS
]  # fmt: skip

# Fresh weights and inputs: not the seed the benchmarks use.
SEEDS = (3,)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize(("framework", "mode", "model"), CELLS)
def test_matches_spec_and_reference(framework: str, mode: str, model: str, seed: int) -> None:
    report = shared_check(framework, mode, model, seed)
    assert report.params == report.spec_params, "trainable parameter count differs from the spec"
    assert report.buffers == report.spec_buffers, "batch-norm running statistics differ from the spec"
    if report.precision not in (None, FLOAT32):
        # The framework chose a precision below float32 on this CPU (OpenVINO's auto picks bf16 where the
        # CPU has it): the same network, but float32's tolerance cannot hold, and the cell must say so.
        assert not report.verified, f"{report.precision} passed as float32 (max relative error {report.max_error:.3g})"
        assert report.max_error > report.tolerance
        return
    assert report.max_error <= report.tolerance, f"max relative error {report.max_error:.3g} > {report.tolerance:g}"
    assert report.verified
