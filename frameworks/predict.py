"""``python -m frameworks.predict``: measure one cell, or every cell this environment can run.

A cell is a framework mode running one model, measured by one scenario (``--scenario``, default
``latency``, or the ``DLBENCH_SCENARIO`` environment variable: compose services choose it so).
Thread counts are fixed in the environment before NumPy or any framework is imported (BLAS and
OpenMP read them once, at load), so every framework in a run gets the same number of threads.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from .backends.registry import DEVICES, FRAMEWORKS, check_mode, get_framework, is_installed
from .environment import THREAD_ENV, thread_count
from .models import MODELS, get_model
from .options import (
    UsageError,
    add_scenario_options,
    add_transform_options,
    choose_scenarios,
    given_options,
    scenario_configs,
    transform_points,
)
from .result import append_jsonl
from .scenarios import DEFAULT_SCENARIO, SCENARIO_ENV, SCENARIOS, ScenarioConfig

if TYPE_CHECKING:
    from .result import Result


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m frameworks.predict", description="Measure one cell.")
    p.add_argument("--framework", help=f"one of: {', '.join(FRAMEWORKS)}")
    p.add_argument("--model", help=f"one of: {', '.join(MODELS)}")
    p.add_argument(
        "--mode", action="append", help="the framework's execution mode (default: all of its modes with --all, "
        "else its first); with --all it may be given once per mode",
    )  # fmt: skip
    p.add_argument("--all", action="store_true", help="every model x mode of every framework importable here "
                   "(restricted by --framework / --model / --mode when given)")  # fmt: skip
    p.add_argument(
        "--scenario",
        default=os.environ.get(SCENARIO_ENV) or DEFAULT_SCENARIO,
        help=f"what to measure: {', '.join(SCENARIOS)} (default: ${SCENARIO_ENV}, else {DEFAULT_SCENARIO})",
    )
    p.add_argument("--device", default="cpu", choices=DEVICES)
    p.add_argument("--threads", type=int, default=0, help="intra-op threads (default: every CPU available)")
    p.add_argument("--seed", type=int, default=0, help="seed of the canonical weights and inputs")
    p.add_argument("--peak", action="store_true", help="also measure the float32 matmul peak (recorded per result)")
    p.add_argument("--inputs", metavar="DIR", help="canonical weights and reference made by the runner "
                   "(python -m frameworks.inputs), instead of computing them here")  # fmt: skip
    p.add_argument("--inputs-sha256", metavar="SHA256", help="the sha256 of DIR/manifest.json (required with --inputs)")
    p.add_argument("--output", default="-", help="'-' for stdout (JSON lines), a .jsonl file to append to, "
                   "an existing directory for one <cell>.json per cell, or a .json file")  # fmt: skip
    add_scenario_options(p)
    add_transform_options(p)
    args = p.parse_args(argv)
    if args.threads < 0:
        raise UsageError("--threads must not be negative")
    if not args.all and not (args.framework and args.model):
        raise UsageError("give --framework and --model, or --all")
    if bool(args.inputs) != bool(args.inputs_sha256):
        raise UsageError("--inputs and --inputs-sha256 go together")
    return args


def plan(args: argparse.Namespace) -> list[tuple[str, str, str]]:
    """The (framework, model, mode) cells to run; unknown names raise ``UsageError``."""
    try:
        frameworks = [get_framework(args.framework).name] if args.framework else list(FRAMEWORKS)
        models = [get_model(args.model).name] if args.model else list(MODELS)
        for fw in frameworks:
            for mode in args.mode or ():
                check_mode(fw, mode)
    except KeyError as exc:
        raise UsageError(exc.args[0]) from None
    if args.all and not args.framework:
        frameworks = [fw for fw in frameworks if is_installed(fw) and args.device in FRAMEWORKS[fw].devices]
    if not args.all:
        if args.mode and len(args.mode) > 1:
            raise UsageError("one --mode per cell: several go with --all")
        mode = args.mode[0] if args.mode else FRAMEWORKS[frameworks[0]].modes[0]
        return [(frameworks[0], models[0], mode)]
    modes = {fw: list(args.mode) if args.mode else list(FRAMEWORKS[fw].modes) for fw in frameworks}
    return [(fw, model, mode) for fw in frameworks for model in models for mode in modes[fw]]


def scenario_runs(config: ScenarioConfig, framework: str, model: str, mode: str) -> bool:
    """Whether the scenario measures this model in this mode (its config says which it runs)."""
    resolved = config.resolve(MODELS[model], len(os.sched_getaffinity(0)))
    return resolved.network(MODELS[model]) is not None and mode in resolved.modes(FRAMEWORKS[framework])


def missing_dataset(config: ScenarioConfig, model: str) -> str | None:
    """Why a dataset the cell reads cannot be used here (one line naming the package), or None."""
    from .datasets import NAME, DatasetError, check_dataset

    for name in config.resolve(MODELS[model], len(os.sched_getaffinity(0))).datasets():
        if name != NAME:
            return f"unknown dataset {name!r}; known: {NAME}"
        try:
            check_dataset()
        except DatasetError as exc:
            return str(exc)
    return None


def missing_weights(config: ScenarioConfig, model: str) -> str | None:
    """Why the committed trained weights the cell asks for cannot be read here (one line), or None: a
    cell asked for trained weights never runs the seeded ones in their place."""
    from .trained import trained_missing

    resolved = config.resolve(MODELS[model], len(os.sched_getaffinity(0)))
    return trained_missing(model) if getattr(resolved, "weights", None) == "trained" else None


def set_thread_env(threads: int) -> int:
    threads = thread_count(threads)
    for name in THREAD_ENV:
        os.environ[name] = str(threads)
    return threads


def write(result: Result, output: str) -> None:
    line = result.to_json()
    if output == "-":
        sys.stdout.write(line + "\n")
        sys.stdout.flush()
        return
    path = Path(output)
    if path.is_dir():
        (path / f"{result.cell}.json").write_text(line + "\n", encoding="utf-8")
    elif path.suffix == ".jsonl":
        append_jsonl(path, line)
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(line + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    try:
        args = parse_args(argv)
        cells = plan(args)
        (scenario,) = choose_scenarios([args.scenario])
        config = scenario_configs([scenario], given_options(args))[scenario.name]
        points = transform_points(args)
        refused = [p.name for p in points if not config.runs_transform(p.name)]
        if refused:
            raise UsageError(f"the {scenario.name} scenario does not run the {refused[0]} transform")
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not cells:
        print(f"error: no framework that runs on {args.device} is installed here", file=sys.stderr)
        return 2
    if args.all:  # a scenario runs only the models and modes it can (train: LeNet-5, the modes that train)
        cells = [c for c in cells if scenario_runs(config, *c)]
        if not cells:
            print(f"error: the {scenario.name} scenario runs none of these cells", file=sys.stderr)
            return 2
    threads = set_thread_env(args.threads)
    from dataclasses import replace

    from .harness import CellRequest, CudaUnavailable, run_cell  # imports NumPy: after the thread env
    from .inputs import hand

    if args.inputs:
        hand(args.inputs, args.inputs_sha256)

    peak = None
    if args.peak:
        from .peak import matmul_peak_gflops

        peak = matmul_peak_gflops()
    failed = False
    pairs = [(cell, point) for cell in cells for point in points]
    if args.all:  # every mode a transform runs (a sparse mode: on pruned weights only); one named cell must run
        pairs = [(cell, point) for cell, point in pairs if FRAMEWORKS[cell[0]].runs_mode(cell[2], point.name)]
    for (framework, model, mode), point in pairs:
        request = CellRequest(framework, model, mode, args.device, threads, args.seed, point)
        missing = missing_weights(config, model) or missing_dataset(config, model)
        if missing:
            print(f"error: {missing}", file=sys.stderr)
            return 2
        try:
            result = run_cell(request, scenario.name, config)
        except (KeyError, CudaUnavailable) as exc:
            print(f"error: {exc.args[0]}", file=sys.stderr)
            return 2
        if peak is not None and result.environment is not None:
            result = replace(result, environment=replace(result.environment, matmul_peak_gflops=peak))
        print(result.summary_line(), file=sys.stderr if args.output == "-" else sys.stdout, flush=True)
        write(result, args.output)
        failed |= result.status != "ok"
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
