"""A cell's validity verdict as the pages show it: the main signal of trust beside every figure.

``frameworks.validity`` judges each measurement and each cell (VALID, or INVALID with its reasons: precision
not reached, a busy or unknown load, an unverified output, too few samples, throttling); the results carry the
verdict and lines of older schemas are judged when read. This module only words it for a page, in one place
for every table: the matrix, the per-model tables, the sweep, pruning, int8 and training rows.

The harness's own warnings often say the same thing as a reason ("machine busy: ..." beside "busy machine:
..."). A page that printed both in every row would bury the verdict, so a warning the verdict already states
is left out of the rows (``shown_warnings``); the HTML keeps every recorded warning on the verdict's mark (its
title), and results.jsonl keeps them all.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from frameworks.result import Status

VALID, INVALID, NOT_JUDGED, NOT_RUN = "valid", "invalid", "not judged", "not run"
LOAD_UNKNOWN = "load unknown"
UNVERIFIED = "output unverified"
# (what a warning says, what a reason says): the same fact, so the warning is not repeated beside the verdict
RESTATED = (
    ("machine busy", "busy machine"),
    ("does not match", UNVERIFIED),
    ("unstable:", "precision not reached"),
    ("too few samples", "too few samples"),
)
UNKNOWN_LOAD_REASON = "unknown load"


class Judged(Protocol):
    """What a verdict is read from: a cell (``Result``) or one measurement of it (``Measurement``)."""

    @property
    def status(self) -> Status: ...
    @property
    def valid(self) -> bool | None: ...
    @property
    def invalid_reasons(self) -> tuple[str, ...]: ...
    @property
    def other_load(self) -> float | None: ...
    @property
    def max_error(self) -> float | None: ...
    @property
    def tolerance(self) -> float | None: ...


@dataclass(frozen=True)
class Verdict:
    """A cell's verdict in words: its state and the reasons (as recorded, an unverified output with its error)."""

    state: str  # VALID, INVALID, NOT_JUDGED (an ok cell that carries none) or NOT_RUN (failed, skipped)
    reasons: tuple[str, ...]

    @property
    def text(self) -> str:
        """The Markdown tables' words: ``yes``, ``no: reason; reason``, ``not judged``, ``not run``."""
        if self.state == VALID:
            return "yes"
        if self.state == INVALID:
            return "no: " + "; ".join(self.reasons)
        return self.state

    @property
    def mark(self) -> str:
        """The mark beside a matrix cell's figures: ``✓ valid``, ``✗ INVALID: reasons``, ``not judged``."""
        if self.state == VALID:
            return "✓ valid"
        if self.state == INVALID:
            return "✗ INVALID: " + "; ".join(self.reasons)
        return self.state


def verdict_of(judged: Judged) -> Verdict:
    """The verdict of a cell or measurement; an ok one without a verdict (built by hand) is ``not judged``."""
    if judged.status != "ok":
        return Verdict(NOT_RUN, ())
    if judged.valid is None:
        return Verdict(NOT_JUDGED, ())
    if judged.valid:
        return Verdict(VALID, ())
    return Verdict(INVALID, tuple(reason_text(r, judged) for r in judged.invalid_reasons))


def reason_text(reason: str, judged: Judged) -> str:
    """A reason as recorded; an unverified output says by how much, so the mismatch warning need not."""
    if not reason.endswith(UNVERIFIED) or judged.max_error is None:
        return reason
    tolerance = f", tolerance {judged.tolerance:g}" if judged.tolerance is not None else ""
    return f"{reason} (max error {judged.max_error:.3g}{tolerance})"


def is_valid(judged: Judged) -> bool:
    """Whether the figure may be trusted: judged valid (never a cell without a verdict)."""
    return judged.status == "ok" and judged.valid is True


def restates(warning: str, reasons: Sequence[str]) -> bool:
    """Whether one of the verdict's reasons already states what ``warning`` says."""
    return any(said in warning and any(reason_says in r for r in reasons) for said, reason_says in RESTATED)


def shown_warnings(warnings: Sequence[str], verdict: Verdict) -> tuple[str, ...]:
    """The warnings a row still shows beside its verdict: those no reason states."""
    return tuple(w for w in warnings if not restates(w, verdict.reasons))


def load_unknown(judged: Judged, verdict: Verdict) -> bool:
    """An ok measurement without a load figure whose verdict does not say so already: the page says "load
    unknown" rather than stay silent about it."""
    stated = any(UNKNOWN_LOAD_REASON in r for r in verdict.reasons)
    return judged.status == "ok" and judged.other_load is None and not stated


def load_text(other_load: float | None) -> str:
    """Other processes' CPU use during the timed loop: ``0.02 CPUs``, or ``load unknown``."""
    return LOAD_UNKNOWN if other_load is None else f"{other_load:.2f} CPUs"


def trust_flags(judged: Judged, flags: Sequence[str]) -> tuple[str, ...]:
    """A row's flags with the verdict first: ``INVALID: reasons``, then the row's own flags less those the
    verdict states, then ``load unknown`` where nothing said so. A valid or unjudged row keeps its flags."""
    verdict = verdict_of(judged)
    head = [f"INVALID: {'; '.join(verdict.reasons)}"] if verdict.state == INVALID else []
    tail = [LOAD_UNKNOWN] if load_unknown(judged, verdict) else []
    return (*head, *shown_warnings(flags, verdict), *tail)
