"""The int8 section of the reports, on cells built here (test data, never measurements): no section without int8
cells, each int8 cell's speedup over its float32 cell with its interval and the slower ones marked, accuracy by
calibration size, the cells that did not run gathered by reason, and the HTML (charts, inert with hostile text).

Medians are far enough apart (2x either way) that the bootstrap interval of each ratio excludes 1 whatever the
fixture noise: the verdicts below do not hang on a seed.
"""

from __future__ import annotations

import hashlib
import random
import re
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest

from frameworks.backends.registry import INT8_KERNELS
from frameworks.models import MODELS, ModelSpec, fashion_mnist_network
from frameworks.result import Environment, Machine, Result, Transformed
from frameworks.scenarios.latency import LatencyConfig
from frameworks.stats import summarize
from reports.cells import per_image_samples
from reports.content import build_report, unshown_transforms
from reports.html import render_html
from reports.int8 import (
    FASTER,
    NO_ACCURACY,
    SLOWER,
    Int8Section,
    int8_section,
)
from reports.load import Run, load_run
from reports.markdown import INT8_TITLE, escape, render_markdown
from tests.fixtures.make_report_fixtures import (
    AVX2_FLAGS,
    BUILD,
    COMMON_FLAGS,
    CPU_B,
    HOSTILE,
    MACHINE_B,
    fixture_machine,
    host,
    iso,
    samples,
    version_of,
)
from tests.test_reports_html import Page, assert_inert
from tests.test_reports_markdown import _tables

NO_INT8 = Path(__file__).parent / "fixtures" / "reports" / "runs" / "fixture-a2"
TRAINED = LatencyConfig(iterations=25, warmup=3, weights="trained")  # type: ignore[arg-type]
CANONICAL = LatencyConfig(iterations=25, warmup=3)  # type: ignore[arg-type]
_LENET = fashion_mnist_network("lenet5")
assert _LENET is not None
LENET: ModelSpec = _LENET
VGG = MODELS["vgg16"]
AVX2_ONLY = fixture_machine("AuthenticAMD", 25, 1, "Fixture AVX2-only CPU (test data)", COMMON_FLAGS + AVX2_FLAGS,
                            ("L1d 32K", "L2 512K"), None)  # fmt: skip
START = datetime(2025, 4, 1, 9, 0, tzinfo=timezone.utc)
NO_KERNEL = "no int8 kernel ran: the session fell back to float kernels (fixture)"
NOT_ASKED = "does not run the int8 transform as asked: toolchain native (fixture)"
QDQ_KERNELS = "QLinearConv x2, QGemm x3 (ONNX Runtime profile) (fixture)"
QDQ_MADE = "the project's QDQ graph (frameworks.quantization) (fixture)"
# Fixture test accuracy of the LeNet-5 int8 cells by calibration size, and of its float32 cells.
ACCURACY = {"10": 0.8612, "100": 0.8790, "1000": 0.8821}
FLOAT_ACCURACY = 0.8841


def int8_record(spec: ModelSpec, calibration: str, toolchain: str = "qdq", calibrator: str = "minmax") -> Transformed:
    sha = hashlib.sha256(f"fixture-int8:{spec.name}".encode()).hexdigest()
    return Transformed(
        name="int8",
        config={"calibration": calibration, "toolchain": toolchain, "calibrator": calibrator},
        identity=("calibration", "toolchain", "calibrator"),
        weights_sha256=sha,
        source="trained" if spec.name == "lenet5" else "canonical",
        facts={"calibration_images": f"{calibration} fashion-mnist train (fixture)"},
    )


def environment(machine: Machine = MACHINE_B) -> Environment:
    return replace(host(CPU_B, machine), in_container=True)


def latency_cell(
    rng: random.Random,
    variant: str,
    mode: str,
    spec: ModelSpec,
    median_ms: float,
    *,
    transform: Transformed | None = None,
    accuracy: float | None = None,
    build: dict[str, str] | None = None,
    threads: int = 2,
    env: Environment | None = None,
) -> Result:
    """One ok latency cell at batch 1, as the harness would write it."""
    values = samples(rng, median_ms)
    stats = summarize(values)
    config = TRAINED if spec.name == "lenet5" else CANONICAL
    return Result.from_flat(
        framework=variant.split("-")[1],
        mode=mode,
        model=spec.name,
        device="cpu",
        status="ok",
        config=config.to_strings(),
        identity=config.identity_fields(),
        variant=variant,
        launcher="docker",
        version=version_of(variant),
        build={**BUILD[variant], **(build or {})},
        batch=1,
        input_shape=(1, *spec.input_shape),
        params=spec.params,
        flops=spec.flops,
        threads=threads,
        samples_s=values,
        stats=stats,
        accuracy=accuracy,
        verified=True,
        environment=env or environment(),
        started_at=iso(START),
        finished_at=iso(START + timedelta(seconds=5)),
        transform=transform,
    )


def skipped_cell(variant: str, mode: str, spec: ModelSpec, reason: str, transform: Transformed) -> Result:
    config = TRAINED if spec.name == "lenet5" else CANONICAL
    return Result(
        framework=variant.split("-")[1],
        mode=mode,
        model=spec.name,
        device="cpu",
        status="skipped",
        error=reason,
        config=config.to_strings(),
        identity=config.identity_fields(),
        variant=variant,
        launcher="docker",
        batch=1,
        input_shape=(1, *spec.input_shape),
        threads=2,
        environment=environment(),
        transform=transform,
    )


def int8_build(size: int, kernels: str = QDQ_KERNELS, made: str = QDQ_MADE) -> dict[str, str]:
    return {INT8_KERNELS: kernels, "int8_model": made, "model_bytes": str(size)}


def int8_results() -> list[Result]:
    """LeNet-5 in ONNX Runtime (float32, int8 qdq at three calibration sizes: twice as fast) and PyTorch (float32,
    native int8: twice as slow), VGG-16 in ONNX Runtime (canonical weights: no accuracy), and three int8 cells
    that did not run, two of them for one reason."""
    rng = random.Random(8)
    ort, torch = ("cpu-onnxruntime", "session"), ("cpu-torch", "eager")
    cells = [
        latency_cell(rng, *ort, LENET, 0.20, accuracy=FLOAT_ACCURACY),
        latency_cell(rng, *torch, LENET, 0.30, accuracy=FLOAT_ACCURACY),
        latency_cell(rng, *ort, VGG, 500.0),
    ]
    for size in ("10", "100", "1000"):
        cells.append(latency_cell(rng, *ort, LENET, 0.10, transform=int8_record(LENET, size),
                                  accuracy=ACCURACY[size], build=int8_build(70_000)))  # fmt: skip
    native = int8_record(LENET, "100", toolchain="native")
    cells.append(latency_cell(rng, *torch, LENET, 0.60, transform=native, accuracy=0.8801,
                              build=int8_build(90_000, "quantized::conv2d x2, quantized::linear x3 (fixture)",
                                               "torch PT2E (fixture)")))  # fmt: skip
    cells.append(latency_cell(rng, *ort, VGG, 260.0, transform=int8_record(VGG, "100"), build=int8_build(140_000_000)))
    cells += [
        skipped_cell("cpu-onnxruntime", "openvino", LENET, NO_KERNEL, int8_record(LENET, "100")),
        skipped_cell("cpu-onnxruntime", "openvino", VGG, NO_KERNEL, int8_record(VGG, "100")),
        skipped_cell("cpu-numpy-openblas", "im2col", LENET, NOT_ASKED, native),
    ]
    return cells


def as_run(results: list[Result]) -> Run:
    """A run of these cells alone, as ``load_run`` would give it (no run.json: nothing here reads one)."""
    return Run(run_dir=Path("int8-fixture"), info=None, results=tuple(results), problems=())


@pytest.fixture(scope="module")
def results() -> list[Result]:
    return int8_results()


@pytest.fixture(scope="module")
def section(results: list[Result]) -> Int8Section:
    found = int8_section(results, show_launcher=False)
    assert found is not None
    return found


def _int8_part(markdown: str) -> str:
    return markdown[markdown.index(INT8_TITLE) : markdown.index("## Environment")]


def test_no_section_without_int8_cells(results: list[Result]) -> None:
    assert build_report(load_run(NO_INT8)).int8 is None
    plain = [r for r in results if r.transform is None]
    report = build_report(as_run(plain))
    assert report.int8 is None and int8_section(plain, show_launcher=False) is None
    assert "Int8" not in render_markdown(report) and 'id="int8"' not in render_html(report)


def test_int8_cells_stay_out_of_the_matrix_and_the_unshown_note(results: list[Result]) -> None:
    report = build_report(as_run(results))
    assert all(v.result.transform is None for v in report.cells) and len(report.cells) == 3
    assert unshown_transforms(results) == []  # the section shows them: no "no section shows them" note
    assert not any("int8" in n for n in report.notes)


def test_the_cpu_features_line(section: Int8Section, results: list[Result]) -> None:
    assert [m.features for m in section.machines] == [
        (("AVX2", "present"), ("AVX512-VNNI", "present"), ("AVX-VNNI", "absent"), ("AMX-INT8", "absent"))
    ]
    assert MACHINE_B.fingerprint in section.machines[0].machine and "AVX512-VNNI" in section.machines[0].verdict
    slow_cpu = [replace(r, environment=environment(AVX2_ONLY)) for r in results]
    other = int8_section(slow_cpu, show_launcher=False)
    assert other is not None and "No VNNI or AMX" in other.machines[0].verdict
    markdown = _int8_part(render_markdown(build_report(as_run(results))))
    assert "**CPU int8 features:** " in markdown and "AVX2 present, AVX512-VNNI present, AVX-VNNI absent" in markdown


def test_speedup_with_its_interval_and_the_slower_mark(section: Int8Section, results: list[Result]) -> None:
    rows = {(r.label, r.model, r.toolchain, r.calibration): r for r in section.rows}
    assert len(section.rows) == 5  # the ok int8 cells; the skipped ones are listed apart
    fast = rows[("cpu-onnxruntime / session", "LeNet-5", "qdq", "100")]
    base = next(r for r in results if r.transform is None and r.framework == "onnxruntime" and r.model == "lenet5")
    cell = next(r for r in results if r.transform is not None and r.framework == "onnxruntime"
                and r.model == "lenet5" and r.transform.config["calibration"] == "100")  # fmt: skip
    assert fast.speedup is not None
    assert fast.speedup.ratio == pytest.approx(float(np.median(per_image_samples(base)) /
                                                     np.median(per_image_samples(cell))))  # fmt: skip
    assert 1.0 < fast.speedup.ci_low <= fast.speedup.ratio <= fast.speedup.ci_high
    assert fast.verdict == FASTER and not fast.slower and fast.ratio == f"{fast.speedup.ratio:.2f}×"
    assert fast.kernels == QDQ_KERNELS and fast.size == "70,000"
    assert fast.float_size == f"{4 * LENET.params:,} (params x 4)"  # the float32 cell states no model_bytes
    assert fast.size_share == f"{100 * 70_000 / (4 * LENET.params):.1f}%"
    slow = rows[("cpu-torch / eager", "LeNet-5", "native", "100")]
    assert slow.speedup is not None and slow.speedup.ratio < 1 and slow.speedup.ci_high < 1
    assert slow.slower and slow.verdict == SLOWER and section.any_slower
    assert [r.slower for r in section.rows].count(True) == 1
    markdown = _int8_part(render_markdown(build_report(as_run(results))))
    line = next(ln for ln in markdown.splitlines() if ln.startswith("| cpu-torch / eager"))
    assert f"**{slow.ratio}**" in line and "**⚠ SLOWER THAN FLOAT32**" in line and slow.interval in line
    assert "⚠ **1 int8 cell(s) slower than float32" in markdown
    assert "torch PT2E (fixture)" in markdown and escape(QDQ_MADE) in markdown


def test_pairs_only_at_the_same_threads(results: list[Result]) -> None:
    moved = [replace(r, threads=4) if r.transform is None and r.framework == "torch" else r for r in results]
    found = int8_section(moved, show_launcher=False)
    assert found is not None
    torch = next(r for r in found.rows if r.label == "cpu-torch / eager")
    assert torch.speedup is None and torch.ratio == "—" and not torch.slower
    assert any("no float32 cell of the same variant, mode, batch and threads" in n for n in found.notes)


def test_accuracy_by_calibration_size(section: Int8Section, results: list[Result]) -> None:
    assert [m.model for m in section.models] == ["lenet5"]
    lenet = section.models[0]
    assert lenet.sizes == ("10", "100", "1000")
    rows = {r.label: r for r in lenet.rows}
    ort = rows["cpu-onnxruntime / session · qdq · minmax"]
    assert ort.values == tuple(f"{100 * ACCURACY[s]:.2f}%" for s in ("10", "100", "1000"))
    assert ort.reference == f"{100 * FLOAT_ACCURACY:.2f}%"
    assert rows["cpu-torch / eager · native · minmax"].values == ("—", "88.01%", "—")
    line = next(ln for ln in lenet.lines if ln.label.startswith("cpu-onnxruntime"))
    assert line.xs == (10.0, 100.0, 1000.0) and line.ys == pytest.approx([100 * ACCURACY[s] for s in ACCURACY])
    assert [r.label for r in lenet.references] == ["cpu-onnxruntime / session float32", "cpu-torch / eager float32"]
    assert [r.value for r in lenet.references] == pytest.approx([100 * FLOAT_ACCURACY] * 2)
    assert section.accuracy_note == f"VGG-16: test accuracy {NO_ACCURACY}"
    markdown = _int8_part(render_markdown(build_report(as_run(results))))
    assert "| 10 images " in markdown and "| 1000 images " in markdown and "| float32 " in markdown
    assert f"VGG-16: test accuracy {escape(NO_ACCURACY)}." in markdown


def test_skipped_cells_gathered_by_reason(section: Int8Section, results: list[Result]) -> None:
    groups = {g.reason: g.cells for g in section.skipped}
    assert set(groups) == {f"skipped: {NO_KERNEL}", f"skipped: {NOT_ASKED}"}
    assert groups[f"skipped: {NO_KERNEL}"] == (
        "cpu-onnxruntime / openvino · LeNet-5 · qdq minmax 100",
        "cpu-onnxruntime / openvino · VGG-16 · qdq minmax 100",
    )
    markdown = _int8_part(render_markdown(build_report(as_run(results))))
    assert "### Int8 cells that did not run" in markdown
    assert f"- **skipped: {escape(NO_KERNEL)}**: cpu-onnxruntime / openvino · LeNet-5 · qdq minmax 100; " in markdown


def test_html_has_the_section_and_stays_inert(results: list[Result]) -> None:
    html = render_html(build_report(as_run(results)))
    page = Page(html)
    assert_inert(page)
    ids = [value for _, name, value in page.attrs if name == "id"]
    assert len(ids) == len(set(ids))
    assert '<a href="#int8">Int8 quantization</a>' in html
    start = html.index('<section id="int8">')
    part = html[start : html.index("</section>", start)]
    assert part.count("<svg") == 1 and "test accuracy (%)" in part and "calibration images" in part
    assert part.count('<tr class="int8-slower">') == 1 and "⚠ slower than float32" in part
    text = Page(part).joined_text
    for needle in ("AVX512-VNNI present", "AMX-INT8 absent", QDQ_KERNELS, f"skipped: {NO_KERNEL}",
                   f"VGG-16: test accuracy {NO_ACCURACY}.", "cpu-onnxruntime / session float32"):  # fmt: skip
        assert needle in text, needle


def test_hostile_strings_in_int8_cells(results: list[Result]) -> None:
    hostile = [
        replace(r, build={**r.build, INT8_KERNELS: HOSTILE, "int8_model": HOSTILE}) if r.status == "ok" else r
        for r in results
    ]
    hostile = [replace(r, error=HOSTILE) if r.status == "skipped" else r for r in hostile]
    report = build_report(as_run(hostile))
    part = _int8_part(render_markdown(report))
    assert "<script" not in part.lower() and escape(HOSTILE) in part and f"**skipped: {escape(HOSTILE)}**" in part
    for block in _tables(part):  # no cell split by a '|' from the data
        assert len({len(re.findall(r"(?<!\\)\|", line)) for line in block}) == 1, block[0][:200]
    page = Page(render_html(report))
    assert_inert(page)
    assert f"skipped: {' '.join(HOSTILE.split())}" in page.joined_text
