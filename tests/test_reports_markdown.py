"""The Markdown report: golden file for the committed fixture, and hostile strings escaped.

Refresh the golden file after an intended change (then read the diff before committing it):

    UPDATE_GOLDEN=1 python -m pytest tests/test_reports_markdown.py
"""

from __future__ import annotations

import difflib
import os
import re
from pathlib import Path

import pytest

from reports import render_run
from reports.content import build_report
from reports.load import load_run
from reports.markdown import code_block, escape, render_markdown
from tests.fixtures.make_report_fixtures import HOSTILE, hostile_run

FIXTURES = Path(__file__).parent / "fixtures" / "reports"
GOLDEN_RUN = FIXTURES / "runs" / "fixture-a2"
GOLDEN = FIXTURES / "golden" / "fixture-a2.md"
UNESCAPED_PIPE = re.compile(r"(?<!\\)\|")


def _markdown(run_dir: Path) -> str:
    return render_markdown(build_report(load_run(run_dir)))


def test_golden_markdown() -> None:
    text = _markdown(GOLDEN_RUN)
    if os.environ.get("UPDATE_GOLDEN"):
        GOLDEN.parent.mkdir(parents=True, exist_ok=True)
        GOLDEN.write_text(text, encoding="utf-8")
    expected = GOLDEN.read_text(encoding="utf-8")
    if text != expected:
        diff = difflib.unified_diff(expected.splitlines(), text.splitlines(), "golden", "rendered", lineterm="", n=1)
        pytest.fail(
            "report.md differs from the golden file (UPDATE_GOLDEN=1 to accept):\n" + "\n".join(list(diff)[:60])
        )


def test_render_run_writes_the_golden_markdown(tmp_path: Path) -> None:
    paths = render_run(GOLDEN_RUN, tmp_path)
    assert [p.name for p in paths] == ["report.md", "report.html"]
    assert paths[0].read_text(encoding="utf-8") == GOLDEN.read_text(encoding="utf-8")


def test_golden_report_answers_the_issue() -> None:
    text = GOLDEN.read_text(encoding="utf-8")
    for needle in (
        "| Variant / mode ",  # the matrix
        "**0.122 ms** ★",  # fastest marked
        "mean 1,011 (sd 9.67)",  # the seed's mean (sd) beside the median
        "img/s · ",
        "**failed**: MXNetError: out of memory",
        "**skipped**: cell timeout budget",
        "⚠ output does not match the reference (max relative error 0.0032 &gt; 0.001)",
        "⚠ unstable: sd is 14% of the mean",
        "float32 matmul peak measured in this run: 96.5 GFLOP/s",
        "| Share of matmul peak ",
        "MKL vs OpenBLAS",
        "oneDNN vs Eigen",
        "oneDNN vs OpenBLAS",
        "graph vs eager",
        "xla vs graph",
        "hybrid vs imperative",
        "jit vs eager",
        "compile vs eager",
        "cuda vs cpu",
        "docker vs local",
        "python -m runner matrix --iterations 25",
        "| Docker engine ",
        "| CPU model ",
        "onednn_enabled=False",
        "results.jsonl line 6: skipped: not valid JSON",
        "results.jsonl line 84: skipped (truncated last line",
        "## Throughput over batch size",
        "| batch size 1 ",
        "failed: out of memory (killed by the OOM killer)",
        "⚠ output does not match the reference (max relative error 0.00021 &gt; 0.0001)",
        "## Thread scaling",
        "| threads 2 ",
        "**1.83×**<br>efficiency 91.4%<br>median 35.0 ms",
        "**Scenarios:** latency: 63 cells; throughput: 8 cells, 31 of 32 points ok",
        "| Launcher ",
    ):
        assert needle in text, needle
    assert "2025-01-15T09:00:00Z" in text  # times come from run.json, never from the render


def test_markdown_is_deterministic() -> None:
    assert _markdown(GOLDEN_RUN) == _markdown(GOLDEN_RUN)


def test_hostile_strings_are_escaped(tmp_path: Path) -> None:
    full = _markdown(hostile_run(tmp_path))
    # The command is shown verbatim, inside a fence longer than any backtick run it holds (code is text).
    fence = re.search(r"^(`{3,})bash\n(.*?)\n\1$", full, flags=re.DOTALL | re.MULTILINE)
    assert fence is not None and fence.group(2) == HOSTILE
    assert len(fence.group(1)) > max(len(run) for run in re.findall(r"`+", HOSTILE))
    text = full.replace(fence.group(0), "")
    assert "<script" not in text.lower() and "<img" not in text.lower()
    assert "&lt;script&gt;" in text
    assert re.search(r"(?<!\\)\]\(javascript", text) is None  # brackets escaped: no link is formed
    assert "{{7\\*7}}" in text  # template syntax is text (no template engine ran over it)
    for block in _tables(text):
        widths = {len(UNESCAPED_PIPE.findall(line)) for line in block}
        assert len(widths) == 1, block[0][:200]  # no cell split by a '|' from the data
    assert HOSTILE.split("\n")[0] not in text  # nothing copied through unescaped
    escaped = escape(HOSTILE)
    for needle in (  # the sweep sections carry the hostile strings too, escaped
        "## Throughput over batch size",
        "## Thread scaling",
        f"## Scenario {escaped}: speedup over thread count",
        f"## Scenario {escaped} by batch: images/s over batch size",
        f"failed: {escaped}",  # a failed point's error
        f"skipped: {escaped}",
        f"<br>**failed: {escaped}**",  # a sweep cell without points
        f"⚠ {escaped}",  # a point's warning
        "⚠ output does not match the reference (max error 0.5)",
    ):
        assert needle in text, needle


def _tables(text: str) -> list[list[str]]:
    tables: list[list[str]] = []
    current: list[str] = []
    for line in text.splitlines():
        if line.startswith("|"):
            current.append(line)
        elif current:
            tables.append(current)
            current = []
    return tables + ([current] if current else [])


def test_escape_and_code_block() -> None:
    assert escape("a|b\nc <d> & `e` *f* [g]") == "a\\|b c &lt;d&gt; &amp; \\`e\\` \\*f\\* \\[g\\]"
    block = code_block("echo ```` done")
    assert block.startswith("`````bash\n") and block.endswith("\n`````")
