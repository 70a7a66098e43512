"""The versioned result schema: one JSON object per measured (or failed) cell.

Standard library only: images write it, the host runner appends it to ``results.jsonl`` and
the reports read it back, without NumPy or any framework on the host. Bump
``SCHEMA_VERSION`` on any incompatible change and say what changed in ``SCHEMA_HISTORY``;
``from_dict`` migrates every older version it lists (so old run directories keep loading) and
refuses anything else with a clear error instead of rendering half-understood data.
"""

from __future__ import annotations

import errno
import json
import os
import typing
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from .compat import UNION_TYPES, type_hints

if TYPE_CHECKING:
    from .models import ModelSpec

SCHEMA_VERSION = 6
SCHEMA_HISTORY: dict[int, str] = {
    1: "one batch-1 latency measurement per cell; `backend` names how the runner launched it",
    2: "a scenario axis: `scenario`, its `config` (as strings) and the `identity` fields of it that make "
    "the cell; sweep scenarios keep one `points` entry per batch size or thread count; `threads_in_use` "
    "as the framework reads it back; `backend` renamed `launcher`; the build fact `in_effect`",
    3: "machine identity: `environment.machine` (vendor, family, model, stepping, the instruction-set "
    "extensions kernels dispatch on, caches, cores, hypervisor, and a fingerprint of them); `host`, the "
    "runner's name for the machine a cell ran on (several machines in one run); `host_name` in run.json",
    4: "training and accuracy: `training` (the train scenario's epochs, loss curve, batch order and trained "
    "weights with their sha256) and `accuracy` (test accuracy of a cell that ran trained weights)",
    5: "one measurement record: a latency cell's figures (samples, stats, first inference, throughput, GFLOP/s, "
    "threads in use, accuracy) move into `points`, one `Measurement` like each point of a sweep; a transform "
    "axis: `transform` (what was done to the model before it ran: its name, config, identity fields, the sha256 "
    "of the weights it produced, their sparsity and sizes), part of the cell's key",
    6: "trust: a validity verdict per measurement and per cell (`valid`, `invalid_reasons`, judged by "
    "`frameworks.validity`; lines of older schemas are judged when read), CPU throttling events seen during a "
    "measurement (`throttle_events`), the CPU governor and boost in `environment`; run.json records the "
    "project's version and commit and the float32 GEMM peak as a record (`peak`: library, size, threads, load)",
}
RESULTS_FILE = "results.jsonl"  # a run directory: one result per line, appended as cells finish
RUN_FILE = "run.json"  # and what the run was (RunInfo)

Status = Literal["ok", "failed", "skipped"]
STATUSES: tuple[str, ...] = ("ok", "failed", "skipped")


@dataclass(frozen=True)
class Stats:
    """Summary of the timed samples, in seconds per batch."""

    n: int
    mean: float
    sd: float
    median: float
    min: float
    max: float
    p90: float | None  # None when there are too few samples for it to mean anything
    p99: float | None
    median_ci_low: float  # distribution-free confidence interval for the median
    median_ci_high: float
    ci_level: float

    @property
    def half_width(self) -> float | None:
        """The median's confidence interval's larger half, relative to the median: the precision reached."""
        if self.median <= 0:
            return None
        return max(self.median - self.median_ci_low, self.median_ci_high - self.median) / self.median


@dataclass(frozen=True)
class Machine:
    """What a machine is, beyond /proc/cpuinfo's "model name" (which a hypervisor may reduce to "AMD
    EPYC" for very different parts): the facts kernels dispatch on, and a fingerprint of them."""

    vendor: str
    family: str
    model: str
    stepping: str
    model_name: str
    flags: tuple[str, ...]  # of the instruction-set extensions BLAS, oneDNN and XNNPACK dispatch on
    caches: tuple[str, ...]  # "L1d 48K", "L2 2048K", ...
    sockets: int
    cores: int  # physical, all sockets
    threads: int  # logical CPUs
    hypervisor: str | None  # "KVM", "Xen", ...; None on bare metal
    fingerprint: str  # sha256 of everything above, 16 hex digits: the machine in histories and tables


@dataclass(frozen=True)
class Environment:
    """Where a cell ran: enough to tell two machines (or two images) apart on the page."""

    cpu_model: str
    cpu_count: int  # logical CPUs of the machine
    cpus_available: int  # CPUs this process may run on (its affinity / cpuset)
    cpuset: str
    memory_bytes: int
    python: str
    os: str
    in_container: bool
    image_id: str | None = None
    gpu: str | None = None
    load_avg_1m: float | None = None  # machine load average when the cell started
    matmul_peak_gflops: float | None = None  # float32 matmul peak, measured in the same run
    memory_limit_bytes: int | None = None  # cgroup limit (a container's --memory); None: none below the host's
    machine: Machine | None = None  # None in results written before schema 3: a machine of its own
    cpu_governor: str | None = None  # cpufreq's scaling governor of the first CPU; None where not readable
    cpu_boost: str | None = None  # "on" / "off" (cpufreq boost, intel_pstate no_turbo); None where not readable


@dataclass(frozen=True)
class GemmPoint:
    """One float32 GEMM timing of the peak: a library at a matrix size and thread count."""

    library: str  # "mkl", "onednn", "openblas"
    size: int  # square matrices of this side
    threads: int
    gflops: float  # best of its repeats
    other_load: float | None  # other processes' CPU use while its process ran; None where not measurable


@dataclass(frozen=True)
class Peak:
    """This machine's float32 GEMM peak (``frameworks.peak``): the best point of every library, size
    and thread count tried, the bound a float32 cell's achieved GFLOP/s is held to."""

    gflops: float
    library: str
    size: int
    threads: int
    other_load: float | None  # during the best point
    points: tuple[GemmPoint, ...] = ()  # every point measured, busy repeats included
    missing: tuple[str, ...] = ()  # libraries that could not be loaded, with the reason
    attempts: int = 1  # measured again while the machine was busy


@dataclass(frozen=True)
class Measurement:
    """One timed measurement, in one shape wherever it is made: a latency cell's one, or one point of a
    sweep (a batch size, a thread count), each in a process of its own. A new figure is added here, once.

    A point that ran out of memory or time is ``failed`` with the reason, and the sweep goes on.
    """

    batch: int
    threads: int
    status: Status
    error: str | None = None
    threads_in_use: int | None = None  # what the framework says it used, where it can say
    first_inference_s: float | None = None  # includes lazy compilation
    warmup_s: tuple[float, ...] = ()
    samples_s: tuple[float, ...] = ()  # seconds per batch
    stats: Stats | None = None
    throughput_ips: float | None = None  # images per second at the median
    gflops: float | None = None  # achieved GFLOP/s at the median
    peak_rss_bytes: int | None = None  # of the measuring process
    verified: bool | None = None  # output against the float64 reference at this batch size
    max_error: float | None = None
    tolerance: float | None = None
    other_load: float | None = None  # other processes' CPU use during the timed loop, in CPUs
    accuracy: float | None = None  # test accuracy inside the framework, where the weights are trained ones
    speedup: float | None = None  # thread scaling: median at 1 thread / median here
    efficiency: float | None = None  # speedup / threads
    warnings: tuple[str, ...] = ()
    throttle_events: int | None = None  # the CPUs' thermal throttle counters' rise; None where not readable
    valid: bool | None = None  # frameworks.validity's verdict; None for a measurement that did not run
    invalid_reasons: tuple[str, ...] = ()  # why it is not valid, in words a report shows as they are


NO_TRANSFORM = "none"


@dataclass(frozen=True)
class Transformed:
    """What a transform did to the model before the cell ran it (``frameworks.transforms``).

    ``identity`` names the entries of ``config`` that make the cell one of its own; with the sha256 of the
    weights it produced they join the cell's key, so a pruned cell never pairs with a dense one by accident.
    """

    name: str  # the transform: "prune", ...
    config: dict[str, str] = field(default_factory=dict)  # its settings, as strings
    identity: tuple[str, ...] = ()
    weights_sha256: str = ""  # of the canonical-layout .npz the cell ran (frameworks.training.npz_bytes)
    source: str = ""  # what it started from: "canonical" (seeded) or "trained" weights
    sparsity: float | None = None  # zeros among the prunable weights, counted from the weights themselves
    weights_bytes: int | None = None  # the .npz, raw
    weights_gzip_bytes: int | None = None  # and gzip -9
    facts: dict[str, str] = field(default_factory=dict)  # how it was made (fine-tuning, spared layers, ...)

    def key(self) -> tuple[tuple[str, str], ...]:
        """Its part of the cell's key."""
        named = tuple((name, self.config.get(name, "")) for name in self.identity)
        return (("transform", self.name), *named, ("weights", self.weights_sha256[:16]))


@dataclass(frozen=True)
class Epoch:
    """One epoch of the train scenario: its steps timed as one region, then the test set evaluated."""

    epoch: int  # 1-based; the first includes lazy compilation (torch.compile, XLA, hybridize)
    wall_s: float  # every step of the epoch, batch gathering included, synchronised at its end
    images: int  # images trained on (whole batches only)
    images_per_s: float
    test_accuracy: float  # on the test images, measured inside the framework after the epoch (not timed)
    eval_s: float  # how long that evaluation took


@dataclass(frozen=True)
class Training:
    """What the train scenario did and saw: the same network, initial weights and batch order everywhere.

    ``initial_weights_sha256`` and ``order_sha256`` let the reports check that two cells did start
    from the same weights and fed the same batches. The trained weights come back from predict as
    ``weights_npz`` (base64 of the canonical-layout .npz whose sha256 is ``weights_sha256``); the
    runner moves them to a file of the run directory (``weights_file``) before it records the line.
    """

    dataset: str
    train_images: int
    test_images: int
    steps_per_epoch: int
    epochs: tuple[Epoch, ...]
    loss_steps: tuple[int, ...]  # global step numbers (1-based) at which the batch's training loss was read
    losses: tuple[float, ...]  # the mean softmax cross-entropy of that step's batch, before its update
    final_accuracy: float
    initial_weights_sha256: str
    order_sha256: str
    weights_sha256: str
    dataset_sha256: str = ""  # of the dataset files' own sha256s, as checked
    # the float64 NumPy trainer's losses on the same first batches, and this cell's largest relative
    # difference from them: the cell's own fidelity check
    reference_losses: tuple[float, ...] = ()
    max_loss_error: float | None = None
    weights_npz: str | None = None
    weights_file: str | None = None  # relative to the run directory
    # the fidelity verdict (frameworks.training.judge_fidelity): the loss trajectory is judged on steps
    # 1..fidelity_judged_steps, every step at the framework's own weights; a near-tie that float32 broke
    # ends the judged steps and is recorded
    fidelity_judged_steps: int | None = None
    max_judged_loss_error: float | None = None
    max_local_error: float | None = None
    near_tie: str | None = None
    threads_in_use: int | None = None  # intra-op threads the framework's trainer reads back

    def summary(self) -> str:
        """``2 epochs, 41.2 s per epoch after the first (first 63.0 s), test accuracy 0.8712``."""
        walls = [e.wall_s for e in self.epochs]
        later = walls[1:]
        pace = (f"{sum(later) / len(later):.1f} s per epoch after the first (first {walls[0]:.1f} s)" if later
                else f"{walls[0]:.1f} s" if walls else "no epoch")  # fmt: skip
        return f"{len(walls)} epoch{'s' if len(walls) != 1 else ''}, {pace}, test accuracy {self.final_accuracy:.4f}"


@dataclass(frozen=True, order=True)
class CellKey:
    """What makes a cell one cell: resume, the reports and the published history all use this.

    A later result with the same key replaces an earlier one.
    """

    scenario: str
    variant: str  # the catalog variant, or the framework where no runner set one
    launcher: str  # "docker", "local", or "" (predict run by hand)
    host: str  # the runner's name for the machine ("" for a run on one machine)
    framework: str
    mode: str
    model: str
    device: str
    identity: tuple[tuple[str, str], ...] = ()  # the scenario's identity fields and their values
    transform: tuple[tuple[str, str], ...] = ()  # Transformed.key(); () for the model as specified

    def __str__(self) -> str:
        extra = "".join(f" {name}={value}" for name, value in (*self.identity, *self.transform))
        return f"{self.variant} {self.mode} {self.model} {self.scenario}{extra}"

    def without(self, *axes: str) -> CellKey:
        """The key with the named axes blanked: two cells that differ in those axes alone share it.

        The comparisons pair cells by it (pruned against dense is ``without("transform")``); an axis is a
        field of the key, or the name of one of its identity or transform entries.
        """
        names = {f.name for f in fields(self)}
        entries = set(axes) - names
        key = replace(
            self,
            identity=() if "identity" in axes else tuple(p for p in self.identity if p[0] not in entries),
            transform=() if "transform" in axes else tuple(p for p in self.transform if p[0] not in entries),
        )
        blanked: dict[str, Any] = {axis: "" for axis in axes if axis in names and axis not in ("identity", "transform")}
        return replace(key, **blanked)


@dataclass(frozen=True)
class Result:
    """One cell: a framework mode running one model on one device, measured by one scenario."""

    framework: str
    mode: str
    model: str
    device: str
    status: Status
    error: str | None = None
    schema_version: int = SCHEMA_VERSION
    scenario: str = "latency"
    config: dict[str, str] = field(default_factory=dict)  # the scenario's settings, as strings
    identity: tuple[str, ...] = ()  # the names in ``config`` that belong to the cell's identity
    variant: str | None = None  # catalog variant (set by the runner)
    launcher: str | None = None  # how the runner launched it: "docker", "local", or None
    host: str | None = None  # which of a run's machines ran it (the runner's name), None on one machine
    version: str | None = None  # the framework's own version string
    build: dict[str, str] = field(default_factory=dict)  # build facts as the framework states them
    batch: int = 1
    input_shape: tuple[int, ...] = ()
    params: int = 0
    flops: int = 0  # per image
    threads: int = 0
    seed: int = 0
    # the cell's verdict over its measurements (a latency cell's one, every ok point of a sweep)
    peak_rss_bytes: int | None = None
    verified: bool | None = None
    max_error: float | None = None
    tolerance: float | None = None
    other_load: float | None = None  # the most other processes used during any timed loop, in CPUs
    warnings: tuple[str, ...] = ()
    valid: bool | None = None  # the cell's verdict (frameworks.validity): every measurement valid; None if none ran
    invalid_reasons: tuple[str, ...] = ()
    environment: Environment | None = None
    started_at: str | None = None  # ISO 8601, UTC
    finished_at: str | None = None
    points: tuple[Measurement, ...] = ()  # the measurements: a latency cell's one, a sweep's per point
    training: Training | None = None  # the train scenario's record
    transform: Transformed | None = None  # None: the model as specified, canonical or trained weights

    def key(self) -> CellKey:
        """The one definition of this cell's identity."""
        identity = tuple((name, self.config.get(name, "")) for name in self.identity)
        return CellKey(
            self.scenario,
            self.variant or self.framework,
            self.launcher or "",
            self.host or "",
            self.framework,
            self.mode,
            self.model,
            self.device,
            identity,
            self.transform.key() if self.transform is not None else (),
        )

    # --- the one measurement of a cell that makes one (latency), read through --------------------------

    @property
    def measurement(self) -> Measurement | None:
        """The cell's measurement when it made exactly one (a latency cell; a sweep of one point), else None."""
        return self.points[0] if len(self.points) == 1 else None

    @property
    def stats(self) -> Stats | None:
        m = self.measurement
        return m.stats if m is not None else None

    @property
    def samples_s(self) -> tuple[float, ...]:
        m = self.measurement
        return m.samples_s if m is not None else ()

    @property
    def warmup_s(self) -> tuple[float, ...]:
        m = self.measurement
        return m.warmup_s if m is not None else ()

    @property
    def first_inference_s(self) -> float | None:
        m = self.measurement
        return m.first_inference_s if m is not None else None

    @property
    def throughput_ips(self) -> float | None:
        m = self.measurement
        return m.throughput_ips if m is not None else None

    @property
    def gflops(self) -> float | None:
        m = self.measurement
        return m.gflops if m is not None else None

    @property
    def threads_in_use(self) -> int | None:
        if self.training is not None:
            return self.training.threads_in_use
        m = self.measurement
        return m.threads_in_use if m is not None else None

    @property
    def accuracy(self) -> float | None:
        """Test accuracy: the trained network's (train scenario) or the one the measurement took."""
        if self.training is not None:
            return self.training.final_accuracy
        m = self.measurement
        return m.accuracy if m is not None else None

    @property
    def transform_name(self) -> str:
        return self.transform.name if self.transform is not None else NO_TRANSFORM

    @property
    def cell(self) -> str:
        """The seed's cell name, e.g. ``torch-eager-vgg16`` (prefixed by the variant if any).

        Scenarios other than latency add their name: ``torch-eager-vgg16-throughput``.
        """
        head = self.variant or self.framework
        tail = "" if self.scenario == "latency" else f"-{self.scenario}"
        if self.transform is not None:
            t = self.transform
            tail += "".join(f"-{part}" for part in (t.name, *(t.config.get(n, "") for n in t.identity)))
        return f"{head}-{self.mode}-{self.model}{tail}"

    def summary_line(self) -> str:
        """The seed's one-line format: ``torch-eager-vgg16 : 0.199012 (sd 0.004211)``.

        A sweep lists its points: ``... : batch 1 0.0123 s, batch 4 0.0401 s, batch 16 failed``.
        """
        if self.points and self.measurement is None:
            return f"{self.cell} : " + ", ".join(_point_summary(p, self.identity) for p in self.points)
        if self.status == "ok" and self.training is not None:
            return f"{self.cell} : {self.training.summary()}"
        if self.status != "ok" or self.stats is None:
            return f"{self.cell} : {self.status} ({self.error})"
        return f"{self.cell} : {self.stats.mean:.6f} (sd {self.stats.sd:.6f})"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        """One line of JSON (no newlines inside, so results.jsonl stays one result per line)."""
        return json.dumps(self.to_dict(), sort_keys=True, allow_nan=False, separators=(",", ":"))

    @classmethod
    def from_dict(cls, data: Any) -> Result:
        """Parse and validate (migrating older schemas); raises ``ValueError`` naming the offending field."""
        if not isinstance(data, dict):
            raise ValueError(f"a result must be a JSON object, got {type(data).__name__}")
        written = data.get("schema_version")
        data = _migrated(data, RESULT_MIGRATIONS, "")
        result = _build(cls, data, "result")
        if result.status not in STATUSES:
            raise ValueError(f"result.status must be one of {', '.join(STATUSES)}, got {result.status!r}")
        if written != SCHEMA_VERSION:  # written before verdicts: judged now, by the same function
            from .validity import judge

            result = judge(result)
        return result

    @classmethod
    def from_flat(cls, **fields: Any) -> Result:
        """A cell from schema 4's flat fields: the figures of its measurement (``MOVED_IN_5``) become its
        one ``Measurement``, at the cell's batch and threads, sharing the cell's verdict. For cells written
        by hand (tests, report fixtures); the harness measures into a ``Measurement`` directly."""
        figures = {name: fields.pop(name) for name in MOVED_IN_5 if name in fields}
        result = cls(**fields)
        if not figures:
            return result
        shared = {name: getattr(result, name) for name in SHARED_IN_5}
        point = Measurement(batch=result.batch, threads=result.threads, status=result.status, **shared, **figures)
        return replace(result, points=(point,))

    def with_flat(self, **changes: Any) -> Result:
        """A copy with schema 4's flat fields changed (``from_flat``'s counterpart): the figures of its one
        measurement go to that measurement, which is dropped when no figure is left (a failed copy)."""
        figures = {name: changes.pop(name) for name in MOVED_IN_5 if name in changes}
        result = replace(self, **changes)
        if not figures:
            return result
        current = {f.name: getattr(self.measurement, f.name) for f in fields(Measurement)} if self.measurement else {}
        flat = {k: v for k, v in current.items() if k in MOVED_IN_5}
        flat.update(figures)
        if not flat.get("samples_s") and flat.get("stats") is None:
            return replace(result, points=())
        return Result.from_flat(**{**{f.name: getattr(result, f.name) for f in fields(Result)}, "points": (), **flat})

    @classmethod
    def from_json(cls, text: str) -> Result:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"not valid JSON: {exc.msg} at column {exc.colno}") from None
        return cls.from_dict(data)


def _point_summary(point: Measurement, identity: tuple[str, ...]) -> str:
    axis = "threads" if "thread_counts" in identity else "batch"
    label = f"{axis} {point.threads if axis == 'threads' else point.batch}"
    if point.status != "ok" or point.stats is None:
        return f"{label} {point.status}"
    return f"{label} {point.stats.median:.6f} s"


# --- migrations: each older schema to the next one (SCHEMA_HISTORY says what changed) ---------------


def _migrated(data: dict[str, Any], steps: dict[int, Any], where: str) -> dict[str, Any]:
    """``data`` brought to SCHEMA_VERSION one step at a time; a version no step starts from is refused."""
    version = data.get("schema_version")
    while version != SCHEMA_VERSION:
        if not isinstance(version, int) or isinstance(version, bool) or version not in steps:
            raise ValueError(f"{where}unsupported schema_version {version!r} "
                             f"(this code reads {', '.join(map(str, SCHEMA_HISTORY))})")  # fmt: skip
        data = {**steps[version](data), "schema_version": version + 1}
        version = version + 1
    return data


def _unchanged(data: dict[str, Any]) -> dict[str, Any]:
    """A step that only adds optional fields: the older data reads as it is."""
    return dict(data)


def migrate_result_v1(data: dict[str, Any]) -> dict[str, Any]:
    """A schema 1 line as schema 2: the latency scenario at its batch, ``backend`` as ``launcher``.

    Schema 1 had no ``in_effect`` fact: it is derived here from the facts each framework did state,
    exactly as the reports of schema 1 read them, so old and new runs compare builds the same way.
    """
    migrated = {k: v for k, v in data.items() if k != "backend"}
    if "backend" in data:
        migrated["launcher"] = data["backend"]
    batch = data.get("batch", 1)
    migrated.update(scenario="latency", config={"batch": str(batch)}, identity=["batch"])
    build = data.get("build")
    if isinstance(build, dict) and "in_effect" not in build:
        derived = _v1_in_effect(str(data.get("framework", "")), build)
        if derived is not None:
            migrated["build"] = {**build, "in_effect": derived}
    return migrated


def _v1_blas(text: str) -> str | None:
    lowered = text.lower()
    for token, name in (("mkl", "MKL"), ("openblas", "OpenBLAS"), ("blis", "BLIS")):
        if token in lowered:
            return name
    return None


def _v1_in_effect(framework: str, build: dict[str, Any]) -> str | None:
    """The math library in effect as schema 1's facts state it (frozen: schema 1 is never written again)."""
    facts = {k: str(v) for k, v in build.items()}
    if framework == "numpy":
        return _v1_blas(facts.get("blas_loaded", "")) or _v1_blas(facts.get("blas", ""))
    if framework == "tensorflow" and "onednn_enabled" in facts:
        return "oneDNN" if facts["onednn_enabled"] == "True" else "Eigen"
    if framework == "mxnet" and "mkldnn_in_use" in facts:
        if facts["mkldnn_in_use"] == "True":
            return "oneDNN"
        return "MKL" if facts.get("blas_mkl") == "True" else "OpenBLAS" if facts.get("blas_open") == "True" else "BLAS"
    if framework == "torch" and facts.get("blas"):
        return "OpenBLAS" if facts["blas"] == "open" else _v1_blas(facts["blas"])
    return None


def migrate_run_v1(data: dict[str, Any]) -> dict[str, Any]:
    """run.json of schema 1 as schema 2: ``backend`` is ``launcher``."""
    migrated = {k: v for k, v in data.items() if k != "backend"}
    if "backend" in data:
        migrated["launcher"] = data["backend"]
    settings = data.get("settings")
    if isinstance(settings, dict) and "backend" in settings:
        migrated["settings"] = {("launcher" if k == "backend" else k): v for k, v in settings.items()}
    return migrated


# Schema 4's top-level figures of a latency cell, now its one Measurement's.
MOVED_IN_5 = ("threads_in_use", "first_inference_s", "warmup_s", "samples_s", "stats", "throughput_ips", "gflops",
              "accuracy")  # fmt: skip
# and the cell-level verdict fields a latency cell's measurement shares with the cell
SHARED_IN_5 = ("peak_rss_bytes", "verified", "max_error", "tolerance", "other_load", "warnings")


def migrate_result_v4(data: dict[str, Any]) -> dict[str, Any]:
    """A schema 4 line as schema 5: an ok latency-style cell's figures become its one measurement.

    A train cell's top-level accuracy was its training record's final accuracy: it is dropped (read
    through ``Result.accuracy``); a failed cell's empty figures are dropped.
    """
    migrated = {k: v for k, v in data.items() if k not in MOVED_IN_5}
    training = data.get("training")
    if isinstance(training, dict) and data.get("threads_in_use") is not None:
        migrated["training"] = {**training, "threads_in_use": data["threads_in_use"]}
    measured = data.get("status") == "ok" and not data.get("points") and data.get("training") is None
    if measured and any(data.get(k) not in (None, []) for k in MOVED_IN_5):
        point = {k: data[k] for k in (*MOVED_IN_5, *SHARED_IN_5) if data.get(k) is not None}
        point.update(batch=data.get("batch", 1), threads=data.get("threads", 0), status="ok")
        migrated["points"] = [point]
    return migrated


RESULT_MIGRATIONS = {1: migrate_result_v1, 2: _unchanged, 3: _unchanged, 4: migrate_result_v4, 5: _unchanged}
RUN_MIGRATIONS = {1: migrate_run_v1, 2: _unchanged, 3: _unchanged, 4: _unchanged, 5: _unchanged}

T = TypeVar("T")


def parse_transformed(data: Any) -> Transformed:
    """A transform record from JSON (an inputs manifest's); ``ValueError`` naming the field."""
    if not isinstance(data, dict):
        raise ValueError("a transform record must be a JSON object")
    return _build(Transformed, data, "transform")


@dataclass(frozen=True)
class BadLine:
    """A line of results.jsonl that is not a result; ``truncated`` for a last line without newline."""

    lineno: int
    reason: str
    truncated: bool


def parse_results_jsonl(data: bytes) -> tuple[list[tuple[int, Result]], list[BadLine]]:
    """results.jsonl's bytes as (line number, result) pairs and the lines that are not results.

    The runner writes each line, newline included, in one ``write``, so a last line without its
    newline was cut short by a kill, even where what is left happens to parse: it is bad, and a
    resumed run redoes that cell. The one reader for the runner (resume) and the reports.
    """
    lines = data.split(b"\n")
    tail = lines.pop()  # after the last newline: b"" when the file ends cleanly
    results: list[tuple[int, Result]] = []
    bad: list[BadLine] = []
    for lineno, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        try:
            results.append((lineno, Result.from_json(raw.decode("utf-8"))))
        except (UnicodeDecodeError, ValueError, TypeError, RecursionError) as exc:
            bad.append(BadLine(lineno, (str(exc).splitlines() or [type(exc).__name__])[0], truncated=False))
    if tail.strip():
        bad.append(BadLine(len(lines) + 1, "no newline at the end", truncated=True))
    return results, bad


def append_jsonl(path: Path, line: str) -> None:
    """Append ``line`` + newline with one ``os.write`` and fsync it: a kill leaves whole lines only.

    The one writer of results files: predict's ``--output x.jsonl`` and the runner's results.jsonl.
    """
    if "\n" in line:
        raise ValueError("a results line must not contain a newline")
    data = (line + "\n").encode("utf-8")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        size = os.fstat(fd).st_size
        try:
            written = os.write(fd, data)
            if written != len(data):  # only a fatal signal or a full disk cuts a regular-file write short
                raise OSError(errno.ENOSPC, f"{os.strerror(errno.ENOSPC)} ({written} of {len(data)} bytes written)")
            os.fsync(fd)
        except OSError:
            os.ftruncate(fd, size)  # never leave part of a line: the file ends where it ended before
            raise
    finally:
        os.close(fd)


def utc_now() -> str:
    """Timestamps in results and run.json: ISO 8601, UTC, to the second."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def cell_result(
    framework: str,
    mode: str,
    spec: ModelSpec,
    device: str,
    *,
    status: Status,
    batch: int,
    threads: int,
    seed: int,
    **known: Any,
) -> Result:
    """A cell's result carrying everything known before (or without) running it.

    The harness starts every measurement from it and the runner records cells that never ran
    with it, so a failed cell has the same shape, parameters and FLOPs as a measured one.
    """
    return Result(
        framework=framework,
        mode=mode,
        model=spec.name,
        device=device,
        status=status,
        tolerance=spec.tolerance,
        batch=batch,
        input_shape=(batch, *spec.input_shape),
        params=spec.params,
        flops=spec.flops,
        threads=threads,
        seed=seed,
        **known,
    )


def _build(cls: type[T], data: dict[str, Any], where: str) -> T:
    hints = type_hints(cls)  # not typing.get_type_hints: its PEP 604 hints do not evaluate on 3.9
    known = {f.name for f in fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"{where}: unknown field(s) {', '.join(unknown)}")
    values: dict[str, Any] = {}
    for f in fields(cls):  # type: ignore[arg-type]
        if f.name in data:
            values[f.name] = _convert(hints[f.name], data[f.name], f"{where}.{f.name}")
    try:
        return cls(**values)
    except TypeError as exc:  # a required field is missing
        raise ValueError(f"{where}: {exc}") from None


def _convert(hint: Any, value: Any, where: str) -> Any:
    """Check ``value`` against a type hint and convert JSON lists back to tuples."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in UNION_TYPES:
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return _convert(arg, value, where)
            except ValueError as exc:
                errors.append(str(exc))
        raise ValueError(errors[0] if errors else f"{where}: must not be null")
    if origin is Literal:
        if value not in args:
            raise ValueError(f"{where}: must be one of {', '.join(map(str, args))}, got {value!r}")
        return value
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"{where}: must be a list, got {type(value).__name__}")
        return tuple(_convert(args[0], v, f"{where}[{i}]") for i, v in enumerate(value))
    if origin is dict:
        if not isinstance(value, dict):
            raise ValueError(f"{where}: must be an object, got {type(value).__name__}")
        return {_convert(args[0], k, where): _convert(args[1], v, f"{where}.{k}") for k, v in value.items()}
    if hint in (Stats, Environment, Measurement, Machine, Epoch, Training, Transformed, Peak, GemmPoint, Resume):
        if not isinstance(value, dict):
            raise ValueError(f"{where}: must be an object, got {type(value).__name__}")
        return _build(hint, value, where)
    return _scalar(hint, value, where)


def _scalar(hint: Any, value: Any, where: str) -> Any:
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"{where}: must be a number, got {value!r}")
        return float(value)
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{where}: must be an integer, got {value!r}")
        return value
    if hint is bool:
        if not isinstance(value, bool):
            raise ValueError(f"{where}: must be true or false, got {value!r}")
        return value
    if hint is str:
        if not isinstance(value, str):
            raise ValueError(f"{where}: must be a string, got {value!r}")
        return value
    raise TypeError(f"{where}: no converter for {hint!r}")  # a schema bug, not bad input


@dataclass(frozen=True)
class Resume:
    """One ``--resume`` of a run (run.json's ``resumes``): a session of its own, so that the run's
    ``started_at``/``finished_at`` keep describing the original run, however late it was finished."""

    started_at: str  # ISO 8601, UTC
    finished_at: str | None = None  # None while it runs, or when it was interrupted in turn
    cells: int = 0  # the results it recorded: the cells that had no line, and those the engine took


@dataclass(frozen=True)
class RunInfo:
    """``RUN_DIR/run.json``: what the whole run was, written by the runner, read by the reports.

    The cells themselves are the lines of ``RUN_DIR/results.jsonl`` (one ``Result`` each,
    appended the moment it arrives).
    """

    run_id: str
    command: str  # the exact command that reproduces the run
    launcher: str  # "docker" or "local"
    started_at: str  # ISO 8601, UTC
    host: Environment
    schema_version: int = SCHEMA_VERSION
    finished_at: str | None = None
    docker_version: str | None = None
    images: dict[str, str] = field(default_factory=dict)  # variant -> image id
    settings: dict[str, str] = field(default_factory=dict)  # iterations, min_time, cpuset, memory, timeout, ...
    matmul_peak_gflops: float | None = None  # this machine's float32 GEMM peak, measured in the run (peak.gflops)
    host_name: str | None = None  # the runner's name for this machine, in a run on several machines
    hosts: dict[str, str] = field(default_factory=dict)  # a several-machine run's top run.json: name -> engine URL
    peak: Peak | None = None  # how the peak was measured (schema 6)
    project_version: str | None = None  # this project's version, and its git commit ("not a git checkout")
    project_commit: str | None = None
    resumes: tuple[Resume, ...] = ()  # every --resume of the run, oldest first (a run.json without: none)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True, allow_nan=False, indent=2)

    @classmethod
    def from_dict(cls, data: Any) -> RunInfo:
        if not isinstance(data, dict):
            raise ValueError(f"run.json must be a JSON object, got {type(data).__name__}")
        return _build(cls, _migrated(data, RUN_MIGRATIONS, "run.json: "), "run")
