"""``render_run``: a run directory in, report.md and report.html out. Nothing is measured here."""

from __future__ import annotations

from pathlib import Path

from .content import Report, build_report
from .html import render_html, report_charts
from .load import HOSTS_DIR, Run, load_run
from .markdown import render_markdown

MARKDOWN_NAME = "report.md"
HTML_NAME = "report.html"


def render_run(run_dir: Path, out_dir: Path | None = None, *, log_scale: bool | None = None) -> list[Path]:
    """Write report.md and report.html for one run into ``out_dir`` (default: the run directory).

    A pure function of RUN_DIR/results.jsonl and RUN_DIR/run.json: damaged lines are listed on the
    page, never fatal. ``log_scale`` forces the latency charts' axis (None: log when the values span
    more than 30x). Returns the paths written, Markdown first.
    """
    run = load_run(Path(run_dir))
    return write_reports(run, [(Path(out_dir) if out_dir is not None else run.run_dir, None)], log_scale=log_scale)


def write_reports(run: Run, targets: list[tuple[Path, str | None]], *, log_scale: bool | None = None) -> list[Path]:
    """Both files into each (directory, link home) target, computing and drawing only once.

    The site needs one run in two places (its own page and ``latest/``) at different depths. A run
    on several machines also gets each machine's full report in ``hosts/NAME/`` of each target (in
    the run directory: beside that machine's own files).
    """
    return write_report(build_report(run), targets, log_scale)


def write_report(report: Report, targets: list[tuple[Path, str | None]], log_scale: bool | None) -> list[Path]:
    markdown = render_markdown(report)
    drawn = report_charts(report, log_scale)
    written: list[Path] = []
    for out_dir, home_href in targets:
        out_dir.mkdir(parents=True, exist_ok=True)
        markdown_path, html_path = out_dir / MARKDOWN_NAME, out_dir / HTML_NAME
        markdown_path.write_text(markdown, encoding="utf-8")
        html_path.write_text(render_html(report, drawn, home_href=home_href), encoding="utf-8")
        written += [markdown_path, html_path]
    for view in report.machines:
        if view.written:
            inner = [(out_dir / HOSTS_DIR / view.dir_name, _deeper(home)) for out_dir, home in targets]
            written += write_report(view.report, inner, log_scale)
    return written


def _deeper(home_href: str | None) -> str | None:
    """The link home from two directories further down (``hosts/NAME/``)."""
    return f"../../{home_href}" if home_href is not None else None
