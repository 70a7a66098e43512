"""The launcher protocol: how cells start (in containers or in virtualenvs), and what a launcher built."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from frameworks.result import Result

from .catalog import Variant
from .cell import Cell
from .settings import Settings

Log = Callable[[str], None]
OUTPUT_MAX_BYTES = 16 << 20  # of each of a cell's output streams, the most a launcher reads into memory


@dataclass
class Prepared:
    """What a launcher built before the first cell: an ID per variant, or why it could not."""

    ids: dict[str, str] = field(default_factory=dict)  # variant -> image id (or venv id)
    errors: dict[str, str] = field(default_factory=dict)  # variant -> why its cells fail
    skipped: dict[str, str] = field(default_factory=dict)  # variant -> why its cells are skipped


class Launcher(Protocol):
    """How cells are started: in containers (``docker_launcher``) or in virtualenvs (``local_launcher``).

    ``prepare`` builds what the cells need (before anything is timed), ``begin`` tags the run and
    removes what killed runners left behind (``exclusive``), ``launch`` runs one cell, after any
    other benchmark on the machine has finished.
    """

    name: str

    def describe(self) -> str: ...
    def version(self) -> str | None: ...
    def prepare(self, variants: list[Variant], log: Log) -> Prepared: ...
    def begin(self, run_id: str, log: Log) -> None: ...
    def launch(self, cell: Cell, settings: Settings, image_id: str) -> Result: ...
    def abort(self) -> None: ...
