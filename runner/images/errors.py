"""The package's errors, in a module of their own so every submodule can raise them without importing
the others (both are re-exported by ``runner.images``)."""

from __future__ import annotations


class ImageBuildError(RuntimeError):
    """A build failed: one line naming the image and the builder's error."""


class ImageValidationError(ValueError):
    """An image that cannot be built as specified (Dockerfile or pins): one line."""
