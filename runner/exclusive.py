"""One benchmark at a time on a machine: what a cell's container or process belongs to, and which are orphans.

Two benchmarks at once on two cores make both timings worthless (a 2-thread run was seen 10x
slower beside a build). So every cell carries three tags: the run it belongs to, the runner that
started it (``host:pid``) and the moment by which that runner would have killed it (its deadline).
Before a cell starts, the launcher looks for tagged cells still running: an *orphan* (its runner
is gone from this host, or it outlived its deadline, or it carries no runner tag) is stopped and
removed, with a line saying so; a live one (another runner's cell) is waited for. The Docker
launcher keeps the tags as container labels, the local launcher as environment variables.
"""

from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass

LABEL_CELL = "dlbench.cell"  # every benchmark container has it: the cell's label
LABEL_RUN = "dlbench.run"
LABEL_RUNNER = "dlbench.runner"
LABEL_DEADLINE = "dlbench.deadline"
ENV_RUN, ENV_RUNNER, ENV_DEADLINE = "DLBENCH_RUN", "DLBENCH_RUNNER", "DLBENCH_DEADLINE"
DEADLINE_SLACK_S = 60.0  # a runner kills its cell at the deadline; past it by this much, nobody will
WAIT_POLL_S = 2.0


def runner_id() -> str:
    """This runner process, as its cells name it: ``host:pid``."""
    return f"{socket.gethostname()}:{os.getpid()}"


def deadline(timeout: float) -> str:
    """The tag: epoch seconds by which this runner kills the cell it is starting."""
    return f"{time.time() + timeout:.0f}"


@dataclass(frozen=True)
class Tags:
    """What a running cell says about itself (any of it may be missing on an old or foreign cell)."""

    cell: str
    run: str | None
    runner: str | None
    deadline: float | None

    def orphan(self, now: float | None = None) -> str | None:
        """Why this cell is an orphan, or None when its runner may still be waiting for it."""
        now = time.time() if now is None else now
        if self.deadline is not None and now > self.deadline + DEADLINE_SLACK_S:
            return "it outlived its deadline"
        if not self.runner:
            return "it names no runner"
        host, _, pid = self.runner.rpartition(":")
        if host == socket.gethostname() and pid.isdigit() and not _alive(int(pid)):
            return f"its runner (pid {pid}) is gone"
        return None

    def describe(self) -> str:
        return f"{self.cell!r} of run {self.run or '?'}"


def parse_deadline(text: str | None) -> float | None:
    try:
        return float(text) if text else None
    except ValueError:
        return None


def _alive(pid: int) -> bool:
    """Whether ``pid`` is a live process (a zombie counts as gone: it will never finish a cell)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False
