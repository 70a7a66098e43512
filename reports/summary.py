"""The page's opening: what a reader acts on, before any detail.

1. The machine, named by what its kernels dispatch on (vendor, family and model, the instruction-set
   extensions that decide which kernels run, its fingerprint), never by its CPU model string alone: under a
   hypervisor "AMD EPYC" names parts with and without AVX-512. Then its cores and threads, the CPU governor and
   boost, the code that measured (the project's version and commit) and the float32 GEMM peak the float32
   cells are held to.
2. How many cells are valid, invalid, failed and skipped.
3. The fastest VALID cell per model, scenario and device, with its framework, variant, mode, median and CI.
4. The framework x model heatmap (``reports/heatmap.py``).

Every figure is the cells' own (``frameworks.validity`` judged them); nothing here measures.
"""

from __future__ import annotations

import math
import statistics
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from frameworks.result import Environment, Machine, Measurement, Result, RunInfo
from frameworks.stats import median_ci

from . import fmt
from .cells import (
    distinct_labels,
    framework_title,
    is_latency,
    is_transformed,
    model_order,
    model_title,
    row_sort_key,
)
from .facts import Fact
from .gemm import above_peak, above_peak_text, peak_text, run_peak
from .heatmap import Heatmap
from .load import Run
from .training import is_training
from .verdicts import is_valid

# The extensions that decide which kernels run, as /proc/cpuinfo names them: wide float32 (AVX2, AVX-512),
# int8 dot products (VNNI, AMX-INT8) and bf16 (AVX512-BF16, AMX-BF16).
HEADLINE_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_tile", "amx_int8", "amx_bf16")
VENDORS = {"AuthenticAMD": "AMD", "GenuineIntel": "Intel", "HygonGenuine": "Hygon", "CentaurHauls": "Centaur"}
NOT_RECORDED = "not recorded"
NO_RECORD = "no machine record: results written before schema 3"


@dataclass(frozen=True)
class Feature:
    """One headline instruction-set extension and whether the machine has it (None: not recorded)."""

    flag: str
    present: bool | None

    @property
    def state(self) -> str:
        return NOT_RECORDED if self.present is None else "present" if self.present else "absent"


@dataclass(frozen=True)
class MachineSummary:
    name: str  # "AMD family 25 model 17 stepping 1", or the CPU model where no machine was recorded
    fingerprint: str  # 16 hex digits, or NO_RECORD
    features: tuple[Feature, ...]
    facts: tuple[Fact, ...]  # CPU model string, cores and threads, governor and boost, project, peak

    @property
    def features_recorded(self) -> bool:
        return any(f.present is not None for f in self.features)


@dataclass(frozen=True)
class Timing:
    """A measurement's median per image in ms, with its 95% confidence interval."""

    median_ms: float
    low_ms: float
    high_ms: float


@dataclass(frozen=True)
class FastestRow:
    """The fastest valid cell of one model, scenario and device; ``note`` says why there is none."""

    model: str  # its title
    scenario: str  # "latency", "throughput, best at batch 16"
    device: str
    framework: str  # "PyTorch 2.13.0"
    label: str  # variant / mode
    median: str  # ms per image
    interval: str
    note: str  # "" when there is a fastest valid cell, else why not ("3 cells ran, none valid")
    flag: str = ""  # "above the float32 GEMM peak: 122.8% of it": the figure is to be checked before it is believed


@dataclass(frozen=True)
class Opening:
    machine: MachineSummary
    verdicts: str  # "52 valid, 3 invalid, 1 failed, 11 skipped"
    fastest: tuple[FastestRow, ...]
    heatmap: Heatmap | None


def vendor_name(vendor: str) -> str:
    return VENDORS.get(vendor, vendor)


def machine_name(machine: Machine) -> str:
    """What the machine is: vendor, family, model and stepping (what the fingerprint starts from)."""
    return f"{vendor_name(machine.vendor)} family {machine.family} model {machine.model} stepping {machine.stepping}"


def machine_line(machine: Machine | None, cpu_model: str) -> str:
    """The machine in one line, for a page's subtitle: its name and fingerprint, the model string as a detail."""
    if machine is None:
        return f"{cpu_model} ({NO_RECORD})"
    return f"{machine_name(machine)}, fingerprint {machine.fingerprint} (CPU model {cpu_model})"


def features(machine: Machine | None) -> tuple[Feature, ...]:
    have = set(machine.flags) if machine is not None else None
    return tuple(Feature(f, None if have is None else f in have) for f in HEADLINE_FLAGS)


def host_environment(run: Run) -> Environment | None:
    """The machine as run.json recorded it, else as its first cell with an environment did."""
    if run.info is not None:
        return run.info.host
    return next((r.environment for r in run.results if r.environment is not None), None)


def machine_summary(run: Run) -> MachineSummary:
    machine = run.machine
    name = machine_name(machine) if machine is not None else run.cpu_model
    facts = [Fact("CPU model (as the OS names it)", run.cpu_model)]
    if machine is not None:
        hypervisor = f", under {machine.hypervisor}" if machine.hypervisor else ", bare metal"
        facts.append(Fact("Cores, threads", f"{machine.cores} cores, {machine.threads} threads, "
                                            f"{machine.sockets} socket{'s' if machine.sockets != 1 else ''}"
                                            f"{hypervisor}"))  # fmt: skip
    env = host_environment(run)
    if env is not None:
        facts.append(Fact("CPUs the cells ran on", f"{env.cpus_available} (cpuset {env.cpuset})"))
    facts.append(Fact("CPU governor, boost", governor_text(env)))
    facts.append(Fact("Measured by", project_text(run.info)))
    facts.append(Fact("float32 GEMM peak", peak_text(run.info)))
    fingerprint = machine.fingerprint if machine is not None else NO_RECORD
    return MachineSummary(name, fingerprint, features(machine), tuple(facts))


def governor_text(env: Environment | None) -> str:
    if env is None or (env.cpu_governor is None and env.cpu_boost is None):
        return f"{NOT_RECORDED} (not readable on this machine, or a run from before they were recorded)"
    governor = env.cpu_governor or NOT_RECORDED
    return f"governor {governor}, boost {env.cpu_boost or NOT_RECORDED}"


def project_text(info: RunInfo | None) -> str:
    """The code that measured: ``dlbench-matrix 0.6.0, commit 0123abc...+dirty``."""
    if info is None or (info.project_version is None and info.project_commit is None):
        return f"{NOT_RECORDED} (a run from before run.json recorded the project's version and commit)"
    version = f"version {info.project_version}" if info.project_version else "version not recorded"
    return f"{version}, commit {info.project_commit or NOT_RECORDED}"


def verdict_counts(results: Sequence[Result]) -> str:
    """``52 valid, 3 invalid, 1 failed, 11 skipped`` (an ok cell without a verdict: ``not judged``)."""
    tally = Counter(
        r.status if r.status != "ok" else "valid" if r.valid else "not judged" if r.valid is None else "invalid"
        for r in results
    )
    order = ("valid", "invalid", "not judged", "failed", "skipped")
    return ", ".join(f"{tally[k]} {k}" for k in order if tally[k] or k in ("valid", "invalid")) or "no cell"


# --- the fastest valid cell ----------------------------------------------------------------------------


def timing(point: Measurement) -> Timing | None:
    """A measurement's median per image and its interval, from its samples (as the tables compute them), else
    from its stored summary; None for a point without a timing."""
    batch = point.batch if point.batch > 0 else 1
    per_image = sorted(s / batch for s in point.samples_s if math.isfinite(s) and s > 0)
    if per_image:
        low, high = median_ci(per_image)
        return Timing(statistics.median(per_image) * 1e3, low * 1e3, high * 1e3)
    stats = point.stats
    if point.status != "ok" or stats is None or not (math.isfinite(stats.median) and stats.median > 0):
        return None
    return Timing(stats.median / batch * 1e3, stats.median_ci_low / batch * 1e3, stats.median_ci_high / batch * 1e3)


def ranked(result: Result) -> bool:
    """A cell the opening ranks: measured (latency or a sweep), of the model as specified."""
    return not is_transformed(result) and not is_training(result)


def fastest_rows(
    results: Sequence[Result], labels: dict[int, str], scenarios: Sequence[str], peak: float | None = None
) -> tuple[FastestRow, ...]:
    """Per model, scenario (in ``scenarios``' order) and device with a cell that ran: its fastest valid
    measurement (a sweep's best valid point), or a row saying there is none; a latency cell above the float32
    GEMM ``peak`` is flagged."""
    groups: dict[tuple[str, str, str], list[Result]] = defaultdict(list)
    for r in sorted((r for r in results if ranked(r)), key=row_sort_key):
        groups[(r.model, r.scenario, r.device)].append(r)
    models = model_order(m for m, _, _ in groups)
    order = sorted(groups, key=lambda k: (models.index(k[0]), _rank(scenarios, k[1]), k[2] != "cpu", k[2]))
    return tuple(_fastest(key, groups[key], labels, peak) for key in order
                 if any(r.status == "ok" for r in groups[key]))  # fmt: skip


def _rank(scenarios: Sequence[str], scenario: str) -> int:
    return scenarios.index(scenario) if scenario in scenarios else len(scenarios)


def _fastest(key: tuple[str, str, str], cells: list[Result], labels: dict[int, str], peak: float | None) -> FastestRow:
    model, scenario, device = key
    candidates = [(t, r, p) for r in cells for p in r.points if is_valid(p) and (t := timing(p)) is not None]
    if not candidates:
        ran = sum(r.status == "ok" for r in cells)
        note = f"no valid cell: {ran} cell{'s' if ran != 1 else ''} ran, none valid"
        return FastestRow(model_title(model), scenario, device, "—", "—", "—", "—", note)
    best, result, point = min(candidates, key=lambda c: c[0].median_ms)
    where = scenario if len(result.points) == 1 else f"{scenario}, best at {_point_label(result, point)}"
    framework = f"{framework_title(result.framework)} {result.version or ''}".strip()
    share = above_peak(result, peak) if is_latency(result) else None
    return FastestRow(model_title(model), where, device, framework, labels[id(result)], fmt.sig(best.median_ms),
                      f"{fmt.sig(best.low_ms)}–{fmt.sig(best.high_ms)}", "",
                      above_peak_text(share) if share is not None else "")  # fmt: skip


def _point_label(result: Result, point: Measurement) -> str:
    return f"{point.threads} threads" if "thread_counts" in result.identity else f"batch {point.batch}"


def opening(run: Run, results: Sequence[Result], show_launcher: bool, scenarios: Sequence[str],
            heat: Heatmap | None) -> Opening:  # fmt: skip
    """The opening of one machine's report: ``results`` every cell of the run, ``scenarios`` in the page's order,
    ``heat`` the heatmap of its matrix. Row labels are the matrix's, told apart per scenario and model (a
    latency and a throughput cell of one variant and mode keep the plain label)."""
    labels = distinct_labels([r for r in results if ranked(r)], show_launcher, lambda r: r.scenario)
    fastest = fastest_rows(results, labels, scenarios, run_peak(run.info))
    return Opening(machine_summary(run), verdict_counts(results), fastest, heat)
