"""Build one framework mode and check it against the spec and the reference, without timing.

``python -m frameworks.check --framework F --model M --mode X [--seed S]`` prints one JSON
object; the equivalence tests use it for frameworks that live in an environment of their own
(MXNet), and ``check_cell`` in-process for the others.
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
    parser.add_argument("--model", required=True)
    parser.add_argument("--mode", required=True)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch", type=int, default=1)
    args = parser.parse_args(argv)
    try:
        report = check_cell(args.framework, args.model, args.mode, args.device, args.seed, args.batch)
    except KeyError as exc:
        print(f"error: {exc.args[0]}", file=sys.stderr)
        return 2
    print(json.dumps(asdict(report)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
