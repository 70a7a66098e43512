"""A run on several machines as its machines: each one's facts side by side, the machine that ran the runner,
and the notes that concern one machine or their names."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import quote

from . import fmt
from .facts import Fact
from .load import HOSTS_DIR, MachineIdentity, Run
from .machines import identity_facts, same_model_notes
from .run_facts import counts, recorded_peak

if TYPE_CHECKING:
    from .content import Report


@dataclass(frozen=True)
class MachineView:
    """One machine of a several-machine run: what it is, and its full report (matrix included)."""

    name: str  # the runner's name for it
    dir_name: str  # its report's directory under hosts/: the name itself for any name the runner gives
    identity: MachineIdentity
    facts: tuple[Fact, ...]
    report: Report
    written: bool  # whether its report is written (nothing of a machine that never wrote a file)

    @property
    def href(self) -> str:
        """Its report's directory relative to the run's report, as a link: ``hosts/east/``."""
        return f"{HOSTS_DIR}/{quote(self.dir_name, safe='')}/"


@dataclass(frozen=True)
class MachineRow:
    """One fact of the machines side by side; ``differs`` when they do not all say the same."""

    label: str
    values: tuple[str, ...]  # one per machine
    differs: bool


def machine_facts(run: Run) -> list[Fact]:
    """What one machine is (identity, memory, matmul peak) and what it measured, for the side-by-side table."""
    identity = run.identity
    if not run.recorded:
        return [Fact("CPU model", "not known"), Fact("Machine fingerprint", "nothing of this machine was recorded")]
    facts = [Fact("CPU model", identity.cpu_model)]
    facts += [Fact(label, value) for label, value in identity_facts(identity.machine)]
    host = run.info.host if run.info is not None else None
    facts.append(Fact("Memory", fmt.gib(host.memory_bytes) if host is not None else "not recorded (no run.json)"))
    facts.append(Fact("GPU", (host.gpu or "none") if host is not None else "not recorded (no run.json)"))
    peak = recorded_peak(run.info)
    facts.append(Fact("float32 matmul peak", f"{fmt.sig(peak)} GFLOP/s" if peak else "not measured"))
    facts.append(Fact("Cells", ", ".join(f"{f.value} {f.label}" for f in counts(run.results))))
    return facts


NOT_MACHINE_FACTS = ("Engine", "Cells")  # rows of the machines' table that say nothing of the hardware


def machine_rows(views: tuple[MachineView, ...]) -> tuple[MachineRow, ...]:
    """The machines' facts as rows of one table, a column per machine ("—" where one lacks a fact);
    a fact of the hardware on which they disagree is marked."""
    fullest_first = sorted(views, key=lambda v: -len(v.facts))  # a machine with fewer facts keeps the order
    labels = list(dict.fromkeys(f.label for v in fullest_first for f in v.facts))
    rows = []
    for label in labels:
        values = tuple(next((f.value for f in v.facts if f.label == label), "—") for v in views)
        rows.append(MachineRow(label, values, label not in NOT_MACHINE_FACTS and len(set(values)) > 1))
    return tuple(rows)


def orchestrator_facts(run: Run) -> list[Fact]:
    """The machine that ran the runner (the top run.json's host); its cells ran on the hosts."""
    if run.info is None:
        return [Fact("run.json", "missing or unreadable")]
    host = run.info.host
    facts = [Fact("CPU model", host.cpu_model)]
    if host.machine is not None:
        same = [h.host_name or "" for h in run.hosts if h.machine is not None and h.machine == host.machine]
        also = f" (the same machine as {', '.join(same)})" if same else ""
        facts.append(Fact("Machine fingerprint", host.machine.fingerprint + also))
    else:
        facts.append(Fact("Machine fingerprint", "not recorded"))
    facts += [Fact("OS", host.os), Fact("Python", host.python)]
    return facts


def several_notes(run: Run, views: tuple[MachineView, ...]) -> list[str]:
    """Machines that share a CPU model (one kind of machine, or two), names that disagree, and
    each machine's own notes, named by machine."""
    notes = same_model_notes([v.identity for v in views if v.written])  # a machine that recorded nothing says nothing
    for view, host in zip(views, run.hosts, strict=True):
        said = host.info.host_name if host.info is not None else None
        if said is not None and said != view.name:
            notes.append(f"{HOSTS_DIR}/{view.name}/run.json calls its machine {said}")
        others = sorted({r.host for r in host.results if r.host != view.name}, key=str)
        if others:
            named = ", ".join(str(o) if o is not None else "no host" for o in others)
            notes.append(f"{view.name}: results in its results.jsonl name another machine ({named})")
        notes += [f"{view.name}: {note}" for note in view.report.notes]
    return notes
