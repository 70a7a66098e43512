"""Command-line options shared by ``python -m frameworks.predict`` and ``python -m runner matrix``.

The scenario options are made from the registered configs' fields, so a new scenario's settings
appear on both command lines without touching either, and ``UsageError`` is the one kind of bad
input both turn into one line on stderr and exit 2. Standard library only.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
from collections.abc import Iterable, Mapping
from typing import Any

from .compat import type_hints
from .scenarios import SCENARIOS, Scenario, ScenarioConfig
from .scenarios.config import element_type, fields_of, flag, is_tuple
from .transforms import NONE, TRANSFORMS, Transform, TransformPoint, get_transform, option_name


class UsageError(ValueError):
    """Bad input on a command line: one line, exit 2."""


def add_scenario_options(parser: argparse.ArgumentParser, *, for_runner: bool = False) -> None:
    """One option per field of every registered scenario's config (a field shared by several once).

    Defaults are None, so that "given" can be told from "default" (a resumed run keeps its own).
    ``for_runner`` leaves out the fields the runner sets itself (the per-point timeout).
    """
    users: dict[str, list[str]] = {}
    fields: dict[str, tuple[dataclasses.Field[Any], Any]] = {}
    for scenario in SCENARIOS.values():
        for f, hint in fields_of(scenario.config):
            if for_runner and not f.metadata.get("runner", True):
                continue
            users.setdefault(f.name, []).append(scenario.name)
            fields.setdefault(f.name, (f, hint))
    group = parser.add_argument_group("scenario options (each applies to the scenarios named in its help)")
    for name, (f, hint) in fields.items():
        default = f.default if f.default is not dataclasses.MISSING else None
        shown = (
            ""
            if default in (None, ())
            else f"default {default:g}; "
            if isinstance(default, float)
            else (f"default {default}; ")
        )
        text = f"{f.metadata.get('help', name)} ({shown}{', '.join(users[name])})"
        kwargs: dict[str, Any] = {"dest": name, "default": None, "help": text, "type": element_type(hint)}
        if is_tuple(hint):
            kwargs.update(nargs="+", metavar="N")
        group.add_argument(flag(name), **kwargs)


def given_options(args: argparse.Namespace) -> dict[str, str]:
    """The scenario options given on the command line, as strings (what run.json stores)."""
    names = {f.name for s in SCENARIOS.values() for f, _ in fields_of(s.config)}
    given: dict[str, str] = {}
    for name in sorted(names):
        value = getattr(args, name, None)
        if value is not None:
            given[name] = " ".join(map(_text, value)) if isinstance(value, (list, tuple)) else _text(value)
    return given


def _text(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def scenario_configs(scenarios: Iterable[Scenario], given: Mapping[str, str]) -> dict[str, ScenarioConfig]:
    """Each scenario's config from the given options; an option none of them takes is a ``UsageError``."""
    chosen = list(scenarios)
    takes = {s.name: {f.name for f, _ in fields_of(s.config)} for s in chosen}
    for name in given:
        if not any(name in names for names in takes.values()):
            users = [s.name for s in SCENARIOS.values() if name in {f.name for f, _ in fields_of(s.config)}]
            where = f"the {' and '.join(users)} scenario{'s' if len(users) > 1 else ''}" if users else "no scenario"
            raise UsageError(f"{flag(name)} applies to {where}, not to {', '.join(s.name for s in chosen)}")
    configs = {}
    for scenario in chosen:
        mine = {k: v for k, v in given.items() if k in takes[scenario.name]}
        try:
            configs[scenario.name] = scenario.config.from_strings(mine)
        except ValueError as exc:
            raise UsageError(f"{scenario.name}: {exc}") from None
    return configs


def choose_scenarios(names: Iterable[str]) -> list[Scenario]:
    """Scenarios by name, in the order given, each once; an unknown one lists the valid ones."""
    chosen: dict[str, Scenario] = {}
    for name in names:
        try:
            chosen.setdefault(name, SCENARIOS.get_entry(name))
        except KeyError as exc:
            raise UsageError(exc.args[0]) from None
    return list(chosen.values())


# --- the transform axis: --transforms and each transform's list options ------------------------------

TRANSFORMS_DEST = "transforms"


def add_transform_options(parser: argparse.ArgumentParser) -> None:
    """``--transforms NAME ...`` and one list option per field of every registered transform's config."""
    group = parser.add_argument_group("transforms (what is done to the model before it runs; one cell per value)")
    group.add_argument(
        "--transforms", nargs="+", metavar="NAME", default=None,
        help=f"one or more of: {', '.join(TRANSFORMS)} (default: {NONE})",
    )  # fmt: skip
    for transform in TRANSFORMS.values():
        hints = type_hints(transform.config)  # a value is parsed by the config: its error names the option
        for f in dataclasses.fields(transform.config):
            name = option_name(f)
            default = " ".join(map(_text, f.metadata.get("defaults", [f.default])))
            text = f"{f.metadata.get('help', name)} (default {default}; the {transform.name} transform)"
            kind = element_type(hints[f.name]).__name__  # parsed by the config, which names the option in its error
            group.add_argument(flag(name), dest=name, nargs="+", default=None, metavar=kind.upper(), help=text)


def given_transform_options(args: argparse.Namespace) -> dict[str, str]:
    """``--transforms`` and the transform options given, as strings (what run.json stores)."""
    given: dict[str, str] = {}
    names = [TRANSFORMS_DEST, *(option_name(f) for t in TRANSFORMS.values() for f in dataclasses.fields(t.config))]
    for name in names:
        value = getattr(args, name, None)
        if value is not None:
            given[name] = " ".join(map(_text, value))
    return given


def transform_points(args: argparse.Namespace | Mapping[str, str]) -> list[TransformPoint]:
    """Every (transform, config) the options ask for, in the order given; bad input is a ``UsageError``.

    An unknown transform lists the valid ones; an option of a transform that was not asked for, or a
    value its config refuses (a sparsity outside [0, 1)), is one line naming the option.
    """
    given = args if isinstance(args, Mapping) else given_transform_options(args)
    names = (given.get(TRANSFORMS_DEST) or NONE).split()
    chosen: dict[str, Transform] = {}
    for name in names:
        try:
            chosen.setdefault(name, get_transform(name))
        except KeyError as exc:
            raise UsageError(exc.args[0]) from None
    owners = {option_name(f): t.name for t in TRANSFORMS.values() for f in dataclasses.fields(t.config)}
    for option, owner in owners.items():
        if option in given and owner not in chosen:
            raise UsageError(f"{flag(option)} applies to the {owner} transform: give --transforms {owner}")
    points: list[TransformPoint] = []
    for transform in chosen.values():
        points += _points_of(transform, given)
    return points


def _points_of(transform: Transform, given: Mapping[str, str]) -> list[TransformPoint]:
    """One point per combination of the transform's given values (its defaults where none were given)."""
    fields = dataclasses.fields(transform.config)
    values = [given[option_name(f)].split() if option_name(f) in given else list(f.metadata.get("defaults", [None]))
              for f in fields]  # fmt: skip
    points = []
    for combination in itertools.product(*values):
        strings = {f.name: v for f, v in zip(fields, combination) if v is not None}
        try:
            config = transform.config.from_strings(strings)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        point = TransformPoint(transform.name, config)
        if point not in points:
            points.append(point)
    return points
