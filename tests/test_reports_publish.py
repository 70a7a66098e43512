"""The static site: index newest first, one page per run, latest/, per-machine history and regressions.

Machines are grouped by fingerprint: ``fixture-m1``'s east and west report the same CPU model and are
two machines; machine A's runs, written before schema 3, are one machine known by its CPU model.
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from frameworks.result import Result
from reports import load_run, publish_site
from reports.compare import Speedup
from reports.export import render
from reports.publish import MARKER, classify, machine_slug, slug, unique_slugs
from tests.fixtures.make_report_fixtures import (
    CPU_A,
    CPU_B,
    CPU_EPYC,
    HOSTILE,
    MACHINE_B,
    MACHINE_EAST,
    MACHINE_WEST,
    SeveralRun,
    hostile_hosts_run,
    other_machine_run,
    schema2_json,
    schema2_run_dict,
    two_machine_run,
    write_run,
    write_several_run,
)

RUNS = Path(__file__).parent / "fixtures" / "reports" / "runs"
ALL_RUNS = ["fixture-a2", "fixture-m1", "fixture-b1", "fixture-a1", "fixture-a3"]  # any order in, newest first out
SLUG_A = machine_slug(CPU_A)  # written before schema 3: by CPU model
SLUG_B = machine_slug(CPU_B, MACHINE_B.fingerprint)
SLUG_EAST = machine_slug(CPU_EPYC, MACHINE_EAST.fingerprint)
SLUG_WEST = machine_slug(CPU_EPYC, MACHINE_WEST.fingerprint)


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
    for directory in [site / "latest", *(site / "runs" / name for name in ALL_RUNS)]:  # `runner export`'s files
        assert (directory / "results.csv").is_file() and (directory / "results.json").is_file()
    assert (site / ".nojekyll").exists() and (site / MARKER).exists()
    assert sorted(p.name for p in (site / "machines").iterdir()) == sorted(
        f"{name}.html" for name in (SLUG_A, SLUG_B, SLUG_EAST, SLUG_WEST)
    )
    for host in ("east", "west"):  # a several-machine run: each machine's report under its run
        assert (site / "runs" / "fixture-m1" / "hosts" / host / "report.html").is_file()
        assert (site / "runs" / "fixture-m1" / "hosts" / host / "report.md").is_file()


@pytest.mark.slow  # publishes several full reports
def test_index_lists_runs_newest_first_per_machine(site: Path) -> None:
    html = (site / "index.html").read_text(encoding="utf-8")
    sections = _sections(html)
    assert list(sections) == [CPU_A, CPU_B, "east", "west"]  # machine A has the newest run, fixture-m1 the oldest
    a = sections[CPU_A]
    assert a.index("fixture-a3") < a.index("fixture-a2") < a.index("fixture-a1")
    assert "fixture-b1" not in a
    assert "fixture-a" not in sections[CPU_B]  # CPU models never share a table
    assert 'href="runs/fixture-a3/report.html"' in a
    assert 'href="latest/index.html"' in html
    assert "<th>Launcher</th>" in html and "<td>docker</td>" in a  # schema 1's backend, read as the launcher


@pytest.mark.slow  # publishes several full reports
def test_each_run_is_exported_beside_its_page(site: Path) -> None:
    """results.csv and results.json are ``runner export``'s output for the run, linked from the index."""
    for name in ALL_RUNS:
        run = load_run(RUNS / name)
        for file_name, fmt in (("results.csv", "csv"), ("results.json", "json")):
            assert (site / "runs" / name / file_name).read_text(encoding="utf-8") == render(run, fmt)
    latest = site / "latest"
    assert (latest / "results.json").read_text() == (site / "runs" / "fixture-a3" / "results.json").read_text()
    assert len(json.loads((latest / "results.json").read_text())) == len(load_run(RUNS / "fixture-a3").results)
    index = (site / "index.html").read_text(encoding="utf-8")
    assert '<a href="runs/fixture-a3/results.csv">CSV</a> · <a href="runs/fixture-a3/results.json">JSON</a>' in index


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
    page = (site / "machines" / f"{SLUG_A}.html").read_text(encoding="utf-8")
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
    page = (site / "machines" / f"{SLUG_B}.html").read_text(encoding="utf-8")
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


@pytest.mark.slow  # publishes several full reports
def test_two_machines_of_one_model_name_are_two_machines(site: Path) -> None:
    """east and west both report "AMD EPYC": two sections, two histories, by fingerprint."""
    sections = _sections((site / "index.html").read_text(encoding="utf-8"))
    east, west = sections["east"], sections["west"]
    assert f"Fingerprint <code>{MACHINE_EAST.fingerprint}</code> · CPU model {CPU_EPYC}" in east
    assert f"Fingerprint <code>{MACHINE_WEST.fingerprint}</code> · CPU model {CPU_EPYC}" in west
    assert MACHINE_WEST.fingerprint not in east and MACHINE_EAST.fingerprint not in west
    assert 'href="runs/fixture-m1/hosts/east/report.html"' in east and "hosts/west" not in east
    assert 'href="runs/fixture-m1/hosts/west/report.html"' in west and "hosts/east" not in west
    assert 'href="runs/fixture-m1/report.html"' in east  # the whole run, every machine
    assert "<td>12 ok, 0 failed, 0 skipped</td>" in east and "<td>11 ok, 1 failed, 0 skipped</td>" in west
    assert "No fingerprint (results written before schema 3): known by its CPU model only" in sections[CPU_A]
    assert f"Fingerprint <code>{MACHINE_B.fingerprint}</code>" in sections[CPU_B]
    page = (site / "machines" / f"{SLUG_WEST}.html").read_text(encoding="utf-8")
    assert "<h1>History: west</h1>" in page and "1 run on this machine" in page
    assert "Only one run of each cell so far" in page and "fixture-a" not in page
    host_page = (site / "runs" / "fixture-m1" / "hosts" / "west" / "report.html").read_text(encoding="utf-8")
    assert 'href="../../../../index.html"' in host_page and 'href="../../report.html"' in host_page


def _renamed(run: SeveralRun, run_id: str, names: dict[str, str], later: timedelta) -> SeveralRun:
    """The same machines in a later run, under other names (whole result lines only)."""
    hosts = {}
    for name, (info, lines) in run.hosts.items():
        results = []
        for line in lines:
            try:
                results.append(replace(Result.from_json(line), host=names[name]))
            except ValueError:
                continue  # the fixture's truncated line
        moved = replace(info, run_id=run_id, host_name=names[name], started_at=_later(info.started_at, later))
        hosts[names[name]] = (moved, [r.to_json() for r in results])
    top = replace(run.info, run_id=run_id, hosts={names[n]: u for n, u in run.info.hosts.items()},
                  started_at=_later(run.info.started_at, later))  # fmt: skip
    return SeveralRun(top, hosts)


def _later(iso: str, by: timedelta) -> str:
    return (datetime.fromisoformat(iso.replace("Z", "+00:00")) + by).strftime("%Y-%m-%dT%H:%M:%SZ")


def _slowed(lines: list[str], variant: str, factor: float) -> list[str]:
    results = [Result.from_json(line) for line in lines]
    return [
        r.with_flat(samples_s=tuple(v * factor for v in r.samples_s)).to_json() if r.variant == variant else r.to_json()
        for r in results
    ]


@pytest.mark.slow  # publishes several full reports
def test_history_follows_the_fingerprint_whatever_the_host_is_called(tmp_path: Path) -> None:
    """A later run calls east "gamma" and west "delta": the histories stay with the machines (cells are
    keyed without the host's name), and west's 12% slower torch cells are regressions on west's page."""
    later = _renamed(two_machine_run(), "fixture-m2", {"east": "gamma", "west": "delta"}, timedelta(days=3))
    delta_info, delta_lines = later.hosts["delta"]
    later = SeveralRun(later.info, {**later.hosts, "delta": (delta_info, _slowed(delta_lines, "cpu-torch", 1.12))})
    site_dir = tmp_path / "site"
    publish_site([RUNS / "fixture-m1", write_several_run(tmp_path / "fixture-m2", later)], site_dir)
    sections = _sections((site_dir / "index.html").read_text(encoding="utf-8"))
    assert sorted(sections) == ["delta", "gamma"]  # named as the newest run names them
    assert "also named west" in sections["delta"] and "also named east" in sections["gamma"]
    west = (site_dir / "machines" / f"{SLUG_WEST}.html").read_text(encoding="utf-8")
    east = (site_dir / "machines" / f"{SLUG_EAST}.html").read_text(encoding="utf-8")
    assert "<h1>History: delta</h1>" in west and "2 runs on this machine" in west and "2 runs on this machine" in east
    assert "3 regressions in the latest comparison" in west  # cpu-torch / eager on the three models
    assert "<td>fixture-m1 (west)</td>" in west and "<td>fixture-m2 (delta)</td>" in west
    assert "No regression in the latest comparison." in east


@pytest.mark.slow  # publishes two full reports
def test_results_without_a_fingerprint_are_a_machine_of_their_own(tmp_path: Path) -> None:
    """The same CPU model written in schema 2 (no fingerprint) and today (one): two machines, never mixed."""
    info, lines = other_machine_run()
    old = tmp_path / "old"
    old.mkdir()
    (old / "run.json").write_text(json.dumps(schema2_run_dict(replace(info, run_id="fixture-b0"))))
    (old / "results.jsonl").write_text("".join(schema2_json(Result.from_json(line)) + "\n" for line in lines))
    site_dir = tmp_path / "site"
    publish_site([RUNS / "fixture-b1", old], site_dir)
    html = (site_dir / "index.html").read_text(encoding="utf-8")
    headings = re.findall(r"<h2>(.*?)</h2>", html)
    assert headings == [CPU_B, CPU_B]
    assert sorted(p.name for p in (site_dir / "machines").iterdir()) == sorted(
        [f"{SLUG_B}.html", f"{machine_slug(CPU_B)}.html"]
    )
    with_fp, without = html.split("<h2>")[1:]
    assert MACHINE_B.fingerprint in with_fp and "fixture-b1" in with_fp and "fixture-b0" not in with_fp
    assert "No fingerprint" in without and "fixture-b0" in without and "fixture-b1" not in without


def test_hostile_host_names_stay_inside_the_site(tmp_path: Path) -> None:
    run_dir = hostile_hosts_run(tmp_path / "runs" / "hostile")
    site_dir = tmp_path / "site"
    publish_site([run_dir], site_dir)
    written = [p for p in tmp_path.rglob("*") if p.is_file() and not p.is_relative_to(run_dir)]
    assert all(p.resolve().is_relative_to(site_dir.resolve()) for p in written)
    assert all("\n" not in part and "<" not in part for p in written for part in p.relative_to(site_dir).parts)
    assert len(list((site_dir / "machines").iterdir())) == 2  # two hostile fingerprints; the missing host is none
    for page in [site_dir / "index.html", *(site_dir / "machines").iterdir()]:
        text = page.read_text(encoding="utf-8")
        assert "<script" not in text.lower() and "<img" not in text.lower(), page
        for href in re.findall(r'href="([^"]*)"', text):  # our own pages, and anchors inside the charts
            assert href.startswith("#") or (page.parent / href).resolve().is_file(), (page, href)


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
