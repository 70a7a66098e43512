"""Formatting shared by the Markdown and HTML reports, so both pages say the same thing.

``visible`` makes text from a result file safe to show in either: control characters (a NUL, an
escape sequence) and the bidirectional controls that can make a page read differently from what
it holds (U+202E RIGHT-TO-LEFT OVERRIDE and kin) are shown as ``<U+202E>`` instead of acting.
"""

from __future__ import annotations

import math
import re

_INVISIBLE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\ufeff]")


def visible(text: str) -> str:
    """``text`` with control and bidirectional-control characters shown as ``<U+XXXX>`` (tab, newline kept)."""
    return _INVISIBLE.sub(lambda m: f"<U+{ord(m.group()):04X}>", text)


def sig(value: float, digits: int = 3) -> str:
    """``digits`` significant figures without an exponent: 0.000312, 12.3, 412, 1,234."""
    if not math.isfinite(value):
        return str(value)
    if value == 0:
        return "0"
    decimals = max(0, digits - 1 - math.floor(math.log10(abs(value))))
    return f"{value:,.{decimals}f}"


def ms(value: float) -> str:
    return f"{sig(value)} ms"


def count(value: int) -> str:
    return f"{value:,}"


def si(value: float, unit: str) -> str:
    """1.54e10 FLOP -> '15.4 GFLOP'."""
    for factor, prefix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= factor:
            return f"{sig(value / factor)} {prefix}{unit}"
    return f"{sig(value)} {unit}"


def gib(value: int) -> str:
    return f"{value / 2**30:.1f} GiB"


def memory(value: int) -> str:
    """A peak memory: ``212 MiB`` below a GiB, ``1.25 GiB`` from there."""
    if value >= 2**30:
        return f"{value / 2**30:.2f} GiB"
    return f"{sig(value / 2**20)} MiB"


def ratio(value: float) -> str:
    return f"{value:.2f}×"


def interval(low: float, high: float) -> str:
    return f"{low:.2f}–{high:.2f}"


def p_value(value: float) -> str:
    return "<0.001" if value < 0.001 else f"{value:.3f}"


def percent(value: float) -> str:
    return f"{value:.1f}%"


def plus_minus(share: float) -> str:
    """A precision reached (the median's 95% CI half-width over the median, as a share): ``±0.8%``."""
    return f"±{100 * share:.1f}%"


def signed_percent(value: float) -> str:
    return f"{value:+.1f}%"


def accuracy(share: float) -> str:
    """A test accuracy (a share of the test images) as a percentage to two decimals: 88.12%."""
    return f"{100.0 * share:.2f}%"
