"""The HTML report: one self-contained file, hostile strings escaped, and opened in headless Chromium.

Chromium is Debian's (``apt-get install --no-install-recommends chromium``); the test skips with
the reason when it is missing here, and fails in CI. It loads only the file:// URL of the report,
with networking off, takes a screenshot (kept under REPORTS_SCREENSHOT_DIR when that is set) and
checks the text of the rendered DOM. A run on several machines (``fixture-m1``) gets the same checks:
its page and each machine's, whose only links off the page are to one another.
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from reports import render_run
from tests.fixtures.make_report_fixtures import (
    HOSTILE,
    HOSTILE_HOSTS,
    MACHINE_EAST,
    MACHINE_WEST,
    hostile_hosts_run,
    hostile_run,
    sweeps_only_run,
)
from tests.fixtures.make_validity_fixtures import MACHINE as VALIDITY_MACHINE

GOLDEN_RUN = Path(__file__).parent / "fixtures" / "reports" / "runs" / "fixture-a2"
VALIDITY_RUN = Path(__file__).parent / "fixtures" / "reports" / "runs" / "fixture-v1"
TWO_MACHINES = Path(__file__).parent / "fixtures" / "reports" / "runs" / "fixture-m1"
FORBIDDEN_TAGS = {"script", "link", "iframe", "object", "embed", "img", "image", "foreignobject", "base", "form"}
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--host-resolver-rules=MAP * ~NOTFOUND",  # belt and braces: no name resolves, so nothing loads
)


class Page(HTMLParser):
    """Every tag, attribute and text node of a document."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.attrs: list[tuple[str, str, str]] = []
        self.text: list[str] = []
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attrs += [(tag, name, value or "") for name, value in attrs]

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    @property
    def joined_text(self) -> str:
        return " ".join(" ".join(self.text).split())


@pytest.fixture(scope="module")
def golden_html(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("golden-html")
    return render_run(GOLDEN_RUN, out)[1]


@pytest.fixture(scope="module")
def hostile_html(tmp_path_factory: pytest.TempPathFactory) -> str:
    run_dir = hostile_run(tmp_path_factory.mktemp("hostile"))
    return render_run(run_dir)[1].read_text(encoding="utf-8")


def assert_inert(page: Page, here: Path | None = None) -> None:
    """No script, no external resource, no event handler, no link off the page (with ``here``, the
    page's own path: links to report files that exist beside it, as a several-machine run has)."""
    assert FORBIDDEN_TAGS.isdisjoint(page.tags), FORBIDDEN_TAGS & set(page.tags)
    for tag, name, value in page.attrs:
        assert not name.startswith("on"), (tag, name)
        assert name not in ("src", "srcset", "action", "formaction"), (tag, name)
        if name in ("href", "xlink:href") and not value.startswith("#"):
            assert here is not None and ":" not in value and not value.startswith("/"), (tag, name, value)
            assert (here.parent / value).resolve().is_file(), (tag, name, value)
            assert value.endswith(("report.html", "report.md")), value
        if name == "style":
            assert "url(" not in value, (tag, value)


@pytest.fixture(scope="module")
def two_machine_html(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """The run's page and each machine's, rendered in a copy of the fixture."""
    run_dir = tmp_path_factory.mktemp("two-machines") / "run"
    shutil.copytree(TWO_MACHINES, run_dir)
    return [p for p in render_run(run_dir) if p.suffix == ".html"]


def test_two_machine_pages_are_self_contained(two_machine_html: list[Path]) -> None:
    top, east, west = two_machine_html
    assert [p.parent.name for p in (east, west)] == ["east", "west"]
    for path in two_machine_html:
        html = path.read_text(encoding="utf-8")
        assert_inert(Page(html), path)
        assert "default-src 'none'" in html
        ids = [value for _, name, value in Page(html).attrs if name == "id"]
        assert len(ids) == len(set(ids))
    page = Page(top.read_text(encoding="utf-8"))
    assert page.tags.count("svg") == 1  # the cross-machine speedups; each machine's charts are on its own page
    links = {value for _, name, value in page.attrs if name == "href" and not value.startswith("#")}
    assert links == {f"hosts/{h}/report.{ext}" for h in ("east", "west") for ext in ("html", "md")}
    assert page.tags.count("table") == 1 + 2 + 1 + 3  # machines, a matrix each, across, environment facts
    text = page.joined_text
    assert MACHINE_EAST.fingerprint in text and MACHINE_WEST.fingerprint in text
    assert "Dispatch flags ≠ sse4_2 avx avx2 fma f16c sse4_2 avx avx2 fma f16c avx512f" in text
    assert Page(west.read_text(encoding="utf-8")).tags.count("svg") == 3 + 3 + 3  # latency, samples, memory (no pair)


def test_hostile_host_names_render_as_text(tmp_path: Path) -> None:
    run_dir = hostile_hosts_run(tmp_path / "run")
    pages = [p for p in render_run(run_dir) if p.suffix == ".html"]
    one_line = " ".join(HOSTILE.split())
    for path in pages:
        html = path.read_text(encoding="utf-8")
        page = Page(html)
        assert_inert(page, path)
        assert "<script" not in html.lower()
        assert HOSTILE.split("\n")[0] in page.joined_text
    top = Page(pages[0].read_text(encoding="utf-8")).joined_text
    for needle in (
        f"Machine fingerprint ≠ nothing of this machine was recorded {one_line} 0 {one_line} 1",
        " ".join(HOSTILE_HOSTS[0].split()),
        f"report the same CPU model ({one_line}) but are different machines",
        f"hosts/../../{one_line}/run.json: missing",
    ):
        assert needle in top, needle


def test_html_is_self_contained(golden_html: Path) -> None:
    html = golden_html.read_text(encoding="utf-8")
    page = Page(html)
    assert_inert(page)
    assert "@import" not in html and "url(http" not in html and "<?xml" not in html
    assert "default-src 'none'" in html  # a CSP that forbids loading anything, should anything slip in
    # latency, samples and latency against memory per model, per comparison group, per sweep model
    assert page.tags.count("svg") == 3 + 3 + 3 + 6 + 2 + 2
    assert page.tags.count("style") == 1 + 19  # the page's, and matplotlib's one per chart


def test_one_jinja_environment_autoescaping_everything() -> None:
    from reports import html

    env = html.jinja_environment()
    assert env is html.jinja_environment() and env.autoescape is True
    assert not hasattr(html, "environment")  # the name means the machine (frameworks.environment) only


def test_svg_ids_are_unique(golden_html: Path) -> None:
    ids = [value for _, name, value in Page(golden_html.read_text(encoding="utf-8")).attrs if name == "id"]
    assert len(ids) == len(set(ids))


def test_hostile_strings_render_as_text(hostile_html: str) -> None:
    page = Page(hostile_html)
    assert_inert(page)
    assert "<script" not in hostile_html.lower()
    first_line = HOSTILE.split("\n")[0]
    assert first_line in page.joined_text  # shown to the reader exactly, as text
    assert page.joined_text.count('<script>alert("pwned")</script>') >= 10  # every field, charts included
    assert "{{7*7}}" in page.joined_text and "{% raw %}" in page.joined_text  # no template ran over data
    one_line = " ".join(HOSTILE.split())
    for needle in (  # the sweep sections: titles, errors and warnings of points, row labels, as text
        f"Scenario {one_line}: speedup over thread count",
        f"Scenario {one_line} by batch: images/s over batch size",
        f"failed: {one_line}",
        f"skipped: {one_line}",
        f"⚠ {one_line}",
        "⚠ output does not match the reference (max error 0.5)",
        "⚠ the framework reports 7 threads in use, not 2",
    ):
        assert needle in page.joined_text, needle
    assert page.tags.count("svg") == 1 + 1 + 1 + 2 + 4  # latency, samples, memory, two comparison groups, four sweeps
    assert HOSTILE in hostile_html.replace("&lt;", "<").replace("&gt;", ">").replace("&#34;", '"').replace(
        "&amp;", "&"
    ).replace("&#39;", "'")  # the command, verbatim, newline included


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    return struct.unpack(">II", data[16:24])


def _chromium(binary: str, profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=180, check=False)


def _screenshot(binary: str, profile: Path, html: Path, shot: Path) -> None:
    """A 1400 x 2400 screenshot of the file:// page, kept under REPORTS_SCREENSHOT_DIR when that is set."""
    url = html.resolve().as_uri()
    assert url.startswith("file://")
    done = _chromium(binary, profile, "--window-size=1400,2400", f"--screenshot={shot}", url)
    assert shot.exists(), done.stderr[-2000:]
    assert _png_size(shot) == (1400, 2400)
    assert shot.stat().st_size > 50_000  # a blank page compresses to a few kB
    keep = os.environ.get("REPORTS_SCREENSHOT_DIR")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, Path(keep) / shot.name)


def _dom_text(binary: str, profile: Path, html: Path) -> Page:
    dom = _chromium(binary, profile, "--dump-dom", html.resolve().as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    return Page(dom.stdout)


@pytest.mark.slow
def test_chromium_renders_the_report(chromium: str, golden_html: Path, tmp_path: Path) -> None:
    _screenshot(chromium, tmp_path / "profile", golden_html, tmp_path / "report.png")
    page = _dom_text(chromium, tmp_path / "profile", golden_html)
    text = page.joined_text
    for needle in (
        "Inference speed matrix: fixture-a2",
        "Fixture CPU A (test data) @ 2.40GHz",
        "LeNet-5",
        "VGG-16",
        "MobileNet v1",
        "At a glance",  # the opening: the machine, the fastest valid cells, each framework against them
        "Fixture CPU A (test data) @ 2.40GHz · fingerprint no machine record: results written before schema 3",
        "Instruction sets: not recorded (no machine record).",
        "73 valid, 4 invalid, 1 failed, 1 skipped",
        "LeNet-5 latency cpu PyTorch 2.13.0 cpu-torch / compile (docker) 0.155 0.155–0.156",
        "Each framework against the fastest",
        "ONNX Runtime no valid cell 1.00× 1.00×",
        "0.122 ms ★ fastest",
        "mean 1,011 (sd 9.67)",
        "failed MXNetError: out of memory",
        "INVALID output unverified (max error 0.0032, tolerance 0.001)",
        "INVALID busy machine: other processes used 0.41 CPUs",
        "Latency against peak memory",
        "MKL vs OpenBLAS",
        "oneDNN vs Eigen",
        "graph vs eager",
        "hybrid vs imperative",
        "compile vs eager",
        "cuda vs cpu",
        "docker vs local",
        "python -m runner matrix --iterations 25",
        "results.jsonl line 84",
        "Throughput over batch size",
        "batch size 64",
        "failed: out of memory (killed by the OOM killer)",
        "⚠ INVALID: output unverified (max error 0.00021)",
        "Thread scaling",
        "1.83× efficiency 91.4% median 35.0 ms",
        "linear scaling",  # the ideal line's legend, inside the chart's SVG
    ):
        assert needle in text, needle
    assert page.tags.count("svg") == 19
    assert "script" not in page.tags


@pytest.mark.slow
def test_chromium_renders_the_opening(chromium: str, tmp_path: Path) -> None:
    """A run with a machine record, a GEMM peak record and an invalid cell of each kind: the screenshot's top is
    the opening (the machine by its fingerprint and extensions, the fastest valid cells, the heatmap)."""
    html = render_run(VALIDITY_RUN, tmp_path / "out")[1]
    _screenshot(chromium, tmp_path / "profile", html, tmp_path / "opening.png")
    page = _dom_text(chromium, tmp_path / "profile", html)
    text = page.joined_text
    for needle in (
        f"AMD family 25 model 17 stepping 1 · fingerprint {VALIDITY_MACHINE.fingerprint}",
        "✓ avx2 ✓ avx512f ✓ avx512_vnni ✗ avx_vnni ✓ avx512_bf16 ✗ amx_tile ✗ amx_int8 ✗ amx_bf16",
        "CPU model (as the OS names it) AMD EPYC Processor (fixture, test data)",
        "CPU governor, boost governor performance, boost off",
        "180 GFLOP/s float32 (mkl sgemm, 3072×3072, 2 threads",
        "21 valid, 6 invalid, 1 failed, 16 skipped",
        "VGG-16 latency cpu PyTorch 2.13.0 cpu-torch / compile ⚠ above the float32 GEMM peak: 122.8% of it 140",
        "PyTorch 1.00× 1.00× ⚠ 1.24×",
        "INVALID unknown load: no load figure for the measurement",
        "Cells that did not run, by reason",
        "load unknown",
        "peak memory, MiB",  # the scatter chart's axis, inside its SVG
    ):
        assert needle in text, needle
    assert "script" not in page.tags
    heat = [v for tag, name, v in page.attrs if tag == "td" and name == "style"]
    assert len(heat) == 14  # the heatmap's coloured cells survive the browser's parse


@pytest.mark.slow
def test_chromium_renders_the_two_machine_report(chromium: str, two_machine_html: list[Path], tmp_path: Path) -> None:
    """The run on east and west: the machines side by side, a matrix each, the cells compared across them."""
    top = two_machine_html[0]
    _screenshot(chromium, tmp_path / "profile", top, tmp_path / "two-machines.png")
    page = _dom_text(chromium, tmp_path / "profile", top)
    text = page.joined_text
    for needle in (
        "Inference speed matrix: fixture-m1",
        f"east: AMD family 25 model 1 stepping 1, fingerprint {MACHINE_EAST.fingerprint} (CPU model AMD EPYC "
        f"Processor (fixture, test data)) · west: AMD family 25 model 17 stepping 1, fingerprint "
        f"{MACHINE_WEST.fingerprint}",
        f"Machine fingerprint ≠ {MACHINE_EAST.fingerprint} {MACHINE_WEST.fingerprint}",
        "avx512_vnni avx512_bf16",
        "Matrix of each machine",
        f"AMD EPYC Processor (fixture, test data) · fingerprint {MACHINE_WEST.fingerprint} · full report",
        "failed ResourceExhaustedError: OOM",  # (upper case on the screen: CSS)
        "Across machines",
        "cpu-torch / eager · west vs east",  # a bar of the speedup chart
        "1.35× 1.34–1.36 <0.001 yes",
        "cpu-tensorflow / graph, VGG-16: east: ok; west: failed",
        "hosts/west/results.jsonl line 13",
        "dispatch flags only west has: avx512f",
    ):
        assert needle in text, needle
    assert page.tags.count("svg") == 1 and "script" not in page.tags
    west = _dom_text(chromium, tmp_path / "profile", two_machine_html[2]).joined_text
    assert "Inference speed matrix: fixture-m1 on west" in west and "the whole run's report" in west
    assert f"Machine fingerprint {MACHINE_WEST.fingerprint}" in west and MACHINE_EAST.fingerprint not in west


@pytest.mark.slow
def test_chromium_renders_the_sweep_sections(chromium: str, tmp_path: Path) -> None:
    """A run of sweeps only, so the throughput section (charts and tables) is what the screenshot shows."""
    html = render_run(sweeps_only_run(tmp_path / "run"))[1]
    _screenshot(chromium, tmp_path / "profile", html, tmp_path / "sweeps.png")
    page = _dom_text(chromium, tmp_path / "profile", html)
    text = page.joined_text
    for needle in (
        "No untransformed latency cell in this run",
        "Throughput over batch size",
        "cpu-numpy-openblas / im2col",
        "2,849 img/s median 0.351 ms/batch",
        "failed: out of memory (killed by the OOM killer)",
        "Thread scaling",
        "speedup over 1 thread",
    ):
        assert needle in text, needle
    assert page.tags.count("svg") == 4  # two models in each of two sweep sections
