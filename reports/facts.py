"""A fact of a page: a label and its value, as the facts tables (run, host, machine, settings) show them."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Fact:
    label: str
    value: str
