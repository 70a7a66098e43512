"""Whether a figure can be trusted: a verdict per measurement and per cell, with the reasons.

In the manner of MLPerf LoadGen's "Result is: VALID / INVALID" and its list of what failed: a reader
(and ``compare``) must tell a solid median from a shaky one at a glance. A measurement is valid when
its output matched the reference, it has the minimum number of samples, its median is known to the
stated precision (the 95% confidence interval's half-width, relative to the median), the load of
other processes over it is known and below ``LOAD_WARNING_CPUS``, and the CPU did not throttle.

The verdict is a pure function of what a result records, so the harness judges each measurement when
it is made and a line of an older schema is judged the same way when it is read. Standard library
only: the host and the reports use it.
"""

from __future__ import annotations

from dataclasses import replace

from .environment import LOAD_WARNING_CPUS
from .result import Measurement, Result

# The stated precision: sample until the median's 95% confidence interval is within +-2% of it.
DEFAULT_PRECISION = 0.02
# ... or until this many seconds of timed iterations have passed (the cap; the README states what it costs).
DEFAULT_MAX_TIME_S = 12.0
DEFAULT_MIN_SAMPLES = 20  # the timing protocol's minimum iterations (ScenarioConfig.iterations)


def precision_of(result: Result) -> float:
    """The precision the cell was sampled to (its config), or the default for lines that predate it."""
    return _number(result.config.get("precision"), DEFAULT_PRECISION)


def min_samples_of(result: Result) -> int:
    return int(_number(result.config.get("iterations"), DEFAULT_MIN_SAMPLES))


def _number(text: str | None, default: float) -> float:
    try:
        return float(text) if text is not None else default
    except ValueError:
        return default


def measurement_reasons(m: Measurement, precision: float, min_samples: int) -> tuple[str, ...]:
    """Why this measurement is not valid; () when it is. Only an ``ok`` measurement is judged."""
    reasons: list[str] = []
    if m.verified is False:
        reasons.append("output unverified")
    n = m.stats.n if m.stats is not None else len(m.samples_s)
    if n < min_samples:
        reasons.append(f"too few samples: {n} < {min_samples}")
    width = m.stats.half_width if m.stats is not None else None
    if width is None or width > precision:
        reached = f"+-{100 * width:.1f}%" if width is not None else "unknown"
        reasons.append(f"precision not reached: median {reached} at 95% > +-{100 * precision:g}%")
    reasons.extend(load_reasons(m.other_load))
    if m.throttle_events:
        reasons.append(f"throttled: {m.throttle_events} thermal throttle events during the measurement")
    return tuple(reasons)


def load_reasons(other_load: float | None) -> list[str]:
    """The load's part of a verdict: unknown, or busy."""
    if other_load is None:
        return ["unknown load: no load figure for the measurement"]
    if other_load > LOAD_WARNING_CPUS:
        return [f"busy machine: other processes used {other_load:.2f} CPUs"]
    return []


def judge_measurement(m: Measurement, precision: float = DEFAULT_PRECISION,
                      min_samples: int = DEFAULT_MIN_SAMPLES) -> Measurement:  # fmt: skip
    """The measurement with its verdict; one that did not run has none (``valid`` None)."""
    if m.status != "ok":
        return replace(m, valid=None, invalid_reasons=())
    reasons = measurement_reasons(m, precision, min_samples)
    return replace(m, valid=not reasons, invalid_reasons=reasons)


def judge(result: Result) -> Result:
    """The cell with its verdict and its measurements': valid when every measurement that ran is.

    A sweep's reasons name their point (``batch 16: ...``). A cell with no measurement of the latency
    kind (a train cell) is judged on its verification and its load. A failed or skipped cell has none.
    """
    if result.status != "ok":
        return replace(result, valid=None, invalid_reasons=())
    precision, least = precision_of(result), min_samples_of(result)
    points = tuple(judge_measurement(p, precision, least) for p in result.points)
    ran = [p for p in points if p.valid is not None]
    if ran:
        single = len(points) == 1
        reasons = tuple(dict.fromkeys(
            r if single else f"{_label(p, result)}: {r}" for p in ran for r in p.invalid_reasons
        ))  # fmt: skip
    else:
        unverified = ["output unverified"] if result.verified is False else []
        reasons = tuple(unverified + load_reasons(result.other_load))
    return replace(result, points=points, valid=not reasons, invalid_reasons=reasons)


def _label(point: Measurement, result: Result) -> str:
    return f"threads {point.threads}" if "thread_counts" in result.identity else f"batch {point.batch}"


def verdict_line(result: Result) -> str:
    """``VALID``, ``INVALID: reason; reason``, or the status of a cell that did not run."""
    if result.valid is None:
        return result.status
    return "VALID" if result.valid else "INVALID: " + "; ".join(result.invalid_reasons)
