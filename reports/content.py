"""What a report says, computed once and rendered twice (Markdown and HTML): the assembly of its parts.

Everything here is plain data with unescaped text: each renderer escapes for its own format, so
there is exactly one place per format where escaping happens.

A run on several machines is reported as its machines: each one's facts and matrix (never one
table for two machines), the same cells compared across machines as ratios, and each machine's
full report (``Report.machines[i].report``, written under ``hosts/NAME/``).

Each part has a module of its own: the matrix (``matrix_view``), the per-model tables (``study``),
the sweeps (``sweep_tables``), the facts tables (``run_facts``), the machines of a several-machine
run (``several``); this one puts them together.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from frameworks.result import Result

from .cells import (
    build_mismatch,
    figures,
    is_latency,
    is_transformed,
    matrix_results,
    mixed_launchers,
    model_order,
    model_title,
    row_sort_key,
)
from .compare import Comparison, find_comparisons
from .facts import Fact
from .gemm import run_peak
from .heatmap import heatmap
from .int8 import Int8Section, int8_section, is_int8
from .load import LoadProblem, Run, host_dir_name
from .machines import across_machines
from .matrix_view import CellView, MatrixRow, matrix_rows, row_labels
from .memory import MemorySection, memory_section
from .pruning import PruningSection, is_pruned, pruning_section
from .published import PublishedSection, published_section
from .run_facts import VariantFacts, counts, host_facts, run_facts, scenario_counts, scenario_order, variant_facts
from .several import MachineRow, MachineView, machine_facts, machine_rows, orchestrator_facts, several_notes
from .skips import SkippedGroup, gathered, groups_by_reason
from .study import StudyTable, study_table
from .summary import Opening, machine_line, opening
from .sweep_tables import SweepSection, sweep_sections
from .training import TrainingSection, is_training, training_section


@dataclass(frozen=True)
class ComparisonGroup:
    title: str
    comparisons: tuple[Comparison, ...]


@dataclass(frozen=True)
class Report:
    title: str
    subtitle: str
    run: Run
    counts: tuple[Fact, ...]
    scenario_counts: tuple[Fact, ...]  # cells per scenario, when the run holds more than latency
    models: tuple[str, ...]
    model_titles: tuple[str, ...]
    cells: tuple[CellView, ...]
    matrix: tuple[MatrixRow, ...]
    studies: tuple[StudyTable, ...]
    groups: tuple[ComparisonGroup, ...]
    sweeps: tuple[SweepSection, ...]
    run_facts: tuple[Fact, ...]
    host_facts: tuple[Fact, ...]
    settings: tuple[Fact, ...]
    variants: tuple[VariantFacts, ...]
    command: str | None
    notes: tuple[str, ...]
    problems: tuple[LoadProblem, ...]
    machines: tuple[MachineView, ...] = ()  # a several-machine run: its machines, in run.json's order
    machine_rows: tuple[MachineRow, ...] = ()  # their facts side by side
    across: tuple[Comparison, ...] = ()  # the same cells across machines, against the first machine
    across_gaps: tuple[str, ...] = ()  # cells some machine could not give, and why
    host_name: str | None = None  # one machine's report within a several-machine run
    training: TrainingSection | None = None  # the train scenario's section, when the run trained
    published: PublishedSection | None = None  # the answered comparison's figures beside ours (reports/published.py)
    pruning: PruningSection | None = None  # the prune transform's cells (reports/pruning.py), when the run pruned
    int8: Int8Section | None = None  # the int8 transform's cells (reports/int8.py), when the run quantized
    opening: Opening | None = None  # what a reader acts on first (reports/summary.py); one machine's report
    memory: MemorySection | None = None  # latency against peak memory (reports/memory.py)
    skipped: tuple[SkippedGroup, ...] = ()  # matrix cells skipped for a reason several share, listed once

    @property
    def several(self) -> bool:
        return bool(self.machines)

    @property
    def first_machine(self) -> str:
        """The cross-machine baseline: the first machine that recorded any cell."""
        return next((v.name for v in self.machines if v.report.run.results), self.machines[0].name)


def build_report(run: Run) -> Report:
    """Everything both renderers need, from the loaded run alone.

    The matrix, the study tables and the comparisons are the latency view: they take only
    latency cells, and the matrix and the study tables only those of the model as specified (a
    transformed cell has its transform's section: ``reports/pruning.py``, ``reports/int8.py``). Every sweep scenario of
    the run gets a section of its own. A run on several machines is its machines' reports under
    one page (``several_report``).
    """
    if run.several:
        return several_report(run)
    show_launcher = mixed_launchers(run.results)
    ordered = sorted(run.results, key=row_sort_key)
    latency = matrix_results(ordered)
    labels = row_labels(latency, show_launcher)
    cells = tuple(CellView(r, labels[id(r)], figures(r)) for r in latency)
    models = tuple(model_order(r.model for r in latency))
    comparisons, comparison_notes = find_comparisons([r for r in ordered if is_latency(r)], show_launcher)
    sweeps, sweep_notes = sweep_sections([r for r in ordered if not is_training(r)], show_launcher)
    trained = [r for r in ordered if is_training(r)]
    on = f" on {run.host_name}" if run.host_name is not None else ""
    peak = run_peak(run.info)
    skips = gathered(latency)
    scenarios = scenario_order(r.scenario for r in ordered)
    heat = heatmap(latency, labels, peak)
    return Report(
        title=f"Inference speed matrix: {run.run_id}{on}",
        subtitle=_subtitle(run),
        run=run,
        counts=counts(run.results),
        scenario_counts=scenario_counts(run.results),
        models=models,
        model_titles=tuple(model_title(m) for m in models),
        cells=cells,
        matrix=matrix_rows(cells, models, peak, skips),
        studies=tuple(study_table(cells, model, run.info, peak) for model in models),
        groups=comparison_groups(comparisons),
        sweeps=sweeps,
        run_facts=tuple(run_facts(run)),
        host_facts=tuple(host_facts(run)),
        settings=tuple(Fact(k, v) for k, v in sorted(run.info.settings.items())) if run.info else (),
        variants=tuple(variant_facts(ordered, run.info, show_launcher)),
        command=run.info.command if run.info is not None else None,
        notes=tuple(_notes(run, comparison_notes + sweep_notes + unshown_transforms(ordered))),
        problems=run.problems,
        host_name=run.host_name,
        training=training_section(trained, row_labels(trained, show_launcher)),
        published=published_section(latency),
        pruning=pruning_section(ordered, show_launcher),
        int8=int8_section(ordered, show_launcher),
        opening=opening(run, ordered, show_launcher, scenarios, heat),
        memory=memory_section(latency, labels),
        skipped=tuple(groups_by_reason([r for r in latency if id(r) in skips], labels, models)),
    )


def unshown_transforms(results: Sequence[Result]) -> list[str]:
    """Latency cells of a transform no section shows (every transform but prune and int8, for now): they are
    named, since the matrix leaves every transformed cell out."""
    shown = (is_pruned, is_int8)
    counts = Counter(r.transform_name for r in results
                     if is_latency(r) and is_transformed(r) and not any(s(r) for s in shown))  # fmt: skip
    return [f"{n} latency cell(s) of the {name!r} transform: no section of this report shows them"
            for name, n in sorted(counts.items())]  # fmt: skip


def several_report(run: Run) -> Report:
    """A run on several machines: each machine's facts and full report, and the cells they share
    compared across them; the within-machine views (per-model tables, comparisons, sweeps,
    variants) are each machine's own report."""
    views = tuple(machine_view(run, host) for host in run.hosts)
    show_launcher = mixed_launchers(run.results)
    across, gaps = across_machines([(v.name, host.results) for v, host in zip(views, run.hosts, strict=True)],
                                   show_launcher)  # fmt: skip
    return Report(
        title=f"Inference speed matrix: {run.run_id}",
        subtitle=" · ".join(f"{v.name}: {machine_line(v.identity.machine, v.identity.cpu_model)}" for v in views),
        run=run,
        counts=counts(run.results),
        scenario_counts=scenario_counts(run.results),
        models=(),
        model_titles=(),
        cells=(),
        matrix=(),
        studies=(),
        groups=(),
        sweeps=(),
        run_facts=tuple(run_facts(run)),
        host_facts=tuple(orchestrator_facts(run)),
        settings=tuple(Fact(k, v) for k, v in sorted(run.info.settings.items())) if run.info else (),
        variants=(),
        command=run.info.command if run.info is not None else None,
        notes=tuple(several_notes(run, views)),
        problems=run.problems,
        machines=views,
        machine_rows=machine_rows(views),
        across=tuple(across),
        across_gaps=tuple(gaps),
    )


def machine_view(run: Run, host: Run) -> MachineView:
    name = host.host_name or ""
    url = run.info.hosts.get(name) if run.info is not None else None
    facts = [Fact("Engine", url or "not named in run.json"), *machine_facts(host)]
    return MachineView(name, host_dir_name(name), host.identity, tuple(facts), build_report(host), host.recorded)


def _subtitle(run: Run) -> str:
    gpus = sorted({r.environment.gpu for r in run.results if r.environment is not None and r.environment.gpu})
    if run.info is not None and run.info.host.gpu and run.info.host.gpu not in gpus:
        gpus.insert(0, run.info.host.gpu)
    machine = machine_line(run.machine, run.cpu_model)  # by what tells it from others, not its CPU model string
    if run.host_name is not None:  # one machine of several: its name first
        machine = f"{run.host_name}: {machine}"
    return " · ".join([machine, *gpus])


# --- comparisons ----------------------------------------------------------------------------------


def comparison_groups(comparisons: list[Comparison]) -> tuple[ComparisonGroup, ...]:
    """Comparisons by section, in the order they were found (build, modes, device, launcher)."""
    groups: dict[str, list[Comparison]] = defaultdict(list)
    for comparison in comparisons:
        groups[comparison.group].append(comparison)
    return tuple(ComparisonGroup(title, tuple(items)) for title, items in groups.items())


def _notes(run: Run, comparison_notes: list[str]) -> list[str]:
    notes = list(comparison_notes)
    for mismatch in sorted({m for r in run.results if (m := build_mismatch(r)) is not None}):
        notes.append(mismatch)
    cpus = sorted({r.environment.cpu_model for r in run.results if r.environment is not None})
    if run.info is not None and any(c != run.info.host.cpu_model for c in cpus):
        notes.append(f"cells report other CPU models than the host ({', '.join(cpus)})")
    machine = run.info.host.machine if run.info is not None else None
    prints = sorted({e.machine.fingerprint for r in run.results if (e := r.environment) and e.machine})
    if machine is not None and any(fp != machine.fingerprint for fp in prints):
        notes.append(
            f"cells report other machine fingerprints than the host's {machine.fingerprint} ({', '.join(prints)})"
        )
    return notes
