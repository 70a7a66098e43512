"""Which cells a matrix runs: presets (quick, default, full) and the filters that narrow them.

A preset chooses variants, models, scenarios and each variant's modes; an explicit ``--variants``,
``--models`` or ``--scenarios`` replaces the preset's choice of that axis, and ``--modes`` replaces
its choice of modes (naming an opt-in mode brings it in). ``--frameworks`` and ``--exclude`` then
narrow what is left. The modes a preset times are catalog data (``best_mode``, ``opt_in_modes``),
so a framework's fastest mode or a slow mode is said once, beside the variant.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable
from dataclasses import dataclass

from frameworks.models import MODELS
from frameworks.options import UsageError
from frameworks.scenarios import DEFAULT_SCENARIO, SCENARIOS

from .catalog import Catalog, Variant
from .cell import Cell


@dataclass(frozen=True)
class Preset:
    """What a preset runs when no flag says otherwise."""

    name: str
    summary: str  # for --help and the README
    models: tuple[str, ...]
    scenarios: tuple[str, ...]


QUICK = Preset(
    "quick",
    "LeNet-5 and MobileNet v1, latency, each framework's best mode on its first available CPU variant "
    "(at most 5 minutes on 2 cores)",
    ("lenet5", "mobilenet_v1"),
    (DEFAULT_SCENARIO,),
)
DEFAULT = Preset("default", "every variant and model, latency, every mode but the opt-in ones", tuple(MODELS),
                 (DEFAULT_SCENARIO,))  # fmt: skip
FULL = Preset("full", "every variant, model and mode (opt-in ones too), every scenario", tuple(MODELS),
              tuple(SCENARIOS))  # fmt: skip
PRESETS = {p.name: p for p in (QUICK, DEFAULT, FULL)}
EVERY_MODE = ""  # the preset of a run from before presets: every mode of each variant was planned

# ``--exclude FIELD=GLOB``: the cell's own fields; any other pattern is a glob on the cell's label.
EXCLUDE_FIELDS = ("variant", "framework", "mode", "model", "scenario")
_FIELD_PATTERN = re.compile(rf"^({'|'.join(EXCLUDE_FIELDS)})=(.+)$")
_GLOB = re.compile(r"[*?\[]")


def get_preset(name: str) -> Preset:
    try:
        return PRESETS[name]
    except KeyError:
        raise UsageError(f"unknown preset {name!r}; valid presets: {', '.join(PRESETS)}") from None


def preset_variants(preset: str, catalog: Catalog) -> list[Variant]:
    """The variants a preset runs: quick takes each framework's first CPU variant that can be made (the
    catalog lists a framework's reference build first); the others take every variant."""
    if preset != QUICK.name:
        return list(catalog.variants.values())
    chosen: dict[str, Variant] = {}
    for variant in catalog.variants.values():
        if variant.device == "cpu" and not variant.unavailable and variant.framework not in chosen:
            chosen[variant.framework] = variant
    return list(chosen.values())


def planned_modes(variant: Variant, preset: str, modes: tuple[str, ...] = ()) -> tuple[str, ...]:
    """The modes of a variant the run plans: those ``--modes`` names (opt-in ones included), else the preset's."""
    if modes:
        return tuple(m for m in variant.modes if m in modes)
    if preset == QUICK.name:
        return (variant.best_mode,)
    if preset == DEFAULT.name:
        return variant.default_modes
    return variant.modes  # full, and runs from before presets


def check_frameworks(names: Iterable[str], catalog: Catalog) -> tuple[str, ...]:
    """Framework names as the catalog's variants know them; an unknown one lists the valid ones."""
    valid = list(dict.fromkeys(v.framework for v in catalog.variants.values()))
    return tuple(_known(name, valid, "framework") for name in names)


def check_modes(names: Iterable[str], catalog: Catalog) -> tuple[str, ...]:
    """Mode names that some variant of the catalog has; an unknown one lists the valid ones."""
    valid = list(dict.fromkeys(m for v in catalog.variants.values() for m in v.modes))
    return tuple(_known(name, valid, "mode") for name in names)


def check_excludes(patterns: Iterable[str], catalog: Catalog) -> tuple[str, ...]:
    """``--exclude`` patterns, checked: a ``FIELD=NAME`` pattern without a wildcard must name something that
    exists (a typo would otherwise exclude nothing, silently)."""
    checked = []
    for pattern in patterns:
        if not pattern.strip():
            raise UsageError("--exclude: an empty pattern")
        match = _FIELD_PATTERN.match(pattern)
        if match and not _GLOB.search(match.group(2)):
            _known(match.group(2), _field_values(match.group(1), catalog), match.group(1))
        checked.append(pattern)
    return tuple(checked)


def excluded(cell: Cell, patterns: Iterable[str]) -> bool:
    """Whether any pattern excludes the cell: ``FIELD=GLOB`` on one of its fields, else a glob on its label
    (``cpu-tvm * vgg16``, ``*compile*``)."""
    return any(_excludes(cell, p) for p in patterns)


def _excludes(cell: Cell, pattern: str) -> bool:
    match = _FIELD_PATTERN.match(pattern)
    if match is None:
        return fnmatch.fnmatchcase(cell.label, pattern)
    values = {"variant": cell.variant.name, "framework": cell.variant.framework, "mode": cell.mode,
              "model": cell.model, "scenario": cell.scenario}  # fmt: skip
    return fnmatch.fnmatchcase(values[match.group(1)], match.group(2))


def _field_values(name: str, catalog: Catalog) -> list[str]:
    variants = list(catalog.variants.values())
    values = {
        "variant": [v.name for v in variants],
        "framework": [v.framework for v in variants],
        "mode": [m for v in variants for m in v.modes],
        "model": list(MODELS),
        "scenario": list(SCENARIOS),
    }[name]
    return list(dict.fromkeys(values))


def _known(name: str, valid: list[str], what: str) -> str:
    if name not in valid:
        raise UsageError(f"unknown {what} {name!r}; valid {what}s: {', '.join(valid)}")
    return name
