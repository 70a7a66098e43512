"""The matrix: cells, settings, and the loop that runs them strictly one at a time.

A cell is (scenario, variant, mode, model) with the scenario's config. Every cell runs in its own
container (or its own subprocess for the local launcher) so that nothing one framework loads can
slow the next one down, and cells never overlap: on a small machine two benchmarks at once would
each time the other. Each result is appended to ``results.jsonl`` the moment it arrives, so an
interrupted run loses at most the cell in flight, and ``--resume`` redoes exactly the cells whose
key (``Result.key``) has no line.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol, TextIO

from frameworks.backends.registry import FRAMEWORKS
from frameworks.environment import available_cpus, format_cpuset
from frameworks.models import MODELS, ModelSpec, get_model
from frameworks.options import UsageError, choose_scenarios, scenario_configs, transform_points
from frameworks.result import RESULTS_FILE, CellKey, Environment, Peak, Result, Status, _build, cell_result, utc_now
from frameworks.scenarios import DEFAULT_SCENARIO, SCENARIOS, ScenarioConfig
from frameworks.scenarios.config import DEFAULT_TIMEOUT_S, fields_of, flag
from frameworks.trained import WeightsMismatch, extract_weights
from frameworks.transforms import NO_POINT, NONE, TransformPoint

from .catalog import REPO_ROOT, Variant
from .engine import ENGINE_LOST, EngineLost
from .eta import Eta, load_history, load_reference
from .rundir import append_result

Log = Callable[[str], None]
DEFAULT_MEMORY = "8g"
POINT_TIMEOUT = "point_timeout"  # a sweep's per-point limit: the runner's --timeout, per measurement
CELL_SLACK_S = 60.0  # a sweep's own process around its points
OUTPUT_MAX_BYTES = 16 << 20  # of each of a cell's output streams, the most a launcher reads into memory
_MEMORY = re.compile(r"^(\d+(?:\.\d+)?)([bkmg]?)$", re.IGNORECASE)
_UNITS = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}


@dataclass(frozen=True)
class Inputs:
    """The canonical weights and reference the runner made for one model (``frameworks.inputs``)."""

    name: str  # the directory under ``inputs_root()``
    sha256: str  # of its manifest: what the cell checks before it uses them


@dataclass(frozen=True)
class Cell:
    """One planned cell: a variant's mode on one model, measured by one scenario with its resolved config."""

    variant: Variant
    mode: str
    model: str
    scenario: str = DEFAULT_SCENARIO
    config: ScenarioConfig = field(default_factory=lambda: SCENARIOS[DEFAULT_SCENARIO].config())
    inputs: Inputs | None = None  # None: the cell computes its weights and reference itself
    transform: TransformPoint = NO_POINT
    transform_key: tuple[tuple[str, str], ...] = ()  # Transformed.key() of the weights the runner made for it

    def key(self, launcher: str, host: str = "") -> CellKey:
        """The key its result will have (``Result.key``) on the named host: what resume looks for."""
        v = self.variant
        return CellKey(self.scenario, v.name, launcher, host, v.framework, self.mode, self.model, v.device,
                       self.config.identity(), self.transform_key)  # fmt: skip

    @property
    def label(self) -> str:
        tail = "" if self.scenario == DEFAULT_SCENARIO else f" [{self.scenario}]"
        if self.transform.name != NONE:
            tail += f" [{self.transform.label()}]"
        return f"{self.variant.name} {self.mode} {self.model}{tail}"


# --- settings ------------------------------------------------------------------------------------


def parse_cpuset(text: str) -> list[int]:
    """'0-2,5' -> [0, 1, 2, 5]; anything else is a ``UsageError``."""
    cpus: set[int] = set()
    for part in text.split(","):
        match = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?", part)
        if not match:
            raise UsageError(f"--cpus {text!r}: expected a cpuset such as 0-1 or 0,2")
        low, high = int(match.group(1)), int(match.group(2) or match.group(1))
        if high < low:
            raise UsageError(f"--cpus {text!r}: {low}-{high} is an empty range")
        cpus.update(range(low, high + 1))
    return sorted(cpus)


def check_cpuset(text: str) -> list[int]:
    """The cpuset's CPUs, which must all be ones this process may run on."""
    cpus = parse_cpuset(text)
    allowed = available_cpus()
    outside = [c for c in cpus if c not in allowed]
    if outside:
        raise UsageError(f"--cpus {text!r}: CPU(s) {', '.join(map(str, outside))} not available here; "
                         f"available: {format_cpuset(allowed)}")  # fmt: skip
    return cpus


def default_cpuset() -> str:
    return format_cpuset(available_cpus())


def memory_bytes(text: str) -> int:
    """Docker's memory syntax ('8g', '512m', '1073741824') in bytes; at least 6 MiB (Docker's floor)."""
    match = _MEMORY.fullmatch(text.strip())
    if not match:
        raise UsageError(f"--memory {text!r}: expected a size such as 8g or 512m")
    value = int(float(match.group(1)) * _UNITS[match.group(2).lower()])
    if value < 6 << 20:
        raise UsageError(f"--memory {text!r}: Docker needs at least 6m")
    return value


@dataclass(frozen=True)
class Settings:
    """What every cell of a run shares; stored in run.json so that ``--resume`` reuses it exactly.

    ``options`` are the scenario options given on the command line (``iterations``, ``batches``,
    ...), as strings; the scenario configs hold their defaults.
    """

    variants: tuple[str, ...]
    models: tuple[str, ...]
    launcher: str  # the resolved launcher: docker or local
    scenarios: tuple[str, ...] = (DEFAULT_SCENARIO,)
    options: dict[str, str] = field(default_factory=dict)
    transforms: dict[str, str] = field(default_factory=dict)  # --transforms and its options, as given
    cpus: str = ""
    memory: str = DEFAULT_MEMORY
    timeout: float = DEFAULT_TIMEOUT_S
    seed: int = 0
    out: str = "runs"

    def __post_init__(self) -> None:
        self.configs()  # bad options are a UsageError now, not in the middle of a run
        self.points()

    def points(self) -> list[TransformPoint]:
        """The transform points every cell runs at (one cell each); ``none`` alone by default."""
        return transform_points(self.transforms)

    def with_options(self, **values: object) -> Settings:
        """A copy with scenario options set, e.g. ``with_options(iterations=3, batches=(1, 4))``."""
        strings = {k: " ".join(map(_text, v)) if isinstance(v, tuple) else _text(v) for k, v in values.items()}
        return replace(self, options={**self.options, **strings})

    @property
    def threads(self) -> int:
        """One intra-op thread per CPU of the cpuset: every framework gets the same number."""
        return len(parse_cpuset(self.cpus))

    def configs(self) -> dict[str, ScenarioConfig]:
        """Each chosen scenario's config (model defaults still unresolved), with the runner's timeout per point."""
        chosen = choose_scenarios(self.scenarios)
        given = dict(self.options)
        if any(POINT_TIMEOUT in {f.name for f, _ in fields_of(s.config)} for s in chosen):
            given[POINT_TIMEOUT] = _num(self.timeout)
        return scenario_configs(chosen, given)

    def cell_timeout(self, cell: Cell) -> float:
        """How long the whole cell may take: ``timeout`` per measurement (a sweep makes one per point)."""
        points = cell.config.points()
        return self.timeout if points == 1 else self.timeout * points + CELL_SLACK_S

    def predict_args(self, cell: Cell, inputs_root: str = "") -> list[str]:
        """The arguments of ``python -m frameworks.predict`` for one cell (result as one JSON line on stdout);
        ``inputs_root`` is where the cell sees the runner's inputs directory."""
        inputs = []
        if cell.inputs is not None:
            inputs = ["--inputs", f"{inputs_root}/{cell.inputs.name}", "--inputs-sha256", cell.inputs.sha256]
        return [
            "--framework", cell.variant.framework, "--model", cell.model, "--mode", cell.mode,
            "--device", cell.variant.device, "--scenario", cell.scenario, *cell.config.to_args(),
            *cell.transform.to_args(), "--threads", str(self.threads), "--seed", str(self.seed), *inputs,
            "--output", "-",
        ]  # fmt: skip

    def spelled_options(self) -> dict[str, str]:
        """The scenario options with every scalar default spelled out (what run.json and the command show)."""
        spelled: dict[str, str] = {}
        for config in self.configs().values():
            for name, value in config.to_strings().items():
                if name != POINT_TIMEOUT and value != "":
                    spelled.setdefault(name, value)
        return {**spelled, **self.options}

    def command(self, hosts: Iterable[Any] = ()) -> str:
        """The command that reproduces this run (launcher resolved, every default spelled out; the hosts by
        name and URL, never their TLS paths)."""
        args = ["python", "-m", "runner", "matrix", "--variants", *self.variants, "--models", *self.models]
        named = [f"{h.name}={h.public_url}" for h in hosts]
        if named:
            args += ["--hosts", *named]
        args += ["--scenarios", *self.scenarios]
        for name, value in self.spelled_options().items():
            args += [flag(name), *value.split()]
        for name, value in self.transforms.items():
            args += [flag(name), *value.split()]
        args += ["--launcher", self.launcher, "--cpus", self.cpus, "--memory", self.memory]
        args += ["--timeout", _num(self.timeout), "--out", self.out]
        return shlex.join(args)

    def to_dict(self) -> dict[str, str]:
        memory = self.memory if self.launcher == "docker" else f"not limited (local launcher; {self.memory} ignored)"
        return {
            "variants": " ".join(self.variants),
            "models": " ".join(self.models),
            "launcher": self.launcher,
            "scenarios": " ".join(self.scenarios),
            **self.spelled_options(),
            "options_given": " ".join(sorted(self.options)),
            **self.transforms,
            "transform_options": " ".join(self.transforms),
            "cpus": self.cpus,
            "threads": str(self.threads),
            "memory": memory,
            "memory_requested": self.memory,
            "timeout": _num(self.timeout),
            "seed": str(self.seed),
            "out": self.out,
            "isolation": ISOLATION[self.launcher],
        }

    @classmethod
    def from_dict(cls, data: dict[str, str]) -> Settings:
        """Back from run.json; a missing or malformed entry raises ``ValueError`` naming it.

        Runs from before the scenario axis stored iterations, warmup, min_time and batch: they
        come back as the latency scenario's options.
        """
        try:
            scenarios = tuple(data.get("scenarios", DEFAULT_SCENARIO).split())
            names = {f.name for s in SCENARIOS.values() for f, _ in fields_of(s.config)}
            if "options_given" in data:
                options = {n: data[n] for n in data["options_given"].split()}
            else:
                options = {n: data[n] for n in ("iterations", "warmup", "min_time", "batch") if n in data}
            unknown = sorted(set(options) - names)
            if unknown:
                raise ValueError(f"options {', '.join(unknown)} belong to no scenario")
            transforms = {n: data[n] for n in data.get("transform_options", "").split()}
            return cls(
                variants=tuple(data["variants"].split()),
                models=tuple(data["models"].split()),
                launcher=data["launcher"],
                scenarios=scenarios,
                options=options,
                transforms=transforms,
                cpus=data["cpus"],
                memory=data.get("memory_requested", DEFAULT_MEMORY),
                timeout=float(data["timeout"]),
                seed=int(data.get("seed", "0")),
                out=data.get("out", "runs"),
            )
        except KeyError as exc:
            raise ValueError(f"settings.{exc.args[0]} is missing") from None
        except ValueError as exc:
            raise ValueError(f"settings: {exc}") from None


ISOLATION = {
    "docker": "one container per cell: network none, pinned cpuset, memory limit without swap, "
    "read-only root filesystem, tmpfs /tmp",
    "local": "one subprocess per cell in the image's virtualenv: pinned CPU affinity, no memory limit",
}


def _num(value: float) -> str:
    return f"{value:g}"


def _text(value: object) -> str:
    return _num(value) if isinstance(value, float) else str(value)


# --- plan ----------------------------------------------------------------------------------------


def check_models(names: Iterable[str]) -> list[str]:
    """Models by name, in the order given; an unknown one is a ``UsageError`` listing the valid ones."""
    chosen = []
    for name in names:
        try:
            chosen.append(get_model(name).name)
        except KeyError as exc:
            raise UsageError(exc.args[0]) from None
    return chosen


def plan(variants: Iterable[Variant], settings: Settings) -> list[Cell]:
    """Scenario by scenario (every latency cell first), then variant by variant (its image warm in the
    page cache), each model, each mode; each cell's config resolved for its model and the cpuset."""
    variants = list(variants)
    cells = []
    points = settings.points()
    for scenario, config in settings.configs().items():
        for v in variants:
            for model in settings.models:
                resolved = config.resolve(MODELS[model], settings.threads)
                if resolved.network(MODELS[model]) is None:
                    continue  # a model the scenario does not run (the train scenario: all but LeNet-5)
                modes = resolved.modes(FRAMEWORKS[v.framework])  # the train scenario: the modes it trains in
                info = FRAMEWORKS[v.framework]
                for point in (p for p in points if resolved.runs_transform(p.name)):
                    cells += [Cell(v, mode, model, scenario, resolved, transform=point)
                              for mode in v.modes if mode in modes and info.runs_mode(mode, point.name)]  # fmt: skip
    return cells


def cell_network(cell: Cell) -> ModelSpec:
    """The network the cell runs (its parameters and FLOPs): the model's, or its scenario's form of it."""
    spec = MODELS[cell.model]
    network = cell.config.network(spec) or spec
    return cell.transform.transform.network(network, cell.transform.config)


# --- results the runner makes itself (failed or skipped without a result from predict) ---------


def runner_result(
    cell: Cell, settings: Settings, status: Status, reason: str, *, environment: Environment | None = None
) -> Result:
    """A failed or skipped cell with its reason, carrying everything known without running it."""
    now = utc_now()
    return cell_result(
        cell.variant.framework,
        cell.mode,
        cell_network(cell),
        cell.variant.device,
        status=status,
        batch=cell.config.cell_batch(),
        threads=settings.threads,
        seed=settings.seed,
        scenario=cell.scenario,
        config=cell.config.to_strings(),
        identity=cell.config.identity_fields(),
        error=reason,
        variant=cell.variant.name,
        launcher=settings.launcher,
        environment=environment,
        started_at=now,
        finished_at=now,
    )


_CUDA_MISSING = ("CUDA requested", "sees no GPU")


def interpret(cell: Cell, settings: Settings, returncode: int, stdout: str, stderr: str) -> Result:
    """Turn one predict process's exit code and output into a result, whatever happened to it.

    A result line on stdout wins (predict reports a framework's own failure as a failed result,
    exit 1); without one, the exit code and the last stderr line say why.
    """
    parsed = parse_result_line(stdout)
    if parsed is not None:
        result = replace(parsed, variant=cell.variant.name, launcher=settings.launcher)
        if returncode not in (0, 1):
            note = f"predict exited with {describe_exit(returncode)} after writing its result"
            result = replace(result, warnings=(*result.warnings, note))
        return result
    last = error_line(stderr)
    if returncode == 2 and any(s in last for s in _CUDA_MISSING):
        return runner_result(cell, settings, "skipped", last.removeprefix("error: "))
    if returncode == 2:
        return runner_result(cell, settings, "failed", f"predict refused the arguments: {last.removeprefix('error: ')}")
    detail = f": {last}" if last else " (no output)"
    return runner_result(cell, settings, "failed", f"{describe_exit(returncode)}{detail}")


def parse_result_line(stdout: str) -> Result | None:
    lines = [line for line in stdout.splitlines() if line.strip()]
    if not lines:
        return None
    try:
        return Result.from_json(lines[-1])
    except ValueError:
        return None


def last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1][:500] if lines else ""


_ERRORISH = re.compile(r"error|exception|fatal|killed|abort|segmentation|cannot|failed", re.IGNORECASE)


def error_line(stderr: str) -> str:
    """The line that says what went wrong: the last error-looking line (a traceback's last line,
    'Fatal Python error: ...'), else the last line."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    for line in reversed(lines[-20:]):
        if _ERRORISH.search(line):
            return line[:500]
    return lines[-1][:500] if lines else ""


def describe_exit(returncode: int) -> str:
    """'exit code 1', 'killed by SIGSEGV' (a negative code locally, 128+N from a container's shell)."""
    signum = -returncode if returncode < 0 else returncode - 128 if returncode > 128 else 0
    if signum:
        try:
            return f"killed by {signal.Signals(signum).name} (exit {returncode})"
        except ValueError:
            pass
    return f"exit code {returncode}"


# --- launchers -----------------------------------------------------------------------------------


@dataclass
class Prepared:
    """What a launcher built before the first cell: an ID per variant, or why it could not."""

    ids: dict[str, str] = field(default_factory=dict)  # variant -> image id (or venv id)
    errors: dict[str, str] = field(default_factory=dict)  # variant -> why its cells fail
    skipped: dict[str, str] = field(default_factory=dict)  # variant -> why its cells are skipped


class ResultsUnwritable(OSError):
    """results.jsonl could not take a line (a full disk): the run ends; ``result`` is the line it lost."""

    def __init__(self, message: str, result: Result) -> None:
        super().__init__(message)
        self.result = result


class Launcher(Protocol):
    """How cells are started: in containers (``docker_launcher``) or in virtualenvs (``local_launcher``).

    ``prepare`` builds what the cells need (before anything is timed), ``begin`` tags the run and
    removes what killed runners left behind (``exclusive``), ``launch`` runs one cell, after any
    other benchmark on the machine has finished.
    """

    name: str

    def describe(self) -> str: ...
    def version(self) -> str | None: ...
    def prepare(self, variants: list[Variant], log: Log) -> Prepared: ...
    def begin(self, run_id: str, log: Log) -> None: ...
    def launch(self, cell: Cell, settings: Settings, image_id: str) -> Result: ...
    def abort(self) -> None: ...


UNREACHABLE = "the host's Docker engine did not answer"


def redo_on_resume(result: Result) -> bool:
    """A failure that says nothing about the cell (its machine's engine went away, or never answered):
    resume runs it again."""
    return result.status == "failed" and result.error in (ENGINE_LOST, UNREACHABLE)


def finished_keys(results: Iterable[Result]) -> set[CellKey]:
    """The cells a resumed run need not run again."""
    return {r.key() for r in results if not redo_on_resume(r)}


# --- the loop ------------------------------------------------------------------------------------


def format_duration(seconds: float) -> str:
    """Seconds under 90 s; minutes and tens of seconds under 10 min (whole minutes there would round
    "2 min 40 s" to "3 min", a quarter of it); whole minutes, then hours, beyond."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 10 * 60 - 5:
        minutes, rest = divmod(round(seconds / 10) * 10, 60)
        return f"{minutes:.0f} min {rest:.0f} s" if rest else f"{minutes:.0f} min"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def outcome(result: Result) -> str:
    """The progress line's verdict: '0.6 ms (ok)', 'failed: out of memory (limit 8g)'."""
    verdict = "ok" if result.verified else "ok, NOT VERIFIED"
    if result.status == "ok" and result.stats is not None:
        return f"{result.stats.median * 1e3:.3g} ms ({verdict})"
    if result.status == "ok" and result.points:
        measured = sum(p.status == "ok" for p in result.points)
        return f"{measured}/{len(result.points)} points ({verdict})"
    if result.status == "ok" and result.training is not None:
        return f"{result.training.summary()} ({verdict})"
    return f"{result.status}: {result.error}"


@dataclass
class MatrixRun:
    """One pass over one machine's cells: everything the loop needs, nothing it computes.

    ``finished`` holds the results of this pass as they are recorded, so that a caller still has
    them when the engine goes away mid-run. ``prefix`` names the machine on each progress line
    (several machines write to one terminal: then each line is written whole); ``stop`` ends the
    pass before the next cell.
    """

    cells: list[Cell]
    launcher: Launcher
    settings: Settings
    run_dir: Path
    prepared: Prepared
    host: Environment | None = None  # for the results the runner makes itself
    done: set[CellKey] = field(default_factory=set)
    stream: TextIO = field(default_factory=lambda: sys.stderr)
    history: Path | None = None  # wall times of earlier runs on this machine, for the time-left estimate
    host_name: str = ""  # the runner's name for the machine, in a run on several ("" on one)
    prefix: str = ""
    stop: threading.Event | None = None
    finished: list[Result] = field(default_factory=list)

    def run(self) -> list[Result]:
        """Run every cell not in ``done``, one at a time, appending each result as it arrives."""
        launcher, host = self.settings.launcher, self.host_name
        todo = [c for c in self.cells if c.key(launcher, host) not in self.done]
        timed = [c for c in todo if self._preset(c) is None]
        machine = self._machine()
        history = load_history(self.history) if self.history is not None else {}
        eta = Eta(history, machine, load_reference())
        n = len(self.cells)
        for k, cell in enumerate(self.cells, start=1):
            if cell.key(launcher, host) in self.done:
                continue
            if self.stop is not None and self.stop.is_set():
                raise KeyboardInterrupt
            head = f"{self.prefix}[{k}/{n}] {cell.label} ... "
            if not self.prefix:
                self.stream.write(head)
                self.stream.flush()
            load = os.getloadavg()[0]
            start = time.monotonic()
            try:
                result = self._run_one(cell, load)
            except EngineLost as lost:  # the cell it took with it is recorded, then the run ends
                if lost.result is not None:
                    self._record(self._stamped(cell, lost.result, load))
                    self.stream.write(f"{head if self.prefix else ''}{outcome(lost.result)}\n")
                raise
            self._record(result)
            if cell in timed:
                eta.add(cell, time.monotonic() - start)
                timed.remove(cell)
                if self.history is not None:
                    eta.remember(self.history)
            left = eta.left(timed)
            tail = f" — ~{format_duration(left)} left" if left is not None and timed else ""
            self.stream.write(f"{head if self.prefix else ''}{outcome(result)}{tail}\n")
            self.stream.flush()
        return list(self.finished)

    def _machine(self) -> str:
        """What the wall-time history knows this machine by: its fingerprint, else its CPU model."""
        if self.host is None:
            return ""
        return self.host.machine.fingerprint if self.host.machine is not None else self.host.cpu_model

    def _record(self, result: Result) -> None:
        """On disk (one whole line, fsynced) before the next cell starts; a full disk ends the run.

        A train cell's weights go to a file of their own first (``RUN_DIR/weights/``), not into the line.
        """
        try:
            result = kept_weights(result, self.run_dir)
            append_result(self.run_dir, result)
        except OSError as exc:
            raise ResultsUnwritable(
                f"cannot write {self.run_dir / RESULTS_FILE}: {exc.strerror or exc}", result
            ) from None
        self.finished.append(result)

    def _preset(self, cell: Cell) -> Result | None:
        """The result of a cell that will not run (its variant was skipped or failed to build)."""
        name = cell.variant.name
        if name in self.prepared.skipped:
            return runner_result(cell, self.settings, "skipped", self.prepared.skipped[name])
        if name in self.prepared.errors:
            return runner_result(cell, self.settings, "failed", self.prepared.errors[name])
        return None

    def _run_one(self, cell: Cell, load: float) -> Result:
        result = self._preset(cell)
        if result is None:
            result = self.launcher.launch(cell, self.settings, self.prepared.ids[cell.variant.name])
        return self._stamped(cell, result, load)

    def _stamped(self, cell: Cell, result: Result, load: float) -> Result:
        # Resume finds finished cells by their key: every line carries these, whoever made the result.
        result = replace(
            result, variant=cell.variant.name, launcher=self.settings.launcher, host=self.host_name or None
        )
        return with_peak(with_load(result, load, self._cell_environment(cell)), self.host)

    def _cell_environment(self, cell: Cell) -> Environment | None:
        if self.host is None:
            return None
        cpus = parse_cpuset(self.settings.cpus)
        docker = self.settings.launcher == "docker"
        return replace(
            self.host,
            cpus_available=len(cpus),
            cpuset=self.settings.cpus,
            in_container=docker,
            image_id=self.prepared.ids.get(cell.variant.name),
            memory_limit_bytes=memory_bytes(self.settings.memory) if docker else self.host.memory_limit_bytes,
        )


def kept_weights(result: Result, run_dir: Path) -> Result:
    """The result with its trained weights written to ``RUN_DIR/weights/`` (``frameworks.trained``); weights
    that do not have the sha256 the result states are dropped with a warning instead."""
    try:
        return extract_weights(result, run_dir)
    except (WeightsMismatch, ValueError) as exc:  # ValueError: not base64
        assert result.training is not None
        training = replace(result.training, weights_npz=None)
        return replace(result, training=training, warnings=(*result.warnings, f"trained weights not kept: {exc}"))


def with_load(result: Result, load: float, fallback: Environment | None) -> Result:
    """Record the machine's 1-minute load before the cell: predict's own reading when it has one."""
    if result.environment is not None:
        if result.environment.load_avg_1m is None:
            return replace(result, environment=replace(result.environment, load_avg_1m=load))
        return result
    if fallback is None:
        return result
    return replace(result, environment=replace(fallback, load_avg_1m=load))


def with_peak(result: Result, host: Environment | None) -> Result:
    """Each result carries the run's GEMM peak (measured once, outside every cell), so a line read alone
    can still say what share of the machine it reached."""
    env, peak = result.environment, host.matmul_peak_gflops if host is not None else None
    if env is None or peak is None or env.matmul_peak_gflops is not None:
        return result
    return replace(result, environment=replace(env, matmul_peak_gflops=peak))


# --- what every cell of a model shares: computed once per run ------------------------------------


def cache_dir() -> Path:
    """The runner's cache: local virtualenvs, the canonical inputs."""
    return Path(os.environ.get("DLBENCH_CACHE") or Path.home() / ".cache" / "dlbench")


def inputs_root() -> Path:
    return cache_dir() / "inputs"


def history_path() -> Path:
    return cache_dir() / "walls.json"


def prepare_inputs(cells: Iterable[Cell], seed: int, log: Log, timeout: float = 1800) -> dict[str, Inputs]:
    """Each model's canonical weights and float64 reference, made once for every cell of the run.

    One subprocess per model (the runner never imports NumPy), covering the largest batch any of
    the model's cells runs. A model whose inputs cannot be made is left out: its cells compute
    their own, as predict does by hand.
    """
    largest: dict[str, int] = {}
    for cell in (c for c in cells if c.transform.name == NONE):  # a transform's cells have inputs of their own
        largest[cell.model] = max(largest.get(cell.model, 1), cell.config.largest_batch())
    made: dict[str, Inputs] = {}
    for model, batch in largest.items():
        start = time.monotonic()
        inputs, problem, _ = _make_inputs(model, batch, seed, timeout)
        if inputs is None:
            log(f"inputs: {model}: not made ({problem}); its cells compute their own")
            continue
        made[model] = inputs
        log(f"inputs: {model} (up to batch {batch}) ready in {time.monotonic() - start:.1f} s")
    return made


def with_inputs(cells: list[Cell], made: dict[str, Inputs]) -> list[Cell]:
    """The cells with the canonical inputs of their model (a transform's cells keep their own)."""
    return [c if c.transform.name != NONE else replace(c, inputs=made.get(c.model)) for c in cells]


def prepare_transforms(cells: list[Cell], seed: int, log: Log, timeout: float = 1800) -> list[Cell]:
    """The weights each transform point makes for each model, once per run (and cached between runs), with
    their reference; each cell gets them and the key they give it (the weights' sha256 is part of the key,
    so this comes before resume looks for what is done). Weights that cannot be made leave the cells to make
    their own, said in the log: such a cell's key is known only once it has run.
    """
    largest: dict[tuple[str, TransformPoint], int] = {}
    for cell in (c for c in cells if c.transform.name != NONE):
        pair = (cell.model, cell.transform)
        largest[pair] = max(largest.get(pair, 1), cell.config.largest_batch())
    made: dict[tuple[str, TransformPoint], tuple[Inputs, tuple[tuple[str, str], ...]]] = {}
    for (model, point), batch in largest.items():
        start = time.monotonic()
        inputs, problem, key = _make_inputs(model, batch, seed, timeout, point)
        if inputs is None:
            log(f"inputs: {model} {point.label()}: not made ({problem}); its cells make their own")
            continue
        made[(model, point)] = (inputs, key)
        log(f"inputs: {model} {point.label()} (up to batch {batch}) ready in {time.monotonic() - start:.1f} s")
    return [replace(c, inputs=made[(c.model, c.transform)][0], transform_key=made[(c.model, c.transform)][1])
            if (c.model, c.transform) in made else c for c in cells]  # fmt: skip


def _make_inputs(
    model: str, batch: int, seed: int, timeout: float, point: TransformPoint = NO_POINT
) -> tuple[Inputs | None, str, tuple[tuple[str, str], ...]]:
    args = ["--root", str(inputs_root()), "--model", model, "--seed", str(seed), "--batch", str(batch)]
    args += point.to_args()
    try:
        proc = subprocess.run([sys.executable, "-m", "frameworks.inputs", *args], cwd=REPO_ROOT,
                              capture_output=True, text=True, timeout=timeout, check=False)  # fmt: skip
    except subprocess.TimeoutExpired:
        return None, f"took more than {timeout:.0f} s", ()
    if proc.returncode != 0:
        return None, error_line(proc.stderr) or describe_exit(proc.returncode), ()
    try:
        answer = json.loads(proc.stdout.strip().splitlines()[-1])
        key = tuple((str(name), str(value)) for name, value in answer.get("transform_key", []))
        return Inputs(Path(answer["directory"]).name, str(answer["sha256"])), "", key
    except (ValueError, IndexError, KeyError, TypeError):
        return None, f"printed {proc.stdout.strip()[:80]!r}", ()


# --- the host's float32 GEMM peak ------------------------------------------------------------------


def measure_host_peak(cpus: str, timeout: float = 600) -> tuple[Peak | None, str]:
    """The host's float32 GEMM peak up to the cells' thread count (``frameworks.peak``), in a subprocess
    pinned to the cpuset: the runner itself never imports NumPy or a BLAS. Returns (the peak or None, a
    note on how it was measured or why not)."""
    allowed = parse_cpuset(cpus)
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "frameworks.peak", "--cpus", str(len(allowed))], cwd=REPO_ROOT,
            capture_output=True, text=True, timeout=timeout, check=False,
            preexec_fn=lambda: os.sched_setaffinity(0, allowed),
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        return None, f"the GEMM peak took more than {timeout:.0f} s"
    if proc.returncode != 0:
        return None, f"the GEMM peak failed: {last_line(proc.stderr) or describe_exit(proc.returncode)}"
    try:
        peak = parse_peak(proc.stdout)
    except ValueError as exc:
        return None, f"the GEMM peak printed {proc.stdout.strip()[:80]!r} ({exc})"
    return peak, f"{peak_note(peak)}, on CPUs {cpus}"


def parse_peak(stdout: str) -> Peak:
    """``python -m frameworks.peak``'s last line as a ``Peak``; ``ValueError`` if it is not one."""
    lines = stdout.strip().splitlines()
    if not lines:
        raise ValueError("nothing printed")
    try:
        data = json.loads(lines[-1])
    except json.JSONDecodeError as exc:
        raise ValueError(exc.msg) from None
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    return _build(Peak, data, "peak")


def peak_note(peak: Peak) -> str:
    """How the peak was measured, in one line for run.json's settings and the log."""
    busy = f", measured {peak.attempts} times (busy)" if peak.attempts > 1 else ""
    load = f", other load {peak.other_load:.2f} CPUs" if peak.other_load is not None else ", load unknown"
    missing = f"; not measured: {'; '.join(peak.missing)}" if peak.missing else ""
    return (f"float32 GEMM, best of {len(peak.points)} points: {peak.library} sgemm {peak.size}x{peak.size}, "
            f"{peak.threads} threads{load}{busy}{missing}")  # fmt: skip
