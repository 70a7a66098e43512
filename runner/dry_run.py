"""``matrix --dry-run``: what a run would do, from what is known before it starts; nothing runs, nothing builds.

It prints the planned cells (each with the wall this machine last took for it, else the reference
run's), the images (or local virtualenvs) that are stale or missing and would be built first, and
the estimated time of the cells. Skipped cells (a variant that cannot be made, CUDA without a GPU)
are listed with their reason and cost nothing. The estimate leaves out building, the inputs and the
GEMM peak: those the run prints as it goes.
"""

from __future__ import annotations

from typing import Any

from frameworks.environment import machine

from .catalog import ImageSpec, Variant
from .cell import Cell
from .eta import Eta, load_history, load_reference
from .launcher import Launcher
from .paths import history_path
from .run_loop import format_duration
from .settings import Settings


def dry_run(cells: list[Cell], settings: Settings, launcher: Launcher) -> list[str]:
    """The plan's lines, with the walls this machine (by its fingerprint) or the reference run recorded."""
    eta = Eta(load_history(history_path()), machine().fingerprint, load_reference())
    return plan_lines(cells, settings, launcher, eta)


def plan_lines(cells: list[Cell], settings: Settings, launcher: Launcher, eta: Eta) -> list[str]:
    """The dry run's lines: a header, one line per cell, the images to build, the estimate."""
    skips = {v.name: why for v in {c.variant.name: c.variant for c in cells}.values()
             if (why := would_skip(v, launcher)) is not None}  # fmt: skip
    where = f"launcher {launcher.name}, CPUs {settings.cpus} ({settings.threads} threads)"
    lines = [f"dry run: preset {settings.preset}, {len(cells)} cells, {where}; nothing runs, nothing builds"]
    walls: list[float] = []
    unknown = 0
    width = len(str(len(cells)))
    for k, cell in enumerate(cells, start=1):
        head = f"  [{k:>{width}}/{len(cells)}] {cell.label}"
        if cell.variant.name in skips:
            lines.append(f"{head}: skipped ({skips[cell.variant.name]})")
            continue
        recorded = eta.recorded(cell)
        if recorded is None:
            unknown += 1
            lines.append(f"{head}: no recorded wall")
        else:
            walls.append(recorded[0])
            lines.append(f"{head}: ~{format_duration(recorded[0])} ({recorded[1]})")
    stale = stale_images(cells, skips, launcher)
    lines.append("to build first: " + (", ".join(f"{name} ({state})" for name, state in stale) or "nothing"))
    lines.append(estimate_line(walls, unknown, sum(c.variant.name in skips for c in cells)))
    return lines


def estimate_line(walls: list[float], unknown: int, skipped: int) -> str:
    """The estimate: the recorded walls summed, and what it leaves out."""
    parts = [f"{len(walls)} cells with a recorded wall"]
    if unknown:
        parts.append(f"{unknown} without one, not counted")
    if skipped:
        parts.append(f"{skipped} skipped")
    return (f"estimated time: ~{format_duration(sum(walls))} ({', '.join(parts)}; building, the inputs and the "
            "GEMM peak come on top)")  # fmt: skip


def would_skip(variant: Variant, launcher: Launcher) -> str | None:
    """Why the launcher would skip every cell of the variant without building it, as its ``prepare`` would."""
    if variant.unavailable_reason:
        return variant.unavailable_reason
    if launcher.name == "local":
        from .local_launcher import unsupported

        return unsupported(variant)
    from .docker_launcher import NO_NVIDIA

    return NO_NVIDIA if variant.device == "cuda" and not launcher.nvidia() else None  # type: ignore[attr-defined]


def stale_images(cells: list[Cell], skips: dict[str, str], launcher: Launcher) -> list[tuple[str, str]]:
    """The images (virtualenvs for the local launcher) the run would build first, with their state."""
    images: dict[str, ImageSpec] = {c.variant.image.name: c.variant.image for c in cells if c.variant.name not in skips}
    states = [(name, image_state(image, launcher)) for name, image in images.items()]
    return [(name, state) for name, state in states if state != "current"]


def image_state(image: ImageSpec, launcher: Launcher) -> str:
    """'current', 'stale' or 'missing' (an engine error is said, not raised: the dry run still shows the plan)."""
    if launcher.name == "local":
        from .local_launcher import venv_state

        return venv_state(image)
    from .engine import first_line
    from .images import image_state as docker_image_state

    client: Any = launcher.client  # type: ignore[attr-defined]
    try:
        return docker_image_state(client, image)
    except Exception as exc:  # the engine's error, whatever its type: one image's state, not the plan, is lost
        return f"state unknown: {first_line(exc, 60)}"
