"""Trust in every figure, on the pages: the validity verdict in the matrix and the per-model tables, the opening
(the machine by its fingerprint, the fastest valid cells, the framework x model heatmap), latency against peak
memory, float32 cells above the float32 GEMM peak, skips gathered by reason, and "load unknown".

``fixture-v1`` (``tests/fixtures/make_validity_fixtures.py``: test data, every cell judged by
``frameworks.validity``) has an invalid cell of each kind, a float32 cell above the peak and a bf16 one that must
not be flagged, every CUDA cell skipped for one reason and every cell of an unavailable variant for another.
Refresh its golden file after an intended change (then read the diff before committing it):

    UPDATE_GOLDEN=1 python -m pytest tests/test_reports_validity.py
"""

from __future__ import annotations

import difflib
import math
import os
import re
from dataclasses import replace
from pathlib import Path

import pytest

from frameworks.result import Measurement, Peak, Result, Stats, Transformed
from frameworks.validity import judge
from reports import render_run
from reports.charts import memory_chart
from reports.content import Report, build_report
from reports.gemm import above_peak, above_peak_text, computes_in_float32, peak_text, run_peak
from reports.heatmap import HEAT_SPAN, NO_VALID, NONE_RAN, heat_colour
from reports.html import render_html
from reports.load import Run, load_run
from reports.markdown import escape, render_markdown
from reports.memory import MemoryPoint, pareto_front
from reports.skips import gathered, groups_by_reason
from reports.summary import NO_RECORD, features, machine_name, timing, verdict_counts
from reports.verdicts import (
    INVALID,
    LOAD_UNKNOWN,
    NOT_JUDGED,
    NOT_RUN,
    VALID,
    load_text,
    shown_warnings,
    trust_flags,
    verdict_of,
)
from tests.fixtures.make_report_fixtures import CPU_EPYC, HOSTILE
from tests.fixtures.make_validity_fixtures import COMMIT, MACHINE, NO_NVIDIA, OWN_SKIP, PEAK_GFLOPS, UNAVAILABLE
from tests.test_reports_html import Page, assert_inert
from tests.test_reports_markdown import _sections, _tables

FIXTURES = Path(__file__).parent / "fixtures" / "reports"
RUN_DIR = FIXTURES / "runs" / "fixture-v1"
GOLDEN = FIXTURES / "golden" / "fixture-v1.md"
UNESCAPED_PIPE = re.compile(r"(?<!\\)\|")


@pytest.fixture(scope="module")
def run() -> Run:
    return load_run(RUN_DIR)


@pytest.fixture(scope="module")
def report(run: Run) -> Report:
    return build_report(run)


@pytest.fixture(scope="module")
def markdown(report: Report) -> str:
    return render_markdown(report)


def cell_of(run: Run, variant: str, mode: str, model: str, scenario: str = "latency") -> Result:
    return next(r for r in run.results if (r.variant, r.mode, r.model, r.scenario) == (variant, mode, model, scenario))


def test_golden_markdown(markdown: str) -> None:
    if os.environ.get("UPDATE_GOLDEN"):
        GOLDEN.write_text(markdown, encoding="utf-8")
    expected = GOLDEN.read_text(encoding="utf-8")
    if markdown != expected:
        diff = difflib.unified_diff(expected.splitlines(), markdown.splitlines(), "golden", "rendered", lineterm="")
        pytest.fail("report.md differs from the golden (UPDATE_GOLDEN=1 to accept):\n" + "\n".join(list(diff)[:60]))


def test_the_page_opens_with_what_a_reader_acts_on(markdown: str) -> None:
    sections = list(_sections(markdown))
    assert sections[:3] == ["At a glance", "Matrix", "Per model"]
    glance = _sections(markdown)["At a glance"]
    assert (
        glance.index("### This machine")
        < glance.index("### Fastest valid cell")
        < glance.index("### Each framework against the fastest")
    )


def test_the_machine_is_named_by_its_fingerprint_not_its_model_string(report: Report, markdown: str) -> None:
    assert report.opening is not None
    machine = report.opening.machine
    assert machine.name == "AMD family 25 model 17 stepping 1" and "EPYC" not in machine.name
    assert machine.fingerprint == MACHINE.fingerprint
    states = {f.flag: f.state for f in machine.features}
    assert states == {
        "avx2": "present",
        "avx512f": "present",
        "avx512_vnni": "present",
        "avx_vnni": "absent",
        "avx512_bf16": "present",
        "amx_tile": "absent",
        "amx_int8": "absent",
        "amx_bf16": "absent",
    }
    facts = {f.label: f.value for f in machine.facts}
    assert facts["CPU model (as the OS names it)"] == CPU_EPYC  # a detail, not the name
    assert facts["Cores, threads"] == "4 cores, 8 threads, 1 socket, under KVM"
    assert facts["CPU governor, boost"] == "governor performance, boost off"
    assert facts["Measured by"] == f"version 0.6.0, commit {COMMIT}"
    assert facts["float32 GEMM peak"].startswith("180 GFLOP/s float32 (mkl sgemm, 3072×3072, 2 threads")
    assert report.subtitle.startswith(f"AMD family 25 model 17 stepping 1, fingerprint {MACHINE.fingerprint}")
    glance = _sections(markdown)["At a glance"]
    for needle in (f"| Fingerprint                    | {MACHINE.fingerprint} ", "avx512_vnni present, avx_vnni absent",
                   "| Cells                          | 21 valid, 6 invalid, 1 failed, 16 skipped "):  # fmt: skip
        assert needle in glance, needle


def test_a_run_without_a_machine_record_says_so() -> None:
    report = build_report(load_run(FIXTURES / "runs" / "fixture-a2"))
    assert report.opening is not None
    machine = report.opening.machine
    assert machine.fingerprint == NO_RECORD and not machine.features_recorded
    assert all(f.state == "not recorded" for f in features(None))
    facts = {f.label: f.value for f in machine.facts}
    assert facts["Measured by"].startswith("not recorded") and facts["CPU governor, boost"].startswith("not recorded")
    assert facts["float32 GEMM peak"] == "96.5 GFLOP/s float32 (library, size and threads not recorded)"


def test_machine_name_words_the_vendor() -> None:
    assert machine_name(MACHINE) == "AMD family 25 model 17 stepping 1"
    assert machine_name(replace(MACHINE, vendor="SomeVendor")).startswith("SomeVendor family 25")


def test_the_fastest_valid_cell_skips_invalid_ones(report: Report, run: Run) -> None:
    assert report.opening is not None
    rows = {(r.model, r.scenario): r for r in report.opening.fastest}
    lenet = rows[("LeNet-5", "latency")]
    faster_but_invalid = cell_of(run, "cpu-onnxruntime", "session", "lenet5")  # 0.145 ms, its load unknown
    assert faster_but_invalid.valid is False
    assert (lenet.label, lenet.median, lenet.framework) == ("cpu-torch / compile", "0.155", "PyTorch 2.13.0")
    assert lenet.interval == "0.155–0.156" and not lenet.flag
    # a sweep: its fastest valid point (ONNX Runtime's batch 16 ran beside other load)
    sweep = next(r for r in report.opening.fastest if r.scenario.startswith("throughput"))
    assert sweep.scenario == "throughput, best at batch 4" and sweep.label == "cpu-onnxruntime / session"
    vgg = rows[("VGG-16", "latency")]
    assert vgg.label == "cpu-torch / compile" and vgg.flag == "above the float32 GEMM peak: 122.8% of it"
    assert [r.model for r in report.opening.fastest] == ["LeNet-5", "LeNet-5", "VGG-16", "MobileNet v1"]


def test_no_valid_cell_is_said(run: Run) -> None:
    invalid = [judge(replace(r, points=tuple(replace(p, other_load=0.9) for p in r.points)))
               for r in run.results if r.model == "lenet5" and r.scenario == "latency"]  # fmt: skip
    report = build_report(Run(RUN_DIR, run.info, tuple(invalid), ()))
    assert report.opening is not None
    notes = [(r.model, r.note) for r in report.opening.fastest]
    assert notes == [("LeNet-5", "no valid cell: 9 cells ran, none valid")]
    assert report.opening.heatmap is not None
    assert {c.text for row in report.opening.heatmap.rows for c in row.cells} == {NO_VALID}


def test_heatmap_against_the_fastest_valid_cell(report: Report) -> None:
    assert report.opening is not None and report.opening.heatmap is not None
    heat = report.opening.heatmap
    assert heat.titles == ("LeNet-5", "VGG-16", "MobileNet v1")
    rows = {row.label: [c.text for c in row.cells] for row in heat.rows}
    assert rows["PyTorch"] == ["1.00×", "1.00× ⚠", "1.24×"]  # VGG-16's best cell is above the GEMM peak
    assert rows["ONNX Runtime"][0] == NO_VALID  # ran LeNet-5, its one cell invalid
    assert rows["MXNet"][1] == NONE_RAN  # its VGG-16 cell failed
    assert rows["NumPy"] == ["2.25×", "9.01×", "2.80×"]
    assert not any("cuda" in label or "Paddle" in label for label in rows)  # no cell of theirs ran: the skip list
    pytorch = next(row for row in heat.rows if row.label == "PyTorch")
    assert pytorch.cells[0].detail == "cpu-torch / compile: 0.155 ms/img"
    assert pytorch.cells[0].ratio == pytorch.cells[1].ratio == 1.0


def test_heat_colour_runs_green_to_red() -> None:
    assert heat_colour(1.0) != heat_colour(2.0) != heat_colour(HEAT_SPAN)
    assert heat_colour(HEAT_SPAN) == heat_colour(100 * HEAT_SPAN)  # the scale's far end
    assert heat_colour(0.5) == heat_colour(1.0)
    green, red = heat_colour(1.0), heat_colour(HEAT_SPAN)
    assert int(green[3:5], 16) > int(green[1:3], 16) and int(red[1:3], 16) > int(red[3:5], 16)
    reds = [int(heat_colour(r)[1:3], 16) for r in (1.0, 1.5, 2.0, 4.0, 8.0)]
    assert reds == sorted(reds)


def test_validity_in_the_matrix(report: Report, markdown: str) -> None:
    matrix = _sections(markdown)["Matrix"]
    assert "✗ **INVALID**: unknown load: no load figure for the measurement" in matrix
    assert "✗ **INVALID**: busy machine: other processes used 0.61 CPUs" in matrix
    assert "machine busy" not in matrix  # the warning says what the verdict says: not twice
    assert "✗ **INVALID**: output unverified (max error 0.012, tolerance 0.001)" in matrix
    assert "does not match the reference" not in matrix
    assert "throttled: 4 thermal throttle events" in matrix and "too few samples: 12 &lt; 20" in matrix
    assert matrix.count("<br>✓ valid") == 20  # 21 valid cells, one of them a sweep
    stars = [c for row in report.matrix for c in row.cells if c is not None and c.fastest]
    assert all(c.verdict.state == VALID for c in stars) and len(stars) == 3
    busy = next(c for row in report.matrix for c in row.cells
                if c is not None and c.view.result.other_load == 0.61)  # fmt: skip
    assert busy.recorded and busy.warnings == ()  # kept for the HTML's title, not shown twice


def test_above_the_float32_gemm_peak_is_flagged(run: Run, markdown: str) -> None:
    compiled = cell_of(run, "cpu-torch", "compile", "vgg16")
    share = above_peak(compiled, PEAK_GFLOPS)
    assert share is not None and math.isclose(share, 221.1 / 180.0, rel_tol=0.01)
    assert above_peak_text(share) == "above the float32 GEMM peak: 122.8% of it"
    bf16 = cell_of(run, "cpu-openvino", "auto", "vgg16")  # 309 GFLOP/s, but its build states bf16
    assert bf16.build["inference_precision"] == "bf16" and above_peak(bf16, PEAK_GFLOPS) is None
    assert above_peak(cell_of(run, "cpu-openvino", "f32", "vgg16"), PEAK_GFLOPS) is None  # below the peak
    assert above_peak(compiled, None) is None and above_peak(compiled, 250.0) is None
    pruned = replace(compiled, transform=Transformed(name="prune", config={"sparsity": "0.9"}))
    assert above_peak(pruned, PEAK_GFLOPS) is None and above_peak(replace(compiled, device="cuda"), 1.0) is None
    assert markdown.count("⚠ **above the float32 GEMM peak: 122.8% of it**") == 3  # fastest, matrix, per-model
    vgg = _sections(markdown)["Per model"].split("### VGG-16")[1].split("###")[0]
    assert "| 122.8%<br>⚠ **above the float32 GEMM peak: 122.8% of it** " in vgg
    assert "| 171.6% " in vgg and "171.6%<br>" not in vgg  # the share column stays; bf16 is not flagged


def test_computes_in_float32() -> None:
    base = Result("openvino", "f32", "vgg16", "cpu", "ok")
    assert computes_in_float32(base) and computes_in_float32(replace(base, build={"inference_precision": "f32"}))
    assert computes_in_float32(replace(base, build={"precision": "float32"}))
    assert not computes_in_float32(replace(base, build={"inference_precision": "bf16"}))
    assert not computes_in_float32(replace(base, build={"precision": "fp16"}))
    assert computes_in_float32(replace(base, transform=Transformed(name="none")))


def test_run_peak_prefers_the_peak_record(run: Run) -> None:
    info = run.info
    assert info is not None and run_peak(info) == PEAK_GFLOPS
    record = Peak(gflops=200.0, library="openblas", size=2048, threads=1, other_load=None)
    assert run_peak(replace(info, peak=record, matmul_peak_gflops=150.0)) == 200.0
    assert run_peak(replace(info, peak=None, matmul_peak_gflops=150.0)) == 150.0
    assert run_peak(replace(info, peak=None, matmul_peak_gflops=None)) is None and run_peak(None) is None
    assert peak_text(replace(info, peak=None, matmul_peak_gflops=None)) == "not measured"
    text = peak_text(replace(info, peak=record))
    assert text == "200 GFLOP/s float32 (openblas sgemm, 2048×2048, 1 thread, load unknown)"
    assert "measured 2 times: the machine was busy" in peak_text(info) and "onednn: libdnnl.so.3" in peak_text(info)


def test_per_model_tables_carry_what_trust_needs(report: Report) -> None:
    vgg = next(s for s in report.studies if s.model == "vgg16")
    rows = {r.cell: r for r in vgg.rows}
    ort = rows["cpu-onnxruntime / session"]  # 120 samples: a p99
    assert ort.p99 != "n/a" and ort.p90 != "n/a" and ort.verdict.state == VALID and ort.verdict.text == "yes"
    assert rows["cpu-torch / eager"].p99 == "n/a"  # 40 samples: none
    assert rows["cpu-torch / compile"].first_inference == "41,000"  # torch.compile's first call compiles
    assert rows["cpu-openvino / auto"].verdict.text == "no: output unverified (max error 0.012, tolerance 0.001)"
    assert re.fullmatch(r"±\d\.\d%", rows["cpu-torch / eager"].precision)
    assert rows["cpu-torch / eager"].peak_memory == "1.88 GiB" and rows["cpu-torch / eager"].load == "0.03 CPUs"
    lenet = next(s for s in report.studies if s.model == "lenet5")
    unknown = next(r for r in lenet.rows if r.cell == "cpu-onnxruntime / session")
    assert unknown.load == LOAD_UNKNOWN and unknown.peak_memory == "72.0 MiB"
    graph = next(r for r in lenet.rows if r.cell == "cpu-tensorflow / graph")
    assert graph.precision == "±33.2%" and graph.verdict.state == INVALID


def test_skips_shared_by_several_cells_are_gathered(report: Report, markdown: str) -> None:
    labels = [row.label for row in report.matrix]
    assert not any(label.startswith(("cuda-", "cpu-paddle")) for label in labels)  # rows of gathered skips only
    assert "cpu-tensorflow / xla" in labels
    assert [g.reason for g in report.skipped] == [f"skipped: {UNAVAILABLE}", f"skipped: {NO_NVIDIA}"]
    assert report.skipped[1].cells == ("cuda-onnxruntime / session (every model)", "cuda-torch / eager (every model)",
                                       "cuda-torch / compile (every model)")  # fmt: skip
    matrix = _sections(markdown)["Matrix"]
    assert matrix.count(escape(NO_NVIDIA)) == 1 and matrix.count(escape(UNAVAILABLE)) == 1
    assert f"**skipped**: {escape(OWN_SKIP)}" in matrix  # a reason of its own stays in its cell
    assert "**failed**: MXNetError: out of memory" in matrix


def test_gathered_takes_reasons_several_cells_share(run: Run) -> None:
    own = cell_of(run, "cpu-tensorflow", "xla", "mobilenet_v1")
    cuda = [r for r in run.results if r.variant == "cuda-torch"]
    assert gathered([own]) == set() and gathered(cuda) == {id(r) for r in cuda}
    assert gathered([own, replace(own, model="vgg16")]) != set()
    labels = {id(r): f"{r.variant} / {r.mode}" for r in cuda}
    groups = groups_by_reason(cuda[:2], labels, ("lenet5", "vgg16", "mobilenet_v1"))
    found = [(g.reason, g.cells) for g in groups]
    assert found == [(f"skipped: {NO_NVIDIA}", ("cuda-torch / eager (LeNet-5, VGG-16)",))]


def test_verdict_words() -> None:
    ok = Result("torch", "eager", "lenet5", "cpu", "ok", other_load=0.02)
    assert verdict_of(ok).state == NOT_JUDGED and verdict_of(replace(ok, status="skipped")).state == NOT_RUN
    assert verdict_of(replace(ok, valid=True)).text == "yes" and verdict_of(replace(ok, valid=True)).mark == "✓ valid"
    bad = replace(ok, valid=False, invalid_reasons=("output unverified", "too few samples: 3 < 20"), max_error=0.5)
    verdict = verdict_of(bad)
    assert verdict.reasons == ("output unverified (max error 0.5)", "too few samples: 3 < 20")
    assert verdict.text == "no: output unverified (max error 0.5); too few samples: 3 < 20"
    assert verdict.mark.startswith("✗ INVALID: output unverified")
    warnings = ("machine busy: other processes used 0.5 CPUs during the timed loop", "unstable: sd is 14% of the mean",
                "something else")  # fmt: skip
    busy = verdict_of(replace(ok, valid=False, invalid_reasons=("busy machine: other processes used 0.50 CPUs",)))
    assert shown_warnings(warnings, busy) == warnings[1:]
    imprecise = verdict_of(replace(ok, valid=False, invalid_reasons=("precision not reached: median +-3% at 95%",)))
    assert shown_warnings(warnings, imprecise) == (warnings[0], warnings[2])
    assert shown_warnings(warnings, verdict_of(replace(ok, valid=True))) == warnings  # valid: every warning stands


def test_load_unknown_is_said_once() -> None:
    unjudged = Result("torch", "eager", "lenet5", "cpu", "ok", warnings=("w",))
    assert trust_flags(unjudged, ["w"]) == ("w", LOAD_UNKNOWN)
    judged = replace(unjudged, valid=False, invalid_reasons=("unknown load: no load figure for the measurement",))
    assert trust_flags(judged, ["w"]) == ("INVALID: unknown load: no load figure for the measurement", "w")
    assert trust_flags(replace(unjudged, other_load=0.1), ["w"]) == ("w",)
    assert trust_flags(replace(unjudged, status="failed"), []) == ()
    assert load_text(None) == LOAD_UNKNOWN and load_text(0.125) == "0.12 CPUs"


def test_a_sweep_point_shows_its_verdict(markdown: str) -> None:
    sweep = _sections(markdown)["Throughput over batch size"]
    assert "⚠ INVALID: busy machine: other processes used 0.70 CPUs" in sweep and "machine busy" not in sweep


def test_pareto_front() -> None:
    assert pareto_front([]) == set() and pareto_front([(1.0, 1.0)]) == {0}
    assert pareto_front([(1.0, 5.0), (2.0, 2.0), (5.0, 1.0), (3.0, 3.0), (5.0, 5.0)]) == {0, 1, 2}
    assert pareto_front([(1.0, 1.0), (1.0, 1.0), (1.0, 2.0)]) == {0, 1}  # ties both on it; worse in one: off


def test_latency_against_memory(report: Report, markdown: str) -> None:
    assert report.memory is not None
    lenet = report.memory.models[0]
    assert [p.peak_bytes for p in lenet.points] == sorted(p.peak_bytes for p in lenet.points)
    front = {p.label for p in lenet.points if p.front}
    assert front == {"cpu-numpy-openblas / im2col", "cpu-openvino / auto", "cpu-torch / compile"}
    invalid = next(p for p in lenet.points if p.label == "cpu-onnxruntime / session")
    assert not invalid.valid and not invalid.front  # faster and smaller than some, but its median is not ranked
    section = _sections(markdown)["Latency against peak memory"]
    assert "| cpu-numpy-openblas / im2col | 0.350             | 60.0 MiB      | yes     | **yes**" in section


def test_memory_chart_scales_and_marks() -> None:
    points = [MemoryPoint("a / x", "torch", 1.0, 10 * 2**20, True, True),
              MemoryPoint("b / y", "numpy", 100.0, 2000 * 2**20, False, False),
              MemoryPoint("c / z", "numpy", 0.5, 20 * 2**20, True, True)]  # fmt: skip
    svg = memory_chart(points, prefix="t")
    assert "peak memory, MiB (log scale)" in svg and "median ms per image (log scale)" in svg
    assert "b / y (not valid)" in svg and "Pareto front" in svg and 'id="t-' in svg
    narrow = memory_chart(points[:1], prefix="u")
    assert "(log scale)" not in narrow and "Pareto front" not in narrow


def test_timing_from_samples_else_the_stored_summary() -> None:
    point = Measurement(batch=2, threads=1, status="ok", samples_s=(0.004, 0.002, 0.006))
    found = timing(point)
    assert found is not None and found.median_ms == 2.0 and (found.low_ms, found.high_ms) == (1.0, 3.0)
    stats = Stats(n=3, mean=0.004, sd=0.0, median=0.004, min=0.002, max=0.006, p90=None, p99=None,
                  median_ci_low=0.002, median_ci_high=0.006, ci_level=0.95)  # fmt: skip
    stored = timing(replace(point, samples_s=(), stats=stats))
    assert stored is not None and stored.median_ms == 2.0
    assert timing(replace(point, samples_s=())) is None


def test_verdict_counts() -> None:
    cells = [Result("t", "m", "x", "cpu", "ok", valid=True), Result("t", "m", "y", "cpu", "ok", valid=False),
             Result("t", "m", "z", "cpu", "ok"), Result("t", "m", "w", "cpu", "skipped")]  # fmt: skip
    assert verdict_counts(cells) == "1 valid, 1 invalid, 1 not judged, 1 skipped"
    assert verdict_counts([]) == "0 valid, 0 invalid"


def test_html_shows_the_opening_badges_and_charts(report: Report) -> None:
    html = render_html(report)
    page = Page(html)
    assert_inert(page)
    text = page.joined_text
    for needle in ("At a glance", "AMD family 25 model 17 stepping 1 · fingerprint", "✓ avx512_vnni", "✗ amx_int8",
                   "governor performance, boost off", "Each framework against the fastest", "1.00× ⚠",
                   "Cells that did not run, by reason", "Latency against peak memory", "load unknown"):  # fmt: skip
        assert needle in text, needle
    badges = [v for tag, name, v in page.attrs if tag == "span" and name == "class" and v.startswith("badge ")]
    assert badges.count("badge invalid") == 2 * 5 and badges.count("badge valid") == 2 * 20  # matrix + per model
    colours = [v for tag, name, v in page.attrs if tag == "td" and name == "style"]
    assert len(colours) == 14 and all(re.fullmatch(r"background: #[0-9a-f]{6}", c) for c in colours)
    titles = [v for _, name, v in page.attrs if name == "title"]
    assert any(t.startswith("recorded warnings: machine busy: other processes used 0.61 CPUs") for t in titles)
    assert page.tags.count("svg") == 3 + 3 + 3 + 3 + 1  # latency, samples, memory per model; 3 comparisons; sweep
    ids = [value for _, name, value in page.attrs if name == "id"]
    assert len(ids) == len(set(ids))


def hostile_run(run: Run) -> Run:
    """fixture-v1 with hostile verdict reasons, skip reasons and peak record: every new place they are shown."""
    info = run.info
    assert info is not None and info.peak is not None
    peak = replace(info.peak, library=HOSTILE, missing=(HOSTILE,))
    hostile_info = replace(info, peak=peak, project_version=HOSTILE, project_commit=HOSTILE,
                           host=replace(info.host, cpu_governor=HOSTILE, cpu_boost=HOSTILE))  # fmt: skip
    cells = []
    for r in run.results:
        if r.valid is False:
            r = replace(r, invalid_reasons=(HOSTILE, "output unverified"), warnings=(HOSTILE,))
        elif r.status == "skipped":
            r = replace(r, error=HOSTILE)
        cells.append(r)
    return Run(run.run_dir, hostile_info, tuple(cells), ())


def test_hostile_strings_in_the_new_places(run: Run) -> None:
    report = build_report(hostile_run(run))
    text = render_markdown(report)
    assert "<script" not in text.lower() and re.search(r"(?<!\\)\]\(javascript", text) is None
    escaped = escape(HOSTILE)
    for needle in (f"✗ **INVALID**: {escaped}; output unverified", f"- **skipped: {escaped}**",
                   f"governor {escaped}, boost {escaped}", f"version {escaped}, commit {escaped}"):  # fmt: skip
        assert needle in text, needle
    for block in _tables(text):
        assert len({len(UNESCAPED_PIPE.findall(line)) for line in block}) == 1, block[0][:200]
    html = render_html(report)
    page = Page(html)
    assert_inert(page)
    assert "<script" not in html.lower()
    one_line = " ".join(HOSTILE.split())
    assert f"recorded warnings: {HOSTILE}" in [v for _, name, v in page.attrs if name == "title"]
    assert f"skipped: {one_line}" in page.joined_text and "INVALID" in page.joined_text


def test_render_run_writes_both(tmp_path: Path) -> None:
    paths = render_run(RUN_DIR, tmp_path)
    assert paths[0].read_text(encoding="utf-8") == GOLDEN.read_text(encoding="utf-8")
    assert "At a glance" in paths[1].read_text(encoding="utf-8")


def test_memory_and_precision_formats() -> None:
    from reports import fmt

    assert fmt.memory(212 * 2**20) == "212 MiB" and fmt.memory(2**30) == "1.00 GiB"
    assert fmt.memory(1536 * 2**20) == "1.50 GiB"
    assert fmt.plus_minus(0.0083) == "±0.8%" and fmt.plus_minus(0.332) == "±33.2%"


def test_a_comparison_with_an_invalid_side_says_so() -> None:
    """The verdict reaches the comparisons: a ratio between an invalid cell and a valid one is marked."""
    from dataclasses import replace as _replace

    from reports import load_run
    from reports.compare import find_comparisons

    run = load_run(Path(__file__).parent / "fixtures" / "reports" / "runs" / "fixture-a2")
    comparisons, _ = find_comparisons(run.results)
    assert comparisons and all(c.significance in ("yes", "no") for c in comparisons if not c.invalid_sides)
    marked = [c for c in comparisons if c.invalid_sides]
    assert marked and all("(invalid " in c.significance for c in marked)
    one = comparisons[0]
    flipped = _replace(one, baseline=_replace(one.baseline, valid=False), candidate=_replace(one.candidate, valid=True))
    assert flipped.invalid_sides == ("baseline",) and flipped.significance.endswith("(invalid baseline)")
