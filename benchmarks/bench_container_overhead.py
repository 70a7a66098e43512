"""Does a container change what a cell measures, and what does one container cost per cell?

The same cell (variant, mode, model) runs through the Docker backend and the local backend,
alternating in one process (docker, local, local, docker, ...) so that drift in the machine's
load hits both alike. Reported:

- the cell's own median latency under each backend and the paired container/local ratio
  (1.0 means the container costs the timed region nothing);
- each cell's wall time from launch to parsed result under each backend; the difference is
  the container's start-to-first-result overhead per cell (create, start, wait, logs, remove);
- a bare ``python -c pass`` in the same locked-down container versus on the host, which
  isolates the start cost from the work.

    python -m benchmarks.bench_container_overhead [--variant cpu-numpy-openblas] [--model lenet5]
        [--mode im2col] [--rounds 6] [--iterations 200] [--cpus 0-1]

Needs a Docker engine. Builds (image and venv) happen before anything is timed. Never run it
beside another benchmark or a build: on a small machine they time each other.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from dataclasses import replace

from runner.catalog import load_catalog
from runner.cell import Cell
from runner.docker_launcher import DockerLauncher, container_options
from runner.engine import connect, engine_version
from runner.launcher import Launcher
from runner.limits import default_cpuset
from runner.local_launcher import LocalLauncher
from runner.settings import Settings


def run_once(launcher: Launcher, cell: Cell, settings: Settings, image_id: str) -> tuple[float, float]:
    """(the cell's median latency in s, wall time from launch to parsed result in s)."""
    start = time.perf_counter()
    result = launcher.launch(cell, settings, image_id)
    wall = time.perf_counter() - start
    if result.status != "ok" or result.stats is None:
        raise SystemExit(f"{launcher.name}: {cell.label}: {result.status}: {result.error}")
    return result.stats.median, wall


def bare_start(
    launcher: DockerLauncher, cell: Cell, settings: Settings, image_id: str, local_python: str
) -> tuple[float, float]:
    """Wall time of ``python -c pass`` in the cell's container (same options) and in the local venv."""
    options = container_options(cell, settings, image_id)
    options.update(command=["python", "-c", "pass"], detach=False, remove=True)
    start = time.perf_counter()
    launcher.client.containers.run(image_id, **options)
    container = time.perf_counter() - start
    start = time.perf_counter()
    subprocess.run([local_python, "-c", "pass"], check=True)
    return container, time.perf_counter() - start


def describe(values: list[float], scale: float = 1e3, unit: str = "ms") -> str:
    low, high = min(values) * scale, max(values) * scale
    return f"median {statistics.median(values) * scale:8.3f} {unit}  (min {low:.3f}, max {high:.3f})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variant", default="cpu-numpy-openblas")
    parser.add_argument("--model", default="lenet5")
    parser.add_argument("--mode", help="default: the variant's first mode")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--iterations", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--cpus", default=default_cpuset())
    args = parser.parse_args(argv)

    variant = load_catalog().variant(args.variant)
    cell = Cell(variant, args.mode or variant.modes[0], args.model)
    settings = Settings((variant.name,), (args.model,), "docker", cpus=args.cpus, timeout=900).with_options(
        iterations=args.iterations, warmup=args.warmup, min_time=0.0
    )  # exactly --iterations samples
    docker = DockerLauncher(connect())
    local = LocalLauncher()
    log = lambda line: print(line, file=sys.stderr)
    ids = {
        "docker": docker.prepare([variant], log).ids[variant.name],
        "local": local.prepare([variant], log).ids[variant.name],
    }
    backends: dict[str, Launcher] = {"docker": docker, "local": local}
    per = {name: replace(settings, launcher=name) for name in backends}
    print(f"# {cell.label}: {args.iterations} iterations, CPUs {args.cpus}; engine {engine_version(docker.client)}; "
          f"load {os.getloadavg()[0]:.2f}; {args.rounds} rounds alternating")  # fmt: skip

    medians: dict[str, list[float]] = {"docker": [], "local": []}
    walls: dict[str, list[float]] = {"docker": [], "local": []}
    for name in backends:  # one untimed run each: page cache, pyc, the engine's first-container costs
        run_once(backends[name], cell, per[name], ids[name])
    for r in range(args.rounds):
        order = ["docker", "local"] if r % 2 == 0 else ["local", "docker"]
        for name in order:
            median, wall = run_once(backends[name], cell, per[name], ids[name])
            medians[name].append(median)
            walls[name].append(wall)
    ratios = [d / loc for d, loc in zip(medians["docker"], medians["local"], strict=True)]
    overheads = [d - loc for d, loc in zip(walls["docker"], walls["local"], strict=True)]
    local_python = str(local.pythons[variant.image.name])
    starts = [bare_start(docker, cell, per["docker"], ids["docker"], local_python) for _ in range(args.rounds)]

    for name in backends:
        print(f"{name:6s} cell median latency  {describe(medians[name])}")
    print(f"container / local latency ratio (paired)  median {statistics.median(ratios):.3f}  "
          f"(min {min(ratios):.3f}, max {max(ratios):.3f})")  # fmt: skip
    for name in backends:
        print(f"{name:6s} launch-to-result wall {describe(walls[name], 1.0, 's')}")
    print(f"container overhead per cell (paired wall difference)  {describe(overheads, 1.0, 's')}")
    print(f"bare start: container {describe([c for c, _ in starts], 1.0, 's')}")
    print(f"            local     {describe([loc for _, loc in starts], 1.0, 's')}")
    print(f"# load after: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
