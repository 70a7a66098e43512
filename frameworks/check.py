"""Build framework modes and check them against the spec and the reference, without timing.

``python -m frameworks.check --framework F --model M [M...] --mode X [X...] [--seed S]`` prints one
JSON object per mode x model, in that order, as each finishes: a ``CheckReport``, or
``{"framework", "mode", "model", "error"}`` for a cell whose build or forward raised (the others still
run; exit 1). The equivalence tests use it for frameworks that live in an environment or an image of
their own (tests/checks.py: one process per environment and model, for every mode there: one import,
one set of weights and one reference), and ``check_cell`` in-process for the others.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, dataclass

from .backends.registry import PRECISION, BuildOptions, check_mode, load_backend
from .models import get_model
from .verify import compare, reference_output, verification_input
from .weights import canonical_weights


@dataclass(frozen=True)
class CheckReport:
    framework: str
    mode: str
    model: str
    params: int
    buffers: int
    spec_params: int
    spec_buffers: int
    max_error: float
    tolerance: float
    verified: bool
    # the precision the compiled model computes in, where the framework reads one back (build fact
    # ``inference_precision``): below float32, an unverified output is that precision's doing
    precision: str | None = None


def check_cell(
    framework: str, model: str, mode: str, device: str = "cpu", seed: int = 0, batch: int = 1
) -> CheckReport:
    check_mode(framework, mode)
    spec = get_model(model)
    backend = load_backend(framework)
    built = backend.build(spec, canonical_weights(spec, seed), BuildOptions(mode, device, threads=0, batch=batch))
    result = compare(
        built.forward(verification_input(spec, batch, seed)), reference_output(spec, batch, seed), spec.tolerance
    )
    return CheckReport(
        framework, mode, model, built.params, built.buffers, spec.params, spec.buffers,
        result.max_error, result.tolerance, result.verified, backend.build_facts().get(PRECISION),
    )  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m frameworks.check", description=__doc__)
    parser.add_argument("--framework", required=True)
    parser.add_argument("--model", required=True, nargs="+")
    parser.add_argument("--mode", required=True, nargs="+")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch", type=int, default=1)
    args = parser.parse_args(argv)
    failed = False
    for mode in args.mode:
        for model in args.model:
            try:
                line = asdict(check_cell(args.framework, model, mode, args.device, args.seed, args.batch))
            except KeyError as exc:
                print(f"error: {exc.args[0]}", file=sys.stderr)
                return 2
            except Exception as exc:  # a cell that cannot be built is data for its test; the others still run
                line = {
                    "framework": args.framework,
                    "mode": mode,
                    "model": model,
                    "error": f"{type(exc).__name__}: {exc}",
                }
                failed = True
            print(json.dumps(line), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
