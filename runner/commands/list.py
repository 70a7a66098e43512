"""``runner list``: the variants and their images' state, the scenarios, the engine, the local venvs."""

from __future__ import annotations

import argparse
from typing import Any

from ..catalog import ImageSpec, Variant, load_catalog
from .common import EXIT_OK

HELP = "variants, their images' state, the scenarios, the engine, the local venvs"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    pass


def run(args: argparse.Namespace) -> int:
    from tabulate import tabulate

    from ..engine import EngineUnavailable, connect, engine_version
    from ..local_launcher import unsupported, venv_state

    catalog = load_catalog(args.catalog)
    try:
        client = connect(timeout=10)
    except EngineUnavailable as exc:
        client, engine = None, f"unreachable: {exc}"
    else:
        engine = engine_version(client)
    states = {name: _image_state(client, image) for name, image in catalog.images.items()}
    rows = [
        [v.name, v.framework, v.device, modes_text(v), v.image.tag, f"{v.image.release} {v.image.python}",
         "unavailable" if v.unavailable else states[v.image.name],
         "unsupported" if unsupported(v) else venv_state(v.image)]
        for v in catalog.variants.values()
    ]  # fmt: skip
    headers = ["variant", "framework", "device", "modes", "image", "Debian, Python", "image state", "local venv"]
    print(tabulate(rows, headers=headers))
    print()
    print(tabulate(scenario_rows(), headers=["scenario", "what it measures", "options (defaults)"]))
    print(
        "\n*: the best mode (--preset quick times it, on each framework's first CPU variant); "
        "(opt-in): only --preset full or --modes naming it plans it"
    )
    print(f"\nDocker engine: {engine}")
    if client is not None:
        from ..docker_launcher import has_nvidia_runtime

        print(f"NVIDIA runtime: {'yes' if has_nvidia_runtime(client) else 'no (CUDA variants are skipped)'}")
        client.close()
    return EXIT_OK


def modes_text(variant: Variant) -> str:
    """The variant's modes, its best one starred, the opt-in ones marked: ``eager jit* compile``,
    ``default* tuned untuned (opt-in)``."""
    marks = {variant.best_mode: "*", **{m: " (opt-in)" for m in variant.opt_in_modes}}
    return " ".join(f"{m}{marks.get(m, '')}" for m in variant.modes)


def scenario_rows() -> list[list[str]]:
    """One row per registered scenario: its summary and its options with their defaults."""
    from frameworks.scenarios import SCENARIOS
    from frameworks.scenarios.config import flag

    rows = []
    for scenario in SCENARIOS.values():
        defaults = scenario.config().to_strings()
        options = " ".join(f"{flag(k)} {v or '(per cell)'}" for k, v in defaults.items())
        rows.append([scenario.name, scenario.summary, options])
    return rows


def _image_state(client: Any, image: ImageSpec) -> str:
    if client is None:
        return "engine unreachable"
    from ..engine import first_line
    from ..images import image_state

    try:
        return image_state(client, image)
    except Exception as exc:  # an engine error must not hide the rest of the table
        return f"error: {first_line(exc, 60)}"
