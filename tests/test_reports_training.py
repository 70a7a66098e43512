"""The training section of the reports: golden Markdown for the training fixture, the HTML's charts,
hostile strings, and a headless Chromium rendering (the fixture is test data, never measurements).

Refresh the golden file after an intended change (then read the diff):

    python tests/fixtures/make_training_fixtures.py
    UPDATE_GOLDEN=1 python -m pytest tests/test_reports_training.py
"""

from __future__ import annotations

import difflib
import os
import re
from dataclasses import replace
from pathlib import Path

import pytest

from frameworks.result import Result
from reports import render_run
from reports.content import build_report
from reports.load import load_run
from reports.markdown import escape, render_markdown
from reports.training import training_section
from tests.fixtures.make_report_fixtures import HOSTILE
from tests.fixtures.make_training_fixtures import hostile_training_run
from tests.test_reports_html import Page, _dom_text, _screenshot, assert_inert
from tests.test_reports_markdown import _tables

FIXTURES = Path(__file__).parent / "fixtures" / "reports"
RUN = FIXTURES / "runs" / "fixture-t1"
GOLDEN = FIXTURES / "golden" / "fixture-t1.md"


def _markdown(run_dir: Path) -> str:
    return render_markdown(build_report(load_run(run_dir)))


def test_golden_training_markdown() -> None:
    text = _markdown(RUN)
    if os.environ.get("UPDATE_GOLDEN"):
        GOLDEN.write_text(text, encoding="utf-8")
    expected = GOLDEN.read_text(encoding="utf-8")
    if text != expected:
        diff = difflib.unified_diff(expected.splitlines(), text.splitlines(), "golden", "rendered", lineterm="", n=1)
        shown = "\n".join(list(diff)[:60])
        pytest.fail(f"report.md differs from the golden file (UPDATE_GOLDEN=1 to accept):\n{shown}")


def test_the_training_section_answers_the_issue() -> None:
    text = GOLDEN.read_text(encoding="utf-8")
    for needle in (
        "## Training",
        "| Framework   | Version   | Variant / mode ",  # framework, version, mode ...
        "| First epoch ",
        "| Epoch time ",
        "| Images/s ",
        "| Test accuracy ",
        "| Peak memory ",
        "| Time vs PyTorch eager ",
        "| 95% CI ",
        "1 (baseline)",
        "**failed: timed out after 2760 s (fixture)**",
        "Test accuracy after each epoch:",
        "| epoch 3 ",
        "- step 20: ",
        "- end of epoch 1 (step 937): ",
        "Not trained (their backends have no train step):",
        # the per-model LeNet-5 table of --weights trained: framework, params, latency, FPS, FLOPs, accuracy
        "| Framework           | Variant / mode              | Valid   | Params   | Latency (ms/img)   | Precision ",
        "| Test accuracy   |\n",
        "| 61,706   |",
        "88.41%",
    ):
        assert needle in text, needle
    assert "## Scenario train" not in text and "have no points to show" not in text  # not a sweep


def test_relative_times_have_an_interval_only_with_two_epochs_after_the_first() -> None:
    run = load_run(RUN)
    cells = [r for r in run.results if r.scenario == "train"]
    labels = {id(r): f"{r.variant} / {r.mode}" for r in cells}
    rows = {row.label: row for row in training_section(cells, labels).models[0].rows}  # type: ignore[union-attr]
    compile_ = rows["cpu-torch / compile"]
    assert compile_.relative.endswith("×") and compile_.interval != "—"
    assert compile_.first_epoch == "74.0 s"  # compilation: shown apart, not in the epoch time
    short = [replace(r, training=replace(r.training, epochs=r.training.epochs[:2])) for r in cells if r.training]
    labels = {id(r): f"{r.variant} / {r.mode}" for r in short}
    rows = {row.label: row for row in training_section(short, labels).models[0].rows}  # type: ignore[union-attr]
    assert rows["cpu-torch / compile"].interval == "—" and rows["cpu-torch / compile"].relative != "—"
    one = [replace(r, training=replace(r.training, epochs=r.training.epochs[:1])) for r in short]
    labels = {id(r): f"{r.variant} / {r.mode}" for r in one}
    rows = {row.label: row for row in training_section(one, labels).models[0].rows}  # type: ignore[union-attr]
    assert rows["cpu-torch / compile"].epoch_time.endswith("↺")  # one epoch: that epoch, marked


def test_cells_of_another_protocol_are_named() -> None:
    run = load_run(RUN)
    cells = [r for r in run.results if r.scenario == "train" and r.training is not None]
    cells[1] = replace(cells[1], training=replace(cells[1].training, order_sha256="f00d" * 16))  # type: ignore[arg-type]
    labels = {id(r): f"{r.variant} / {r.mode}" for r in cells}
    notes = training_section(cells, labels).models[0].notes  # type: ignore[union-attr]
    assert len(notes) == 1 and "batch order" in notes[0] and "not the same experiment" in notes[0]


def test_html_has_the_curves_and_stays_inert(tmp_path: Path) -> None:
    html = render_run(RUN, tmp_path)[1].read_text(encoding="utf-8")
    page = Page(html)
    assert_inert(page)
    assert 'id="training"' in html and "training loss (the batch" in html and "test accuracy after each epoch" in html
    ids = [value for _, name, value in page.attrs if name == "id"]
    assert len(ids) == len(set(ids))
    # latency, samples and memory charts (the trained-weights LeNet-5 cells), loss and accuracy curves
    assert page.tags.count("svg") == 1 + 1 + 1 + 2


def test_hostile_strings_in_a_training_run(tmp_path: Path) -> None:
    run_dir = hostile_training_run(tmp_path / "run")
    markdown = _markdown(run_dir)
    section = markdown[markdown.index("## Training") : markdown.index("## Environment")]
    assert "<script" not in section.lower() and "&lt;script&gt;" in section
    assert escape(HOSTILE) in section and f"**failed: {escape(HOSTILE)}**" in section
    tables = _tables(section)
    assert len(tables) == 2
    for block in tables:  # no cell split by a '|' from the data
        assert len({len(re.findall(r"(?<!\\)\|", line)) for line in block}) == 1, block[0][:200]
    html = render_run(run_dir, tmp_path / "out")[1].read_text(encoding="utf-8")
    page = Page(html)
    assert_inert(page)
    one_line = " ".join(HOSTILE.split())
    assert f"⚠ {one_line}" in page.joined_text and one_line in page.joined_text
    assert '<script>alert("pwned")</script>' in page.joined_text  # shown as text, in the curves' legends too
    assert Result.from_json((run_dir / "results.jsonl").read_text().splitlines()[0]).training is not None


@pytest.mark.slow
def test_chromium_renders_the_training_section(chromium: str, tmp_path: Path) -> None:
    """The train cells alone, so the section (table, both charts, accuracy table) is what the screenshot shows."""
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "run.json").write_text((RUN / "run.json").read_text())
    lines = [line for line in (RUN / "results.jsonl").read_text().splitlines() if '"scenario":"train"' in line]
    (run_dir / "results.jsonl").write_text("\n".join(lines) + "\n")
    html = render_run(run_dir)[1]
    _screenshot(chromium, tmp_path / "profile", html, tmp_path / "training.png")
    text = _dom_text(chromium, tmp_path / "profile", html).joined_text
    for needle in (
        "Training",
        "Relative times against: cpu-torch / eager.",
        "cpu-torch / compile",
        "1 (baseline)",
        "failed: timed out after 2760 s (fixture)",
        "Test accuracy after epoch 3",
        "training loss",  # the loss chart's axis, inside its SVG
        "test accuracy (%)",
    ):
        assert needle in text, needle
