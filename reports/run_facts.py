"""The facts tables of a report: the run (when, how long, which engine), its host, each variant's image and
build, and the cells counted by status and scenario."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from frameworks.backends.registry import INT8_KERNELS, SPARSE_KERNELS
from frameworks.result import Environment, Result, Resume, RunInfo
from frameworks.scenarios import DEFAULT_SCENARIO, SCENARIOS

from . import fmt
from .cells import effective_build, framework_title, head
from .facts import Fact
from .int8 import INT8_MODEL, MODEL_BYTES
from .load import Run
from .machines import identity_facts


@dataclass(frozen=True)
class VariantFacts:
    """What one variant ran as: image, versions, and the build facts its framework reported."""

    name: str
    framework: str
    device: str
    image_id: str
    cpus: str
    memory: str  # the cgroup limit the cells ran under, or the host's memory when none
    gpu: str
    in_effect: str
    build: tuple[Fact, ...]


def counts(results: tuple[Result, ...]) -> tuple[Fact, ...]:
    tally = Counter(r.status for r in results)
    return tuple(Fact(status, str(tally.get(status, 0))) for status in ("ok", "failed", "skipped"))


def scenario_counts(results: tuple[Result, ...]) -> tuple[Fact, ...]:
    """Cells per scenario (and a sweep's points), shown only when the run holds more than latency."""
    by_scenario: dict[str, list[Result]] = defaultdict(list)
    for result in results:
        by_scenario[result.scenario].append(result)
    if set(by_scenario) <= {DEFAULT_SCENARIO}:
        return ()
    facts = []
    for scenario in scenario_order(by_scenario):
        group = by_scenario[scenario]
        text = f"{len(group)} cell{'s' if len(group) != 1 else ''}"
        sweep = scenario in SCENARIOS and SCENARIOS[scenario].report is not None
        points = [p for r in group for p in r.points] if sweep else []  # a latency cell's one is the cell
        if points:
            ok = sum(p.status == "ok" for p in points)
            text += f", {ok} of {len(points)} points ok"
        facts.append(Fact(scenario, text))
    return tuple(facts)


def scenario_order(names: Iterable[str]) -> list[str]:
    """Registered scenarios in the registry's order, then any other name alphabetically."""
    present = set(names)
    known = [name for name in SCENARIOS if name in present]
    return known + sorted(present - set(known))


def run_facts(run: Run) -> list[Fact]:
    info = run.info
    machine = [Fact("Machine", f"{run.host_name}, one machine of this run")] if run.host_name is not None else []
    if run.several:
        machine = [Fact("Machines", ", ".join(h.host_name or "" for h in run.hosts))]
    if info is None:
        return [Fact("Run", run.run_id), *machine, Fact("run.json", "missing or unreadable")]
    facts = [Fact("Run", info.run_id), *machine, Fact("Launcher", info.launcher), Fact("Started", info.started_at)]
    facts.append(Fact("Finished", info.finished_at or "not recorded (interrupted?)"))
    duration = _duration(info.started_at, info.finished_at)
    if duration is not None:
        facts.append(Fact("Duration", duration))
    if info.resumes:  # each a session of its own: the run's own start, finish and duration stay the original's
        facts.append(Fact("Resumed", "; ".join(map(resume_text, info.resumes))))
    if run.several:
        engines = [f"{h.host_name} {h.info.docker_version}" for h in run.hosts if h.info and h.info.docker_version]
        facts.append(Fact("Docker engines", ", ".join(engines) or "—"))
    else:
        facts.append(Fact("Docker engine", info.docker_version or "—"))
    return facts


def _duration(start: str, end: str | None) -> str | None:
    if end is None:
        return None
    try:
        seconds = (_parse_time(end) - _parse_time(start)).total_seconds()
    except ValueError:
        return None
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes} min {secs} s" if minutes else f"{secs} s"


def resume_text(resume: Resume) -> str:
    """One resume: when it started, how many cells it recorded, how long it took."""
    took = _duration(resume.started_at, resume.finished_at)
    tail = f"{resume.cells} cells in {took}" if took is not None else "not finished (interrupted?)"
    return f"{resume.started_at}: {tail}"


def _parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def host_facts(run: Run) -> list[Fact]:
    """The machine as run.json recorded it (the host, not a container's view of it), with its identity
    (fingerprint, dispatch flags, caches...: from the cells when run.json is missing)."""
    identity = [Fact(label, value) for label, value in identity_facts(run.machine)]
    if run.info is None:
        return [Fact("CPU model", run.cpu_model), *identity]
    host, info = run.info.host, run.info
    facts = [
        Fact("CPU model", host.cpu_model),
        *identity,
        Fact("Logical CPUs", str(host.cpu_count)),
        Fact("CPUs available (cpuset)", f"{host.cpus_available} ({host.cpuset})"),
        Fact("Memory", fmt.gib(host.memory_bytes)),
        Fact("GPU", host.gpu or "none"),
        Fact("OS", host.os),
        Fact("Python", host.python),
    ]
    if host.load_avg_1m is not None:
        facts.append(Fact("Load average (1 min) at start", f"{host.load_avg_1m:.2f}"))
    peak = recorded_peak(info)
    facts.append(Fact("float32 matmul peak", f"{fmt.sig(peak)} GFLOP/s" if peak else "not measured"))
    return facts


def recorded_peak(info: RunInfo | None) -> float | None:
    return (info.matmul_peak_gflops or info.host.matmul_peak_gflops) if info is not None else None


def variant_facts(results: Sequence[Result], info: RunInfo | None, show_launcher: bool) -> list[VariantFacts]:
    """One entry per variant (and launcher): what its cells, of every scenario, report about image, CPUs and build."""
    by_variant: dict[str, list[Result]] = {}
    for result in results:
        name = head(result) + (f" ({result.launcher or 'unknown launcher'})" if show_launcher else "")
        by_variant.setdefault(name, []).append(result)
    return [_variant(name, group, info) for name, group in by_variant.items()]


def _variant(name: str, results: list[Result], info: RunInfo | None) -> VariantFacts:
    first = results[0]
    envs = [r.environment for r in results if r.environment is not None]
    image = _distinct(e.image_id for e in envs)
    if first.launcher != "local" and info is not None and first.variant in info.images:
        image = info.images[first.variant]  # the runner's record of what it started wins
    versions = _distinct(r.version for r in results)
    return VariantFacts(
        name=name,
        framework=f"{framework_title(first.framework)} {versions}".strip(),
        device=first.device,
        image_id=image or ("— (local)" if first.launcher == "local" else "—"),
        cpus=_distinct(f"{e.cpus_available} ({e.cpuset})" for e in envs) or "—",
        memory=_distinct(_memory(e) for e in envs) or "—",
        gpu=_distinct(e.gpu for e in envs) or "—",
        in_effect=_distinct(effective_build(r) for r in results) or "not stated",
        build=tuple(_build_facts(results)),
    )


def _memory(env: Environment) -> str:
    if env.memory_limit_bytes is not None:
        return f"{fmt.gib(env.memory_limit_bytes)} limit"
    return f"{fmt.gib(env.memory_bytes)} (no limit)" if env.memory_bytes else ""


def _distinct(values: Iterable[object]) -> str:
    """Distinct non-empty values joined: a variant whose cells disagree shows every value."""
    seen: list[str] = []
    for value in values:
        if value and str(value) not in seen:
            seen.append(str(value))
    return " / ".join(seen)


def _build_facts(results: list[Result]) -> list[Fact]:
    """Each build fact's distinct values; one a cell states of itself (the sparse kernels it ran, which differ
    by sparsity; the int8 kernels and model it ran, which differ by toolchain) points to the transform's
    section, which shows it beside that cell."""
    keys = sorted({k for r in results for k in r.build})
    return [Fact(k, PER_CELL_FACTS.get(k) or _distinct(r.build.get(k) for r in results)) for k in keys]


PER_CELL_FACT = "stated by each cell: shown beside it in the Pruning section"
PER_CELL_INT8 = "stated by each int8 cell: shown beside it in the Int8 quantization section"
PER_CELL_SIZE = "stated by each cell: the model it ran; an int8 cell's shown beside it in the Int8 quantization section"
PER_CELL_FACTS = {SPARSE_KERNELS: PER_CELL_FACT, INT8_KERNELS: PER_CELL_INT8, INT8_MODEL: PER_CELL_INT8,
                  MODEL_BYTES: PER_CELL_SIZE}  # fmt: skip
