"""A cell: one variant's mode on one model, measured by one scenario with its resolved config.

Its own module because everything else (the settings, the plan, the launchers, the time-left
estimate) speaks of cells, and none of them should have to import the others to do so.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from frameworks.models import MODELS, ModelSpec
from frameworks.result import CellKey
from frameworks.scenarios import DEFAULT_SCENARIO, SCENARIOS, ScenarioConfig
from frameworks.transforms import NO_POINT, NONE, TransformPoint

from .catalog import Variant


@dataclass(frozen=True)
class Inputs:
    """The canonical weights and reference the runner made for one model (``frameworks.inputs``)."""

    name: str  # the directory under ``inputs_root()``
    sha256: str  # of its manifest: what the cell checks before it uses them


@dataclass(frozen=True)
class Cell:
    """One planned cell: a variant's mode on one model, measured by one scenario with its resolved config."""

    variant: Variant
    mode: str
    model: str
    scenario: str = DEFAULT_SCENARIO
    config: ScenarioConfig = field(default_factory=lambda: SCENARIOS[DEFAULT_SCENARIO].config())
    inputs: Inputs | None = None  # None: the cell computes its weights and reference itself
    transform: TransformPoint = NO_POINT
    transform_key: tuple[tuple[str, str], ...] = ()  # Transformed.key() of the weights the runner made for it

    def key(self, launcher: str, host: str = "") -> CellKey:
        """The key its result will have (``Result.key``) on the named host: what resume looks for."""
        v = self.variant
        return CellKey(self.scenario, v.name, launcher, host, v.framework, self.mode, self.model, v.device,
                       self.config.identity(), self.transform_key)  # fmt: skip

    @property
    def label(self) -> str:
        tail = "" if self.scenario == DEFAULT_SCENARIO else f" [{self.scenario}]"
        if self.transform.name != NONE:
            tail += f" [{self.transform.label()}]"
        return f"{self.variant.name} {self.mode} {self.model}{tail}"


def cell_network(cell: Cell) -> ModelSpec:
    """The network the cell runs (its parameters and FLOPs): the model's, or its scenario's form of it."""
    spec = MODELS[cell.model]
    network = cell.config.network(spec) or spec
    return cell.transform.transform.network(network, cell.transform.config)
