"""What became of a cell: a predict process's exit code and output turned into a result, and the results the
runner makes itself (failed or skipped without a result from predict)."""

from __future__ import annotations

import re
import signal
from dataclasses import replace

from frameworks.result import Environment, Result, Status, cell_result, utc_now

from .cell import Cell, cell_network
from .settings import Settings


def runner_result(
    cell: Cell, settings: Settings, status: Status, reason: str, *, environment: Environment | None = None
) -> Result:
    """A failed or skipped cell with its reason, carrying everything known without running it."""
    now = utc_now()
    return cell_result(
        cell.variant.framework,
        cell.mode,
        cell_network(cell),
        cell.variant.device,
        status=status,
        batch=cell.config.cell_batch(),
        threads=settings.threads,
        seed=settings.seed,
        scenario=cell.scenario,
        config=cell.config.to_strings(),
        identity=cell.config.identity_fields(),
        error=reason,
        variant=cell.variant.name,
        launcher=settings.launcher,
        environment=environment,
        started_at=now,
        finished_at=now,
    )


_CUDA_MISSING = ("CUDA requested", "sees no GPU")


def interpret(cell: Cell, settings: Settings, returncode: int, stdout: str, stderr: str) -> Result:
    """Turn one predict process's exit code and output into a result, whatever happened to it.

    A result line on stdout wins (predict reports a framework's own failure as a failed result,
    exit 1); without one, the exit code and the last stderr line say why.
    """
    parsed = parse_result_line(stdout)
    if parsed is not None:
        result = replace(parsed, variant=cell.variant.name, launcher=settings.launcher)
        if returncode not in (0, 1):
            note = f"predict exited with {describe_exit(returncode)} after writing its result"
            result = replace(result, warnings=(*result.warnings, note))
        return result
    last = error_line(stderr)
    if returncode == 2 and any(s in last for s in _CUDA_MISSING):
        return runner_result(cell, settings, "skipped", last.removeprefix("error: "))
    if returncode == 2:
        return runner_result(cell, settings, "failed", f"predict refused the arguments: {last.removeprefix('error: ')}")
    detail = f": {last}" if last else " (no output)"
    return runner_result(cell, settings, "failed", f"{describe_exit(returncode)}{detail}")


def parse_result_line(stdout: str) -> Result | None:
    lines = [line for line in stdout.splitlines() if line.strip()]
    if not lines:
        return None
    try:
        return Result.from_json(lines[-1])
    except ValueError:
        return None


def last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1][:500] if lines else ""


_ERRORISH = re.compile(r"error|exception|fatal|killed|abort|segmentation|cannot|failed", re.IGNORECASE)


def error_line(stderr: str) -> str:
    """The line that says what went wrong: the last error-looking line (a traceback's last line,
    'Fatal Python error: ...'), else the last line."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    for line in reversed(lines[-20:]):
        if _ERRORISH.search(line):
            return line[:500]
    return lines[-1][:500] if lines else ""


def describe_exit(returncode: int) -> str:
    """'exit code 1', 'killed by SIGSEGV' (a negative code locally, 128+N from a container's shell)."""
    signum = -returncode if returncode < 0 else returncode - 128 if returncode > 128 else 0
    if signum:
        try:
            return f"killed by {signal.Signals(signum).name} (exit {returncode})"
        except ValueError:
            pass
    return f"exit code {returncode}"
