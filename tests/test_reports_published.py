"""The answered comparison's published table beside ours (reports/published.py, reports/data/published.toml).

The published figures are data: these tests read every expected number from the data file itself, and
check that the section puts them beside our medians, with the build-variant ratios side by side; that
an unavailable variant's row shows the attempt's error; and that both renderers escape it.
"""

from __future__ import annotations

import random
from datetime import datetime, timezone
from typing import Any

import pytest
import tomllib

from frameworks.result import Result
from frameworks.stats import summarize
from reports import fmt
from reports.markdown import _published
from reports.published import DATA, PublishedError, load_published, parse_published, published_section
from runner.catalog import load_catalog
from tests.fixtures.make_report_fixtures import cell

WHEN = datetime(2026, 1, 5, 9, 0, tzinfo=timezone.utc)


def ours(variant: str, mode: str, model: str, seconds: float) -> Result:
    """A batch-1 CPU latency cell of ``variant``/``mode`` whose every sample is ``seconds`` (median exact)."""
    base = cell(random.Random(0), "cpu-numpy-openblas", "im2col", model, when=WHEN, cpu_model="Fixture CPU")
    values = (seconds,) * 5
    catalog_variant = load_catalog().variants[variant]
    return base.with_flat(variant=variant, mode=mode, framework=catalog_variant.framework, samples_s=values,
                   warmup_s=values[:1], stats=summarize(values), build={})  # fmt: skip


def skipped(variant: str, mode: str, model: str, reason: str) -> Result:
    return (ours(variant, mode, model, 1.0)).with_flat(status="skipped", error=reason, samples_s=(), stats=None)


def raw() -> dict[str, Any]:
    return tomllib.loads(DATA.read_text(encoding="utf-8"))


def test_data_file_names_its_sources_and_only_catalog_variants() -> None:
    data = load_published()
    assert data.sources and all(s.title and s.machine and s.protocol and s.year for s in data.sources)
    variants = load_catalog().variants
    for line in data.lines:
        if line.ours is not None:
            variant, mode = line.ours
            assert variant in variants and mode in variants[variant].modes, line.id
        else:
            assert line.ours_note, f"{line.id}: no counterpart and no reason"
    for ratio in data.ratios:
        for variant, mode in ratio.ours:
            assert mode in variants[variant].modes, ratio.title


def test_caffe_rows_show_theirs_beside_ours_and_the_ratio_side_by_side() -> None:
    data = load_published()
    results = [
        ours("cpu-caffe-atlas", "net", "vgg16", 8.0),
        ours("cpu-caffe-mkl", "net", "vgg16", 2.0),
        ours("cpu-caffe-atlas", "net", "mobilenet_v1", 0.3),
        ours("cpu-caffe-mkl", "net", "mobilenet_v1", 0.1),
    ]
    section = published_section(results, data)
    assert section is not None
    assert "another CPU" in section.title and str(min(s.year for s in data.sources)) in section.title
    line = data.line("a-caffe-mkl")
    (row,) = [r for r in section.rows if r.label == line.label and r.source == "2017 article"]
    mean, sd = line.figures["vgg16"]
    assert row.theirs[0] == f"{fmt.sig(mean)} s (sd {fmt.sig(sd)})"
    assert row.ours_label == "cpu-caffe-mkl / net" and row.ours == (f"{fmt.sig(2.0)} s", f"{fmt.sig(0.1)} s")
    (ratio,) = [r for r in section.ratios if r.title == "Caffe: MKL over ATLAS"]
    base, cand = data.line("a-caffe-openblas"), data.line("a-caffe-mkl")
    assert ratio.published[0] == ("2017 article", tuple(
        fmt.ratio(base.figures[m][0] / cand.figures[m][0]) for m in data.models))  # fmt: skip
    assert ratio.ours == (fmt.ratio(4.0), fmt.ratio(3.0))


def test_an_unavailable_variant_shows_the_attempts_error() -> None:
    ideep = load_catalog().variants["cpu-chainer-ideep"]
    reason = ideep.unavailable_reason
    assert reason is not None
    results = [skipped("cpu-chainer-ideep", "ideep", m, reason) for m in ("vgg16", "mobilenet_v1")]
    results.append(ours("cpu-chainer-openblas", "numpy", "vgg16", 0.5))
    section = published_section(results)
    assert section is not None
    (row,) = [r for r in section.rows if r.ours_label == "cpu-chainer-ideep / ideep"]
    assert row.ours == (f"skipped: {reason}",) * 2
    (ratio,) = [r for r in section.ratios if r.title == "Chainer: iDeep over NumPy"]
    assert ratio.ours[0] == f"— (cpu-chainer-ideep / ideep: skipped: {reason})"


def test_no_published_model_in_the_run_means_no_section() -> None:
    assert published_section([ours("cpu-caffe-mkl", "net", "lenet5", 0.001)]) is None


def test_markdown_escapes_the_section() -> None:
    results = [skipped("cpu-caffe-atlas", "net", "vgg16", "a | b <script>")]
    text = _published(published_section(results))
    assert "a \\| b &lt;script&gt;" in text and "<script>" not in text
    assert text.startswith("## The published comparison (")


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d["rows"][0].update(vgg16="fast"), "rows"),
        (lambda d: d["rows"][0].update(source="nowhere"), "nowhere"),
        (lambda d: d["ratios"][0].update(published=[["a-caffe-mkl", "no-such-row"]]), "no-such-row"),
    ],
)
def test_a_malformed_data_file_is_one_clear_error(edit: Any, message: str) -> None:
    data = raw()
    edit(data)
    with pytest.raises(PublishedError, match=message):
        parse_published(data, "published.toml")


def test_html_escapes_the_section() -> None:
    from types import SimpleNamespace

    from reports.html import render_template

    results = [skipped("cpu-caffe-atlas", "net", "vgg16", "a | b <script>")]
    html = render_template("published.html.j2", report=SimpleNamespace(published=published_section(results)))
    assert "a | b &lt;script&gt;" in html and "<script>" not in html
    assert html.count("<tr>") > len(load_published().lines)  # every published line, then the ratios
