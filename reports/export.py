"""A run as a table for other tools: one row per measurement (a latency cell, or each point of a sweep).

``runner export RUN_DIR --format csv|json`` and ``publish`` (``results.csv`` and ``results.json`` beside each
run's page) write it, in the manner of optimum-benchmark's reports: every figure the results record, the
verdict with its reasons, the load, the build facts, the machine and the code that measured, so a spreadsheet
or a notebook needs nothing of this project. A cell that failed or was skipped is a row too, with its status
and reason: failures are data.

The columns are ``COLUMNS``, in that order, named as the schema names them (``frameworks.result``): figures of
``Stats`` in seconds per batch, as recorded. Both formats hold the same rows and columns; a value that is not a
scalar (build facts, reasons, warnings, a config) is itself in JSON and its JSON text in CSV, so nothing is
flattened into columns that would differ from run to run.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from frameworks.result import Measurement, Result, RunInfo

from .load import Run

Row = dict[str, Any]

# What the measurement is (the identity ``reports.compare_runs.identity`` pairs by, and more of the cell).
IDENTITY_COLUMNS = ("scenario", "variant", "framework", "version", "mode", "model", "device", "launcher", "host",
                    "identity", "transform", "transform_identity", "weights_sha256", "batch", "threads")  # fmt: skip
# What it measured: the measurement's status and every recorded figure, ``Stats`` per batch in seconds.
FIGURE_COLUMNS = ("status", "error", "n", "mean", "sd", "median", "min", "max", "p90", "p99", "median_ci_low",
                  "median_ci_high", "ci_level", "half_width", "throughput_ips", "gflops", "first_inference_s",
                  "peak_rss_bytes", "verified", "max_error", "tolerance", "accuracy", "speedup", "efficiency",
                  "threads_in_use", "other_load", "throttle_events", "valid", "invalid_reasons",
                  "warnings")  # fmt: skip
# Where and by what: the build facts, the machine, the run and the code.
CONTEXT_COLUMNS = ("build", "config", "machine_fingerprint", "cpu_model", "cpuset", "cpu_governor", "cpu_boost",
                   "image_id", "started_at", "finished_at", "run_id", "project_version", "project_commit")  # fmt: skip
COLUMNS = IDENTITY_COLUMNS + FIGURE_COLUMNS + CONTEXT_COLUMNS
FORMATS = ("csv", "json")
CSV_NAME, JSON_NAME = "results.csv", "results.json"


def export_rows(run: Run) -> list[Row]:
    """Every measurement of the run as a row of ``COLUMNS``; a cell that made none (failed, skipped, a train
    cell) as one row of its own figures."""
    out: list[Row] = []
    for machine in run.machine_runs:  # a several-machine run: each machine's run.json is its cells' context
        for result in machine.results:
            out += [row(result, point, machine.info or run.info) for point in result.points or (None,)]
    return out


def row(result: Result, point: Measurement | None, info: RunInfo | None) -> Row:
    """One measurement's row (``point`` None: the cell's own figures), its values in ``COLUMNS`` order."""
    values = {**_identity(result, point), **_figures(result, point), **_context(result, info)}
    return {name: values[name] for name in COLUMNS}


def _identity(result: Result, point: Measurement | None) -> Row:
    t = result.transform
    return {
        "scenario": result.scenario,
        "variant": result.variant,
        "framework": result.framework,
        "version": result.version,
        "mode": result.mode,
        "model": result.model,
        "device": result.device,
        "launcher": result.launcher,
        "host": result.host,
        "identity": dict(result.key().identity),
        "transform": result.transform_name,
        "transform_identity": {n: t.config.get(n, "") for n in t.identity} if t is not None else {},
        "weights_sha256": t.weights_sha256 if t is not None else None,
        "batch": point.batch if point is not None else result.batch,
        "threads": point.threads if point is not None else result.threads,
    }


def _figures(result: Result, point: Measurement | None) -> Row:
    judged = point if point is not None else result  # the verdict and the checks: the measurement's, else the cell's
    stats = point.stats if point is not None else None
    figures: Row = {
        "status": point.status if point is not None else result.status,
        "error": (point.error if point is not None else None) or result.error,
        **{name: getattr(stats, name) if stats is not None else None for name in _STATS},
        "half_width": stats.half_width if stats is not None else None,
        "throughput_ips": point.throughput_ips if point is not None else None,
        "gflops": point.gflops if point is not None else None,
        "first_inference_s": point.first_inference_s if point is not None else None,
        "accuracy": point.accuracy if point is not None else result.accuracy,
        "speedup": point.speedup if point is not None else None,
        "efficiency": point.efficiency if point is not None else None,
        "threads_in_use": point.threads_in_use if point is not None else result.threads_in_use,
        "throttle_events": point.throttle_events if point is not None else None,
    }
    for name in ("peak_rss_bytes", "verified", "max_error", "tolerance", "other_load", "valid"):
        figures[name] = getattr(judged, name)
    figures["invalid_reasons"] = list(judged.invalid_reasons)
    figures["warnings"] = list(judged.warnings)
    return figures


_STATS = ("n", "mean", "sd", "median", "min", "max", "p90", "p99", "median_ci_low", "median_ci_high", "ci_level")


def _context(result: Result, info: RunInfo | None) -> Row:
    env = result.environment if result.environment is not None else info.host if info is not None else None
    machine = env.machine if env is not None else None
    return {
        "build": dict(result.build),
        "config": dict(result.config),
        "machine_fingerprint": machine.fingerprint if machine is not None else None,
        "cpu_model": env.cpu_model if env is not None else None,
        "cpuset": env.cpuset if env is not None else None,
        "cpu_governor": env.cpu_governor if env is not None else None,
        "cpu_boost": env.cpu_boost if env is not None else None,
        "image_id": result.environment.image_id if result.environment is not None else None,
        "started_at": result.started_at,
        "finished_at": result.finished_at,
        "run_id": info.run_id if info is not None else None,
        "project_version": info.project_version if info is not None else None,
        "project_commit": info.project_commit if info is not None else None,
    }


def to_csv(rows: Iterable[Row]) -> str:
    """The rows as CSV with a header of ``COLUMNS``: empty for none, JSON text for a value that is not a scalar."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(COLUMNS)
    for r in rows:
        writer.writerow([_csv_value(r[name]) for name in COLUMNS])
    return buffer.getvalue()


def _csv_value(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, bool):  # as JSON writes it, not Python's True
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True, separators=(",", ":"))
    return value


def to_json(rows: Iterable[Row]) -> str:
    """The rows as a JSON array of objects, each with every column of ``COLUMNS`` in order (null for none)."""
    return json.dumps([{name: r[name] for name in COLUMNS} for r in rows], indent=1, allow_nan=False) + "\n"


def render(run: Run, fmt: str) -> str:
    """The run exported in ``fmt`` (one of ``FORMATS``)."""
    rows = export_rows(run)
    return to_csv(rows) if fmt == "csv" else to_json(rows)


def write_exports(run: Run, directory: Path) -> list[Path]:
    """``results.csv`` and ``results.json`` in ``directory`` (``publish``: beside each run's page)."""
    rows = export_rows(run)
    written = []
    for name, text in ((CSV_NAME, to_csv(rows)), (JSON_NAME, to_json(rows))):
        path = directory / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written
