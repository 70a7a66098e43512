"""``none``: the model as specified (the canonical seeded weights, or the latency scenario's trained ones)."""

from __future__ import annotations

from . import NONE, Transform, register_transform

TRANSFORM = register_transform(
    Transform(name=NONE, summary="the model as specified: no transform (the default)", level="weights")
)
