"""The limits a cell runs under, as the command line gives them: its cpuset and its memory limit."""

from __future__ import annotations

import re

from frameworks.environment import available_cpus, format_cpuset
from frameworks.options import UsageError

_MEMORY = re.compile(r"^(\d+(?:\.\d+)?)([bkmg]?)$", re.IGNORECASE)
_UNITS = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}


def parse_cpuset(text: str) -> list[int]:
    """'0-2,5' -> [0, 1, 2, 5]; anything else is a ``UsageError``."""
    cpus: set[int] = set()
    for part in text.split(","):
        match = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?", part)
        if not match:
            raise UsageError(f"--cpus {text!r}: expected a cpuset such as 0-1 or 0,2")
        low, high = int(match.group(1)), int(match.group(2) or match.group(1))
        if high < low:
            raise UsageError(f"--cpus {text!r}: {low}-{high} is an empty range")
        cpus.update(range(low, high + 1))
    return sorted(cpus)


def check_cpuset(text: str) -> list[int]:
    """The cpuset's CPUs, which must all be ones this process may run on."""
    cpus = parse_cpuset(text)
    allowed = available_cpus()
    outside = [c for c in cpus if c not in allowed]
    if outside:
        raise UsageError(f"--cpus {text!r}: CPU(s) {', '.join(map(str, outside))} not available here; "
                         f"available: {format_cpuset(allowed)}")  # fmt: skip
    return cpus


def default_cpuset() -> str:
    return format_cpuset(available_cpus())


def memory_bytes(text: str) -> int:
    """Docker's memory syntax ('8g', '512m', '1073741824') in bytes; at least 6 MiB (Docker's floor)."""
    match = _MEMORY.fullmatch(text.strip())
    if not match:
        raise UsageError(f"--memory {text!r}: expected a size such as 8g or 512m")
    value = int(float(match.group(1)) * _UNITS[match.group(2).lower()])
    if value < 6 << 20:
        raise UsageError(f"--memory {text!r}: Docker needs at least 6m")
    return value
