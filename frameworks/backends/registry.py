"""The framework registry: static facts, and backend modules imported only when asked for.

The host imports this module to list frameworks and modes without importing any framework.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    import numpy as np

    from ..models import ModelSpec

Forward = Callable[["np.ndarray"], "np.ndarray"]


@dataclass(frozen=True)
class BuildOptions:
    mode: str
    device: str = "cpu"
    threads: int = 1
    batch: int = 1


@dataclass(frozen=True)
class Built:
    """A model lowered to one framework: the forward function and the framework's own counts."""

    forward: Forward
    params: int  # trainable parameters, counted through the framework's own API
    buffers: int  # non-trainable state (batch-norm running statistics), likewise


class Backend(Protocol):
    """What a ``<framework>_backend`` module provides (checked structurally)."""

    def version(self) -> str: ...
    def build_facts(self) -> dict[str, str]: ...
    def cuda_available(self) -> bool: ...
    def build(self, spec: ModelSpec, weights: dict[str, np.ndarray], options: BuildOptions) -> Built: ...


@dataclass(frozen=True)
class FrameworkInfo:
    name: str
    module: str  # imported on demand
    import_name: str  # the framework's own top-level package, to test availability cheaply
    modes: tuple[str, ...]
    devices: tuple[str, ...]


FRAMEWORKS: dict[str, FrameworkInfo] = {
    info.name: info
    for info in (
        FrameworkInfo("numpy", "frameworks.backends.numpy_backend", "numpy", ("im2col",), ("cpu",)),
        FrameworkInfo(
            "torch", "frameworks.backends.torch_backend", "torch", ("eager", "jit", "compile"), ("cpu", "cuda")
        ),
        FrameworkInfo(
            "tensorflow",
            "frameworks.backends.tensorflow_backend",
            "tensorflow",
            ("eager", "graph", "xla"),
            ("cpu", "cuda"),
        ),
        FrameworkInfo("mxnet", "frameworks.backends.mxnet_backend", "mxnet", ("imperative", "hybrid"), ("cpu", "cuda")),
        FrameworkInfo(
            "onnxruntime", "frameworks.backends.onnxruntime_backend", "onnxruntime", ("session",), ("cpu", "cuda")
        ),
    )
}

DEVICES: tuple[str, ...] = ("cpu", "cuda")


def get_framework(name: str) -> FrameworkInfo:
    """Look a framework up; an unknown name lists the valid ones."""
    try:
        return FRAMEWORKS[name]
    except KeyError:
        raise KeyError(f"unknown framework {name!r}; valid frameworks: {', '.join(FRAMEWORKS)}") from None


def check_mode(framework: str, mode: str) -> None:
    info = get_framework(framework)
    if mode not in info.modes:
        raise KeyError(f"unknown mode {mode!r} for {framework}; valid modes: {', '.join(info.modes)}")


def is_installed(framework: str) -> bool:
    """Whether the framework's package can be found, without importing it."""
    import importlib.util

    return importlib.util.find_spec(get_framework(framework).import_name) is not None


def load_backend(framework: str) -> Backend:
    """Import the backend module (and so the framework) now."""
    module: ModuleType = importlib.import_module(get_framework(framework).module)
    return module  # type: ignore[return-value]
