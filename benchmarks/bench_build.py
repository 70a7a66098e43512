"""How long does a warm ``runner build`` take? Every CPU image of the catalog, already built.

A warm build must cost next to nothing: the runner compares each image's spec-hash label with the
catalog and builds nothing that is current. ``--rebuild`` times forced builds instead, which still
reuse the engine's layer cache (only the label steps and anything after a changed input run).

    python -m benchmarks.bench_build [--rounds 5] [--rebuild] [--images numpy-openblas torch]

Builds run one at a time; never run this beside a benchmark.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--rebuild", action="store_true", help="force builds (layer cache still used)")
    parser.add_argument("--images", nargs="+", help="image names (default: every CPU image)")
    args = parser.parse_args(argv)

    from runner.catalog import load_catalog
    from runner.engine import connect, engine_version
    from runner.images import build_image, image_state

    client = connect()
    catalog = load_catalog()
    chosen = [catalog.images[n] for n in args.images] if args.images else [
        i for i in catalog.images.values() if i.device == "cpu"
    ]  # fmt: skip
    print(f"# engine {engine_version(client)}; {len(chosen)} images; {args.rounds} rounds; rebuild={args.rebuild}")
    for image in chosen:  # the first round would pay for a real build: build anything not current first
        if image_state(client, image) != "current":
            print(f"{image.name}: {image_state(client, image)}, building it first (not timed)")
            build_image(client, image, base_image=None, log=lambda s: None)
    totals = []
    per_image: dict[str, list[float]] = {i.name: [] for i in chosen}
    for _ in range(args.rounds):
        start = time.perf_counter()
        for image in chosen:
            t = time.perf_counter()
            build_image(client, image, base_image=None, log=lambda s: None, force=args.rebuild)  # as `runner build`
            per_image[image.name].append(time.perf_counter() - t)
        totals.append(time.perf_counter() - start)
    for name, times in per_image.items():
        print(f"{name:16s} median {statistics.median(times) * 1e3:9.1f} ms  max {max(times) * 1e3:9.1f} ms")
    print(f"{'all CPU images':16s} median {statistics.median(totals) * 1e3:9.1f} ms  max {max(totals) * 1e3:9.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
