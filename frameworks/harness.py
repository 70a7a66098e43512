"""The one harness every scenario and framework goes through: run a cell, time a forward pass, run a point.

``run_cell`` checks the names, starts the result from everything known before measuring, and hands
it to the scenario, which owns the measurement loop; whatever goes wrong inside a framework comes
back as a failed result, never an exception.

``measure_forward`` is the timed protocol itself: build the model from the canonical weights, run
the first inference on the verification input (timed separately: it includes lazy compilation)
and compare it to the NumPy float64 reference, warm up, then time each iteration around feed +
forward + fetch (the backend's ``forward``) with a fresh input made outside the timer, until at
least ``iterations`` samples and ``min_time`` seconds are in, and then on until the median's 95%
confidence interval is within ``precision`` of it or ``max_time`` seconds have passed (the cap; the
precision reached is recorded, and a measurement that stopped short of it is not valid). Other
processes' CPU load is read over the timed loop, or over the whole cell where the loop was too short
for /proc/stat's ticks; each measurement is judged (``frameworks.validity``) as it is made.

``run_point`` measures one point of a sweep in a process of its own (``python -m
frameworks.predict --scenario latency``): thread counts are read by BLAS and OpenMP once per
process, peak memory is per process, and a point that the OOM killer or the timeout ends must not
end the sweep.
"""

from __future__ import annotations

import contextlib
import gc
import glob
import json
import os
import signal
import statistics
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from .backends.registry import (
    FLOAT32,
    INT8_KERNELS,
    PRECISION,
    SPARSE_KERNELS,
    Backend,
    BuildOptions,
    check_mode,
    get_framework,
    load_backend,
)
from .environment import LOAD_WARNING_CPUS, THREAD_ENV, LoadMeter, environment, peak_rss_bytes
from .inputs import handed
from .models import ModelSpec, get_model
from .result import Measurement, Result, Stats, Transformed, cell_result, utc_now
from .scenarios import Scenario, ScenarioConfig, get_scenario
from .stats import median_ci, stability_warnings, summarize
from .transforms import NO_POINT, NONE, TransformPoint
from .validity import judge
from .verify import compare, reference_output, verification_input
from .weights import Weights, canonical_weights, make_input

PACKAGE_ROOT = Path(__file__).resolve().parent.parent  # where ``python -m frameworks.predict`` resolves
# How often the OOM killer struck in this process's memory cgroup (a container's own): the line
# "oom_kill N" of cgroup v2's memory.events, or of cgroup v1's memory.oom_control.
OOM_COUNTERS = ("/sys/fs/cgroup/memory.events", "/sys/fs/cgroup/memory/memory.oom_control")


# The build facts a framework fills from inside with the kernels that ran; "none: why" makes the cell skipped.
KERNEL_PROOFS = {SPARSE_KERNELS: "sparse", INT8_KERNELS: "int8"}


class CudaUnavailable(RuntimeError):
    """A CUDA run was asked for where the framework sees no GPU."""


@dataclass(frozen=True)
class CellRequest:
    """What to measure, apart from how: the scenario's config says how."""

    framework: str
    model: str
    mode: str
    device: str = "cpu"
    threads: int = 1
    seed: int = 0
    transform: TransformPoint = NO_POINT  # what is done to the model first (frameworks.transforms)


def one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".strip().rstrip(":")


# --- the cell --------------------------------------------------------------------------------------


def run_cell(request: CellRequest, scenario_name: str, config: ScenarioConfig) -> Result:
    """Measure one cell with one scenario.

    Unknown names raise ``KeyError``, a missing GPU ``CudaUnavailable``; anything that goes wrong
    inside the framework becomes a failed result.
    """
    check_mode(request.framework, request.mode)
    spec = get_model(request.model)
    scenario = get_scenario(scenario_name)
    info = get_framework(request.framework)
    if request.device not in info.devices:
        raise KeyError(f"{request.framework} has no {request.device!r} device; valid: {', '.join(info.devices)}")
    if not isinstance(config, scenario.config):
        raise TypeError(f"the {scenario.name} scenario takes a {scenario.config.__name__}")
    config = config.resolve(spec, len(os.sched_getaffinity(0)))
    network = config.network(spec)
    if network is None:
        raise KeyError(f"the {scenario.name} scenario does not run {spec.name}")
    if request.mode not in config.modes(info):
        modes = ", ".join(config.modes(info)) or "none"
        raise KeyError(f"the {scenario.name} scenario runs {request.framework} in modes: {modes}; not {request.mode!r}")
    transform = request.transform.transform
    if not config.runs_transform(transform.name):
        raise KeyError(f"the {scenario.name} scenario does not run the {transform.name} transform")
    if not info.runs_mode(request.mode, transform.name):
        needs = dict(info.transform_modes)[request.mode]
        raise KeyError(f"the {request.framework} {request.mode} mode runs on the {needs} transform's weights: "
                       f"give --transforms {needs}")  # fmt: skip
    spec = transform.network(network, request.transform.config)
    base = base_result(request, spec, scenario, config)
    if not info.supports(transform.name, transform.level, request.transform.config.to_strings()):
        supported = ", ".join(info.transforms) or "none"
        note = dict(info.transform_notes).get(transform.name)
        if note is not None and transform.name not in [t.split()[0] for t in info.transforms]:
            supported = f"none: {note}"
        return replace(base, status="skipped", finished_at=utc_now(), transform=skipped_record(request, spec),
                       error=f"{request.framework} does not run the {transform.name} transform as asked "
                       f"({request.transform.label()}; it runs: {supported})")  # fmt: skip
    try:
        return judge(scenario.measure(request, spec, config, base))
    except CudaUnavailable:
        raise
    except Exception as exc:
        traceback.print_exc()
        return replace(base, error=one_line(exc), peak_rss_bytes=peak_rss_bytes(), finished_at=utc_now())


def skipped_record(request: CellRequest, spec: ModelSpec) -> Transformed:
    """The transform record of a cell skipped before it ran, so that its key is its transform point's: the one
    the runner made (handed), else the point's settings alone (its weights' sha256 unknown: nothing was made)."""
    from .inputs import handed_record

    point = request.transform
    handed = handed_record(point, spec, request.seed)
    if handed is not None:
        return handed
    return Transformed(name=point.name, config=point.config.to_strings(), identity=point.config.IDENTITY)


def base_result(request: CellRequest, spec: ModelSpec, scenario: Scenario, config: ScenarioConfig) -> Result:
    """The cell as far as it is known before measuring: failed until a scenario says otherwise."""
    return cell_result(
        request.framework,
        request.mode,
        spec,
        request.device,
        status="failed",
        batch=config.cell_batch(),
        threads=request.threads,
        seed=request.seed,
        scenario=scenario.name,
        config=config.to_strings(),
        identity=config.identity_fields(),
        started_at=utc_now(),
        environment=environment(),
    )


def open_backend(request: CellRequest, base: Result) -> tuple[Backend | None, Result]:
    """Import the framework: the backend and the result with its version and facts, or None and a failed result."""
    try:
        backend = load_backend(request.framework)
    except Exception as exc:
        return None, replace(base, error=f"cannot import {request.framework}: {one_line(exc)}", finished_at=utc_now())
    if request.device == "cuda" and not backend.cuda_available():
        raise CudaUnavailable(f"CUDA requested but {request.framework} sees no GPU")
    return backend, replace(base, version=backend.version(), build=backend.build_facts())


# --- one timed forward pass --------------------------------------------------------------------------


@dataclass(frozen=True)
class Measured:
    """What ``measure_forward`` found: the measurement, and what else the build told."""

    measurement: Measurement
    facts: dict[str, str]  # build facts read again after the build and the first inference
    transformed: Transformed | None  # what a transform did to the weights the cell ran


@dataclass(frozen=True)
class CellInputs:
    """The weights a cell runs, the float64 reference of its verification input on them, and whether
    (and how) it measures test accuracy: canonical, trained or transformed weights alike."""

    weights: Weights
    reference: np.ndarray
    evaluate: Callable[[Callable[[np.ndarray], np.ndarray]], float] | None = None
    transformed: Transformed | None = None
    tolerance: float | None = None  # the transform's, where it says how close the output must be (int8)
    x0: np.ndarray | None = None  # the verification input, where the transform verifies on test images
    data: dict[str, np.ndarray] | None = None  # what a build-level transform hands the backend (calibration)


def cell_inputs(request: CellRequest, spec: ModelSpec, batch: int, *, trained: bool = False) -> CellInputs:
    """The cell's weights: its transform's, else the committed trained ones (``trained``), else canonical."""
    if request.transform.name != NONE:
        return transformed_inputs(request, spec, batch)
    if trained:
        from .trained import trained_weights

        weights = trained_weights(spec)
        return CellInputs(weights, _reference_on(spec, weights, batch, request.seed), _evaluation(batch))
    return CellInputs(canonical_weights(spec, request.seed), reference_output(spec, batch, request.seed))


def transformed_inputs(request: CellRequest, spec: ModelSpec, batch: int) -> CellInputs:
    """A weights-level transform's weights: the runner's (``frameworks.inputs``, checked by sha256) when
    it handed them over, else made here; with the reference on them."""
    from .inputs import handed_transformed
    from .models import get_model

    point = request.transform
    handed = handed_transformed(point, spec, batch, request.seed)
    if handed is not None:
        weights, reference, record, arrays = handed
    else:
        prepared = point.transform.apply
        if prepared is None:
            raise ValueError(f"the {point.name} transform makes no weights")
        made = prepared(get_model(request.model), request.seed, point.config)
        weights, record, arrays = made.weights, transformed_record(point, made), made.arrays
        reference = transform_reference(point, spec, weights, arrays, batch, request.seed, record.source == "trained")
    tolerance = point.transform.tolerance
    bound = tolerance(spec, dict(weights), arrays, point.config, reference) if tolerance is not None else None
    trained = record.source == "trained"
    evaluate = _evaluation(batch) if trained else None
    x0 = transform_input(point, spec, batch, request.seed, trained)
    return CellInputs(weights, reference, evaluate, record, bound, x0, arrays or None)


def transform_input(point: TransformPoint, spec: ModelSpec, batch: int, seed: int, trained: bool) -> np.ndarray:
    """The verification input of a transform's cell: the first test images for trained weights where the
    transform says so (a quantized model's output on noise outside its calibrated range says nothing), else
    the seeded one."""
    if trained and point.transform.verify_on_test_images:
        from .datasets import test_split
        from .inputs import handed_test_split

        handed = handed_test_split()
        images = handed[0] if handed is not None else test_split().x
        return np.ascontiguousarray(images[:batch], dtype=np.float32)
    return verification_input(spec, batch, seed)


def transform_reference(
    point: TransformPoint, spec: ModelSpec, weights: Weights, arrays: dict[str, np.ndarray], batch: int, seed: int,
    trained: bool = False,
) -> np.ndarray:  # fmt: skip
    """What a transform's cell is checked against on its verification input: its own reference (int8's), else
    the float64 reference on its weights (image by image: a batch's is a prefix of a larger batch's)."""
    from .backends.numpy_backend import reference_forward

    x = transform_input(point, spec, batch, seed, trained)
    own = point.transform.reference
    out = own(spec, dict(weights), arrays, point.config, x) if own is not None else None
    if out is None:
        out = np.concatenate([reference_forward(spec, weights, x[i : i + 1]) for i in range(batch)])
    out.setflags(write=False)
    return out


def transformed_record(point: TransformPoint, made: object) -> Transformed:
    """What a weights-level transform did, counted from the weights it made (sha256, sparsity, sizes)."""
    from .pruning import sizes
    from .training import weights_sha256
    from .transforms import Prepared

    assert isinstance(made, Prepared)
    raw, gzipped = sizes(made.weights)
    return Transformed(
        name=point.name,
        config=point.config.to_strings(),
        identity=point.config.IDENTITY,
        weights_sha256=weights_sha256(made.weights),
        source=made.source,
        sparsity=made.sparsity,
        weights_bytes=raw,
        weights_gzip_bytes=gzipped,
        facts=dict(made.facts),
    )


def _reference_on(spec: ModelSpec, weights: Weights, batch: int, seed: int) -> np.ndarray:
    from .verify import compute_reference

    return compute_reference(spec, batch, seed, weights)


def _evaluation(batch: int) -> Callable[[Callable[[np.ndarray], np.ndarray]], float]:
    """Test accuracy of the built forward over the 10,000 Fashion-MNIST test images, at the cell's batch: the
    images the runner handed over with transformed weights (its images need not hold the dataset), else the
    dataset's own files."""
    from .datasets import Split, test_split
    from .inputs import handed_test_split
    from .training import accuracy

    handed = handed_test_split()
    test = Split(*handed) if handed is not None else test_split()
    return lambda forward: accuracy(forward, test, batch)


def build_options(request: CellRequest, batch: int, data: dict[str, np.ndarray] | None = None) -> BuildOptions:
    """What the backend builds: a build-level transform travels in the options with its data (calibration
    images); weights-level ones are weights."""
    point = request.transform
    build_level = point.name != NONE and point.transform.level == "build"
    transform = point.name if build_level else NONE
    settings = tuple(point.config.to_strings().items()) if build_level else ()
    handed = dict(data or {}) if build_level else {}
    return BuildOptions(request.mode, request.device, request.threads, batch, transform, settings, handed)


def _timed_call(forward: Callable[[np.ndarray], object], x: np.ndarray) -> float:
    start = time.perf_counter_ns()
    forward(x)
    return (time.perf_counter_ns() - start) * 1e-9


def measure_forward(
    backend: Backend,
    spec: ModelSpec,
    request: CellRequest,
    batch: int,
    timing: ScenarioConfig,
    inputs: CellInputs | None = None,
) -> Measured:
    """The timed protocol (see the module docstring); the numbers of every latency cell come from here.

    ``inputs`` other than the canonical ones (``cell_inputs``: trained or transformed weights) come with
    their own reference output for the verification input, and with ``evaluate`` (the test accuracy of
    trained weights) run on the built forward once the timed loop is over.
    """
    if inputs is None:
        inputs = cell_inputs(request, spec, batch)
    cell_meter, throttles = LoadMeter(), throttle_events()
    cell_meter.start()  # the whole cell's load: the figure when the timed loop is too short for one
    options = build_options(request, batch, inputs.data)
    built = backend.build(spec, inputs.weights, options)
    x0 = inputs.x0 if inputs.x0 is not None else verification_input(spec, batch, request.seed)
    start = time.perf_counter_ns()
    first = built.forward(x0)
    first_s = (time.perf_counter_ns() - start) * 1e-9
    # Read after the first inference: a framework that compiles lazily (jax.jit) picks its kernels then.
    facts = backend.build_facts()
    if refused_by_proof(facts) is not None:  # no sparse or int8 kernel ran: nothing of this cell is timed
        return Measured(Measurement(batch, request.threads, "skipped"), facts, inputs.transformed)
    check = compare(first, inputs.reference, inputs.tolerance or spec.tolerance)
    warm_rng = np.random.default_rng([request.seed, 1])
    warmup = tuple(_timed_call(built.forward, make_input(spec, batch, warm_rng)) for _ in range(timing.warmup))
    samples, load = _time_loop(built.forward, spec, batch, request.seed, timing)
    if load is None:
        load = cell_meter.stop()
    throttled = _rise(throttles, throttle_events())
    stats = summarize(samples)
    accuracy = inputs.evaluate(built.forward) if inputs.evaluate is not None else None
    measurement = Measurement(
        batch=batch,
        threads=request.threads,
        status="ok",
        threads_in_use=built.threads,
        first_inference_s=first_s,
        warmup_s=warmup,
        samples_s=tuple(samples),
        stats=stats,
        throughput_ips=batch / stats.median,
        gflops=spec.flops * batch / stats.median / 1e9,
        peak_rss_bytes=peak_rss_bytes(),
        verified=check.verified,
        max_error=check.max_error if np.isfinite(check.max_error) else None,
        tolerance=check.tolerance,
        other_load=load,
        accuracy=accuracy,
        warnings=tuple(
            measurement_warnings(stats, check.verified, check.max_error, check.tolerance, load, facts.get(PRECISION))
        ),
        throttle_events=throttled,
    )
    return Measured(measurement, facts, inputs.transformed)


def refused_by_proof(facts: dict[str, str]) -> tuple[str, str] | None:
    """(kind, the framework's words) when a kernel proof says none of the promised kernels ran, else None."""
    for fact, kind in KERNEL_PROOFS.items():
        proof = facts.get(fact)
        if proof is not None and proof.startswith("none"):
            return kind, proof
    return None


def measured_result(base: Result, measured: Measured) -> Result:
    """A one-measurement cell's result (latency): the measurement, and the cell's verdict, which is its."""
    m = measured.measurement
    refused = refused_by_proof(measured.facts)
    if refused is not None:  # never a dense timing labelled sparse, nor float kernels labelled int8
        kind, proof = refused
        why = f"no {kind} kernel ran ({base.framework} {base.mode}): {proof}"
        return replace(base, status="skipped", build={**base.build, **measured.facts},
                       transform=measured.transformed, error=why, finished_at=utc_now())  # fmt: skip
    return replace(
        base,
        status="ok",
        build={**base.build, **measured.facts},
        points=(m,),
        peak_rss_bytes=m.peak_rss_bytes,
        verified=m.verified,
        max_error=m.max_error,
        tolerance=m.tolerance,
        other_load=m.other_load,
        warnings=m.warnings,
        transform=measured.transformed,
        finished_at=utc_now(),
    )


def _time_loop(
    forward: Callable[[np.ndarray], object], spec: ModelSpec, batch: int, seed: int, timing: ScenarioConfig
) -> tuple[list[float], float | None]:
    """Timed samples in seconds per batch, and other processes' CPU load during them.

    Past the minimum (``iterations`` and ``min_time``) the precision is checked each time the sample
    count has grown by a tenth, so the check's cost (a sort and the binomial interval) stays a small
    share of the loop however many samples a fast model gives.
    """
    rng = np.random.default_rng([seed, 2])
    samples: list[float] = []
    meter = LoadMeter()
    gc.collect()
    gc.disable()  # a collection inside one framework's loop and not another's is noise
    try:
        meter.start()
        started = time.monotonic()
        check_at = timing.iterations
        while True:
            x = make_input(spec, batch, rng)
            samples.append(_timed_call(forward, x))
            elapsed = time.monotonic() - started
            if len(samples) < timing.iterations or elapsed < timing.min_time:
                continue
            if elapsed >= timing.max_time:
                break
            if len(samples) >= check_at:
                if precise(samples, timing.precision):
                    break
                check_at = len(samples) + max(1, len(samples) // 10)
        load = meter.stop()
    finally:
        gc.enable()
    return samples, load


def precise(samples: list[float], precision: float) -> bool:
    """Whether the median's 95% confidence interval is within +-``precision`` of the median."""
    ordered = sorted(samples)
    low, high = median_ci(ordered)
    median = statistics.median(ordered)
    return median > 0 and max(median - low, high - median) <= precision * median


# The kernel's thermal throttle counters, per CPU (Intel; absent on most virtual machines and AMD).
THROTTLE_COUNTERS = "/sys/devices/system/cpu/cpu*/thermal_throttle/*_throttle_count"


def throttle_events() -> int | None:
    """The sum of the CPUs' thermal throttle counters; None where the kernel shows none."""
    total, seen = 0, False
    for path in glob.glob(THROTTLE_COUNTERS):
        with contextlib.suppress(OSError, ValueError):
            total += int(Path(path).read_text().strip())
            seen = True
    return total if seen else None


def _rise(before: int | None, after: int | None) -> int | None:
    return after - before if before is not None and after is not None else None


def measurement_warnings(
    stats: Stats, verified: bool, error: float, tolerance: float, load: float | None, precision: str | None = None
) -> list[str]:
    """The cell's warnings; an unverified output names the precision it ran in when that is below float32."""
    warnings = stability_warnings(stats)
    if not verified:
        why = f": the compiled model computes in {precision}, not float32" if precision not in (None, FLOAT32) else ""
        warnings.insert(0, f"output does not match the reference (max relative error {error:.3g} > {tolerance:g}){why}")
    if load is not None and load > LOAD_WARNING_CPUS:
        warnings.append(f"machine busy: other processes used {load:.2f} CPUs during the timed loop")
    return warnings


# --- one point of a sweep, in a process of its own -------------------------------------------------------


def point_command(request: CellRequest, timing: ScenarioConfig, batch: int, threads: int) -> list[str]:
    """``python -m frameworks.predict`` measuring one latency cell at this batch and thread count
    (on the inputs this process was handed, if any)."""
    given = handed()
    inputs = ["--inputs", str(given.directory), "--inputs-sha256", given.sha256] if given is not None else []
    return [
        sys.executable, "-m", "frameworks.predict", "--scenario", "latency",
        "--framework", request.framework, "--model", request.model, "--mode", request.mode,
        "--device", request.device, "--batch", str(batch), "--threads", str(threads), "--seed", str(request.seed),
        "--iterations", str(timing.iterations), "--warmup", str(timing.warmup), "--min-time", f"{timing.min_time:g}",
        "--precision", f"{timing.precision:g}", "--max-time", f"{timing.max_time:g}",
        *request.transform.to_args(), *inputs, "--output", "-",
    ]  # fmt: skip


def run_point(
    request: CellRequest, timing: ScenarioConfig, batch: int, threads: int, timeout: float
) -> tuple[Measurement, Result | None]:
    """One point, measured by a child predict process; the point and the child's result (None if it has none)."""
    env = {**os.environ, **{name: str(threads) for name in THREAD_ENV}}
    ooms = _oom_kills()
    print(
        f"  {request.framework} {request.mode} {request.model}: batch {batch}, {threads} threads ...", file=sys.stderr
    )
    proc = subprocess.Popen(
        point_command(request, timing, batch, threads), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, start_new_session=True, cwd=PACKAGE_ROOT,
    )  # fmt: skip
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        return Measurement(batch, threads, "failed", error=f"timed out after {timeout:g} s"), None
    except BaseException:  # interrupted: never leave a measurement running behind the sweep
        _kill_group(proc)
        raise
    child = _result_line(stdout)
    if child is None:
        return Measurement(batch, threads, "failed", error=_point_failure(proc.returncode, stderr, ooms)), None
    return point_from(child, batch, threads), child


def run_points(
    request: CellRequest, timing: ScenarioConfig, sweep: list[tuple[int, int]], timeout: float
) -> tuple[list[Measurement], list[Result]]:
    """Each (batch, threads) of a sweep by ``run_point``, in order; the points and the children's results."""
    points, children = [], []
    for batch, threads in sweep:
        point, child = run_point(request, timing, batch, threads, timeout)
        points.append(point)
        if child is not None:
            children.append(child)
    return points, children


def point_from(child: Result, batch: int, threads: int) -> Measurement:
    """A child's latency result as a point of the sweep: its one measurement, as it is."""
    measured = child.measurement
    if child.status != "ok" or measured is None:
        error = child.error or child.status
        return Measurement(batch, threads, "failed", error=error, peak_rss_bytes=child.peak_rss_bytes)
    return replace(measured, batch=batch, threads=threads)


def sweep_result(base: Result, points: list[Measurement], children: list[Result]) -> Result:
    """The cell's result from its points: ok when any point is, with the failed points named."""
    ok = [p for p in points if p.status == "ok"]
    first = next((c for c in children if c.status == "ok"), children[0] if children else None)
    if first is not None:
        base = replace(
            base, version=first.version, build=first.build, environment=first.environment or base.environment,
            transform=first.transform,
        )  # fmt: skip
    if not ok and children and len(children) == len(points) and all(c.status == "skipped" for c in children):
        return replace(base, status="skipped", error=children[0].error, finished_at=utc_now())  # (a kernel proof)
    failed = [p for p in points if p.status != "ok"]
    warnings = [f"batch {p.batch}, {p.threads} threads: {p.error}" for p in failed]
    warnings += [f"batch {p.batch}, {p.threads} threads: {w}" for p in ok for w in p.warnings]
    loads = [p.other_load for p in ok if p.other_load is not None]
    memory = [p.peak_rss_bytes for p in points if p.peak_rss_bytes is not None]
    return replace(
        base,
        status="ok" if ok else "failed",
        error=None if ok else (failed[0].error if failed else "no point was measured"),
        points=tuple(points),
        verified=all(bool(p.verified) for p in ok) if ok else None,
        max_error=max((p.max_error for p in ok if p.max_error is not None), default=None),
        other_load=max(loads, default=None),
        peak_rss_bytes=max(memory, default=None),
        warnings=tuple(warnings),
        finished_at=utc_now(),
    )


def _result_line(stdout: str) -> Result | None:
    lines = [line for line in stdout.splitlines() if line.strip()]
    try:
        return Result.from_json(lines[-1]) if lines else None
    except (ValueError, json.JSONDecodeError):
        return None


def _point_failure(returncode: int, stderr: str, ooms_before: int | None) -> str:
    ooms = _oom_kills()
    killed = returncode < 0 and -returncode == signal.SIGKILL
    if killed and ooms is not None and ooms_before is not None and ooms > ooms_before:
        return "out of memory (killed by the OOM killer)"
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    detail = f": {lines[-1][:300]}" if lines else ""
    if returncode < 0:
        return f"killed by {signal.Signals(-returncode).name}{detail}"
    return f"exit code {returncode}{detail}"


def _oom_kills() -> int | None:
    for path in OOM_COUNTERS:
        try:
            with open(path, encoding="utf-8") as counters:
                for line in counters:
                    name, _, value = line.partition(" ")
                    if name == "oom_kill":
                        return int(value)
        except (OSError, ValueError):
            continue
    return None


def _kill_group(proc: subprocess.Popen[str]) -> None:
    """Kill the point's process and anything it started (compiler workers), then reap it."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate()
