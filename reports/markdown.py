"""The Markdown report (tables by tabulate), fit for a README or a GitHub page.

Every string from a result file goes through ``escape``: an error message may hold ``|`` (which
would split a table cell), newlines, or HTML that GitHub would otherwise interpret. Links are
ours: their targets are percent-encoded paths inside the run directory (``hosts/NAME/report.md``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from tabulate import tabulate

from frameworks.result import Result

from . import fmt
from .cells import figures, model_title
from .compare import ALPHA, CI_LEVEL, RESAMPLES, Comparison
from .content import Report
from .facts import Fact
from .heatmap import Heatmap
from .int8 import Int8Model, Int8Row, Int8Section
from .load import LoadProblem
from .matrix_view import MatrixCell, MatrixRow
from .memory import MemorySection
from .pruning import LatencyRow, PruningModel, PruningSection, SpeedupRow
from .published import PublishedRow, PublishedSection
from .skips import SkippedGroup
from .study import StudyRow, StudyTable
from .summary import NOT_RECORDED, FastestRow, Opening
from .sweep_tables import SweepCell, SweepRow, SweepSection
from .training import TrainingRow, TrainingSection
from .verdicts import INVALID, VALID

_SPECIAL = re.compile(r"([\\`*\[\]|])")
NOTICE = "Generated from results.jsonl and run.json by `reports`; do not edit by hand."


def escape(text: str) -> str:
    """Inline-safe Markdown: HTML entities, Markdown punctuation escaped, one line."""
    text = " ".join(fmt.visible(str(text)).split())
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _SPECIAL.sub(r"\\\1", text)


def table(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """A GitHub pipe table; cells are already escaped strings (no number parsing, no realignment)."""
    return tabulate(list(rows), headers=list(headers), tablefmt="github", disable_numparse=True)


def render_markdown(report: Report) -> str:
    """The whole report as one Markdown document (deterministic: no time of rendering in it)."""
    if report.several:
        return render_several(report)
    parts = [
        f"# {escape(report.title)}",
        _summary(report),
        _opening(report.opening),
        _matrix(report),
        _studies(report.studies),
        _memory(report.memory),
        _comparisons(report),
        _published(report.published),
        *(_sweep(section) for section in report.sweeps),
        _training(report.training),
        _pruning(report.pruning),
        _int8(report.int8),
        _environment(report),
        _notes(report.notes, report.problems),
    ]
    return "\n\n".join(p for p in parts if p) + "\n"


def _summary(report: Report) -> str:
    counts = ", ".join(f"{f.value} {f.label}" for f in report.counts)
    label = "Machines" if report.several else "Machine"
    lines = [f"**{label}:** {escape(report.subtitle)}  ", f"**Cells:** {counts}  "]
    if report.host_name is not None:
        lines.append("**Part of a run on several machines:** [the whole run's report](../../report.md)  ")
    if report.scenario_counts:
        by_scenario = "; ".join(f"{escape(f.label)}: {escape(f.value)}" for f in report.scenario_counts)
        lines.append(f"**Scenarios:** {by_scenario}  ")
    return "\n".join([*lines, NOTICE])


# --- the opening ------------------------------------------------------------------------------------

OPENING_TITLE = "## At a glance"
FASTEST_LEGEND = (
    "The fastest valid cell of each model, scenario and device (a sweep: its fastest valid point): the median of "
    "its timed samples per image, with the 95% confidence interval of the median. Only valid cells are ranked: "
    "output verified, enough samples, the median known to the stated precision, other load known and low, no "
    "throttling."
)
FASTEST_HEADERS = ("Model", "Scenario", "Device", "Framework", "Variant / mode", "Median (ms/img)", "95% CI (ms/img)")
HEATMAP_LEGEND = (
    "Each framework's best valid latency cell (any variant and mode) over the fastest valid cell of the model on "
    "the same device: 1.00× is the fastest, 2.00× takes twice as long. ⚠: that best cell is a float32 cell above "
    'the float32 GEMM peak, a figure to check before it is believed. "no valid cell": the framework ran the '
    'model, but none of its cells is valid; "no cell ran": its cells of the model failed or were skipped; —: it '
    "has no cell of the model."
)


def _opening(opening: Opening | None) -> str:
    """What a reader acts on: the machine, the verdicts, the fastest valid cells, each framework against them."""
    if opening is None:
        return ""
    machine = opening.machine
    features = (
        ", ".join(f"{f.flag} {f.state}" for f in machine.features)
        if machine.features_recorded
        else (f"{NOT_RECORDED}: no machine record")
    )
    facts = [Fact("Machine", machine.name), Fact("Fingerprint", machine.fingerprint),
             Fact("Instruction sets", features), *machine.facts, Fact("Cells", opening.verdicts)]  # fmt: skip
    parts = [OPENING_TITLE, "### This machine", facts_table(facts), "### Fastest valid cell", FASTEST_LEGEND]
    parts.append(table(FASTEST_HEADERS, map(fastest_row, opening.fastest)) if opening.fastest else
                 "No cell ran.")  # fmt: skip
    if opening.heatmap is not None:
        parts += ["### Each framework against the fastest", HEATMAP_LEGEND, heatmap_table(opening.heatmap)]
    return "\n\n".join(parts)


def fastest_row(row: FastestRow) -> list[str]:
    head = [escape(row.model), escape(row.scenario), escape(row.device)]
    if row.note:
        return [*head, f"**{escape(row.note)}**", "—", "—", "—"]
    label = escape(row.label) + (f"<br>⚠ **{escape(row.flag)}**" if row.flag else "")
    return [*head, escape(row.framework), label, f"**{row.median}**", row.interval]


def heatmap_table(heat: Heatmap) -> str:
    headers = ["Framework", *(escape(t) for t in heat.titles)]
    return table(headers, [[escape(r.label), *(escape(c.text) for c in r.cells)] for r in heat.rows])


# --- matrix ----------------------------------------------------------------------------------------


MATRIX_LEGEND = (
    "Median latency per image; below it the mean (sd) of the samples in ms, images/s and GFLOP/s, and the cell's "
    "verdict: ✓ valid, or ✗ INVALID with the reasons. ★ marks the fastest valid cell for the model on its "
    "device; ⚠ flags what the verdict does not say (a float32 cell above the float32 GEMM peak, an unstable "
    "timing, an unknown load), with the warning's text."
)
SKIPPED_TITLE = "### Cells that did not run, by reason"


def _matrix(report: Report) -> str:
    if not report.matrix:
        return f"## Matrix\n\n{empty_matrix(report)}"
    parts = ["## Matrix", MATRIX_LEGEND, matrix_table(report.matrix, report.model_titles)]
    if report.skipped:
        parts += [SKIPPED_TITLE, skipped_list(report.skipped)]
    return "\n\n".join(parts)


def skipped_list(groups: Sequence[SkippedGroup]) -> str:
    """One line per reason, with the cells it stopped."""
    return "\n".join(f"- **{escape(g.reason)}**: {'; '.join(escape(c) for c in g.cells)}" for g in groups)


def empty_matrix(report: Report) -> str:
    if report.run.results:
        return "No untransformed latency cell in this run: its other cells have sections of their own below."
    return "No cell could be read from results.jsonl."


def matrix_table(matrix: tuple[MatrixRow, ...], model_titles: tuple[str, ...]) -> str:
    headers = ["Variant / mode", *(escape(t) for t in model_titles)]
    rows = [[escape(row.label), *(matrix_cell(c) for c in row.cells)] for row in matrix]
    return table(headers, rows)


def matrix_cell(cell: MatrixCell | None) -> str:
    """One cell: figures and verdict, or the reason it has none; the flags the verdict does not state."""
    if cell is None:
        return "—"
    if cell.gathered:
        return f"**{cell.status}** (the reason is listed below the matrix)"
    figs = cell.view.figures
    if cell.status != "ok":
        lines = [f"**{cell.status}**: {escape(cell.reason)}"]
    elif figs is None:
        lines = ["no timing recorded", verdict_mark(cell)]
    else:
        star = " ★" if cell.fastest else ""
        lines = [
            f"**{fmt.ms(figs.median_ms)}**{star}",
            f"mean {fmt.sig(figs.mean_ms)} (sd {fmt.sig(figs.sd_ms)})",
            f"{fmt.sig(figs.images_per_s)} img/s · "
            + (f"{fmt.sig(figs.gflops)} GFLOP/s" if figs.gflops else "— GFLOP/s"),
            verdict_mark(cell),
        ]
    if cell.above_peak:
        lines.append(f"⚠ **{escape(cell.above_peak)}**")
    if cell.tuning:
        lines.append(f"⚙ {escape(cell.tuning)}")
    lines += [f"⚠ {escape(w)}" for w in cell.warnings]
    return "<br>".join(lines)


def verdict_mark(cell: MatrixCell) -> str:
    """``✓ valid``, ``✗ **INVALID**: reasons`` or ``not judged``."""
    verdict = cell.verdict
    if verdict.state == INVALID:
        return f"✗ **INVALID**: {escape('; '.join(verdict.reasons))}"
    return "✓ valid" if verdict.state == VALID else escape(verdict.state)


# --- per-model study tables ---------------------------------------------------------------------------


STUDY_HEADERS = (
    *("Framework", "Variant / mode", "Valid", "Params", "Latency (ms/img)", "Precision (95% CI)"),
    *("p90 (ms/img)", "p99 (ms/img)", "First inference (ms)", "Peak memory", "Other load", "FPS", "FLOPs/img"),
    *("GFLOP/s", "Share of matmul peak"),
)
ACCURACY_HEADER = "Test accuracy"  # a study of cells that ran trained weights (--weights trained)
STUDY_LEGEND = (
    "Valid: the cell's verdict, or why it is not valid. Precision: the 95% confidence interval of the median, "
    "as ± its larger half over the median. p90, p99: of the timed samples, per image (n/a: too few samples for "
    "it). First inference: the first call, lazy compilation included. Peak memory: the measuring process's peak "
    "RSS. Other load: other processes' CPU use during the timed loop."
)


def _studies(studies: tuple[StudyTable, ...]) -> str:
    if not studies:
        return ""  # no latency cell: the matrix already says so
    parts = ["## Per model", STUDY_LEGEND]
    for study in studies:
        parts.append(f"### {escape(study.title)}")
        parts.append(escape(study.peak_note))
        if study.rows:
            rows = [study_row(r) + ([r.accuracy] if study.accuracy else []) for r in study.rows]
            parts.append(table((*STUDY_HEADERS, ACCURACY_HEADER) if study.accuracy else STUDY_HEADERS, rows))
        else:
            parts.append("No cell of this model has timings.")
    return "\n\n".join(parts)


def study_row(r: StudyRow) -> list[str]:
    share = r.peak_share + (f"<br>⚠ **{escape(r.above_peak)}**" if r.above_peak else "")
    return [escape(r.framework), escape(r.cell), escape(r.verdict.text), r.params, r.latency, r.precision, r.p90,
            r.p99, r.first_inference, r.peak_memory, escape(r.load), r.fps, r.flops, r.gflops, share]  # fmt: skip


# --- latency against memory ---------------------------------------------------------------------------

MEMORY_HEADERS = ("Variant / mode", "Median (ms/img)", "Peak memory", "Valid", "Pareto front")


def _memory(section: MemorySection | None) -> str:
    """Per model, each timed cell's median against its peak memory (the HTML report draws them)."""
    if section is None:
        return ""
    parts = ["## Latency against peak memory", escape(section.intro)]
    for model in section.models:
        parts.append(f"### {escape(model.title)}")
        rows = [[escape(p.label), fmt.sig(p.median_ms), fmt.memory(p.peak_bytes), "yes" if p.valid else "no",
                 "**yes**" if p.front else ""] for p in model.points]  # fmt: skip
        parts.append(table(MEMORY_HEADERS, rows) if rows else "No cell of this model recorded its peak memory.")
        if model.unrecorded:
            parts.append("No peak memory recorded: " + ", ".join(escape(u) for u in model.unrecorded) + ".")
    return "\n\n".join(parts)


# --- comparisons -------------------------------------------------------------------------------------


COMPARISON_HEADERS = (
    "Model",
    "Comparison",
    "Context",
    "Baseline",
    "Candidate",
    "Speedup",
    "95% CI",
    "p",
    "Significant",
)


def comparison_legend() -> str:
    return (
        "Speedup = median time per image of the baseline / that of the candidate (above 1: the candidate is faster). "
        f"{CI_LEVEL:.0%} percentile-bootstrap interval ({RESAMPLES} resamples); p from a two-sided Mann-Whitney U "
        f'test; significant when p < {ALPHA} and the interval excludes 1. "invalid baseline" (or candidate): that '
        "side's validity verdict is INVALID, so the ratio is not a finding."
    )


def comparison_row(c: Comparison) -> list[str]:
    s = c.speedup
    return [
        escape(model_title(c.model)),
        escape(c.title),
        escape(c.context),
        escape(c.baseline_label),
        escape(c.candidate_label),
        fmt.ratio(s.ratio),
        fmt.interval(s.ci_low, s.ci_high),
        fmt.p_value(s.p_value),
        c.significance,
    ]


def _comparisons(report: Report) -> str:
    if not report.groups:
        return "## Comparisons\n\nNo pair of cells in this run differs in exactly one respect."
    parts = ["## Comparisons", comparison_legend()]
    for group in report.groups:
        parts.append(f"### {escape(group.title)}")
        parts.append(table(COMPARISON_HEADERS, [comparison_row(c) for c in group.comparisons]))
    return "\n\n".join(parts)


# --- the answered comparison's published figures -----------------------------------------------------


def _published(section: PublishedSection | None) -> str:
    """Their published means beside our medians, then the build-variant ratios side by side
    (``reports/published.py`` computes both; the figures are data in reports/data/published.toml)."""
    if section is None:
        return ""
    parts = [f"## {escape(section.title)}", escape(section.intro), "\n".join(f"- {escape(s)}" for s in section.sources)]
    headers = ["Source", "As published", *(f"{t} (published, mean)" for t in section.model_titles),
               "Ours: variant / mode", *(f"{t} (ours, median)" for t in section.model_titles)]  # fmt: skip
    parts.append(table(headers, [published_row(r) for r in section.rows]))
    parts += ["### Build-variant ratios, published and here", escape(section.legend)]
    ratio_rows = []
    for ratio in section.ratios:
        for source, values in ratio.published:
            ratio_rows.append([escape(ratio.title), escape(f"published ({source})"), *map(escape, values)])
        ratio_rows.append([escape(ratio.title), "ours (this machine)", *map(escape, ratio.ours)])
    parts.append(table(["Ratio", "From", *section.model_titles], ratio_rows))
    return "\n\n".join(parts)


def published_row(row: PublishedRow) -> list[str]:
    label = escape(row.label) + "".join(f"<br>⚠ {escape(f)}" for f in row.flags)
    return [escape(row.source), label, *map(escape, row.theirs), escape(row.ours_label), *map(escape, row.ours)]


# --- sweeps ------------------------------------------------------------------------------------------


def _sweep(section: SweepSection) -> str:
    """A sweep scenario: its intro, then per model a table of one row per variant / mode, one column per x."""
    spec = section.spec
    parts = [f"## {escape(spec.title)}", escape(spec.intro), escape(section.legend)]
    for model in section.models:
        parts.append(f"### {escape(model.title)}")
        headers = ["Variant / mode", *(escape(h) for h in model.headers)]
        parts.append(table(headers, [sweep_row(row) for row in model.rows]))
    return "\n\n".join(parts)


def sweep_row(row: SweepRow) -> list[str]:
    label = escape(row.label) + (f"<br>**{escape(row.note)}**" if row.note else "")
    return [label, *(sweep_cell(c) for c in row.cells)]


def sweep_cell(cell: SweepCell | None) -> str:
    """A point: its figure in bold with how it was measured, or ``failed: <reason>``; flags always shown."""
    if cell is None:
        return "—"
    lines = [f"**{escape(cell.value)}**", *(escape(d) for d in cell.details)] if cell.ok else [escape(cell.reason)]
    lines += [f"⚠ {escape(f)}" for f in cell.flags]
    return "<br>".join(lines)


# --- environment ---------------------------------------------------------------------------------------


def facts_table(facts: Iterable[Fact]) -> str:
    return table(("", ""), [[escape(f.label), escape(f.value)] for f in facts])


def code_block(text: str) -> str:
    """A fenced block longer than any run of backticks inside it, so nothing can close it early."""
    text = fmt.visible(text)
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}bash\n{text}\n{fence}"


VARIANT_HEADERS = (
    *("Variant", "Framework", "Device", "Image", "CPUs (cpuset)"),
    *("Memory", "GPU", "In effect", "Build facts"),
)


def _environment(report: Report) -> str:
    parts = ["## Environment", "### Run", facts_table(report.run_facts)]
    parts += ["### Command to reproduce", code_block(report.command) if report.command else "Not recorded."]
    host = (
        "Orchestrating machine (where the runner ran; the cells ran on the machines above)"
        if report.several
        else "Host"
    )
    parts += [f"### {host}", facts_table(report.host_facts)]
    if report.settings:
        parts += ["### Settings", facts_table(report.settings)]
    if report.variants:
        rows = [
            [
                escape(v.name),
                escape(v.framework),
                escape(v.device),
                escape(v.image_id),
                escape(v.cpus),
                escape(v.memory),
                escape(v.gpu),
                escape(v.in_effect),
                "<br>".join(f"{escape(f.label)}={escape(f.value)}" for f in v.build) or "—",
            ]
            for v in report.variants
        ]
        parts += ["### Variants", table(VARIANT_HEADERS, rows)]
    return "\n\n".join(parts)


def _notes(notes: tuple[str, ...], problems: tuple[LoadProblem, ...]) -> str:
    parts = []
    if notes:
        parts += ["## Notes", "\n".join(f"- {escape(n)}" for n in notes)]
    if problems:
        parts += ["## Skipped or superseded lines", "\n".join(f"- {escape(str(p))}" for p in problems)]
    return "\n\n".join(parts)


# --- a run on several machines -------------------------------------------------------------------------


MACHINES_INTRO = (
    "Timings of different machines are never put in one table: each machine has its own matrix below, and "
    "its full report (per-model tables, comparisons, sweeps, variants) beside its files in hosts/NAME/. "
    "A machine is known by its fingerprint (of its CPU's vendor, family, model, stepping, model name, the "
    "instruction-set extensions kernels dispatch on, caches, cores and threads, and whether it runs under a "
    "hypervisor), not by its CPU model string, which a hypervisor may make the same for different hardware. "
    "Rows marked ≠ differ between the machines."
)


def render_several(report: Report) -> str:
    """A several-machine run: the machines side by side, a matrix each, the cells they share compared."""
    parts = [
        f"# {escape(report.title)}",
        _summary(report),
        _machines(report),
        _machine_matrices(report),
        _across(report),
        _environment(report),
        _notes(report.notes, report.problems),
    ]
    return "\n\n".join(p for p in parts if p) + "\n"


def link(text: str, href: str) -> str:
    """A Markdown link to one of our own files (``href`` is already a percent-encoded relative path)."""
    return f"[{escape(text)}]({href})"


def _machines(report: Report) -> str:
    headers = ["", *(escape(v.name) for v in report.machines)]
    rows = [
        [escape(r.label) + (" ≠" if r.differs else ""), *(escape(v) for v in r.values)] for r in report.machine_rows
    ]
    reports = [link("report.md", f"{v.href}report.md") if v.written else "not written" for v in report.machines]
    rows.append(["Full report", *reports])
    return "\n\n".join(["## Machines", MACHINES_INTRO, table(headers, rows)])


def _machine_matrices(report: Report) -> str:
    parts = ["## Matrix of each machine", MATRIX_LEGEND]
    for view in report.machines:
        machine = view.identity
        print_ = machine.fingerprint or "no fingerprint"
        parts.append(f"### {escape(view.name)}")
        parts.append(f"{escape(machine.cpu_model)} · fingerprint {escape(print_)}")
        sub = view.report
        parts.append(matrix_table(sub.matrix, sub.model_titles) if sub.matrix else empty_matrix(sub))
        if sub.skipped:
            parts += [f"Cells of {escape(view.name)} that did not run, by reason:", skipped_list(sub.skipped)]
    return "\n\n".join(parts)


ACROSS_HEADERS = (
    "Model",
    "Variant / mode",
    "Baseline machine",
    "Baseline (ms/img)",
    "Machine",
    "Median (ms/img)",
    "Speedup",
    "95% CI",
    "p",
    "Significant",
)


def across_legend(first: str) -> str:
    return (
        "The same latency cell (variant, mode, model, launcher, device and scenario identity) on each machine, "
        f"against a baseline machine: the first, {first}, or for a cell it has no timings of, the first machine "
        "that has. Speedup = median time per image on the baseline machine / that on this machine (above 1: this "
        "machine is faster). "
        f"{CI_LEVEL:.0%} percentile-bootstrap interval ({RESAMPLES} resamples); p from a two-sided Mann-Whitney U "
        f"test; significant when p < {ALPHA} and the interval excludes 1."
    )


def _across(report: Report) -> str:
    parts = ["## Across machines"]
    if report.across:
        parts.append(escape(across_legend(report.first_machine)))
        parts.append(table(ACROSS_HEADERS, [across_row(c) for c in report.across]))
    else:
        parts.append("No latency cell was measured on two machines.")
    if report.across_gaps:
        parts += ["### Not compared on every machine", "\n".join(f"- {escape(g)}" for g in report.across_gaps)]
    return "\n\n".join(parts)


def median_text(result: Result) -> str:
    """A cell's median in ms per image, from its samples ("—" without timings)."""
    figs = figures(result)
    return fmt.sig(figs.median_ms) if figs is not None else "—"


def across_row(c: Comparison) -> list[str]:
    s = c.speedup
    return [
        escape(model_title(c.model)),
        escape(c.context),
        escape(c.baseline_label),
        median_text(c.baseline),
        escape(c.candidate_label),
        median_text(c.candidate),
        fmt.ratio(s.ratio),
        fmt.interval(s.ci_low, s.ci_high),
        fmt.p_value(s.p_value),
        "yes" if s.significant else "no",
    ]


# --- training -------------------------------------------------------------------------------------------

TRAINING_HEADERS = (
    *("Framework", "Version", "Variant / mode", "First epoch", "Epoch time", "Images/s"),
    *("Test accuracy", "Peak memory", "Fidelity", "Time vs PyTorch eager", "95% CI"),
)


def _training(section: TrainingSection | None) -> str:
    """The train scenario: per model the table, the test accuracy after each epoch, and how far the
    cells' losses are apart (the curves themselves are the HTML report's charts)."""
    if section is None:
        return ""
    parts = ["## Training", escape(section.intro), escape(section.legend)]
    for model in section.models:
        parts += [f"### {escape(model.title)}", f"Relative times against: {escape(model.baseline)}."]
        parts.append(table(TRAINING_HEADERS, [training_row(r) for r in model.rows]))
        if model.accuracy_rows:
            headers = ["Variant / mode", *(f"epoch {n}" for n in model.epochs)]
            rows = [[escape(label), *values] for label, values in model.accuracy_rows]
            parts += ["Test accuracy after each epoch:", table(headers, rows)]
        if model.agreement:
            lines = [f"- {escape(a.what)}: {escape(a.spread)} ({escape(a.between)})" for a in model.agreement]
            parts += ["Largest relative difference of the training loss between cells:", "\n".join(lines)]
        if model.notes:
            parts.append("\n".join(f"- ⚠ {escape(n)}" for n in model.notes))
    return "\n\n".join(parts)


def training_row(row: TrainingRow) -> list[str]:
    label = escape(row.label) + "".join(f"<br>⚠ {escape(f)}" for f in row.flags)
    head = [escape(row.framework), escape(row.version), label]
    if not row.ok:
        return [*head, f"**{escape(row.reason)}**", *(["—"] * (len(TRAINING_HEADERS) - 4))]
    return [*head, row.first_epoch, row.epoch_time, row.images_per_s, row.accuracy, row.peak_memory, row.fidelity,
            row.relative, row.interval]  # fmt: skip


# --- pruning --------------------------------------------------------------------------------------------

SIZE_HEADERS = ("Sparsity", "Counted sparsity", "Weights (bytes)", "gzip -9 (bytes)", "gzip vs dense", "sha256",
                "Cells", "How made")  # fmt: skip
PRUNED_LATENCY_HEADERS = ("Variant / mode", "Sparsity", "Median (ms/img)", "CI of the median", "Sparse kernels")
SPEEDUP_HEADERS = ("Variant / mode", "Sparsity", "Baseline", "Baseline (ms/img)", "Median (ms/img)", "Speedup",
                   "95% CI", "p", "Significant")  # fmt: skip
FEATURE_HEADER = ("Machine fingerprint", "CPU")


def _pruning(section: PruningSection | None) -> str:
    """The prune transform's cells: per model the weights' sizes, accuracy and latency against sparsity and
    the speedups (the curves themselves are the HTML report's charts); then the machines' CPU features."""
    if section is None:
        return ""
    parts = ["## Pruning", escape(section.intro), escape(section.legend)]
    for model in section.models:
        parts += [f"### {escape(model.title)}", f"Pruned from the {escape(model.source)} weights."]
        parts += _pruned_model(model)
    parts += ["### CPU features that decide sparse and int8 speed"]
    headers = [*FEATURE_HEADER, *(escape(f) for f in section.features)]
    parts.append(table(headers, [[escape(m.machine), escape(m.cpu), *map(escape, m.values)] for m in section.machines]))
    return "\n\n".join(parts)


def _pruned_model(model: PruningModel) -> list[str]:
    parts = ["Weights at each sparsity:"]
    rows = [[escape(r.target), escape(r.counted), r.raw, r.gzip, r.share, escape(r.sha), str(r.cells), escape(r.made)]
            for r in model.sizes]  # fmt: skip
    parts.append(table(SIZE_HEADERS, rows) if rows else "No cell recorded its weights.")
    if model.accuracy:
        headers = ["Variant / mode", *(f"sparsity {escape(t)}" for t in model.targets)]
        rows = [[escape(r.label), *r.values] for r in model.accuracy]
        parts += ["Test accuracy at each sparsity:", table(headers, rows)]
    else:
        parts.append(escape(model.accuracy_note) + ".")
    latency = [pruned_latency_row(r) for r in model.latency]
    parts += ["Latency at each sparsity:", table(PRUNED_LATENCY_HEADERS, latency)]
    for title, speedups in (
        ("Pruned against unpruned weights (sparsity 0), the same variant and mode:", model.vs_unpruned),
        ("Sparse kernels against the framework's dense mode, the same weights:", model.vs_dense),
    ):
        if speedups:
            parts += [title, table(SPEEDUP_HEADERS, [speedup_row(r) for r in speedups])]
    if model.notes:
        parts.append("\n".join(f"- ⚠ {escape(n)}" for n in model.notes))
    return parts


def pruned_latency_row(row: LatencyRow) -> list[str]:
    label = escape(row.label) + "".join(f"<br>⚠ {escape(f)}" for f in row.flags)
    kernels = escape(row.kernels)
    if not row.ok:
        return [label, escape(row.target), f"**{escape(row.reason)}**", "—", kernels]
    return [label, escape(row.target), f"**{row.median}**", row.interval, kernels]


def speedup_row(row: SpeedupRow) -> list[str]:
    return [escape(row.label), escape(row.target), escape(row.baseline), row.baseline_ms, row.candidate_ms,
            row.ratio, row.interval, row.p_value, "yes" if row.significant else "no"]  # fmt: skip


# --- int8 -----------------------------------------------------------------------------------------------

INT8_HEADERS = ("Variant / mode", "Model", "Toolchain", "Calibrator", "Calibration", "int8 (ms/img)",
                "CI of the median", "float32 (ms/img)", "Speedup", "95% CI", "p", "Verdict", "Int8 kernels",
                "Model (bytes)", "float32 model (bytes)", "int8 / float32 size")  # fmt: skip
INT8_TITLE = "## Int8 quantization"


def _int8(section: Int8Section | None) -> str:
    """The int8 transform's cells: the CPU's int8 features first (they decide the speedups), the speedups over
    float32 with the slower cells marked, accuracy against calibration size (the curves themselves are the HTML
    report's charts), and the cells that did not run. Nothing without int8 cells: the page stays as it was."""
    if section is None:
        return ""
    parts = [INT8_TITLE, escape(section.intro), escape(section.legend)]
    features = [f"**CPU int8 features:** {escape(m.text)}" for m in section.machines]
    parts.append("  \n".join(features) or "**CPU int8 features:** not recorded (no cell has an environment).")
    parts.append("### Int8 against float32")
    parts.append(table(INT8_HEADERS, [int8_row(r) for r in section.rows]) if section.rows else "No int8 cell ran.")
    if section.any_slower:
        parts.append(f"⚠ **{sum(r.slower for r in section.rows)} int8 cell(s) {escape(SLOWER_TEXT)}** (marked above).")
    if section.made:
        made = "\n".join(f"- {escape(who)}: {escape(how)}" for who, how in section.made)
        parts += ["How each int8 model was made:", made]
    if section.models or section.accuracy_note:
        parts.append("### Test accuracy against calibration size")
    for model in section.models:
        parts += _int8_model(model)
    if section.accuracy_note:
        parts.append(escape(section.accuracy_note) + ".")
    if section.skipped:
        lines = [f"- **{escape(g.reason)}**: {'; '.join(escape(c) for c in g.cells)}" for g in section.skipped]
        parts += ["### Int8 cells that did not run", "\n".join(lines)]
    if section.notes:
        parts.append("\n".join(f"- ⚠ {escape(n)}" for n in section.notes))
    return "\n\n".join(parts)


SLOWER_TEXT = "slower than float32: the speedup and its whole interval below 1"


def int8_row(row: Int8Row) -> list[str]:
    label = escape(row.label) + "".join(f"<br>⚠ {escape(f)}" for f in row.flags)
    verdict = f"**⚠ {escape(row.verdict).upper()}**" if row.slower else escape(row.verdict)
    ratio = f"**{row.ratio}**" if row.slower else row.ratio
    return [label, escape(row.model), escape(row.toolchain), escape(row.calibrator), escape(row.calibration),
            f"**{row.int8_ms}**", row.int8_interval, row.float_ms, ratio, row.interval, row.p_value, verdict,
            escape(row.kernels), row.size, escape(row.float_size), row.size_share]  # fmt: skip


def _int8_model(model: Int8Model) -> list[str]:
    headers = ["Variant / mode · toolchain · calibrator", *(f"{escape(s)} images" for s in model.sizes), "float32"]
    rows = [[escape(r.label), *r.values, r.reference] for r in model.rows]
    return [f"{escape(model.title)}, test accuracy by calibration size (float32: the same variant and mode "
            "unquantized):", table(headers, rows)]  # fmt: skip
