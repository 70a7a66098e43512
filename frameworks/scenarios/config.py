"""The settings every scenario shares, and the one conversion of a config to strings and flags.

A scenario's config is a frozen dataclass that validates itself in ``__post_init__``. Its fields
are its command-line options (``min_time`` is ``--min-time``, in predict and in the runner alike),
its entries in a result's ``config`` and in run.json (as strings), and, for the names in
``IDENTITY``, part of the cell's identity. The timing defaults live here and nowhere else.
Standard library only: the runner builds configs without NumPy.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from ..compat import UNION_TYPES, type_hints
from ..validity import DEFAULT_MAX_TIME_S, DEFAULT_PRECISION

if TYPE_CHECKING:
    from ..backends.registry import FrameworkInfo
    from ..models import ModelSpec

C = TypeVar("C", bound="ScenarioConfig")

DEFAULT_ITERATIONS = 20
DEFAULT_WARMUP = 5
# LeNet-5's 20 iterations take about a millisecond: too short for a median worth quoting, or for
# the load meter (/proc/stat counts in 10 ms ticks).
DEFAULT_MIN_TIME_S = 1.0
# torch.compile and XLA compile VGG-16 for minutes on 2 cores: a measurement (a latency cell, or
# one point of a sweep) gets this long before it is killed.
DEFAULT_TIMEOUT_S = 900.0


def option(help: str, *, runner: bool = True) -> dict[str, Any]:
    """Field metadata: the option's help text; ``runner=False`` for what the runner sets itself."""
    return {"help": help, "runner": runner}


def flag(name: str) -> str:
    """A field's command-line flag: ``min_time`` -> ``--min-time``."""
    return "--" + name.replace("_", "-")


@dataclass(frozen=True)
class ScenarioConfig:
    """Base of every scenario's config: how long to warm up and how long to time."""

    IDENTITY: ClassVar[tuple[str, ...]] = ()  # the fields that make two cells different cells

    iterations: int = field(default=DEFAULT_ITERATIONS, metadata=option("at least this many timed iterations"))
    warmup: int = field(default=DEFAULT_WARMUP, metadata=option("untimed iterations first"))
    min_time: float = field(
        default=DEFAULT_MIN_TIME_S, metadata=option("and at least this many seconds of timed iterations")
    )
    precision: float = field(
        default=DEFAULT_PRECISION,
        metadata=option("then sample on until the median's 95%% CI is within +- this fraction of it ..."),
    )
    max_time: float = field(
        default=DEFAULT_MAX_TIME_S,
        metadata=option("... or until this many seconds of timed iterations (a cell that stops here is not valid)"),
    )

    def __post_init__(self) -> None:
        if self.iterations < 1:
            raise ValueError(f"{flag('iterations')} must be at least 1")
        if self.warmup < 0 or self.min_time < 0:
            raise ValueError(f"{flag('warmup')} and {flag('min_time')} must not be negative")
        if not 0 < self.precision < 1:
            raise ValueError(f"{flag('precision')} must be a fraction between 0 and 1 (0.02 is +-2%), "
                             f"got {self.precision:g}")  # fmt: skip
        if self.max_time < self.min_time and self.max_time == DEFAULT_MAX_TIME_S:  # a longer --min-time moves the cap
            object.__setattr__(self, "max_time", self.min_time)
        if self.max_time < self.min_time:
            raise ValueError(f"{flag('max_time')} ({self.max_time:g} s) must not be below "
                             f"{flag('min_time')} ({self.min_time:g} s)")  # fmt: skip

    def resolve(self: C, spec: ModelSpec, cpus: int) -> C:
        """This config with the defaults that depend on the model or the CPUs filled in."""
        return self

    def cell_batch(self) -> int:
        """The batch of the cell's own figures (a sweep's points carry their own)."""
        return 1

    def largest_batch(self) -> int:
        """The largest batch any measurement of the cell runs: the reference the runner prepares covers it."""
        return self.cell_batch()

    def points(self) -> int:
        """How many separate measurements the scenario makes: the runner's timeout scales with it."""
        return 1

    def network(self, spec: ModelSpec) -> ModelSpec | None:
        """The network a cell runs for the registered model ``spec`` (the train scenario: its form for
        the dataset's images); None where the scenario does not run that model (no cell is planned)."""
        return spec

    def modes(self, info: FrameworkInfo) -> tuple[str, ...]:
        """The framework's modes this scenario measures (the train scenario: those it trains in)."""
        return info.modes

    def runs_transform(self, name: str) -> bool:
        """Whether the scenario runs cells of this transform (``frameworks.transforms``); no cell is planned
        where it does not."""
        return True

    def datasets(self) -> tuple[str, ...]:
        """The datasets a cell reads: predict checks them before it runs (one missing is exit 2)."""
        return ()

    def identity_fields(self) -> tuple[str, ...]:
        """The names of ``IDENTITY`` that make this cell a cell of its own (a default may leave one out)."""
        return self.IDENTITY

    # --- the one conversion to and from strings ---------------------------------------------------

    def to_strings(self) -> dict[str, str]:
        """Every field as a string (tuples space separated): a result's ``config``, run.json's settings."""
        return {f.name: _to_string(getattr(self, f.name)) for f in dataclasses.fields(self)}

    def identity(self) -> tuple[tuple[str, str], ...]:
        strings = self.to_strings()
        return tuple((name, strings[name]) for name in self.identity_fields())

    def to_args(self, *, skip: tuple[str, ...] = ()) -> list[str]:
        """The predict flags that give exactly this config."""
        args: list[str] = []
        for f in dataclasses.fields(self):
            if f.name in skip:
                continue
            value = getattr(self, f.name)
            if isinstance(value, tuple):
                if value:  # an empty tuple is "the default", which predict resolves the same way
                    args += [flag(f.name), *map(_to_string, value)]
            else:
                args += [flag(f.name), _to_string(value)]
        return args

    @classmethod
    def from_strings(cls: type[C], data: Mapping[str, str]) -> C:
        """The config from string values (unknown names ignored: they belong to other scenarios).

        Bad values raise ``ValueError`` naming the flag.
        """
        hints = type_hints(cls)
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            if f.name in data:
                values[f.name] = parse_value(hints[f.name], data[f.name], flag(f.name))
        return cls(**values)


def fields_of(config_type: type[ScenarioConfig]) -> list[tuple[dataclasses.Field[Any], Any]]:
    """A config's fields with their resolved type hints (for building command-line options)."""
    hints = type_hints(config_type)
    return [(f, hints[f.name]) for f in dataclasses.fields(config_type)]


def is_tuple(hint: Any) -> bool:
    return typing.get_origin(hint) is tuple


def element_type(hint: Any) -> Any:
    """int for ``tuple[int, ...]``, the hint itself for a scalar."""
    return typing.get_args(hint)[0] if is_tuple(hint) else hint


def parse_value(hint: Any, text: str, where: str) -> Any:
    """A string (space separated for tuples) as the field's type; ``ValueError`` naming ``where``."""
    scalar = element_type(hint)
    if typing.get_origin(scalar) in UNION_TYPES:
        raise TypeError(f"{where}: optional fields are not supported in a scenario config")
    try:
        if is_tuple(hint):
            return tuple(scalar(part) for part in text.split())
        return scalar(text)
    except ValueError:
        raise ValueError(
            f"{where}: expected {scalar.__name__}{' values' if is_tuple(hint) else ''}, got {text!r}"
        ) from None


def _to_string(value: Any) -> str:
    if isinstance(value, tuple):
        return " ".join(_to_string(v) for v in value)
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def positive_unique(values: tuple[int, ...], name: str) -> None:
    """Sweep values: positive and each once (a repeated batch would be measured twice)."""
    if any(v < 1 for v in values):
        raise ValueError(f"{flag(name)} must be positive integers, got {' '.join(map(str, values))}")
    if len(set(values)) != len(values):
        raise ValueError(f"{flag(name)} lists a value twice: {' '.join(map(str, values))}")
