"""``render_run``: the runner's entry point; a pure function of result files."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from reports import render_run
from reports.cells import figures
from reports.content import build_report
from reports.html import render_html, report_charts
from reports.load import load_run
from tests.conftest import REPO_ROOT

RUNS = Path(__file__).parent / "fixtures" / "reports" / "runs"
# Nothing that measures, talks to Docker, or is a deep-learning framework (or SciPy: not at run time).
FORBIDDEN = ("docker", "torch", "tensorflow", "keras", "mxnet", "onnxruntime", "onnx", "jax", "scipy", "runner")
FORBIDDEN_FRAMEWORK_MODULES = ("frameworks.harness", "frameworks.weights", "frameworks.peak", "frameworks.backends.")


def test_default_output_is_the_run_directory(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    shutil.copytree(RUNS / "fixture-b1", run_dir)
    paths = render_run(run_dir)
    assert paths == [run_dir / "report.md", run_dir / "report.html"]
    assert all(p.stat().st_size > 0 for p in paths)
    assert sorted(p.name for p in run_dir.iterdir()) == ["report.html", "report.md", "results.jsonl", "run.json"]


def test_rendering_imports_no_framework_and_no_docker(tmp_path: Path) -> None:
    code = f"""
import json, sys
from pathlib import Path
from reports import publish_site, render_run
render_run(Path({str(RUNS / "fixture-b1")!r}), Path({str(tmp_path / "out")!r}))
publish_site([Path({str(RUNS / "fixture-b1")!r})], Path({str(tmp_path / "site")!r}))
print(json.dumps(sorted(sys.modules)))
"""
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=True)
    modules = json.loads(done.stdout.splitlines()[-1])
    assert [m for m in modules if m.split(".")[0] in FORBIDDEN] == []
    assert [
        m for m in modules if m.startswith(FORBIDDEN_FRAMEWORK_MODULES) and m != "frameworks.backends.registry"
    ] == []


def test_log_scale_option() -> None:
    report = build_report(load_run(RUNS / "fixture-b1"))
    forced = report_charts(report, log_scale=True).latency
    linear = report_charts(report, log_scale=False).latency
    assert all("(log scale)" in str(svg) for svg in forced.values())
    assert not any("(log scale)" in str(svg) for svg in linear.values())


def test_html_is_deterministic() -> None:
    report = build_report(load_run(RUNS / "fixture-b1"))
    assert render_html(report) == render_html(report)


def test_figures_come_from_the_samples() -> None:
    result = next(r for r in load_run(RUNS / "fixture-b1").results if r.model == "vgg16")
    figs = figures(result)
    assert figs is not None
    ordered = sorted(result.samples_s)
    middle = (ordered[12] * 1e3) if len(ordered) == 25 else None
    assert figs.median_ms == middle
    assert figs.images_per_s == 1 / ordered[12]
    assert figs.gflops == result.flops / ordered[12] / 1e9
