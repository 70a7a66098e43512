"""Does the harness add time? predict's median vs a bare loop over the same built forward.

For LeNet-5 (the smallest network, where any per-iteration overhead shows most) in each given
framework mode: build the forward function once, then alternate blocks of the harness's own
timing loop (``frameworks.harness._time_loop``: fresh input outside the timer, perf_counter_ns
around the call) with blocks of a bare loop (inputs made beforehand, one timer around the whole
block). Prints the ratio of medians; the target is at most 1.01.

    python -m benchmarks.bench_harness_overhead [--cells onnxruntime:session torch:eager] [--rounds 15]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cells", nargs="+", default=["onnxruntime:session", "torch:eager"])
    parser.add_argument("--model", default="lenet5")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--block", type=int, default=200, help="iterations per block")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)

    from frameworks.predict import set_thread_env

    threads = set_thread_env(args.threads)
    import numpy as np

    from frameworks.backends.registry import BuildOptions, is_installed, load_backend
    from frameworks.environment import LoadMeter, cpu_model
    from frameworks.harness import _time_loop
    from frameworks.models import get_model
    from frameworks.scenarios.latency import LatencyConfig
    from frameworks.weights import canonical_weights, make_input

    spec = get_model(args.model)
    print(f"# {cpu_model()}, {threads} thread(s), {args.model}, {args.rounds} rounds x {args.block} iterations")
    meter = LoadMeter()
    meter.start()
    for cell in args.cells:
        framework, mode = cell.split(":")
        if not is_installed(framework):
            print(f"{cell}: not installed here, skipped")
            continue
        built = load_backend(framework).build(spec, canonical_weights(spec), BuildOptions(mode, "cpu", threads))
        timing = LatencyConfig(iterations=args.block, min_time=0.0)  # blocks of equal size
        rng = np.random.default_rng(7)
        for _ in range(50):
            built.forward(make_input(spec, 1, rng))
        harness_medians, bare_means = [], []
        for _ in range(args.rounds):
            samples, _ = _time_loop(built.forward, spec, 1, 0, timing)
            harness_medians.append(statistics.median(samples))
            inputs = [make_input(spec, 1, rng) for _ in range(args.block)]
            start = time.perf_counter_ns()
            for x in inputs:
                built.forward(x)
            bare_means.append((time.perf_counter_ns() - start) * 1e-9 / args.block)
        h, b = statistics.median(harness_medians), statistics.median(bare_means)
        print(f"{framework}-{mode}-{args.model}: harness median {h * 1e6:.1f} us, bare loop {b * 1e6:.1f} us, "
              f"ratio {h / b:.4f}")  # fmt: skip
    load = meter.stop()
    print(f"# other processes' CPU load during the benchmark: {load:.2f} CPUs" if load is not None else "")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.exit(main())
