"""The static site: index newest first, one page per run, latest/, per-machine history and regressions."""

from __future__ import annotations

import re
import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from reports import publish_site
from reports.compare import Speedup
from reports.publish import MARKER, classify, machine_slug, slug, unique_slugs
from tests.fixtures.make_report_fixtures import CPU_A, CPU_B, HOSTILE, other_machine_run, write_run

RUNS = Path(__file__).parent / "fixtures" / "reports" / "runs"
ALL_RUNS = ["fixture-a2", "fixture-b1", "fixture-a1", "fixture-a3"]  # any order in, newest first out


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    site_dir = tmp_path_factory.mktemp("site") / "site"
    index = publish_site([RUNS / name for name in ALL_RUNS], site_dir)
    assert index == site_dir / "index.html"
    return site_dir


def _sections(html: str) -> dict[str, str]:
    """Index sections by their heading (one per CPU model)."""
    parts = re.split(r"<h2>(.*?)</h2>", html)
    return {parts[i]: parts[i + 1] for i in range(1, len(parts), 2)}


@pytest.mark.slow  # publishes several full reports
def test_site_layout(site: Path) -> None:
    for name in ALL_RUNS:
        assert (site / "runs" / name / "report.html").is_file()
        assert (site / "runs" / name / "report.md").is_file()
    assert (site / "latest" / "index.html").is_file() and (site / "latest" / "report.md").is_file()
    assert (site / ".nojekyll").exists() and (site / MARKER).exists()
    assert sorted(p.name for p in (site / "machines").iterdir()) == sorted(
        f"{machine_slug(cpu)}.html" for cpu in (CPU_A, CPU_B)
    )


@pytest.mark.slow  # publishes several full reports
def test_index_lists_runs_newest_first_per_machine(site: Path) -> None:
    html = (site / "index.html").read_text(encoding="utf-8")
    sections = _sections(html)
    assert list(sections) == [CPU_A, CPU_B]  # machine A has the newest run
    a = sections[CPU_A]
    assert a.index("fixture-a3") < a.index("fixture-a2") < a.index("fixture-a1")
    assert "fixture-b1" not in a
    assert "fixture-a" not in sections[CPU_B]  # CPU models never share a table
    assert 'href="runs/fixture-a3/report.html"' in a
    assert 'href="latest/index.html"' in html
    assert "<th>Launcher</th>" in html and "<td>docker</td>" in a  # schema 1's backend, read as the launcher


@pytest.mark.slow  # publishes several full reports
def test_latest_is_the_newest_run(site: Path) -> None:
    latest = (site / "latest" / "index.html").read_text(encoding="utf-8")
    assert "Inference speed matrix: fixture-a3" in latest
    assert 'href="../index.html"' in latest
    assert (site / "latest" / "report.md").read_text() == (site / "runs" / "fixture-a3" / "report.md").read_text()
    run_page = (site / "runs" / "fixture-a2" / "report.html").read_text(encoding="utf-8")
    assert 'href="../../index.html"' in run_page


def _row(html: str, model_title: str, cell: str) -> str:
    section = html.split(f"<h2>{model_title}</h2>", 1)[1].split("<h2>", 1)[0]
    return next(r for r in section.split("<tr>") if r.startswith(f"<td>{cell}</td>"))


@pytest.mark.slow  # publishes several full reports
def test_history_flags_significant_regressions_beyond_five_percent(site: Path) -> None:
    page = (site / "machines" / f"{machine_slug(CPU_A)}.html").read_text(encoding="utf-8")
    assert "1 regression in the latest comparison: cpu-torch / eager (docker) (+12." in page
    regression = _row(page, "VGG-16", "cpu-torch / eager (docker)")
    assert 'class="flag-regression">regression<' in regression
    assert "<td>fixture-a2</td>" in regression and "<td>fixture-a3</td>" in regression
    small = _row(page, "MobileNet v1", "cpu-onnxruntime / session (docker)")  # ~3% slower: significant, within 5%
    assert "flag-none" in small and re.search(r">\+[1-4]\.\d%<", small) and "&lt;0.001" in small
    better = _row(page, "LeNet-5", "cpu-tensorflow / graph (docker)")
    assert 'class="flag-improvement">improvement<' in better
    assert page.count("<svg") == 3  # one small-multiples chart per model
    assert "fixture-b1" not in page and CPU_B not in page


@pytest.mark.slow  # publishes several full reports
def test_other_machine_has_its_own_history(site: Path) -> None:
    page = (site / "machines" / f"{machine_slug(CPU_B)}.html").read_text(encoding="utf-8")
    assert "Only one run of each cell so far" in page
    assert "fixture-a" not in page
    report = (site / "runs" / "fixture-b1" / "report.md").read_text(encoding="utf-8")
    assert "cpu-tensorflow-eigen asks for Eigen but tensorflow reports oneDNN in effect" in report
    assert "no build comparison drawn" in report


@pytest.mark.slow  # publishes several full reports
def test_republish_replaces_what_it_made(tmp_path: Path) -> None:
    site_dir = tmp_path / "site"
    b1 = RUNS / "fixture-b1"
    publish_site([b1], site_dir)
    (site_dir / "CNAME").write_text("bench.example.org\n")  # a file the user added is kept
    info, lines = other_machine_run()
    other = write_run(tmp_path / "renamed", replace(info, run_id="fixture-b2"), lines)
    publish_site([other], site_dir)
    assert sorted(p.name for p in (site_dir / "runs").iterdir()) == ["fixture-b2"]
    assert (site_dir / "CNAME").exists()


def test_refuses_a_foreign_non_empty_directory(tmp_path: Path) -> None:
    (tmp_path / "important.txt").write_text("keep me")
    with pytest.raises(ValueError, match="not empty"):
        publish_site([RUNS / "fixture-b1"], tmp_path)
    assert (tmp_path / "important.txt").read_text() == "keep me"


def test_hostile_run_ids_stay_inside_the_site(tmp_path: Path) -> None:
    info, lines = other_machine_run()
    evil = write_run(tmp_path / "runs" / "evil", replace(info, run_id="../../" + HOSTILE), lines)
    same = write_run(tmp_path / "runs" / "evil2", replace(info, run_id="../../" + HOSTILE), lines)
    site_dir = tmp_path / "site"
    publish_site([evil, same], site_dir)
    pages = sorted(p.relative_to(site_dir).parts[:2] for p in site_dir.rglob("report.html"))
    assert len(pages) == 3  # two runs, and latest
    assert all(".." not in part and "/" not in part for parts in pages for part in parts)
    index = (site_dir / "index.html").read_text(encoding="utf-8")
    assert "<script" not in index.lower()


def test_slugs() -> None:
    assert slug("../../etc/passwd") == "etc-passwd"
    assert slug("...") == "run"
    assert unique_slugs(["a b", "a_b", "a-b", "a b"]) == ["a-b", "a_b", "a-b-2", "a-b-3"]
    assert machine_slug("x/y") != machine_slug("x y")


def test_classify() -> None:
    def speedup(ratio: float, low: float, high: float, p: float) -> Speedup:
        return Speedup(ratio, low, high, p, 20, 20)

    assert classify(speedup(1.12, 1.10, 1.14, 0.001)) == "regression"
    assert classify(speedup(1.12, 0.95, 1.30, 0.001)) == ""  # interval includes 1
    assert classify(speedup(1.12, 1.10, 1.14, 0.2)) == ""  # not significant
    assert classify(speedup(1.04, 1.03, 1.05, 0.001)) == ""  # significant, but within 5%
    assert classify(speedup(0.90, 0.88, 0.92, 0.001)) == "improvement"


def test_runs_without_run_json_are_published(tmp_path: Path) -> None:
    bare = tmp_path / "bare-run"
    bare.mkdir()
    shutil.copy(RUNS / "fixture-b1" / "results.jsonl", bare / "results.jsonl")
    publish_site([bare], tmp_path / "site")
    index = (tmp_path / "site" / "index.html").read_text(encoding="utf-8")
    assert "bare-run" in index and CPU_B in index  # id from the directory, machine from the cells
