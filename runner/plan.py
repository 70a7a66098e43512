"""The plan: which cells a run has, in the order they run."""

from __future__ import annotations

from collections.abc import Iterable

from frameworks.backends.registry import FRAMEWORKS
from frameworks.models import MODELS, get_model
from frameworks.options import UsageError

from .catalog import Variant
from .cell import Cell
from .presets import excluded, planned_modes
from .settings import Settings


def check_models(names: Iterable[str]) -> list[str]:
    """Models by name, in the order given; an unknown one is a ``UsageError`` listing the valid ones."""
    chosen = []
    for name in names:
        try:
            chosen.append(get_model(name).name)
        except KeyError as exc:
            raise UsageError(exc.args[0]) from None
    return chosen


def plan(variants: Iterable[Variant], settings: Settings) -> list[Cell]:
    """Scenario by scenario (every latency cell first), then variant by variant (its image warm in the
    page cache), each model, each mode; each cell's config resolved for its model and the cpuset. The modes
    are the preset's or ``--modes``'s (``presets.planned_modes``), less the cells ``--exclude`` names."""
    variants = list(variants)
    cells = []
    points = settings.points()
    for scenario, config in settings.configs().items():
        for v in variants:
            for model in settings.models:
                resolved = config.resolve(MODELS[model], settings.threads)
                if resolved.network(MODELS[model]) is None:
                    continue  # a model the scenario does not run (the train scenario: all but LeNet-5)
                modes = resolved.modes(FRAMEWORKS[v.framework])  # the train scenario: the modes it trains in
                info = FRAMEWORKS[v.framework]
                chosen = [m for m in planned_modes(v, settings.preset, settings.modes) if m in modes]
                for point in (p for p in points if resolved.runs_transform(p.name)):
                    cells += [Cell(v, mode, model, scenario, resolved, transform=point)
                              for mode in chosen if info.runs_mode(mode, point.name)]  # fmt: skip
    return [c for c in cells if not excluded(c, settings.exclude)]
