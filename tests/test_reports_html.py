"""The HTML report: one self-contained file, hostile strings escaped, and opened in headless Chromium.

Chromium is Debian's (``apt-get install --no-install-recommends chromium``); the test skips with
the reason when it is missing here, and fails in CI. It loads only the file:// URL of the report,
with networking off, takes a screenshot (kept under REPORTS_SCREENSHOT_DIR when that is set) and
checks the text of the rendered DOM.
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
from tests.fixtures.make_report_fixtures import HOSTILE, hostile_run, sweeps_only_run

GOLDEN_RUN = Path(__file__).parent / "fixtures" / "reports" / "runs" / "fixture-a2"
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


def assert_inert(page: Page) -> None:
    """No script, no external resource, no event handler, no link off the page."""
    assert FORBIDDEN_TAGS.isdisjoint(page.tags), FORBIDDEN_TAGS & set(page.tags)
    for tag, name, value in page.attrs:
        assert not name.startswith("on"), (tag, name)
        assert name not in ("src", "srcset", "action", "formaction"), (tag, name)
        if name in ("href", "xlink:href"):
            assert value.startswith("#"), (tag, name, value)
        if name == "style":
            assert "url(" not in value, (tag, value)


def test_html_is_self_contained(golden_html: Path) -> None:
    html = golden_html.read_text(encoding="utf-8")
    page = Page(html)
    assert_inert(page)
    assert "@import" not in html and "url(http" not in html and "<?xml" not in html
    assert "default-src 'none'" in html  # a CSP that forbids loading anything, should anything slip in
    assert (
        page.tags.count("svg") == 3 + 3 + 6 + 2 + 2
    )  # latency and samples per model, per comparison group, per sweep model
    assert page.tags.count("style") == 1 + 16  # the page's, and matplotlib's one per chart


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
    assert page.tags.count("svg") == 1 + 1 + 2 + 4  # latency, samples, two comparison groups, four sweep charts
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
        "0.122 ms ★ fastest",
        "mean 1,011 (sd 9.67)",
        "failed MXNetError: out of memory",
        "⚠ output does not match the reference",
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
        "⚠ output does not match the reference (max relative error 0.00021 > 0.0001)",
        "Thread scaling",
        "1.83× efficiency 91.4% median 35.0 ms",
        "linear scaling",  # the ideal line's legend, inside the chart's SVG
    ):
        assert needle in text, needle
    assert page.tags.count("svg") == 16
    assert "script" not in page.tags


@pytest.mark.slow
def test_chromium_renders_the_sweep_sections(chromium: str, tmp_path: Path) -> None:
    """A run of sweeps only, so the throughput section (charts and tables) is what the screenshot shows."""
    html = render_run(sweeps_only_run(tmp_path / "run"))[1]
    _screenshot(chromium, tmp_path / "profile", html, tmp_path / "sweeps.png")
    page = _dom_text(chromium, tmp_path / "profile", html)
    text = page.joined_text
    for needle in (
        "No latency cell in this run",
        "Throughput over batch size",
        "cpu-numpy-openblas / im2col",
        "2,849 img/s median 0.351 ms/batch",
        "failed: out of memory (killed by the OOM killer)",
        "Thread scaling",
        "speedup over 1 thread",
    ):
        assert needle in text, needle
    assert page.tags.count("svg") == 4  # two models in each of two sweep sections
