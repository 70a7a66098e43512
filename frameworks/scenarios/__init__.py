"""Scenarios: what a cell measures. One module each, registered here.

In the style of optimum-benchmark's scenario/backend split: a scenario owns its measurement loop
and a frozen config dataclass that validates itself; a framework backend only builds a model and
runs it. Every module of this package defines ``SCENARIO = register_scenario(Scenario(...))``
and is imported by ``registry.discover`` below, so adding a kind of measurement is adding one module.
The modules import NumPy and the harness only inside their ``measure`` functions: the host lists
scenarios and builds their configs without either.

- ``latency``: batch-1 latency of a forward pass (the matrix's default and its main table);
- ``throughput``: a batch-size sweep, images/s per batch;
- ``threads``: thread scaling, the speedup over one thread and the parallel efficiency.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from ..registry import Registry, discover
from .config import ScenarioConfig

if TYPE_CHECKING:
    from ..harness import CellRequest
    from ..models import ModelSpec
    from ..result import Result

Measure = Callable[["CellRequest", "ModelSpec", ScenarioConfig, "Result"], "Result"]


@dataclass(frozen=True)
class ReportSpec:
    """How the reports draw a sweep scenario: one figure of its points against one axis, per model.

    ``x`` is the point field that varies; ``y`` a figure the reports compute from each point's
    samples: ``images_per_s`` (batch / median) or ``speedup`` (median at the first point / median).
    """

    title: str
    intro: str
    x: Literal["batch", "threads"]
    x_label: str
    y: Literal["images_per_s", "speedup"]
    y_label: str
    log2_x: bool = True
    ideal: bool = False  # draw y = x (linear scaling) for comparison


@dataclass(frozen=True)
class Scenario:
    """A kind of measurement: its config type, its loop, and how the reports show it."""

    name: str
    summary: str  # one line, for --help and `runner list`
    config: type[ScenarioConfig]
    measure: Measure  # (request, spec, resolved config, base result) -> the finished result
    report: ReportSpec | None = None  # None: the report's matrix and per-model tables (latency)


SCENARIOS: Registry[Scenario] = Registry("scenario")
DEFAULT_SCENARIO = "latency"
SCENARIO_ENV = "DLBENCH_SCENARIO"  # predict's default scenario where no --scenario is given (compose sets it)
_FIRST = ("latency", "throughput", "threads")  # listing order; any other module follows, by name


def register_scenario(scenario: Scenario) -> Scenario:
    return SCENARIOS.register(scenario.name, scenario)


def get_scenario(name: str) -> Scenario:
    """Look a scenario up; an unknown name lists the valid ones."""
    return SCENARIOS.get_entry(name)


def list_scenarios() -> list[str]:
    return list(SCENARIOS)


discover(__name__, __path__, _FIRST, skip=("config",))

__all__ = [
    "DEFAULT_SCENARIO",
    "SCENARIOS",
    "SCENARIO_ENV",
    "ReportSpec",
    "Scenario",
    "ScenarioConfig",
    "get_scenario",
    "list_scenarios",
    "register_scenario",
]
