"""The Markdown report (tables by tabulate), fit for a README or a GitHub page.

Every string from a result file goes through ``escape``: an error message may hold ``|`` (which
would split a table cell), newlines, or HTML that GitHub would otherwise interpret.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from tabulate import tabulate

from . import fmt
from .cells import model_title
from .compare import ALPHA, CI_LEVEL, RESAMPLES, Comparison
from .content import Fact, MatrixCell, Report, StudyTable, SweepCell, SweepRow, SweepSection
from .load import LoadProblem

_SPECIAL = re.compile(r"([\\`*\[\]|])")
NOTICE = "Generated from results.jsonl and run.json by `reports`; do not edit by hand."


def escape(text: str) -> str:
    """Inline-safe Markdown: HTML entities, Markdown punctuation escaped, one line."""
    text = " ".join(str(text).split())
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _SPECIAL.sub(r"\\\1", text)


def table(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """A GitHub pipe table; cells are already escaped strings (no number parsing, no realignment)."""
    return tabulate(list(rows), headers=list(headers), tablefmt="github", disable_numparse=True)


def render_markdown(report: Report) -> str:
    """The whole report as one Markdown document (deterministic: no time of rendering in it)."""
    parts = [
        f"# {escape(report.title)}",
        _summary(report),
        _matrix(report),
        _studies(report.studies),
        _comparisons(report),
        *(_sweep(section) for section in report.sweeps),
        _environment(report),
        _notes(report.notes, report.problems),
    ]
    return "\n\n".join(p for p in parts if p) + "\n"


def _summary(report: Report) -> str:
    counts = ", ".join(f"{f.value} {f.label}" for f in report.counts)
    lines = [f"**Machine:** {escape(report.subtitle)}  ", f"**Cells:** {counts}  "]
    if report.scenario_counts:
        by_scenario = "; ".join(f"{escape(f.label)}: {escape(f.value)}" for f in report.scenario_counts)
        lines.append(f"**Scenarios:** {by_scenario}  ")
    return "\n".join([*lines, NOTICE])


# --- matrix ----------------------------------------------------------------------------------------


def _matrix(report: Report) -> str:
    if not report.matrix:
        if report.run.results:
            return "## Matrix\n\nNo latency cell in this run: its other scenarios have sections of their own below."
        return "## Matrix\n\nNo cell could be read from results.jsonl."
    legend = (
        "Median latency per image; below it the mean (sd) of the samples in ms, images/s and GFLOP/s. "
        "★ marks the fastest verified cell for the model on its device; ⚠ flags a cell whose output did not "
        "match the reference or whose timing is unstable, with the warning's text."
    )
    headers = ["Variant / mode", *(escape(t) for t in report.model_titles)]
    rows = [[escape(row.label), *(matrix_cell(c) for c in row.cells)] for row in report.matrix]
    return f"## Matrix\n\n{legend}\n\n{table(headers, rows)}"


def matrix_cell(cell: MatrixCell | None) -> str:
    """One cell: figures, or the reason it has none; warnings always shown."""
    if cell is None:
        return "—"
    figs = cell.view.figures
    if cell.status != "ok" or figs is None:
        lines = [f"**{cell.status}**: {escape(cell.reason)}"]
    else:
        star = " ★" if cell.fastest else ""
        lines = [
            f"**{fmt.ms(figs.median_ms)}**{star}",
            f"mean {fmt.sig(figs.mean_ms)} (sd {fmt.sig(figs.sd_ms)})",
            f"{fmt.sig(figs.images_per_s)} img/s · "
            + (f"{fmt.sig(figs.gflops)} GFLOP/s" if figs.gflops else "— GFLOP/s"),
        ]
    lines += [f"⚠ {escape(w)}" for w in cell.warnings]
    return "<br>".join(lines)


# --- per-model study tables ---------------------------------------------------------------------------


STUDY_HEADERS = (
    "Framework",
    "Variant / mode",
    "Params",
    "Latency (ms/img)",
    "FPS",
    "FLOPs/img",
    "GFLOP/s",
    "Share of matmul peak",
)


def _studies(studies: tuple[StudyTable, ...]) -> str:
    if not studies:
        return ""  # no latency cell: the matrix already says so
    parts = ["## Per model"]
    for study in studies:
        parts.append(f"### {escape(study.title)}")
        parts.append(escape(study.peak_note))
        if study.rows:
            rows = [
                [escape(r.framework), escape(r.cell), r.params, r.latency, r.fps, r.flops, r.gflops, r.peak_share]
                for r in study.rows
            ]
            parts.append(table(STUDY_HEADERS, rows))
        else:
            parts.append("No cell of this model has timings.")
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
        f"test; significant when p < {ALPHA} and the interval excludes 1."
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
        "yes" if s.significant else "no",
    ]


def _comparisons(report: Report) -> str:
    if not report.groups:
        return "## Comparisons\n\nNo pair of cells in this run differs in exactly one respect."
    parts = ["## Comparisons", comparison_legend()]
    for group in report.groups:
        parts.append(f"### {escape(group.title)}")
        parts.append(table(COMPARISON_HEADERS, [comparison_row(c) for c in group.comparisons]))
    return "\n\n".join(parts)


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
    parts += ["### Host", facts_table(report.host_facts)]
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
