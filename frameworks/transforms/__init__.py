"""Transforms: what is done to a model before a cell runs it. One module each, registered here.

The matrix's fourth axis beside models, frameworks and scenarios, and orthogonal to the scenarios:
a cell is (scenario, variant, mode, model, transform), and any scenario runs any transform it
supports. A transform has a frozen config that validates itself; the names in its ``IDENTITY``,
with the sha256 of the weights it produced, join the cell's key (``result.Transformed.key``), so a
pruned cell is never paired with a dense one by accident. There are two levels:

- ``weights``: new weights, and with them a new float64 reference the cell's output is checked
  against (pruning). Every backend runs them with its ordinary kernels: a backend builds from weights.
- ``build``: the backend is told through ``BuildOptions.transform`` (int8); ``FrameworkInfo.transforms``
  lists the ones a backend supports, and a cell it cannot run is a skipped cell with the reason. A
  build-level transform may make data too (``apply``: int8's float weights and calibration images, in
  ``Prepared.arrays``), which reach the backend in ``BuildOptions.data``, and may say what the cell's
  output is checked against (``reference``: int8's NumPy int8 reference) and within what (``tolerance``).

Every module of this package defines ``TRANSFORM = register_transform(Transform(...))`` and is
imported by ``registry.discover`` below: adding a transform is adding one module. Like the scenarios, the
modules import NumPy only inside their functions: the host lists transforms and parses their
options without it. ``none`` is the model as specified (canonical, or the latency scenario's
trained weights); its cells keep the keys they had before transforms existed.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal, TypeVar

from ..compat import type_hints
from ..registry import Registry, discover
from ..scenarios.config import flag, parse_value

if TYPE_CHECKING:
    import numpy as np

    from ..models import ModelSpec

NONE = "none"
WEIGHTS, BUILD = "weights", "build"
Level = Literal["weights", "build"]
C = TypeVar("C", bound="TransformConfig")


def transform_option(plural: str, help: str) -> dict[str, Any]:
    """Field metadata: the command-line option that lists this field's values (``--sparsities``), one cell each."""
    return {"option": plural, "help": help}


@dataclass(frozen=True)
class TransformConfig:
    """Base of every transform's config: one value per field, one cell per config.

    On the command line each field is a list option (its metadata's ``option``): the matrix plans one
    cell per value (``--sparsities 0.5 0.9``: two cells per scenario, variant, mode and model).
    """

    IDENTITY: ClassVar[tuple[str, ...]] = ()

    def to_strings(self) -> dict[str, str]:
        return {f.name: _text(getattr(self, f.name)) for f in dataclasses.fields(self)}

    @classmethod
    def from_strings(cls: type[C], data: Mapping[str, str]) -> C:
        """The config from string values; a bad value raises ``ValueError`` naming the option."""
        hints = type_hints(cls)
        values = {
            f.name: parse_value(hints[f.name], data[f.name], flag(option_name(f)))
            for f in dataclasses.fields(cls)
            if f.name in data
        }
        return cls(**values)


def option_name(f: dataclasses.Field[Any]) -> str:
    """The field's list option, without dashes: ``sparsities``."""
    return str(f.metadata.get("option", f.name))


def _text(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


@dataclass(frozen=True)
class Prepared:
    """What a weights-level transform made: the network it runs as, its weights, and how they were made."""

    network: ModelSpec
    weights: dict[str, np.ndarray]
    source: str  # "canonical" (seeded) or "trained"
    evaluate: bool  # trained weights: the cell measures test accuracy inside the framework
    facts: dict[str, str] = field(default_factory=dict)
    sparsity: float | None = None
    arrays: dict[str, np.ndarray] = field(default_factory=dict)  # data the build needs (calibration images, scales)


Network = Callable[["ModelSpec", TransformConfig], "ModelSpec"]
Apply = Callable[["ModelSpec", int, TransformConfig], Prepared]
# (network, weights, arrays, config, x) -> the reference output for x, or None for the float64 one
Reference = Callable[["ModelSpec", "dict[str, np.ndarray]", "dict[str, np.ndarray]", TransformConfig, "np.ndarray"],
                     "np.ndarray | None"]  # fmt: skip
# (network, weights, arrays, config, reference) -> the relative tolerance of the output check
Tolerance = Callable[["ModelSpec", "dict[str, np.ndarray]", "dict[str, np.ndarray]", TransformConfig, "np.ndarray"],
                     float]  # fmt: skip


def _same_network(spec: ModelSpec, config: TransformConfig) -> ModelSpec:
    return spec


@dataclass(frozen=True)
class Transform:
    """A kind of model change: its config, its level, and (weights-level) how it makes the weights."""

    name: str
    summary: str  # one line, for --help and `runner list`
    level: Level
    config: type[TransformConfig] = TransformConfig
    apply: Apply | None = None  # weights-level (build-level with data): (registered spec, seed, config) -> Prepared
    network: Network = _same_network  # the network a cell runs (cheap: no weights)
    reference: Reference | None = None  # None: the float64 reference on the weights
    tolerance: Tolerance | None = None  # None: the model's float32 tolerance
    # trained weights are verified on the first test images, not on seeded noise (int8: calibrated ranges)
    verify_on_test_images: bool = False


TRANSFORMS: Registry[Transform] = Registry("transform")


def register_transform(transform: Transform) -> Transform:
    if transform.level not in (WEIGHTS, BUILD):
        raise ValueError(f"transform {transform.name}: level must be {WEIGHTS} or {BUILD}")
    if transform.level == WEIGHTS and transform.name != NONE and transform.apply is None:
        raise ValueError(f"transform {transform.name}: a weights-level transform needs apply")
    return TRANSFORMS.register(transform.name, transform)


def get_transform(name: str) -> Transform:
    """Look a transform up; an unknown name lists the valid ones."""
    return TRANSFORMS.get_entry(name)


def list_transforms() -> list[str]:
    return list(TRANSFORMS)


@dataclass(frozen=True)
class TransformPoint:
    """One transform at one config: what a cell runs."""

    name: str
    config: TransformConfig

    @property
    def transform(self) -> Transform:
        return get_transform(self.name)

    def to_args(self) -> list[str]:
        """predict's flags for exactly this point (none: no flags)."""
        if self.name == NONE:
            return []
        strings = self.config.to_strings()
        args = ["--transforms", self.name]
        for f in dataclasses.fields(self.config):
            args += [flag(option_name(f)), strings[f.name]]
        return args

    def label(self) -> str:
        """``prune sparsity=0.5``: the runner's log and the cell's name."""
        strings = self.config.to_strings()
        return " ".join([self.name, *(f"{n}={strings[n]}" for n in self.config.IDENTITY)])


NO_POINT = TransformPoint(NONE, TransformConfig())

_FIRST = (NONE,)

discover(__name__, __path__, _FIRST)

__all__ = [
    "BUILD",
    "NONE",
    "NO_POINT",
    "TRANSFORMS",
    "WEIGHTS",
    "Prepared",
    "Transform",
    "TransformConfig",
    "TransformPoint",
    "get_transform",
    "list_transforms",
    "register_transform",
    "transform_option",
]
