"""Canonical weights: generated deterministically from a seed, in the layout ``models`` documents.

He-normal scaled on purpose: a framework's default initialisation drives MobileNet's
activations to ~1e-10, where any output comparison is meaningless. Every tensor draws from its
own generator seeded by (seed, tensor key), so a tensor's values do not depend on which other
layers exist.
"""

from __future__ import annotations

import math
import zlib
from functools import lru_cache

import numpy as np

from .models import ModelSpec

Weights = dict[str, np.ndarray]


def _rng(seed: int, key: str) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(key.encode())])


def _tensor(key: str, shape: tuple[int, ...], seed: int) -> np.ndarray:
    rng = _rng(seed, key)
    kind = key.rsplit(".", 1)[1]
    if kind == "weight":
        fan_in = math.prod(shape[1:])
        return (rng.standard_normal(shape, dtype=np.float32) * np.float32(math.sqrt(2.0 / fan_in))).astype(np.float32)
    if kind in ("bias", "beta", "mean"):
        return (rng.standard_normal(shape, dtype=np.float32) * np.float32(0.05)).astype(np.float32)
    if kind in ("gamma", "var"):
        return rng.uniform(0.5, 1.5, size=shape).astype(np.float32)
    raise ValueError(f"unknown tensor kind in {key!r}")


def canonical_weights(spec: ModelSpec, seed: int = 0) -> Weights:
    """All tensors of ``spec`` as float32 arrays (read-only: backends copy what they convert).

    The ones the runner handed this process (``frameworks.inputs``, checked by sha256) when there are,
    else generated here.
    """
    from .inputs import handed_weights

    handed = handed_weights(spec, seed)
    return handed if handed is not None else generate_weights(spec, seed)


def generate_weights(spec: ModelSpec, seed: int = 0) -> Weights:
    """The canonical tensors generated from the seed (cached for the process)."""
    return dict(_cached(spec, seed))


@lru_cache(maxsize=4)
def _cached(spec: ModelSpec, seed: int) -> tuple[tuple[str, np.ndarray], ...]:
    items = []
    for key, shape in spec.tensors().items():
        array = _tensor(key, shape, seed)
        array.setflags(write=False)
        items.append((key, array))
    return tuple(items)


def make_input(spec: ModelSpec, batch: int, rng: np.random.Generator) -> np.ndarray:
    """A fresh standard-normal NCHW float32 batch."""
    return rng.standard_normal((batch, *spec.input_shape), dtype=np.float32)
