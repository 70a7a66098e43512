"""Machines: what tells two apart, and the same cell measured on each of a run's machines.

A CPU model string is not a machine: under a hypervisor two very different parts may both say
"AMD EPYC" (one with AVX2 only, one with AVX-512 and bf16, and kernels that dispatch differently on
them). So machines are told apart by their fingerprint (``frameworks.result.Machine``), and this
module says in words what differs between two that share a CPU model.

The cross-machine comparison takes the same latency cell (same variant, launcher, mode, model,
device and scenario identity: ``Result.key()`` without the host) on each machine and compares it
with the first machine that measured it, with the bootstrap interval and rank test of every other
comparison in the reports (``compare.compare_samples``). Timings of different machines are never
put in one matrix: this is the one place where they meet, as ratios.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, replace

from frameworks.models import MODELS
from frameworks.result import CellKey, Machine, Result

from .cells import latency_results, model_title, per_image_samples, row_label, row_sort_key
from .compare import Comparison, compare_samples
from .load import MachineIdentity

GROUP_MACHINES = "Across machines"


NO_IDENTITY = "not recorded (results written before schema 3): known by its CPU model only"


def identity_facts(machine: Machine | None, missing: str = NO_IDENTITY) -> list[tuple[str, str]]:
    """The machine's identity as (label, value) lines for a facts table (``missing``: why there is none)."""
    if machine is None:
        return [("Machine fingerprint", missing)]
    return [
        ("Machine fingerprint", machine.fingerprint),
        ("CPU", f"{machine.vendor}, family {machine.family}, model {machine.model}, stepping {machine.stepping}"),
        ("Dispatch flags", " ".join(machine.flags) or "none of the extensions kernels dispatch on"),
        ("Sockets, cores, threads", f"{machine.sockets}, {machine.cores}, {machine.threads}"),
        ("Caches", ", ".join(machine.caches) or "not known"),
        ("Hypervisor", machine.hypervisor or "none (bare metal)"),
    ]


def differences(a: Machine, b: Machine, a_name: str, b_name: str) -> list[str]:
    """What two machines' identities disagree on, in words (flags first: kernels dispatch on them)."""
    found = []
    only_a = [f for f in a.flags if f not in b.flags]
    only_b = [f for f in b.flags if f not in a.flags]
    if only_a:
        found.append(f"dispatch flags only {a_name} has: {' '.join(only_a)}")
    if only_b:
        found.append(f"dispatch flags only {b_name} has: {' '.join(only_b)}")
    cpu_a, cpu_b = _cpu_id(a), _cpu_id(b)
    if cpu_a != cpu_b:
        found.append(f"CPU {cpu_a} on {a_name}, {cpu_b} on {b_name}")
    if a.caches != b.caches:
        cache_a = [c for c in a.caches if c not in b.caches]
        cache_b = [c for c in b.caches if c not in a.caches]
        found.append(
            f"caches {', '.join(cache_a) or 'none other'} on {a_name}, {', '.join(cache_b) or 'none other'} on {b_name}"
        )
    if (a.sockets, a.cores, a.threads) != (b.sockets, b.cores, b.threads):
        found.append(f"sockets, cores, threads {a.sockets}, {a.cores}, {a.threads} on {a_name}, "
                     f"{b.sockets}, {b.cores}, {b.threads} on {b_name}")  # fmt: skip
    if (a.hypervisor is None) != (b.hypervisor is None):
        found.append(f"hypervisor {a.hypervisor or 'none'} on {a_name}, {b.hypervisor or 'none'} on {b_name}")
    if a.model_name != b.model_name:
        found.append(f"model name {a.model_name} on {a_name}, {b.model_name} on {b_name}")
    return found or ["their fingerprints differ in no fact shown here (the fingerprint covers them all)"]


def _cpu_id(machine: Machine) -> str:
    return f"{machine.vendor} family {machine.family} model {machine.model} stepping {machine.stepping}"


def same_model_notes(identities: Sequence[MachineIdentity]) -> list[str]:
    """For each pair of machines that report one CPU model: whether they are one kind of machine."""
    notes = []
    for a, b in itertools.combinations(identities, 2):
        if a.cpu_model != b.cpu_model:
            continue
        both = f"{a.name} and {b.name} report the same CPU model ({a.cpu_model})"
        if a.machine is None or b.machine is None:
            unknown = " and ".join(i.name for i in (a, b) if i.machine is None)
            notes.append(f"{both}; {unknown} recorded no machine identity, so they cannot be told apart")
        elif a.key == b.key:
            notes.append(f"{both} and the same fingerprint ({a.fingerprint}): the same kind of machine")
        else:
            notes.append(
                f"{both} but are different machines (fingerprints {a.fingerprint} and {b.fingerprint}): "
                + "; ".join(differences(a.machine, b.machine, a.name, b.name))
            )
    return notes


# --- the same cell on each machine ---------------------------------------------------------------


@dataclass(frozen=True)
class _Cell:
    key: CellKey  # without the host: the same cell on every machine
    by_machine: dict[str, Result]


def machine_free_key(result: Result) -> CellKey:
    """The cell's identity on any machine: ``Result.key()`` without the runner's name for the host."""
    return replace(result.key(), host="")


def comparable(result: Result) -> bool:
    return result.status == "ok" and per_image_samples(result).size >= 2


def across_machines(
    machines: Sequence[tuple[str, Sequence[Result]]], show_launcher: bool
) -> tuple[list[Comparison], list[str]]:
    """Every latency cell measured on two or more machines, each against the first machine that
    measured it (speedup = median there / median here), and a line for each cell some machine
    could not give (not run, failed, skipped, or no samples), saying what each machine has."""
    names = [name for name, _ in machines]
    cells: dict[CellKey, _Cell] = {}
    for name, results in machines:
        for result in latency_results(results):
            key = machine_free_key(result)
            cells.setdefault(key, _Cell(key, {})).by_machine[name] = result
    labels = _labels(list(cells.values()), show_launcher)
    comparisons, gaps = [], []
    for cell in sorted(cells.values(), key=_cell_order):
        usable = [n for n in names if n in cell.by_machine and comparable(cell.by_machine[n])]
        label = labels[cell.key]
        for other in usable[1:]:
            comparisons.append(_compare(cell, label, usable[0], other))
        if len(usable) < len(names):
            states = "; ".join(f"{n}: {_state(cell.by_machine.get(n))}" for n in names)
            gaps.append(f"{label}, {model_title(cell.key.model)}: {states}")
    return comparisons, gaps


def _cell_order(cell: _Cell) -> tuple[int, str, tuple[str, int, str, str, str, int, str], CellKey]:
    first = next(iter(cell.by_machine.values()))
    model = cell.key.model
    rank = list(MODELS).index(model) if model in MODELS else len(MODELS)
    return rank, model, row_sort_key(first), cell.key


def _labels(cells: list[_Cell], show_launcher: bool) -> dict[CellKey, str]:
    """``variant / mode`` per cell; with the scenario identity and the transform's (``prune sparsity=0.5``,
    the weights' digest left out) where one label and model has several."""
    base = {c.key: row_label(next(iter(c.by_machine.values())), show_launcher) for c in cells}
    count: dict[tuple[str, str], int] = {}
    for c in cells:
        count[(base[c.key], c.key.model)] = count.get((base[c.key], c.key.model), 0) + 1
    out = {}
    for c in cells:
        entries = (*c.key.identity, *((n, v) for n, v in c.key.transform if n != "weights"))
        identity = ", ".join(f"{n}={v}" for n, v in entries) or "no identity"
        out[c.key] = f"{base[c.key]} [{identity}]" if count[(base[c.key], c.key.model)] > 1 else base[c.key]
    return out


def _compare(cell: _Cell, label: str, baseline: str, candidate: str) -> Comparison:
    base, cand = cell.by_machine[baseline], cell.by_machine[candidate]
    return Comparison(
        group=GROUP_MACHINES,
        title=f"{candidate} vs {baseline}",
        model=cell.key.model,
        context=label,
        baseline_label=baseline,
        candidate_label=candidate,
        baseline=base,
        candidate=cand,
        speedup=compare_samples(per_image_samples(base), per_image_samples(cand)),
    )


def _state(result: Result | None) -> str:
    if result is None:
        return "not run"
    if result.status != "ok":
        return f"{result.status} ({result.error or 'no reason recorded'})"
    return "ok" if comparable(result) else "ok, but fewer than two samples"
