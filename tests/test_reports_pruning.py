"""The pruning section of the reports: golden Markdown for the pruning fixture, its figures against the
fixture's own records, transformed cells kept out of the matrix, hostile strings, and the HTML (the
fixture is test data, never measurements).

Refresh the golden file after an intended change (then read the diff):

    python tests/fixtures/make_pruning_fixtures.py
    UPDATE_GOLDEN=1 python -m pytest tests/test_reports_pruning.py
"""

from __future__ import annotations

import difflib
import os
import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from frameworks.result import Result
from reports import render_run
from reports.cells import per_image_samples
from reports.content import build_report
from reports.load import Run, load_run
from reports.markdown import escape, render_markdown
from reports.pruning import NOT_APPLICABLE, PruningModel, PruningSection, pruning_section
from reports.publish import MachineRun, SiteMachine, build_machine
from tests.fixtures.make_pruning_fixtures import SKIPPED, hostile_pruning_run
from tests.fixtures.make_report_fixtures import HOSTILE
from tests.test_reports_html import Page, _dom_text, _screenshot, assert_inert
from tests.test_reports_markdown import _tables

FIXTURES = Path(__file__).parent / "fixtures" / "reports"
RUN = FIXTURES / "runs" / "fixture-p1"
GOLDEN = FIXTURES / "golden" / "fixture-p1.md"
NO_PRUNING = FIXTURES / "runs" / "fixture-a2"


@pytest.fixture(scope="module")
def run() -> Run:
    return load_run(RUN)


@pytest.fixture(scope="module")
def section(run: Run) -> PruningSection:
    found = pruning_section(sorted(run.results, key=lambda r: r.cell), show_launcher=False)
    assert found is not None
    return found


def _model(section: PruningSection, model: str) -> PruningModel:
    return next(m for m in section.models if m.model == model)


def _cell(run: Run, model: str, variant: str, mode: str, sparsity: str) -> Result:
    return next(
        r
        for r in run.results
        if (r.model, r.variant, r.mode) == (model, variant, mode)
        and r.transform is not None
        and r.transform.config.get("sparsity") == sparsity
    )


def _markdown(run_dir: Path) -> str:
    return render_markdown(build_report(load_run(run_dir)))


def _pruning_part(markdown: str) -> str:
    return markdown[markdown.index("## Pruning") : markdown.index("## Environment")]


def test_golden_pruning_markdown() -> None:
    text = _markdown(RUN)
    if os.environ.get("UPDATE_GOLDEN"):
        GOLDEN.write_text(text, encoding="utf-8")
    expected = GOLDEN.read_text(encoding="utf-8")
    if text != expected:
        diff = difflib.unified_diff(expected.splitlines(), text.splitlines(), "golden", "rendered", lineterm="", n=1)
        shown = "\n".join(list(diff)[:60])
        pytest.fail(f"report.md differs from the golden file (UPDATE_GOLDEN=1 to accept):\n{shown}")


def test_the_section_answers_the_issue() -> None:
    part = _pruning_part(GOLDEN.read_text(encoding="utf-8"))
    for needle in (
        "### LeNet-5",
        "### VGG-16",
        "Test accuracy at each sparsity:",
        "| sparsity 0.9 ",
        f"{NOT_APPLICABLE}.",
        "| gzip vs dense ",
        "| sha256 ",
        "Pruned against unpruned weights (sparsity 0), the same variant and mode:",
        "Sparse kernels against the framework's dense mode, the same weights:",
        "3 of 3 dense layers on CSR weights (fc1 10.0% nonzero, ",  # the sparse_kernels fact, verbatim
        f"**skipped: {escape(SKIPPED)}**",
        "### CPU features that decide sparse and int8 speed",
        "| avx512_vnni ",
        "| amx_tile ",
    ):
        assert needle in part, needle


def test_sizes_are_the_fixture_weights(run: Run, section: PruningSection) -> None:
    lenet = _model(section, "lenet5")
    assert [r.target for r in lenet.sizes] == ["0", "0.5", "0.9"]  # one row per sparsity: the same weights
    dense = _cell(run, "lenet5", "cpu-torch", "eager", "0").transform
    pruned = _cell(run, "lenet5", "cpu-numpy-openblas", "im2col", "0.9").transform
    assert dense is not None and pruned is not None
    row = lenet.sizes[2]
    assert row.share == f"{100 * pruned.weights_gzip_bytes / dense.weights_gzip_bytes:.1f}%"  # type: ignore[operator]
    assert row.gzip == f"{pruned.weights_gzip_bytes:,}" and row.raw == f"{pruned.weights_bytes:,}"
    assert row.sha == pruned.weights_sha256[:12] and row.cells == 4
    assert lenet.sizes[0].share == "100.0%"
    assert _model(section, "vgg16").accuracy_note == NOT_APPLICABLE and not _model(section, "vgg16").accuracy


def test_speedups_are_the_fixture_samples(run: Run, section: PruningSection) -> None:
    lenet = _model(section, "lenet5")
    sparse = {r.target: r for r in lenet.vs_dense}
    assert set(sparse) == {"0", "0.5", "0.9"} and all(r.baseline == "cpu-torch / eager" for r in sparse.values())
    eager = per_image_samples(_cell(run, "lenet5", "cpu-torch", "eager", "0.9"))
    csr = per_image_samples(_cell(run, "lenet5", "cpu-torch", "sparse", "0.9"))
    assert sparse["0.9"].speedup.ratio == pytest.approx(float(np.median(eager) / np.median(csr)))
    assert sparse["0.9"].speedup.ratio > 1 and sparse["0.9"].speedup.ci_low > 1 and sparse["0.9"].significant
    assert sparse["0"].speedup.ratio < 1 and sparse["0"].speedup.ci_high < 1  # CSR on dense weights: slower
    unpruned = {(r.label, r.target): r for r in lenet.vs_unpruned}
    assert ("cpu-torch / eager", "0.9") in unpruned and ("cpu-torch / sparse", "0.9") in unpruned
    assert all(r.baseline == "sparsity 0" for r in lenet.vs_unpruned)
    assert unpruned[("cpu-torch / sparse", "0.9")].speedup.ratio > 1
    dense_kernels = [r.speedup for r in lenet.vs_unpruned if r.label != "cpu-torch / sparse"]
    assert all(s.ci_low < 1.02 and s.ci_high > 0.98 for s in dense_kernels)  # zeros buy a dense kernel nothing


def test_accuracy_and_curves_come_from_the_cells(run: Run, section: PruningSection) -> None:
    lenet = _model(section, "lenet5")
    rows = {r.label: r.values for r in lenet.accuracy}
    cell = _cell(run, "lenet5", "cpu-onnxruntime", "session", "0.9")
    assert rows["cpu-onnxruntime / session"][2] == f"{100 * cell.accuracy:.2f}%"  # type: ignore[operator]
    line = next(ln for ln in lenet.latency_lines if ln.label == "cpu-torch / sparse")
    assert line.xs == tuple(_cell(run, "lenet5", "cpu-torch", "sparse", t).transform.sparsity  # type: ignore[union-attr]
                            for t in ("0", "0.5", "0.9"))  # fmt: skip
    assert line.ys[2] < line.ys[0]
    vgg = _model(section, "vgg16")
    skipped = next(r for r in vgg.latency if not r.ok)
    assert skipped.reason == f"skipped: {SKIPPED}" and skipped.median == "—" and skipped.interval == "—"
    assert all(ln.label != "cpu-torch / sparse" for ln in vgg.latency_lines)  # a skipped cell draws no point
    assert [m.values for m in section.machines] == [("present",) * 3 + ("absent",) * 4]  # once: one machine


def test_transformed_cells_stay_out_of_the_matrix(run: Run) -> None:
    report = build_report(run)
    assert all(v.result.transform is None for v in report.cells)
    plain = [r for r in run.results if r.transform is None and r.scenario == "latency"]
    assert len(report.cells) == len(plain) == 6
    assert [row.label for row in report.matrix] == sorted({f"{r.variant} / {r.mode}" for r in plain})
    assert all(len(study.rows) == 3 for study in report.studies)
    markdown = render_markdown(report)
    main = markdown[: markdown.index("## Comparisons")]
    assert "sparse" not in main and "prune" not in main


def test_the_history_keeps_to_the_model_as_specified(run: Run) -> None:
    """A machine's history pages chart the matrix's cells only: a pruned cell would repeat a row's title."""
    one = MachineRun(None, run)  # type: ignore[arg-type]  # no site: the history needs the run alone
    machine = build_machine(SiteMachine("k", "fixture", ("fixture",), "cpu", None, "s", (one,)))
    assert [m.model for m in machine.models] == ["lenet5", "vgg16"]
    for model in machine.models:
        assert model.chart.count("cpu-torch / eager") == 1 and "sparse" not in model.chart


def test_no_section_without_pruned_cells(run: Run) -> None:
    assert build_report(load_run(NO_PRUNING)).pruning is None
    plain = replace(run, results=tuple(r for r in run.results if r.transform is None))
    report = build_report(plain)
    assert report.pruning is None and "## Pruning" not in render_markdown(report)


def test_different_weights_at_one_sparsity_are_noted(run: Run) -> None:
    odd = _cell(run, "lenet5", "cpu-onnxruntime", "session", "0.5")
    changed = replace(odd, transform=replace(odd.transform, weights_sha256="0dd" * 21 + "0"))  # type: ignore[type-var]
    cells = [changed if r is odd else r for r in run.results]
    found = pruning_section(cells, show_launcher=False)
    assert found is not None
    lenet = _model(found, "lenet5")
    assert [r.target for r in lenet.sizes] == ["0", "0.5", "0.5", "0.9"]
    note = next(n for n in lenet.notes if "ran different weights" in n)
    assert "sparsity 0.5" in note and "0dd0dd0dd0dd…: cpu-onnxruntime / session" in note


def test_hostile_strings_in_a_pruning_run(tmp_path: Path) -> None:
    run_dir = hostile_pruning_run(tmp_path / "run")
    part = _pruning_part(_markdown(run_dir))
    assert "<script" not in part.lower() and "&lt;script&gt;" in part
    assert escape(HOSTILE) in part and f"**skipped: {escape(HOSTILE)}**" in part
    tables = _tables(part)
    assert len(tables) >= 7  # sizes, accuracy, latency, speedups and the machines (hostile modes pair fewer)
    for block in tables:  # no cell split by a '|' from the data
        assert len({len(re.findall(r"(?<!\\)\|", line)) for line in block}) == 1, block[0][:200]
    html = render_run(run_dir, tmp_path / "out")[1].read_text(encoding="utf-8")
    page = Page(html)
    assert_inert(page)
    one_line = " ".join(HOSTILE.split())
    assert f"⚠ {one_line}" in page.joined_text and f"skipped: {one_line}" in page.joined_text
    assert '<script>alert("pwned")</script>' in page.joined_text  # shown as text, in the charts' legends too


def test_html_has_the_section_and_stays_inert(tmp_path: Path) -> None:
    html = render_run(RUN, tmp_path)[1].read_text(encoding="utf-8")
    page = Page(html)
    assert_inert(page)
    ids = [value for _, name, value in page.attrs if name == "id"]
    assert len(ids) == len(set(ids))
    assert '<a href="#pruning">Pruning</a>' in html
    start = html.index('<section id="pruning">')
    part = html[start : html.index("</section>", start)]
    assert part.count("<svg") == 3  # LeNet-5: accuracy and latency; VGG-16: latency (no accuracy)
    assert "test accuracy (%)" in part and "median latency (ms/img)" in part
    section = Page(part).joined_text
    assert f"skipped: {SKIPPED}" in section and "accuracy: not applicable (canonical weights, not trained)." in section
    assert "addmm(sparse_csr)" in section and "present" in section and "absent" in section


@pytest.mark.slow
def test_chromium_renders_the_pruning_section(chromium: str, tmp_path: Path) -> None:
    """The pruned cells alone, so the section (tables and charts) is what the screenshot shows."""
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "run.json").write_text((RUN / "run.json").read_text())
    lines = [line for line in (RUN / "results.jsonl").read_text().splitlines() if '"transform":{' in line]
    (run_dir / "results.jsonl").write_text("\n".join(lines) + "\n")
    html = render_run(run_dir)[1]
    _screenshot(chromium, tmp_path / "profile", html, tmp_path / "pruning.png")
    text = _dom_text(chromium, tmp_path / "profile", html).joined_text
    for needle in (
        "Pruning",
        "Weights at each sparsity:",
        "Test accuracy at sparsity 0.9",
        "cpu-torch / sparse",
        f"skipped: {SKIPPED}",
        "median latency (ms/img)",  # the latency chart's axis, inside its SVG
        "amx_tile",
    ):
        assert needle in text, needle
