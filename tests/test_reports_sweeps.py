"""Sweep scenarios in the reports: figures from each point's samples, fallbacks, unknown scenarios,
and the latency views (matrix, studies, comparisons, history) that must not take sweep results."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import pytest

from frameworks.result import Measurement, Result, Stats
from frameworks.scenarios import SCENARIOS, ReportSpec, Scenario
from frameworks.scenarios.throughput import ThroughputConfig
from reports import charts
from reports.content import build_report
from reports.html import render_html, report_charts
from reports.load import Run, load_run
from reports.markdown import render_markdown
from reports.publish import SiteRun, build_machine, group_machines
from reports.sweep_tables import SweepCell, SweepSection, sweep_sections
from reports.sweeps import fallback_spec, point_median, sweep_figures, sweep_spec
from tests.fixtures.make_report_fixtures import sweeps_only_run

RUNS = Path(__file__).parent / "fixtures" / "reports" / "runs"
GOLDEN_RUN = RUNS / "fixture-a2"
THROUGHPUT = SCENARIOS["throughput"].report
THREADS = SCENARIOS["threads"].report
assert THROUGHPUT is not None and THREADS is not None


def stats(median: float) -> Stats:
    """A stored summary whose median differs from the samples': which one a figure used is visible."""
    return Stats(3, median, 0.0, median, median, median, None, None, median, median, 0.95)


def point(batch: int, threads: int, samples: tuple[float, ...], **changes: object) -> Measurement:
    base = Measurement(batch, threads, "ok", samples_s=samples, stats=stats(99.0), verified=True, max_error=1e-7)
    return replace(base, **changes)  # type: ignore[arg-type]


def sweep(scenario: str, *points: Measurement, **changes: object) -> Result:
    result = Result(
        framework="numpy",
        mode="im2col",
        model="lenet5",
        device="cpu",
        status="ok",
        scenario=scenario,
        config={"batches": "1 4", "thread_counts": "1 2"},
        identity=("thread_counts",) if scenario == "threads" else ("batches",),
        variant="cpu-numpy-openblas",
        launcher="docker",
        points=points,
    )
    return replace(result, **changes)  # type: ignore[arg-type]


def _golden() -> Run:
    return load_run(GOLDEN_RUN)


# --- figures ------------------------------------------------------------------------------------


def test_images_per_second_is_batch_over_the_samples_median() -> None:
    figs = sweep_figures(sweep("throughput", point(4, 2, (0.01, 0.03, 0.02))), THROUGHPUT)
    assert [(f.x, f.median_s, f.from_samples) for f in figs] == [(4, 0.02, True)]
    assert figs[0].images_per_s == pytest.approx(4 / 0.02)  # not 4 / 99 (the stored median)
    assert figs[0].speedup is None  # a batch sweep has no speedup


def test_unusable_samples_are_dropped_before_the_median() -> None:
    median, from_samples = point_median(point(1, 2, (float("nan"), -1.0, 0.0, float("inf"), 0.004, 0.002)))
    assert (median, from_samples) == (pytest.approx(0.003), True)


def test_images_per_second_falls_back_to_the_stored_median_only_without_samples() -> None:
    figs = sweep_figures(sweep("throughput", point(8, 2, (), stats=stats(0.05))), THROUGHPUT)
    assert (figs[0].median_s, figs[0].from_samples, figs[0].images_per_s) == (0.05, False, pytest.approx(160.0))
    cell = _only_cell(sweep("throughput", point(8, 2, (), stats=stats(0.05))))
    assert cell.value == "160 img/s" and "from the stored summary (no samples kept)" in cell.details
    nothing = sweep_figures(sweep("throughput", point(8, 2, (), stats=None)), THROUGHPUT)
    assert (nothing[0].median_s, nothing[0].images_per_s) == (None, None)
    assert _only_cell(sweep("throughput", point(8, 2, (), stats=None))).reason == "failed: no timing recorded"


def test_speedup_and_efficiency_come_from_the_samples() -> None:
    result = sweep(
        "threads",
        point(1, 1, (0.04, 0.04, 0.05), speedup=1.0, efficiency=1.0),
        point(1, 2, (0.025, 0.02, 0.03), speedup=9.9, efficiency=9.9),  # stored figures are ignored
        point(1, 4, (0.02,), speedup=9.9, efficiency=9.9),
    )
    figs = sweep_figures(result, THREADS)
    assert [f.x for f in figs] == [1, 2, 4]
    assert [f.speedup for f in figs] == [1.0, pytest.approx(0.04 / 0.025), pytest.approx(2.0)]
    assert [f.efficiency for f in figs] == [1.0, pytest.approx(0.8), pytest.approx(0.5)]


def test_speedup_is_over_the_fewest_threads_that_were_measured() -> None:
    result = sweep(
        "threads",
        Measurement(1, 1, "failed", error="out of memory"),
        point(1, 2, (0.03,)),
        point(1, 4, (0.02,)),
    )
    failed, two, four = sweep_figures(result, THREADS)
    assert (failed.speedup, two.speedup) == (None, 1.0)
    assert four.speedup == pytest.approx(1.5) and four.efficiency == pytest.approx(1.5 * 2 / 4)


def test_speedup_falls_back_to_the_stored_figures_where_samples_are_missing() -> None:
    result = sweep(
        "threads",
        point(1, 1, (0.04,)),
        point(1, 2, (), stats=stats(0.02), speedup=1.3, efficiency=0.65),
    )
    assert [(f.speedup, f.efficiency) for f in sweep_figures(result, THREADS)] == [(1.0, 1.0), (1.3, 0.65)]
    no_stored = sweep("threads", point(1, 1, (0.04,)), point(1, 2, (), stats=stats(0.025)))
    _, two = sweep_figures(no_stored, THREADS)
    assert two.speedup == pytest.approx(1.6) and two.efficiency == pytest.approx(0.8)  # the stored medians' ratio
    cell = _only_cell(no_stored, x=2)
    assert cell.value == "1.60×"
    assert cell.details == ("efficiency 80.0%", "median 25.0 ms", "from the stored summary (no samples kept)")


def test_failed_unverified_and_misreported_points_are_shown_as_such() -> None:
    result = sweep(
        "threads",
        point(1, 1, (0.04,)),
        point(1, 2, (0.03,), verified=False, max_error=0.02, threads_in_use=1),
        Measurement(1, 4, "failed", error="timed out after 900 s"),
        Measurement(1, 8, "skipped", error="no 8 CPUs here"),
    )
    section = _section(result)
    cells = section.models[0].rows[0].cells
    assert [c.ok for c in cells if c is not None] == [True, True, False, False]
    assert cells[1] is not None and cells[1].unverified
    assert cells[1].flags == (
        "output does not match the reference (max error 0.02)",
        "the framework reports 1 threads in use, not 2",
        "load unknown",  # the point recorded no load figure: the page says so
    )
    assert cells[2] is not None and cells[2].reason == "failed: timed out after 900 s"
    assert cells[3] is not None and cells[3].reason == "skipped: no 8 CPUs here"
    assert section.models[0].headers == ("threads 1", "threads 2", "threads 4", "threads 8")


def _section(result: Result) -> SweepSection:
    sections, _ = sweep_sections([result], show_launcher=False)
    assert len(sections) == 1
    return sections[0]


def _only_cell(result: Result, x: int | None = None) -> SweepCell:
    model = _section(result).models[0]
    cell = model.rows[0].cells[model.xs.index(x) if x is not None else 0]
    assert cell is not None
    return cell


def test_golden_figures_match_a_recomputation_from_the_file() -> None:
    """The golden run's throughput table: every figure is batch / median(samples) of its point."""
    report = build_report(_golden())
    section = next(s for s in report.sweeps if s.scenario == "throughput")
    lenet = section.models[0]
    numpy_row = next(r for r in lenet.rows if r.label.startswith("cpu-numpy-openblas"))
    result = next(
        r
        for r in _golden().results
        if r.scenario == "throughput" and r.variant == "cpu-numpy-openblas" and r.model == "lenet5"
    )
    for p, cell in zip(result.points, numpy_row.cells, strict=True):
        ordered = sorted(p.samples_s)
        assert cell is not None and cell.value == f"{p.batch / ordered[len(ordered) // 2]:,.0f} img/s"


# --- scenarios: registered, custom, unknown -----------------------------------------------------


def test_registered_sweeps_use_their_report_spec() -> None:
    spec = sweep_spec("throughput", [sweep("throughput", point(1, 2, (0.01,)))])
    assert spec is not None and spec.registered and spec.spec == THROUGHPUT
    assert sweep_spec("latency", [sweep("latency")]) is None


def test_an_unregistered_scenario_with_points_renders_through_the_fallback() -> None:
    by_batch = sweep("memory", point(1, 2, (0.01,)), point(4, 2, (0.02,)), identity=("batches",))
    by_threads = sweep("scaling2", point(1, 1, (0.02,)), point(1, 2, (0.01,)), identity=("thread_counts",))
    spec = sweep_spec("memory", [by_batch])
    assert spec is not None and not spec.registered
    assert (spec.spec.x, spec.spec.y, spec.spec.log2_x, spec.spec.ideal) == ("batch", "images_per_s", True, False)
    threads_spec = sweep_spec("scaling2", [by_threads])
    assert threads_spec is not None and (threads_spec.spec.x, threads_spec.spec.y) == ("threads", "speedup")
    run = Run(GOLDEN_RUN, None, (by_batch, by_threads), ())
    report = build_report(run)
    assert [s.spec.title for s in report.sweeps] == [
        "Scenario memory: images/s over batch size",
        "Scenario scaling2: speedup over thread count",
    ]
    markdown = render_markdown(report)
    assert "## Scenario memory: images/s over batch size" in markdown
    assert "| batch size 1 " in markdown and "**200 img/s**" in markdown
    assert "| threads 2 " in markdown and "**2.00×**" in markdown
    html = render_html(report)
    assert html.count("<svg") == 2 and "linear scaling" in html


def test_an_unregistered_scenario_without_points_is_noted_not_drawn() -> None:
    odd = sweep("mystery", identity=())
    report = build_report(Run(GOLDEN_RUN, None, (odd,), ()))
    assert report.sweeps == () and report.matrix == ()
    assert "1 result(s) of scenario 'mystery' have no points to show: not shown" in report.notes
    assert "No untransformed latency cell in this run" in render_markdown(report)
    render_html(report)  # and nothing crashes


def test_a_scenario_registered_later_brings_its_own_spec() -> None:
    spec = ReportSpec("Warm-up curve", "Fixture scenario for a test.", "batch", "batch", "images_per_s", "img/s")
    with SCENARIOS.temporary():
        SCENARIOS.register("warmup", Scenario("warmup", "test", ThroughputConfig, lambda *a: a[3], spec))
        report = build_report(Run(GOLDEN_RUN, None, (sweep("warmup", point(2, 2, (0.01,))),), ()))
    assert [(s.spec.title, s.registered) for s in report.sweeps] == [("Warm-up curve", True)]
    assert "warmup" not in SCENARIOS


def test_fallback_spec_names_the_scenario() -> None:
    assert fallback_spec("x", by_threads=True).title == "Scenario x: speedup over thread count"


# --- the latency views ignore sweeps ------------------------------------------------------------


def test_latency_views_ignore_sweep_results() -> None:
    run = _golden()
    sweeps = [r for r in run.results if r.scenario != "latency"]
    assert len(sweeps) == 16
    # Tempt every latency view: give the sweeps top-level samples as if they were latency cells.
    tempting = tuple(r.with_flat(samples_s=r.points[0].samples_s, stats=r.points[0].stats) for r in sweeps)
    latency_only = build_report(replace(run, results=tuple(r for r in run.results if r.scenario == "latency")))
    mixed = build_report(replace(run, results=(*run.results, *tempting)))
    assert all(v.result.scenario == "latency" for v in mixed.cells)
    assert len(mixed.cells) == len(latency_only.cells) == 63
    assert _latency_part(render_markdown(mixed)) == _latency_part(render_markdown(latency_only))
    assert [len(g.comparisons) for g in mixed.groups] == [len(g.comparisons) for g in latency_only.groups]
    assert len(mixed.sweeps) == 2 and latency_only.sweeps == ()


def _latency_part(markdown: str) -> str:
    """Matrix, per-model tables and comparisons: from '## Matrix' to the first section after them."""
    start = markdown.index("## Matrix")
    end = min(markdown.index(h, start) for h in ("## Throughput", "## Environment") if h in markdown[start:])
    return markdown[start:end]


def test_a_run_of_sweeps_only_renders(tmp_path: Path) -> None:
    report = build_report(load_run(sweeps_only_run(tmp_path)))
    assert report.cells == () and report.matrix == () and report.groups == ()
    markdown = render_markdown(report)
    assert "No untransformed latency cell in this run" in markdown and "## Per model" not in markdown
    assert "## Throughput over batch size" in markdown and "## Thread scaling" in markdown
    html = render_html(report)
    assert 'id="latency"' not in html and 'id="sweep-0"' in html and 'id="sweep-1"' in html


def _tempting(run: Run) -> Run:
    """The run plus copies of its sweep cells (the golden run's) given top-level samples, as if latency."""
    sweeps = [r for r in _golden().results if r.scenario != "latency"]
    extra = tuple(r.with_flat(samples_s=r.points[0].samples_s, stats=r.points[0].stats) for r in sweeps)
    return replace(run, results=(*run.results, *extra))


def test_history_takes_latency_cells_only_and_joins_schema_1_runs() -> None:
    names = ("fixture-a3", "fixture-a2", "fixture-a1")  # newest first
    runs = [_tempting(load_run(RUNS / n)) if n != "fixture-a1" else load_run(RUNS / n) for n in names]
    (machine,) = group_machines([SiteRun(run, run.run_id) for run in runs])
    built = build_machine(machine)
    changes = [(m.model, c.title, c.runs) for m in built.models for c in m.changes]
    assert ("vgg16", "cpu-torch / eager (docker)", 3) in changes  # schema 1 (a1) and 2 (a2, a3): one cell
    assert ("vgg16", "cpu-mxnet-openblas / hybrid (docker)", 2) in changes  # it failed in a2
    a3_latency = [r for r in runs[0].results if r.scenario == "latency"]
    assert len(changes) == len(a3_latency)  # a3's cells, each with a history; no sweep among them


# --- the chart ----------------------------------------------------------------------------------


def test_sweep_chart_is_deterministic_with_log2_ticks_and_the_ideal_line() -> None:
    report = build_report(_golden())
    threads = next(s for s in report.sweeps if s.scenario == "threads")
    drawn = report_charts(report)
    assert len(drawn.sweeps) == 2 and set(drawn.sweeps[0]) == {"lenet5", "mobilenet_v1"}
    assert report_charts(report).sweeps == drawn.sweeps
    svg = str(drawn.sweeps[1]["lenet5"])
    assert "linear scaling" in svg and "speedup over 1 thread" in svg
    assert all(i.startswith("sw1m0-") for i in re.findall(r'\bid="([^"]+)"', svg))
    lines = [row.line for row in threads.models[0].rows]
    linear = charts.sweep_chart(lines, x_label="threads", y_label="s", log2_x=False, ideal=False, prefix="t")
    assert "linear scaling" not in linear and "(log 2 scale)" not in linear
    batch_svg = str(drawn.sweeps[0]["lenet5"])
    assert "batch size (log 2 scale)" in batch_svg
    for tick in ("1", "4", "16", "64"):
        assert f">{tick}</text>" in batch_svg or f"{tick} </text>" in batch_svg or f">{tick}<" in batch_svg
    assert "output does not match the reference" in batch_svg  # the unverified point is ringed and named
