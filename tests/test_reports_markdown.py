"""The Markdown report: golden files for the committed fixtures, and hostile strings escaped.

``fixture-a2`` is a run on one machine; ``fixture-m1`` a run on two machines (east, west) that report
the same CPU model but differ in their dispatch flags: one matrix each, compared cell by cell.

Refresh the golden file after an intended change (then read the diff before committing it):

    UPDATE_GOLDEN=1 python -m pytest tests/test_reports_markdown.py
"""

from __future__ import annotations

import difflib
import os
import re
import shutil
from pathlib import Path

import pytest

from reports import render_run
from reports.content import build_report
from reports.load import load_run
from reports.markdown import code_block, escape, render_markdown
from tests.fixtures.make_report_fixtures import (
    HOSTILE,
    HOSTILE_HOSTS,
    HOSTILE_MISSING_HOST,
    MACHINE_EAST,
    MACHINE_WEST,
    hostile_hosts_run,
    hostile_run,
)

FIXTURES = Path(__file__).parent / "fixtures" / "reports"
GOLDEN_RUN = FIXTURES / "runs" / "fixture-a2"
GOLDEN = FIXTURES / "golden" / "fixture-a2.md"
TWO_MACHINES = FIXTURES / "runs" / "fixture-m1"
TWO_MACHINES_GOLDEN = FIXTURES / "golden" / "fixture-m1.md"
UNESCAPED_PIPE = re.compile(r"(?<!\\)\|")


def _markdown(run_dir: Path) -> str:
    return render_markdown(build_report(load_run(run_dir)))


@pytest.mark.parametrize(("run_dir", "golden"), [(GOLDEN_RUN, GOLDEN), (TWO_MACHINES, TWO_MACHINES_GOLDEN)])
def test_golden_markdown(run_dir: Path, golden: Path) -> None:
    text = _markdown(run_dir)
    if os.environ.get("UPDATE_GOLDEN"):
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_text(text, encoding="utf-8")
    expected = golden.read_text(encoding="utf-8")
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
        "✗ **INVALID**: output unverified (max error 0.0032, tolerance 0.001)",  # the verdict, with the error
        "✗ **INVALID**: precision not reached: median +-7.3% at 95% &gt; +-2%",
        "✗ **INVALID**: busy machine: other processes used 0.41 CPUs",
        "| Valid ",  # the per-model tables' verdict column
        "| p99 (ms/img) ",
        "## At a glance",
        "| cpu      | PyTorch 2.13.0      | cpu-torch / compile (docker)       | **0.155** ",  # LeNet-5's fastest
        "| ONNX Runtime        | no valid cell | 1.00×    | 1.00×          |",  # its LeNet-5 cell is not valid
        "## Latency against peak memory",
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
        "⚠ INVALID: output unverified (max error 0.00021)",  # a sweep's point
        "## Thread scaling",
        "| threads 2 ",
        "**1.83×**<br>efficiency 91.4%<br>median 35.0 ms",
        "**Scenarios:** latency: 63 cells; throughput: 8 cells, 31 of 32 points ok",
        "| Launcher ",
        # written before schema 3: a machine known by its CPU model only
        "| Machine fingerprint           | not recorded (results written before schema 3): known by its CPU model only",
    ):
        assert needle in text, needle
    assert "2025-01-15T09:00:00Z" in text  # times come from run.json, never from the render
    for restated in ("⚠ unstable: sd is 14%", "⚠ machine busy", "⚠ output does not match"):
        assert restated not in text, restated  # the verdict says it: not twice


def _sections(text: str) -> dict[str, str]:
    """A Markdown document by its ``##`` headings."""
    parts = re.split(r"^## (.*)$", text, flags=re.MULTILINE)
    return {parts[i]: parts[i + 1] for i in range(1, len(parts), 2)}


def test_two_machines_with_one_model_name_are_two_machines() -> None:
    """east and west both say "AMD EPYC": the report keeps them apart by fingerprint, says what differs."""
    text = TWO_MACHINES_GOLDEN.read_text(encoding="utf-8")
    assert MACHINE_EAST.model_name == MACHINE_WEST.model_name and MACHINE_EAST.fingerprint != MACHINE_WEST.fingerprint
    sections = _sections(text)
    assert list(sections) == ["Machines", "Matrix of each machine", "Across machines", "Environment", "Notes",
                              "Skipped or superseded lines"]  # fmt: skip
    machines = sections["Machines"]
    for needle in (
        "|                         | east ",
        f"| Machine fingerprint ≠   | {MACHINE_EAST.fingerprint} ",
        f"| {MACHINE_WEST.fingerprint} ",
        "| Dispatch flags ≠        | sse4_2 avx avx2 fma f16c  ",
        "avx512f avx512dq avx512bw avx512vl avx512_vnni avx512_bf16 |",
        "| CPU model               | AMD EPYC Processor (fixture, test data)      | AMD EPYC Processor (fixture",
        "| float32 matmul peak ≠   | 150 GFLOP/s ",
        "[report.md](hosts/east/report.md)",
        "[report.md](hosts/west/report.md)",
    ):
        assert needle in machines, needle
    # one matrix per machine: two tables, each holding one machine's cells only
    matrices = sections["Matrix of each machine"]
    east, west = matrices.split("### east", 1)[1].split("### west", 1)
    assert east.count("| Variant / mode ") == 1 and west.count("| Variant / mode ") == 1
    assert "**1,264 ms**" in east and "**1,264 ms**" not in west  # east's VGG-16 im2col
    assert "**1,024 ms**" in west and "**1,024 ms**" not in east
    assert "**failed**: ResourceExhaustedError" in west and "failed" not in east
    across = sections["Across machines"]
    assert "| VGG-16       | cpu-numpy-openblas / im2col | east               | 1,264 " in across
    assert "| west      | 1,024             | 1.23×     | 1.23–1.24 | <0.001 | yes " in across
    assert "| cpu-onnxruntime / session   | east               | 0.145 " in across and "| no " in across
    assert across.count("| east ") == 11  # every cell both measured, against the first machine
    assert "- cpu-tensorflow / graph, VGG-16: east: ok; west: failed (ResourceExhaustedError" in across
    notes = sections["Notes"]
    assert (
        "east and west report the same CPU model (AMD EPYC Processor (fixture, test data)) but are different" in notes
    )
    assert "dispatch flags only west has: avx512f avx512dq avx512bw avx512vl avx512_vnni avx512_bf16" in notes
    assert "- hosts/west/results.jsonl line 13: skipped (truncated last line" in sections["Skipped or superseded lines"]
    assert "| Docker engines | east 27.5.1, west 28.0.1 |" in sections["Environment"]
    assert f"{MACHINE_EAST.fingerprint} (the same machine as east)" in sections["Environment"]


def test_each_machine_gets_its_full_report(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    shutil.copytree(TWO_MACHINES, run_dir)
    paths = render_run(run_dir)
    assert [p.relative_to(run_dir).as_posix() for p in paths] == [
        "report.md", "report.html", "hosts/east/report.md", "hosts/east/report.html",
        "hosts/west/report.md", "hosts/west/report.html",
    ]  # fmt: skip
    assert paths[0].read_text(encoding="utf-8") == TWO_MACHINES_GOLDEN.read_text(encoding="utf-8")
    west = (run_dir / "hosts" / "west" / "report.md").read_text(encoding="utf-8")
    assert west.startswith("# Inference speed matrix: fixture-m1 on west\n")
    assert (f"**Machine:** west: AMD family 25 model 17 stepping 1, fingerprint {MACHINE_WEST.fingerprint} "
            "(CPU model AMD EPYC Processor (fixture, test data))") in west  # fmt: skip
    assert "## At a glance" in west and "avx512f present" in west and "avx512f absent" in east_text(run_dir)
    assert "[the whole run's report](../../report.md)" in west
    for needle in (
        "## Per model",
        "## Comparisons",
        "### Variants",
        "| Machine             | west, one machine of this run",
    ):
        assert needle.split("  ")[0] in west, needle
    assert "avx512_bf16" in west and MACHINE_EAST.fingerprint not in west  # its own machine only
    assert "- results.jsonl line 13: skipped (truncated last line" in west  # named by its own file there
    east = (run_dir / "hosts" / "east" / "report.md").read_text(encoding="utf-8")
    assert "avx512f present" not in east and MACHINE_WEST.fingerprint not in east  # its own machine only
    assert "avx512f" not in east.split("## Matrix")[1]  # beyond the opening's present/absent list, no AVX-512
    again = load_run(run_dir)  # the reports written under hosts/ are not machines of their own
    assert [h.host_name for h in again.hosts] == ["east", "west"] and again.problems == load_run(TWO_MACHINES).problems


def east_text(run_dir: Path) -> str:
    return (run_dir / "hosts" / "east" / "report.md").read_text(encoding="utf-8")


def test_hostile_host_names_and_machine_facts_are_escaped(tmp_path: Path) -> None:
    run_dir = hostile_hosts_run(tmp_path / "run")
    before = {p for p in tmp_path.rglob("*")}
    paths = render_run(run_dir)
    assert all(p.resolve().is_relative_to(run_dir.resolve()) for p in paths)
    assert {p for p in tmp_path.rglob("*")} - before == {*paths, *(p.parent for p in paths[2:])}  # nothing else made
    for path in paths[::2]:  # the run's report and each machine's
        text = path.read_text(encoding="utf-8")
        fence = re.search(r"^(`{3,})bash\n(.*?)\n\1$", text, flags=re.DOTALL | re.MULTILINE)
        assert fence is not None and fence.group(2) == HOSTILE  # the command, verbatim, as code
        text = text.replace(fence.group(0), "")
        assert "<script" not in text.lower() and "<img" not in text.lower(), path
        assert re.search(r"(?<!\\)\]\(javascript", text) is None
        assert HOSTILE.split("\n")[0] not in text
        for block in _tables(text):
            widths = {len(UNESCAPED_PIPE.findall(line)) for line in block}
            assert len(widths) == 1, (path, block[0][:200])
    top = paths[0].read_text(encoding="utf-8")
    escaped = escape(HOSTILE)
    for needle in (
        f"| Machine fingerprint ≠   | {escaped} 0 ",  # the machine facts, escaped, in the side-by-side table
        "| Dispatch flags ≠ ",
        f"### {escape(HOSTILE_HOSTS[0])}",
        f"report the same CPU model ({escaped}) but are different machines",
        f"calls its machine {escaped}",
        f"- hosts/{escape(HOSTILE_MISSING_HOST)}/run.json: missing, and no results either",
        "| 1.12× ",  # the hostile cells compared across the machines (0.9 against 0.8 of one sample set)
    ):
        assert needle.split("  ")[0] in top, needle
    links = re.findall(r"\]\((hosts/[^)]*)\)", top)
    assert len(links) == 2 and all(re.fullmatch(r"hosts/[A-Za-z0-9._%-]+/report\.md", link) for link in links)


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
