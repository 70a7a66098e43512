"""What the subcommands share: exit codes, the progress log, and naming images and variants."""

from __future__ import annotations

import sys
from pathlib import Path

from frameworks.options import UsageError
from frameworks.result import RESULTS_FILE

from ..catalog import Catalog, ImageSpec
from ..rundir import RunDirError

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_ENGINE_LOST, EXIT_INTERRUPTED = 0, 1, 2, 3, 130
# A matrix that measured nothing: every cell skipped, or no cell planned at all (the filters left none). Not 0:
# a script or CI job must not read an empty matrix as a pass.
EXIT_NOTHING_RAN = 4


def log(message: str) -> None:
    """Human progress goes to stderr; stdout carries only tables and paths.

    One write per line: ``print`` writes the text and the newline apart, and the lines of builds
    running side by side (``build --jobs``) ran into each other between the two.
    """
    sys.stderr.write(message + "\n")
    sys.stderr.flush()


def images_named(catalog: Catalog, names: list[str]) -> list[ImageSpec]:
    """Images by variant or image name, in order, each once; unknown names list the valid ones."""
    chosen: dict[str, ImageSpec] = {}
    for name in names:
        if name in catalog.images:
            chosen[name] = catalog.images[name]
        elif name in catalog.variants:
            chosen[catalog.variants[name].image.name] = catalog.variants[name].image
        else:
            raise UsageError(f"unknown variant {name!r}; valid variants: {', '.join(catalog.variants)} "
                             f"(or images: {', '.join(catalog.images)})")  # fmt: skip
    return list(chosen.values())


def render(run_dir: Path, out_dir: Path | None) -> None:
    """report.md and report.html from the run's files alone; lines that are not results are named."""
    from reports import load_run
    from reports.render import write_reports

    run = load_run(run_dir)
    for problem in run.problems:
        log(f"{run_dir}: {problem}")
    if not run.results:
        raise RunDirError(f"{run_dir / RESULTS_FILE}: no results")
    for path in write_reports(run, [(out_dir or run_dir, None)]):
        print(path)
