"""What a report says, computed once and rendered twice (Markdown and HTML).

Everything here is plain data with unescaped text: each renderer escapes for its own format, so
there is exactly one place per format where escaping happens.

A run on several machines is reported as its machines: each one's facts and matrix (never one
table for two machines), the same cells compared across machines as ratios, and each machine's
full report (``Report.machines[i].report``, written under ``hosts/NAME/``).
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import quote

from frameworks.backends.registry import INT8_KERNELS, SPARSE_KERNELS
from frameworks.result import Environment, Result, RunInfo
from frameworks.scenarios import DEFAULT_SCENARIO, SCENARIOS, ReportSpec

from . import fmt
from .cells import (
    Figures,
    SweepLine,
    build_mismatch,
    effective_build,
    figures,
    framework_title,
    head,
    is_latency,
    is_transformed,
    matmul_peak,
    matrix_results,
    mixed_launchers,
    model_order,
    model_title,
    row_label,
    row_sort_key,
)
from .compare import Comparison, find_comparisons
from .facts import Fact
from .gemm import above_peak, above_peak_text, run_peak
from .heatmap import heatmap
from .int8 import INT8_MODEL, MODEL_BYTES, Int8Section, int8_section, is_int8
from .load import HOSTS_DIR, LoadProblem, MachineIdentity, Run, host_dir_name
from .machines import across_machines, identity_facts, same_model_notes
from .memory import MemorySection, memory_section
from .pruning import PruningSection, is_pruned, pruning_section
from .published import PublishedSection, published_section
from .skips import SkippedGroup, gathered, groups_by_reason
from .summary import Opening, machine_line, opening
from .sweeps import PointFigures, SweepSpec, figure, sweep_figures, sweep_spec
from .training import TrainingSection, is_training, training_section
from .verdicts import LOAD_UNKNOWN, Verdict, is_valid, load_text, load_unknown, shown_warnings, trust_flags, verdict_of


@dataclass(frozen=True)
class CellView:
    """One result with its row label and figures (None unless it ran and has timings)."""

    result: Result
    label: str
    figures: Figures | None


@dataclass(frozen=True)
class MatrixCell:
    view: CellView
    fastest: bool  # fastest valid cell for this model on this device
    warnings: tuple[str, ...]  # what to flag beside the figures that the verdict does not say already
    verdict: Verdict
    recorded: tuple[str, ...] = ()  # every warning the cell recorded (the HTML keeps them on the verdict's mark)
    above_peak: str = ""  # "above the float32 GEMM peak: 112.0% of it", else empty
    gathered: bool = False  # skipped for a reason several cells share: listed once below the matrix

    @property
    def status(self) -> str:
        return self.view.result.status

    @property
    def recorded_text(self) -> str:
        """Every warning the cell recorded, for the HTML verdict's title ("" when none)."""
        return f"recorded warnings: {'; '.join(self.recorded)}" if self.recorded else ""

    @property
    def reason(self) -> str:
        return self.view.result.error or "no reason recorded"

    @property
    def mismatch(self) -> bool:
        return self.view.result.verified is False


@dataclass(frozen=True)
class MatrixRow:
    label: str
    cells: tuple[MatrixCell | None, ...]  # one per model, None where the cell did not run


@dataclass(frozen=True)
class StudyRow:
    """One line of the LeNet-5 study's table: framework, params, latency, FPS, FLOPs, GFLOP/s; with the cell's
    verdict and what a reader needs to trust its median: the precision reached, the tail (p90, p99), the
    first inference, peak memory and the other processes' load."""

    framework: str
    cell: str
    params: str
    latency: str
    fps: str
    flops: str
    gflops: str
    peak_share: str
    accuracy: str  # test accuracy, for a cell that ran trained weights ("—" for others)
    verdict: Verdict
    precision: str  # "±0.8%": the median's 95% CI half-width over the median
    p90: str  # ms per image; "n/a" where too few samples were taken for it
    p99: str
    first_inference: str  # ms, the first call (lazy compilation included)
    peak_memory: str
    load: str  # "0.02 CPUs" or "load unknown"
    above_peak: str  # "above the float32 GEMM peak: 112.0% of it", else empty


@dataclass(frozen=True)
class StudyTable:
    model: str
    title: str
    rows: tuple[StudyRow, ...]
    peak_note: str
    accuracy: bool = False  # whether any row has a test accuracy (then the table shows the column)


@dataclass(frozen=True)
class ComparisonGroup:
    title: str
    comparisons: tuple[Comparison, ...]


@dataclass(frozen=True)
class VariantFacts:
    """What one variant ran as: image, versions, and the build facts its framework reported."""

    name: str
    framework: str
    device: str
    image_id: str
    cpus: str
    memory: str  # the cgroup limit the cells ran under, or the host's memory when none
    gpu: str
    in_effect: str
    build: tuple[Fact, ...]


@dataclass(frozen=True)
class SweepCell:
    """One point of a sweep as a table cell: its figure and how it was measured, or why it has none."""

    ok: bool
    value: str  # "3,650 img/s", "1.85×"; empty when not ok
    details: tuple[str, ...]  # "median 0.274 ms/batch"; "efficiency 92.5%", "median 0.274 ms"
    reason: str  # "failed: out of memory ..." when not ok
    flags: tuple[str, ...]  # an output that did not match the reference, the point's own warnings
    unverified: bool


@dataclass(frozen=True)
class SweepRow:
    label: str
    note: str  # why a cell has no points at all ("failed: ..."), else empty
    cells: tuple[SweepCell | None, ...]  # one per x value of the table, None where not measured
    line: SweepLine


@dataclass(frozen=True)
class SweepModel:
    model: str
    title: str
    xs: tuple[int, ...]
    headers: tuple[str, ...]  # "batch size 4", "threads 2": one per x value
    rows: tuple[SweepRow, ...]


@dataclass(frozen=True)
class SweepSection:
    """One sweep scenario of the run: its spec (title, intro, axes) and a chart and table per model."""

    scenario: str
    spec: ReportSpec
    registered: bool
    legend: str  # how every figure in the tables was computed
    models: tuple[SweepModel, ...]


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
        counts=_counts(run.results),
        scenario_counts=_scenario_counts(run.results),
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
        counts=_counts(run.results),
        scenario_counts=_scenario_counts(run.results),
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
    peak = _peak(run.info)
    facts.append(Fact("float32 matmul peak", f"{fmt.sig(peak)} GFLOP/s" if peak else "not measured"))
    facts.append(Fact("Cells", ", ".join(f"{f.value} {f.label}" for f in _counts(run.results))))
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


def row_labels(results: Sequence[Result], show_launcher: bool) -> dict[int, str]:
    """Each result's row label (by ``id``): the matrix's ``variant / mode``, made unique per model.

    Two cells of one label and model differ in their scenario identity (a latency cell at batch 1
    and one at batch 8): every cell of such a label then names its identity, so rows stay whole.
    """
    base = {id(r): row_label(r, show_launcher) for r in results}
    seen: set[tuple[str, str]] = set()
    clashing: set[str] = set()
    for r in results:
        key = (base[id(r)], r.model)
        if key in seen:
            clashing.add(key[0])
        seen.add(key)
    return {id(r): f"{base[id(r)]} [{identity_text(r)}]" if base[id(r)] in clashing else base[id(r)] for r in results}


def identity_text(result: Result) -> str:
    """The scenario identity as the cell's key holds it: ``batch=8``, ``batches=1 4 16``."""
    return ", ".join(f"{name}={value}" for name, value in result.key().identity) or "no identity"


def _subtitle(run: Run) -> str:
    gpus = sorted({r.environment.gpu for r in run.results if r.environment is not None and r.environment.gpu})
    if run.info is not None and run.info.host.gpu and run.info.host.gpu not in gpus:
        gpus.insert(0, run.info.host.gpu)
    machine = machine_line(run.machine, run.cpu_model)  # by what tells it from others, not its CPU model string
    if run.host_name is not None:  # one machine of several: its name first
        machine = f"{run.host_name}: {machine}"
    return " · ".join([machine, *gpus])


def _counts(results: tuple[Result, ...]) -> tuple[Fact, ...]:
    tally = Counter(r.status for r in results)
    return tuple(Fact(status, str(tally.get(status, 0))) for status in ("ok", "failed", "skipped"))


def _scenario_counts(results: tuple[Result, ...]) -> tuple[Fact, ...]:
    """Cells per scenario (and a sweep's points), shown only when the run holds more than latency."""
    by_scenario: dict[str, list[Result]] = defaultdict(list)
    for result in results:
        by_scenario[result.scenario].append(result)
    if set(by_scenario) <= {DEFAULT_SCENARIO}:
        return ()
    facts = []
    for scenario in scenario_order(by_scenario):
        group = by_scenario[scenario]
        text = f"{len(group)} cell{'s' if len(group) != 1 else ''}"
        sweep = scenario in SCENARIOS and SCENARIOS[scenario].report is not None
        points = [p for r in group for p in r.points] if sweep else []  # a latency cell's one is the cell
        if points:
            ok = sum(p.status == "ok" for p in points)
            text += f", {ok} of {len(points)} points ok"
        facts.append(Fact(scenario, text))
    return tuple(facts)


def scenario_order(names: Iterable[str]) -> list[str]:
    """Registered scenarios in the registry's order, then any other name alphabetically."""
    present = set(names)
    known = [name for name in SCENARIOS if name in present]
    return known + sorted(present - set(known))


# --- the matrix ---------------------------------------------------------------------------------


def matrix_rows(
    cells: tuple[CellView, ...], models: tuple[str, ...], peak: float | None = None, skips: set[int] | None = None
) -> tuple[MatrixRow, ...]:
    """One row per variant and mode, one column per model, in the cells' sorted order. A row whose every cell
    was skipped for a reason several cells share (``skips``: listed once below the matrix) is left out."""
    fastest = fastest_cells(cells)
    skips = skips or set()
    rows: dict[str, dict[str, CellView]] = {}
    for view in cells:
        rows.setdefault(view.label, {})[view.result.model] = view
    return tuple(
        MatrixRow(label, tuple(_matrix_cell(by_model.get(m), fastest, peak, skips) for m in models))
        for label, by_model in rows.items()
        if any(id(v.result) not in skips for v in by_model.values())
    )


def _matrix_cell(view: CellView | None, fastest: set[int], peak: float | None, skips: set[int]) -> MatrixCell | None:
    if view is None:
        return None
    result = view.result
    verdict = verdict_of(result)
    recorded = cell_warnings(result)
    warnings = (*shown_warnings(recorded, verdict), *([LOAD_UNKNOWN] if load_unknown(result, verdict) else []))
    share = above_peak(result, peak)
    return MatrixCell(view, id(view) in fastest, warnings, verdict, recorded,
                      above_peak_text(share) if share is not None else "", id(result) in skips)  # fmt: skip


def fastest_cells(cells: tuple[CellView, ...]) -> set[int]:
    """The fastest cell per model and device, among valid cells (``frameworks.validity``): a median that is
    not known to its precision, or measured beside other load, or of a wrong output, wins nothing.

    Per device because a GPU would otherwise win every column and the CPU race would go unmarked.
    """
    best: dict[tuple[str, str], CellView] = {}
    for view in cells:
        if view.figures is None or not is_valid(view.result):
            continue
        key = (view.result.model, view.result.device)
        if key not in best or view.figures.median_ms < best[key].figures.median_ms:  # type: ignore[union-attr]
            best[key] = view
    return {id(v) for v in best.values()}


def cell_warnings(result: Result) -> tuple[str, ...]:
    """The result's own warnings, plus a mismatch line when it failed verification without saying so."""
    found = list(result.warnings)
    if result.verified is False and not any("reference" in w for w in found):
        error = f" (max error {result.max_error:.3g})" if result.max_error is not None else ""
        found.insert(0, f"output does not match the reference{error}")
    return tuple(found)


# --- the study table ----------------------------------------------------------------------------


def study_table(cells: tuple[CellView, ...], model: str, info: RunInfo | None, peak: float | None = None) -> StudyTable:
    """The LeNet-5 study's columns for one model, fastest first (``peak``: the run's float32 GEMM peak, which a
    float32 cell's GFLOP/s is held to)."""
    timed = sorted((v for v in cells if v.result.model == model and v.figures is not None), key=_median)
    peaks = {p for v in timed if v.result.device == "cpu" and (p := matmul_peak(v.result, info)) is not None}
    if peaks:
        note = "float32 matmul peak measured in this run: " + ", ".join(f"{fmt.sig(p)} GFLOP/s" for p in sorted(peaks))
    else:
        note = "no float32 matmul peak was measured in this run, so no share of peak is shown"
    rows = tuple(_study_row(v, info, peak) for v in timed)
    return StudyTable(model, model_title(model), rows, note, any(v.result.accuracy is not None for v in timed))


def _median(view: CellView) -> float:
    return view.figures.median_ms if view.figures is not None else float("inf")


def _study_row(view: CellView, info: RunInfo | None, gemm_peak: float | None) -> StudyRow:
    result, figs = view.result, view.figures
    assert figs is not None
    peak = matmul_peak(result, info) if result.device == "cpu" else None
    share = fmt.percent(100.0 * figs.gflops / peak) if peak is not None and figs.gflops is not None else "—"
    above = above_peak(result, gemm_peak)
    stats = result.stats
    batch = result.batch if result.batch > 0 else 1
    return StudyRow(
        framework=f"{framework_title(result.framework)} {result.version or ''}".strip(),
        cell=view.label,
        params=fmt.count(result.params) if result.params > 0 else "—",
        latency=fmt.sig(figs.median_ms),
        fps=fmt.sig(figs.images_per_s),
        flops=fmt.si(result.flops, "FLOP") if result.flops > 0 else "—",
        gflops=fmt.sig(figs.gflops) if figs.gflops is not None else "—",
        peak_share=share,
        accuracy=fmt.accuracy(result.accuracy) if result.accuracy is not None else "—",
        verdict=verdict_of(result),
        precision=fmt.plus_minus(precision_reached(view)),
        p90=_per_image_ms(stats.p90 if stats is not None else None, batch),
        p99=_per_image_ms(stats.p99 if stats is not None else None, batch),
        first_inference=fmt.sig(result.first_inference_s * 1e3) if result.first_inference_s is not None else "—",
        peak_memory=fmt.memory(result.peak_rss_bytes) if result.peak_rss_bytes else "—",
        load=load_text(result.other_load),
        above_peak=above_peak_text(above) if above is not None else "",
    )


def precision_reached(view: CellView) -> float:
    """The median's 95% CI half-width over the median, as recorded (``Stats.half_width``), else from the
    figures the table shows (a cell that kept samples but no summary)."""
    stats = view.result.stats
    width = stats.half_width if stats is not None else None
    if width is not None:
        return width
    figs = view.figures
    assert figs is not None
    return max(figs.median_ms - figs.ci_low_ms, figs.ci_high_ms - figs.median_ms) / figs.median_ms


def _per_image_ms(seconds: float | None, batch: int) -> str:
    """A recorded percentile (seconds per batch) in ms per image; ``n/a`` where too few samples gave none."""
    return fmt.sig(seconds / batch * 1e3) if seconds is not None else "n/a"


# --- comparisons ----------------------------------------------------------------------------------


def comparison_groups(comparisons: list[Comparison]) -> tuple[ComparisonGroup, ...]:
    """Comparisons by section, in the order they were found (build, modes, device, launcher)."""
    groups: dict[str, list[Comparison]] = defaultdict(list)
    for comparison in comparisons:
        groups[comparison.group].append(comparison)
    return tuple(ComparisonGroup(title, tuple(items)) for title, items in groups.items())


# --- sweeps ---------------------------------------------------------------------------------------


def sweep_sections(results: Sequence[Result], show_launcher: bool) -> tuple[tuple[SweepSection, ...], list[str]]:
    """A section per sweep scenario of the run (registry order, then unknown names), and notes on
    results no section can show (a scenario that is neither latency nor a sweep with points)."""
    by_scenario: dict[str, list[Result]] = defaultdict(list)
    for result in results:
        if not is_latency(result):
            by_scenario[result.scenario].append(result)
    sections, notes = [], []
    for scenario in scenario_order(by_scenario):
        group = by_scenario[scenario]
        spec = sweep_spec(scenario, group)
        if spec is None:
            notes.append(f"{len(group)} result(s) of scenario {scenario!r} have no points to show: not shown")
            continue
        sections.append(sweep_section(spec, group, show_launcher))
    return tuple(sections), notes


def sweep_legend(spec: ReportSpec) -> str:
    if spec.y == "speedup":
        figure_text = (
            "Speedup = median time at the fewest threads / median time at this count; efficiency = speedup × "
            "fewest threads / threads; median = the median of the point's timed samples, in ms per batch"
        )
    else:
        figure_text = "Images/s = batch size / the median of the point's timed samples (seconds per batch)"
    return (
        f"{figure_text}. Every figure is computed from the points' raw samples; one taken from a point's stored "
        "summary instead (it kept no samples) says so. ⚠ INVALID flags a point the validity check failed, with its "
        "reasons; ⚠ flags what else a point recorded (an output not checked, a warning the verdict does not state, "
        "an unknown load); a failed point shows its reason."
    )


def sweep_section(spec: SweepSpec, results: list[Result], show_launcher: bool) -> SweepSection:
    labels = row_labels(results, show_launcher)
    models = tuple(model_order(r.model for r in results))
    return SweepSection(
        scenario=spec.scenario,
        spec=spec.spec,
        registered=spec.registered,
        legend=sweep_legend(spec.spec),
        models=tuple(_sweep_model(spec.spec, [r for r in results if r.model == m], labels, m) for m in models),
    )


def _sweep_model(spec: ReportSpec, results: list[Result], labels: dict[int, str], model: str) -> SweepModel:
    computed = [(r, sweep_figures(r, spec)) for r in results]
    xs = tuple(sorted({f.x for _, figs in computed for f in figs}))
    rows = tuple(_sweep_row(spec, r, labels[id(r)], figs, xs) for r, figs in computed)
    return SweepModel(model, model_title(model), xs, tuple(f"{spec.x_label} {x}" for x in xs), rows)


def _sweep_row(
    spec: ReportSpec, result: Result, label: str, figs: tuple[PointFigures, ...], xs: tuple[int, ...]
) -> SweepRow:
    by_x = {f.x: f for f in figs}
    note = "" if result.points else f"{result.status}: {result.error or 'no point was measured'}"
    values = tuple(figure(f, spec) for f in figs)
    line = SweepLine(
        label=label,
        group=result.framework,
        xs=tuple(f.x for f in figs),
        ys=tuple(v if v is not None else math.nan for v in values),
        unverified=tuple(f.point.verified is False for f in figs),
    )
    return SweepRow(label, note, tuple(_sweep_cell(spec, by_x[x]) if x in by_x else None for x in xs), line)


def _sweep_cell(spec: ReportSpec, figs: PointFigures) -> SweepCell:
    point = figs.point
    flags = list(_point_flags(spec, figs))
    value = figure(figs, spec)
    if point.status != "ok" or value is None:
        reason = point.error or ("no timing recorded" if point.status == "ok" else "no reason recorded")
        status = "failed" if point.status == "ok" else point.status
        return SweepCell(False, "", (), f"{status}: {reason}", tuple(flags), point.verified is False)
    details = []
    if spec.y == "speedup":
        if figs.efficiency is not None:
            details.append(f"efficiency {fmt.percent(100.0 * figs.efficiency)}")
        if figs.median_s is not None:
            details.append(f"median {fmt.ms(figs.median_s * 1e3)}")
        text = fmt.ratio(value)
    else:
        if figs.median_s is not None:
            details.append(f"median {fmt.ms(figs.median_s * 1e3)}/batch")
        text = f"{fmt.sig(value)} img/s"
    if not figs.from_samples:
        details.append("from the stored summary (no samples kept)")
    return SweepCell(True, text, tuple(details), "", tuple(flags), point.verified is False)


def _point_flags(spec: ReportSpec, figs: PointFigures) -> list[str]:
    """What to flag beside a point's figure: its verdict when invalid, a failed output check, its own warnings
    (less those the verdict states), a thread count the framework reports differently from the one requested,
    an unknown load."""
    point = figs.point
    flags = []
    if point.verified is False and not any("reference" in w for w in point.warnings):
        error = f" (max error {point.max_error:.3g})" if point.max_error is not None else ""
        flags.append(f"output does not match the reference{error}")
    elif point.status == "ok" and point.verified is None:
        flags.append("output not checked against the reference")
    flags += point.warnings
    if spec.x == "threads" and point.threads_in_use is not None and point.threads_in_use != point.threads:
        flags.append(f"the framework reports {point.threads_in_use} threads in use, not {point.threads}")
    return list(trust_flags(point, flags))


# --- environment ---------------------------------------------------------------------------------


def run_facts(run: Run) -> list[Fact]:
    info = run.info
    machine = [Fact("Machine", f"{run.host_name}, one machine of this run")] if run.host_name is not None else []
    if run.several:
        machine = [Fact("Machines", ", ".join(h.host_name or "" for h in run.hosts))]
    if info is None:
        return [Fact("Run", run.run_id), *machine, Fact("run.json", "missing or unreadable")]
    facts = [Fact("Run", info.run_id), *machine, Fact("Launcher", info.launcher), Fact("Started", info.started_at)]
    facts.append(Fact("Finished", info.finished_at or "not recorded (interrupted?)"))
    duration = _duration(info.started_at, info.finished_at)
    if duration is not None:
        facts.append(Fact("Duration", duration))
    if run.several:
        engines = [f"{h.host_name} {h.info.docker_version}" for h in run.hosts if h.info and h.info.docker_version]
        facts.append(Fact("Docker engines", ", ".join(engines) or "—"))
    else:
        facts.append(Fact("Docker engine", info.docker_version or "—"))
    return facts


def _duration(start: str, end: str | None) -> str | None:
    if end is None:
        return None
    try:
        seconds = (_parse_time(end) - _parse_time(start)).total_seconds()
    except ValueError:
        return None
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes} min {secs} s" if minutes else f"{secs} s"


def _parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def host_facts(run: Run) -> list[Fact]:
    """The machine as run.json recorded it (the host, not a container's view of it), with its identity
    (fingerprint, dispatch flags, caches...: from the cells when run.json is missing)."""
    identity = [Fact(label, value) for label, value in identity_facts(run.machine)]
    if run.info is None:
        return [Fact("CPU model", run.cpu_model), *identity]
    host, info = run.info.host, run.info
    facts = [
        Fact("CPU model", host.cpu_model),
        *identity,
        Fact("Logical CPUs", str(host.cpu_count)),
        Fact("CPUs available (cpuset)", f"{host.cpus_available} ({host.cpuset})"),
        Fact("Memory", fmt.gib(host.memory_bytes)),
        Fact("GPU", host.gpu or "none"),
        Fact("OS", host.os),
        Fact("Python", host.python),
    ]
    if host.load_avg_1m is not None:
        facts.append(Fact("Load average (1 min) at start", f"{host.load_avg_1m:.2f}"))
    peak = _peak(info)
    facts.append(Fact("float32 matmul peak", f"{fmt.sig(peak)} GFLOP/s" if peak else "not measured"))
    return facts


def _peak(info: RunInfo | None) -> float | None:
    return (info.matmul_peak_gflops or info.host.matmul_peak_gflops) if info is not None else None


def variant_facts(results: Sequence[Result], info: RunInfo | None, show_launcher: bool) -> list[VariantFacts]:
    """One entry per variant (and launcher): what its cells, of every scenario, report about image, CPUs and build."""
    by_variant: dict[str, list[Result]] = {}
    for result in results:
        name = head(result) + (f" ({result.launcher or 'unknown launcher'})" if show_launcher else "")
        by_variant.setdefault(name, []).append(result)
    return [_variant(name, group, info) for name, group in by_variant.items()]


def _variant(name: str, results: list[Result], info: RunInfo | None) -> VariantFacts:
    first = results[0]
    envs = [r.environment for r in results if r.environment is not None]
    image = _distinct(e.image_id for e in envs)
    if first.launcher != "local" and info is not None and first.variant in info.images:
        image = info.images[first.variant]  # the runner's record of what it started wins
    versions = _distinct(r.version for r in results)
    return VariantFacts(
        name=name,
        framework=f"{framework_title(first.framework)} {versions}".strip(),
        device=first.device,
        image_id=image or ("— (local)" if first.launcher == "local" else "—"),
        cpus=_distinct(f"{e.cpus_available} ({e.cpuset})" for e in envs) or "—",
        memory=_distinct(_memory(e) for e in envs) or "—",
        gpu=_distinct(e.gpu for e in envs) or "—",
        in_effect=_distinct(effective_build(r) for r in results) or "not stated",
        build=tuple(_build_facts(results)),
    )


def _memory(env: Environment) -> str:
    if env.memory_limit_bytes is not None:
        return f"{fmt.gib(env.memory_limit_bytes)} limit"
    return f"{fmt.gib(env.memory_bytes)} (no limit)" if env.memory_bytes else ""


def _distinct(values: Iterable[object]) -> str:
    """Distinct non-empty values joined: a variant whose cells disagree shows every value."""
    seen: list[str] = []
    for value in values:
        if value and str(value) not in seen:
            seen.append(str(value))
    return " / ".join(seen)


def _build_facts(results: list[Result]) -> list[Fact]:
    """Each build fact's distinct values; one a cell states of itself (the sparse kernels it ran, which differ
    by sparsity; the int8 kernels and model it ran, which differ by toolchain) points to the transform's
    section, which shows it beside that cell."""
    keys = sorted({k for r in results for k in r.build})
    return [Fact(k, PER_CELL_FACTS.get(k) or _distinct(r.build.get(k) for r in results)) for k in keys]


PER_CELL_FACT = "stated by each cell: shown beside it in the Pruning section"
PER_CELL_INT8 = "stated by each int8 cell: shown beside it in the Int8 quantization section"
PER_CELL_SIZE = "stated by each cell: the model it ran; an int8 cell's shown beside it in the Int8 quantization section"
PER_CELL_FACTS = {SPARSE_KERNELS: PER_CELL_FACT, INT8_KERNELS: PER_CELL_INT8, INT8_MODEL: PER_CELL_INT8,
                  MODEL_BYTES: PER_CELL_SIZE}  # fmt: skip


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
