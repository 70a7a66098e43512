"""Output equivalence: a framework's output against the NumPy float64 reference.

Used by ``predict`` before anything is timed, and by the equivalence tests.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from .backends.numpy_backend import reference_forward
from .inputs import handed_reference
from .models import ModelSpec
from .weights import Weights, generate_weights, make_input


@dataclass(frozen=True)
class Check:
    max_error: float  # max |output - reference| / max |reference|
    tolerance: float
    shape_ok: bool

    @property
    def verified(self) -> bool:
        return self.shape_ok and bool(np.isfinite(self.max_error)) and self.max_error <= self.tolerance


def verification_input(spec: ModelSpec, batch: int, seed: int) -> np.ndarray:
    """The fixed input the first inference runs on (its own stream, apart from timing inputs)."""
    return make_input(spec, batch, np.random.default_rng([seed, 1_000_003]))


def compute_reference(spec: ModelSpec, batch: int, seed: int, weights: Weights | None = None) -> np.ndarray:
    """The float64 reference for ``verification_input(spec, batch, seed)`` on the canonical weights (or on
    ``weights``: trained, transformed), one image at a time.

    Image by image so that memory stays that of batch 1 (VGG-16's float64 im2col columns are 231 MB
    per image), and so that a batch's reference is exactly a prefix of a larger batch's.
    """
    weights = generate_weights(spec, seed) if weights is None else weights
    x = verification_input(spec, batch, seed)
    out = np.concatenate([reference_forward(spec, weights, x[i : i + 1]) for i in range(batch)])
    out.setflags(write=False)
    return out


@lru_cache(maxsize=4)
def _reference(spec: ModelSpec, batch: int, seed: int) -> np.ndarray:
    return compute_reference(spec, batch, seed)


def reference_output(spec: ModelSpec, batch: int, seed: int) -> np.ndarray:
    """Reference output for ``verification_input``: the runner's (``frameworks.inputs``) when it handed
    one over, else computed here (cached: ``--all`` checks every mode against it)."""
    handed = handed_reference(spec, batch, seed)
    return handed if handed is not None else _reference(spec, batch, seed)


def compare(output: np.ndarray, reference: np.ndarray, tolerance: float) -> Check:
    output = np.asarray(output)
    if output.shape != reference.shape:
        return Check(float("inf"), tolerance, shape_ok=False)
    error = float(np.max(np.abs(output.astype(np.float64) - reference)) / np.max(np.abs(reference)))
    return Check(error if np.isfinite(error) else float("inf"), tolerance, shape_ok=True)
