"""The static site: an index of runs, one page per run, ``latest/``, and per-machine history.

Timings are only comparable on the same hardware, so runs are grouped by machine: by the
fingerprint of what its kernels dispatch on (``load.MachineIdentity``), never by the CPU model
string, which a hypervisor may make the same ("AMD EPYC") for an AVX2-only part and an AVX-512 one.
Results written before schema 3 have no fingerprint: they are a machine of their own, keyed by
their CPU model as before. A run on several machines files each machine's part under that
machine. Each machine gets its own section on the index and its own history page, and no table
ever holds two machines' timings. On a history page every cell is charted run after run, and the
latest run is tested against the one before it: slower by more than ``REGRESSION`` *and*
significant (Mann-Whitney U and bootstrap interval) is flagged as a regression.

Layout (ready for GitHub Pages; ``.nojekyll`` keeps Pages from filtering files)::

    SITE/index.html
    SITE/latest/index.html, report.html, report.md      the newest run
    SITE/runs/<run>/report.html, report.md               every run
    SITE/runs/<run>/results.csv, results.json            and its measurements (``reports.export``)
    SITE/runs/<run>/hosts/<name>/report.html, report.md  each machine of a run on several machines
    SITE/machines/<cpu>-<fingerprint>.html               history for one machine
"""

from __future__ import annotations

import hashlib
import itertools
import re
import shutil
from collections import defaultdict
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import quote

from markupsafe import Markup

from frameworks.result import CellKey, Result

from . import charts, fmt
from .cells import (
    figures,
    is_latency,
    is_transformed,
    mixed_launchers,
    model_order,
    model_title,
    per_image_samples,
    row_label,
    row_sort_key,
)
from .compare import Speedup, compare_samples
from .export import CSV_NAME, JSON_NAME, write_exports
from .html import render_template
from .load import FINGERPRINT_KEY, HOSTS_DIR, Run, host_dir_name, load_run
from .render import HTML_NAME, MARKDOWN_NAME, write_reports

REGRESSION = 0.05  # slower by more than 5% (and significant) is a regression
MARKER = ".dlbench-site"  # written into every site, so a re-publish may clear what it made before
OWNED = ("index.html", "latest", "runs", "machines")
_SLUG = re.compile(r"[^A-Za-z0-9._-]+")

HistoryKey = tuple[CellKey, str]  # the cell (without the host's name) and, off the CPU, the GPU it ran on
_FINGERPRINT = re.compile(r"[0-9a-f]{16}")


@dataclass(frozen=True)
class SiteRun:
    run: Run
    slug: str

    @property
    def href(self) -> str:
        return f"runs/{self.slug}/{HTML_NAME}"

    @property
    def csv_href(self) -> str:
        return f"runs/{self.slug}/{CSV_NAME}"

    @property
    def json_href(self) -> str:
        return f"runs/{self.slug}/{JSON_NAME}"

    @property
    def machines_text(self) -> str:
        """What the run ran on: its CPU model, or each machine's name and CPU model."""
        if not self.run.several:
            return self.run.cpu_model
        return ", ".join(f"{h.host_name}: {h.cpu_model}" for h in self.run.hosts)


@dataclass(frozen=True)
class MachineRun:
    """One machine's part of a published run: the run itself on one machine, or one of its hosts."""

    site_run: SiteRun
    run: Run  # that machine's Run (the whole run on one machine)

    @property
    def host_name(self) -> str | None:
        return self.run.host_name

    @property
    def title(self) -> str:
        """The run's id, with the machine's name in a several-machine run (its history's x axis)."""
        return f"{self.run.run_id} ({self.host_name})" if self.host_name is not None else self.run.run_id

    @property
    def href(self) -> str:
        """This machine's report: the run's, or its own under hosts/ in a several-machine run."""
        return f"{self.dir_href}{HTML_NAME}"

    @property
    def markdown_href(self) -> str:
        return f"{self.dir_href}{MARKDOWN_NAME}"

    @property
    def dir_href(self) -> str:
        base = f"runs/{self.site_run.slug}/"
        if self.host_name is None or not self.run.recorded:  # a machine that recorded nothing has no report
            return base
        return f"{base}{HOSTS_DIR}/{quote(host_dir_name(self.host_name), safe='')}/"

    @property
    def counts(self) -> str:
        statuses = [r.status for r in self.run.results]
        return ", ".join(f"{statuses.count(s)} {s}" for s in ("ok", "failed", "skipped"))

    @property
    def gpu(self) -> str:
        info = self.run.info
        gpus = {r.environment.gpu for r in self.run.results if r.environment is not None and r.environment.gpu}
        if info is not None and info.host.gpu:
            gpus.add(info.host.gpu)
        return ", ".join(sorted(gpus)) or "none"


@dataclass(frozen=True)
class Change:
    """The latest run of a cell against the run before it."""

    title: str
    runs: int
    previous_run: str
    previous_ms: float
    latest_run: str
    latest_ms: float
    slowdown: Speedup  # ratio = median(latest) / median(previous): above 1 is slower

    @property
    def percent(self) -> float:
        return (self.slowdown.ratio - 1.0) * 100.0

    @property
    def flag(self) -> str:
        return classify(self.slowdown)


@dataclass(frozen=True)
class MachineModel:
    model: str
    title: str
    chart: Markup
    changes: tuple[Change, ...]


@dataclass(frozen=True)
class SiteMachine:
    """One machine of the site: every run (or part of a run) it measured, newest first."""

    key: str  # ``MachineIdentity.key``: its fingerprint, or its CPU model for results without one
    name: str  # what its newest run calls it: the host name in a several-machine run, else the CPU model
    names: tuple[str, ...]  # every name it went by, newest first
    cpu_model: str
    fingerprint: str | None
    slug: str
    runs: tuple[MachineRun, ...]  # newest first
    models: tuple[MachineModel, ...] = ()

    @property
    def href(self) -> str:
        return f"machines/{self.slug}.html"

    @property
    def other_names(self) -> tuple[str, ...]:
        return tuple(n for n in self.names if n != self.name)

    @property
    def regressions(self) -> list[Change]:
        return [c for m in self.models for c in m.changes if c.flag == "regression"]


def classify(slowdown: Speedup) -> str:
    """'regression', 'improvement', or '' (within the threshold, or not significant)."""
    if not slowdown.significant:
        return ""
    if slowdown.ratio > 1.0 + REGRESSION:
        return "regression"
    if slowdown.ratio < 1.0 / (1.0 + REGRESSION):
        return "improvement"
    return ""


def publish_site(run_dirs: list[Path], site_dir: Path) -> Path:
    """Build the site from run directories; returns the path of its index.html.

    Refuses a non-empty ``site_dir`` it did not create, so a typo cannot clear unrelated files.
    """
    site_dir = Path(site_dir)
    runs = sorted((load_run(Path(d)) for d in run_dirs), key=lambda r: (r.started_at, r.run_id), reverse=True)
    site_runs = [SiteRun(run, slug) for run, slug in zip(runs, unique_slugs([r.run_id for r in runs]), strict=True)]
    prepare_site(site_dir)
    for i, site_run in enumerate(site_runs):
        targets: list[tuple[Path, str | None]] = [(site_dir / "runs" / site_run.slug, "../../index.html")]
        if i == 0:
            targets.append((site_dir / "latest", "../index.html"))
        write_reports(site_run.run, targets)
        for directory, _ in targets:  # the same rows as ``runner export``, beside the page
            write_exports(site_run.run, directory)
    if site_runs:
        shutil.copyfile(site_dir / "latest" / HTML_NAME, site_dir / "latest" / "index.html")
    machines = [build_machine(m) for m in group_machines(site_runs)]
    for machine in machines:
        write_machine_page(machine, site_dir)
    index = site_dir / "index.html"
    index.write_text(
        render_template(
            "index.html.j2",
            page_title="Inference speed matrix: runs",
            machines=machines,
            latest=site_runs[:1],
            home_href=None,
        ),
        encoding="utf-8",
    )
    return index


def site_problem(site_dir: Path) -> str | None:
    """Why publish must not write into ``site_dir``, or None: a file, or a non-empty directory without the
    marker every publish leaves (``MARKER``), i.e. one this command did not make."""
    if site_dir.exists() and not site_dir.is_dir():
        return f"{site_dir}: a file, not a directory"
    if site_dir.is_dir() and any(site_dir.iterdir()) and not (site_dir / MARKER).exists():
        return f"{site_dir}: not empty and not a site this command made ({MARKER} missing); choose an empty directory"
    return None


def prepare_site(site_dir: Path) -> None:
    """Create the directory, or clear what an earlier publish wrote there (and nothing else)."""
    problem = site_problem(site_dir)
    if problem is not None:
        raise ValueError(problem)
    site_dir.mkdir(parents=True, exist_ok=True)
    for name in OWNED:
        path = site_dir / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
    (site_dir / MARKER).write_text("made by reports.publish_site; its index, latest, runs, machines are rewritten\n")
    (site_dir / ".nojekyll").write_text("")


def slug(text: str, fallback: str = "run") -> str:
    """A file name from any string: no path separators, no leading dots, bounded length."""
    cleaned = _SLUG.sub("-", text).strip(".-")[:80]
    return cleaned or fallback


def unique_slugs(names: list[str]) -> list[str]:
    """Slugs in order, numbered where two runs would share one."""
    seen: dict[str, int] = {}
    out = []
    for name in names:
        base = slug(name)
        seen[base] = seen.get(base, 0) + 1
        out.append(base if seen[base] == 1 else f"{base}-{seen[base]}")
    return out


def machine_slug(cpu_model: str, fingerprint: str | None = None) -> str:
    """Readable and collision-free: two CPU names that clean to the same text still differ, and two
    machines of one CPU model differ by their fingerprint (a fingerprint that is not 16 hex digits
    is never put in a file name as it is)."""
    if fingerprint is None:
        digest = hashlib.sha256(cpu_model.encode()).hexdigest()[:8]
        return f"{slug(cpu_model, 'machine')[:60]}-{digest}"
    tail = fingerprint if _FINGERPRINT.fullmatch(fingerprint) else hashlib.sha256(fingerprint.encode()).hexdigest()[:16]
    return f"{slug(cpu_model, 'machine')[:60]}-{tail}"


def group_machines(site_runs: list[SiteRun]) -> list[SiteMachine]:
    """Each run's machines by machine key (fingerprint, else CPU model), ordered by their newest run.

    A run on several machines files each of its machines under that machine; two of its machines
    with one fingerprint are one kind of machine and share a history.
    """
    groups: dict[str, list[MachineRun]] = defaultdict(list)
    for site_run in site_runs:
        for machine_run in filed_runs(site_run.run):
            groups[machine_run.identity.key].append(MachineRun(site_run, machine_run))
    return [_site_machine(key, runs) for key, runs in groups.items()]


def filed_runs(run: Run) -> tuple[Run, ...]:
    """The machines a run is filed under: each machine that recorded anything (a host run.json names
    but that never wrote a file is no machine anyone knows; the run's own report lists it)."""
    recorded = tuple(r for r in run.machine_runs if r.recorded)
    return recorded or run.machine_runs


def _site_machine(key: str, runs: list[MachineRun]) -> SiteMachine:
    identity = runs[0].run.identity
    names = tuple(dict.fromkeys(r.run.identity.name for r in runs))
    fingerprint = key.removeprefix(FINGERPRINT_KEY) if key.startswith(FINGERPRINT_KEY) else None
    slug_ = machine_slug(identity.cpu_model, fingerprint)
    return SiteMachine(key, names[0], names, identity.cpu_model, fingerprint, slug_, tuple(runs))


# --- history on one machine -------------------------------------------------------------------


def history_key(result: Result) -> HistoryKey:
    """A cell across runs: ``Result.key()`` (scenario, variant, launcher, framework, mode, model,
    device, identity) without the runner's name for the host (the machine is the page's, by
    fingerprint, whatever a run called it), and the GPU it ran on: a new GPU starts a new history."""
    gpu = result.environment.gpu if result.device != "cpu" and result.environment is not None else None
    return replace(result.key(), host=""), gpu or ""


def build_machine(machine: SiteMachine) -> SiteMachine:
    """Collect every latency cell's history on this machine (oldest run first) and test each latest change.

    Sweep scenarios have no history page: their points are shown on each run's own report; nor have
    transformed cells (pruned weights), which their run's report shows in the transform's section.
    """
    oldest_first = list(reversed(machine.runs))
    series: dict[HistoryKey, list[tuple[MachineRun, Result]]] = defaultdict(list)
    for machine_run in oldest_first:
        for result in machine_run.run.results:
            usable = result.status == "ok" and per_image_samples(result).size >= 2
            if is_latency(result) and not is_transformed(result) and usable:
                series[history_key(result)].append((machine_run, result))
    show_launcher = mixed_launchers(r for run in machine.runs for r in run.run.results)
    models = model_order(key.model for key, _ in series)
    built = tuple(_machine_model(i, model, series, show_launcher) for i, model in enumerate(models))
    return replace(machine, models=built)


def _machine_model(
    index: int, model: str, series: dict[HistoryKey, list[tuple[MachineRun, Result]]], show_launcher: bool
) -> MachineModel:
    keys = sorted((k for k in series if k[0].model == model), key=lambda k: row_sort_key(series[k][-1][1]))
    histories, changes = [], []
    for key in keys:
        points = series[key]
        title = row_label(points[-1][1], show_launcher)
        steps = [_step(before[1], after[1]) for before, after in itertools.pairwise(points)]
        histories.append(
            charts.History(title, tuple(_point(p, s) for p, s in zip(points, [None, *steps], strict=True)))
        )
        if steps:
            (prev_run, prev), (last_run, last) = points[-2], points[-1]
            changes.append(
                Change(
                    title,
                    len(points),
                    prev_run.title,
                    _median_ms(prev),
                    last_run.title,
                    _median_ms(last),
                    steps[-1],
                )
            )
    chart = Markup(charts.history_chart(histories, f"hist{index}")) if histories else Markup("")
    return MachineModel(model, model_title(model), chart, tuple(changes))


def _step(before: Result, after: Result) -> Speedup:
    """median(after) / median(before), with its interval and p-value: above 1 means slower."""
    return compare_samples(per_image_samples(after), per_image_samples(before))


def _median_ms(result: Result) -> float:
    figs = figures(result)
    return figs.median_ms if figs is not None else float("nan")


def _point(entry: tuple[MachineRun, Result], step: Speedup | None) -> charts.HistoryPoint:
    machine_run, result = entry
    figs = figures(result)
    assert figs is not None
    when = machine_run.run.started_at[:16].replace("T", " ") or machine_run.run.run_id
    if machine_run.host_name is not None:
        when = f"{when} {machine_run.host_name}"
    flagged = step is not None and classify(step) == "regression"
    return charts.HistoryPoint(when, figs.median_ms, figs.ci_low_ms, figs.ci_high_ms, flagged)


def write_machine_page(machine: SiteMachine, site_dir: Path) -> Path:
    path = site_dir / machine.href
    path.parent.mkdir(parents=True, exist_ok=True)
    html = render_template(
        "machine.html.j2",
        page_title=f"History: {machine.name}",
        machine=machine,
        threshold=REGRESSION,
        fmt=fmt,
        home_href="../index.html",
    )
    path.write_text(html, encoding="utf-8")
    return path
