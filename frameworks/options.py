"""Command-line options shared by ``python -m frameworks.predict`` and ``python -m runner matrix``.

The scenario options are made from the registered configs' fields, so a new scenario's settings
appear on both command lines without touching either, and ``UsageError`` is the one kind of bad
input both turn into one line on stderr and exit 2. Standard library only.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any

from .scenarios import SCENARIOS, Scenario, ScenarioConfig
from .scenarios.config import element_type, fields_of, flag, is_tuple


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
