"""The one timing loop every framework goes through.

Per cell: build the model from the canonical weights, run the first inference on the
verification input (timed separately: it includes lazy compilation) and compare it to the
NumPy float64 reference, warm up, then time each iteration around feed + forward + fetch
(the backend's ``forward``) with a fresh input made outside the timer, until at least
``iterations`` samples and ``min_time`` seconds are in.
"""

from __future__ import annotations

import gc
import time
import traceback
from dataclasses import dataclass, replace

import numpy as np

from .backends.registry import Backend, BuildOptions, Built, check_mode, get_framework, load_backend
from .environment import DEFAULT_MIN_TIME_S, LOAD_WARNING_CPUS, LoadMeter, environment, peak_rss_bytes
from .models import ModelSpec, get_model
from .result import Result, Stats, cell_result, utc_now
from .stats import stability_warnings, summarize
from .verify import compare, reference_output, tolerance_for, verification_input
from .weights import canonical_weights, make_input


class CudaUnavailable(RuntimeError):
    """A CUDA run was asked for where the framework sees no GPU."""


@dataclass(frozen=True)
class TimingOptions:
    device: str = "cpu"
    batch: int = 1
    iterations: int = 20
    warmup: int = 5
    min_time: float = DEFAULT_MIN_TIME_S
    threads: int = 1
    seed: int = 0


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".strip().rstrip(":")


def _timed_call(forward: object, x: np.ndarray) -> float:
    start = time.perf_counter_ns()
    forward(x)  # type: ignore[operator]
    return (time.perf_counter_ns() - start) * 1e-9


def _time_loop(built: Built, spec: ModelSpec, options: TimingOptions) -> tuple[list[float], float | None]:
    """Timed samples in seconds per batch, and other processes' CPU load during them."""
    rng = np.random.default_rng([options.seed, 2])
    samples: list[float] = []
    meter = LoadMeter()
    gc.collect()
    gc.disable()  # a collection inside one framework's loop and not another's is noise
    try:
        meter.start()
        started = time.monotonic()
        while len(samples) < options.iterations or time.monotonic() - started < options.min_time:
            x = make_input(spec, options.batch, rng)
            samples.append(_timed_call(built.forward, x))
        load = meter.stop()
    finally:
        gc.enable()
    return samples, load


def _warmup(built: Built, spec: ModelSpec, options: TimingOptions) -> list[float]:
    rng = np.random.default_rng([options.seed, 1])
    return [_timed_call(built.forward, make_input(spec, options.batch, rng)) for _ in range(options.warmup)]


def _base_result(framework: str, mode: str, spec: ModelSpec, options: TimingOptions) -> Result:
    return cell_result(
        framework,
        mode,
        spec,
        options.device,
        status="failed",
        batch=options.batch,
        threads=options.threads,
        seed=options.seed,
        tolerance=tolerance_for(spec),
        started_at=utc_now(),
        environment=environment(),
    )


def run_cell(framework: str, model: str, mode: str, options: TimingOptions) -> Result:
    """Measure one cell. Unknown names raise ``KeyError``, a missing GPU ``CudaUnavailable``;
    anything that goes wrong inside the framework becomes a failed result, never an exception."""
    check_mode(framework, mode)
    spec = get_model(model)
    if options.device not in get_framework(framework).devices:
        raise KeyError(
            f"{framework} has no {options.device!r} device; valid: {', '.join(get_framework(framework).devices)}"
        )
    base = _base_result(framework, mode, spec, options)
    try:
        backend = load_backend(framework)
    except Exception as exc:
        return replace(base, error=f"cannot import {framework}: {_one_line(exc)}", finished_at=utc_now())
    if options.device == "cuda" and not backend.cuda_available():
        raise CudaUnavailable(f"CUDA requested but {framework} sees no GPU")
    base = replace(base, version=backend.version(), build=backend.build_facts())
    try:
        result = _measure(backend, spec, mode, options, base)
    except Exception as exc:
        traceback.print_exc()
        return replace(base, error=_one_line(exc), peak_rss_bytes=peak_rss_bytes(), finished_at=utc_now())
    return result


def _measure(backend: Backend, spec: ModelSpec, mode: str, options: TimingOptions, base: Result) -> Result:
    weights = canonical_weights(spec, options.seed)
    build_options = BuildOptions(mode, options.device, options.threads, options.batch)
    built = backend.build(spec, weights, build_options)
    base = replace(base, build={**base.build, **backend.build_facts()})  # facts that build settled (threads)
    reference = reference_output(spec, options.batch, options.seed)
    x0 = verification_input(spec, options.batch, options.seed)
    start = time.perf_counter_ns()
    first = built.forward(x0)
    first_s = (time.perf_counter_ns() - start) * 1e-9
    check = compare(first, reference, tolerance_for(spec))
    warmup = _warmup(built, spec, options)
    samples, load = _time_loop(built, spec, options)
    stats = summarize(samples)
    warnings = _warnings(stats, check.verified, check.max_error, check.tolerance, load)
    return replace(
        base,
        status="ok",
        first_inference_s=first_s,
        warmup_s=tuple(warmup),
        samples_s=tuple(samples),
        stats=stats,
        throughput_ips=options.batch / stats.median,
        gflops=spec.flops * options.batch / stats.median / 1e9,
        peak_rss_bytes=peak_rss_bytes(),
        verified=check.verified,
        max_error=check.max_error if np.isfinite(check.max_error) else None,
        other_load=load,
        warnings=tuple(warnings),
        finished_at=utc_now(),
    )


def _warnings(stats: Stats, verified: bool, error: float, tolerance: float, load: float | None) -> list[str]:
    warnings = stability_warnings(stats)
    if not verified:
        warnings.insert(0, f"output does not match the reference (max relative error {error:.3g} > {tolerance:g})")
    if load is not None and load > LOAD_WARNING_CPUS:
        warnings.append(f"machine busy: other processes used {load:.2f} CPUs during the timed loop")
    return warnings
