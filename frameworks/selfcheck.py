"""An image's build-time check: ``python -m frameworks.selfcheck FRAMEWORK [MODE...]``
(every mode of the framework by default).

Every mode given builds LeNet-5 from the canonical weights, with the spec's parameter
counts, and matches the float64 reference; then the backend's own ``image_check()`` runs where it
has one (Caffe: exactly the BLAS the image was built for is mapped). Exit 1 with one line per
failure, so an image that cannot run its cells never gets built. The Dockerfiles run it as the
last step (build arg ``BUILD_CHECK`` of docker/Dockerfile; docker/caffe.Dockerfile always).

Must run on Python 3.9.
"""

from __future__ import annotations

import sys

from .backends.registry import get_framework, load_backend
from .check import check_cell

MODEL = "lenet5"  # a second of work in every framework: the three models are the equivalence tests' job


def self_check(framework: str, modes: list[str] | None = None, model: str = MODEL) -> list[str]:
    """The failures (empty: the image works), each one line; progress on stdout."""
    problems = []
    for mode in modes or get_framework(framework).modes:
        report = check_cell(framework, model, mode)
        counts = f"params {report.params}/{report.spec_params}, buffers {report.buffers}/{report.spec_buffers}"
        error = f"max error {report.max_error:.2e} (tolerance {report.tolerance:g})"
        print(f"{framework} {mode} {model}: {error}, {counts}")
        if not report.verified:
            problems.append(f"{framework} {mode}: {model} does not match the reference ({report.max_error:.3g})")
        if (report.params, report.buffers) != (report.spec_params, report.spec_buffers):
            problems.append(f"{framework} {mode}: parameter counts differ from the spec")
    extra = getattr(load_backend(framework), "image_check", None)
    if extra is not None:
        problems += extra()
    return problems


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args:
        print("usage: python -m frameworks.selfcheck FRAMEWORK [MODE...]", file=sys.stderr)
        return 2
    try:
        problems = self_check(args[0], args[1:])
    except KeyError as exc:
        print(f"error: {exc.args[0]}", file=sys.stderr)
        return 2
    for line in problems:
        print(f"error: {line}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
