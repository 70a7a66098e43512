"""``python -m frameworks.compose_entry [PREDICT ARGS | COMMAND]``: the compose services' entrypoint.

``docker compose up <variant>`` bind-mounts ``./results``, which belongs to whoever cloned the
repository, or to root when the engine created it. The service starts as root with only the
capabilities to change its user (SETUID, SETGID) and to hand one file over (CHOWN), and gives
them up before the benchmark runs:

- ``/results`` owned by an ordinary user: the benchmark runs as that user, so its results file
  has the caller's ownership;
- ``/results`` owned by root: the benchmark runs as the image's unprivileged user (10001), and
  the results file is created and made over to it first;
- ``DLBENCH_USER=uid:gid`` says who it runs as instead.

Either way the benchmark runs unprivileged: ``setuid`` clears every capability and the service's
``no-new-privileges`` keeps them cleared. A results directory it still cannot write is one line
naming the fix, and exit 2, before anything is measured. Arguments are predict's (the service's
command), or a whole command starting with ``python`` (a ``docker compose run`` override).
Standard library only.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

RESULTS = Path("/results")
IMAGE_USER = (10001, 10001)  # the unprivileged user the Dockerfiles create
USER_ENV = "DLBENCH_USER"
EXIT_USAGE = 2


class Refused(Exception):
    """One line on stderr, exit 2."""


def target_user(results: Path, env: dict[str, str]) -> tuple[int, int]:
    """Who the benchmark runs as: ``DLBENCH_USER``, else the results directory's owner unless that is root."""
    given = env.get(USER_ENV, "").strip()
    if given:
        uid, _, gid = given.partition(":")
        if not uid.isdigit() or (gid and not gid.isdigit()):
            raise Refused(f"{USER_ENV}={given!r}: expected uid:gid, e.g. {USER_ENV}=$(id -u):$(id -g)")
        return int(uid), int(gid or uid)
    owner = results.stat()
    return (owner.st_uid, owner.st_gid) if owner.st_uid != 0 else IMAGE_USER


def output_path(args: list[str]) -> Path | None:
    """The results file predict appends to, when it is one under ``/results``."""
    if "--output" not in args or args.index("--output") + 1 >= len(args):
        return None
    path = Path(args[args.index("--output") + 1])
    return path if path.parent == RESULTS else None


def hand_over(path: Path, uid: int, gid: int) -> None:
    """Create the results file if missing and make it the benchmark user's (root-owned directory only)."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.fchown(fd, uid, gid)
    finally:
        os.close(fd)


def become(uid: int, gid: int) -> None:
    os.setgroups([])
    os.setgid(gid)
    os.setuid(uid)  # from root to anyone else: every capability is cleared


def check_writable(path: Path | None) -> None:
    if path is None:
        return
    where = path if path.exists() else path.parent
    if not os.access(where, os.W_OK):
        raise Refused(
            f"cannot write {path} as uid {os.getuid()} (./results on the host belongs to uid {RESULTS.stat().st_uid}): "
            f"make it writable (chmod u+w results, as its owner) or run as its owner with "
            f"{USER_ENV}=$(id -u):$(id -g)"
        )


def command(args: list[str]) -> list[str]:
    if args and Path(args[0]).name.startswith("python"):
        return args
    return [sys.executable, "-m", "frameworks.predict", *args]


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    output = output_path(command(args))
    try:
        if os.getuid() == 0:
            uid, gid = target_user(RESULTS, dict(os.environ))
            if output is not None and uid != RESULTS.stat().st_uid:
                hand_over(output, uid, gid)
            become(uid, gid)
        check_writable(output)
    except Refused as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as exc:
        print(f"error: cannot prepare {output or RESULTS}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_USAGE
    run = command(args)
    os.execvp(run[0], run)
    return 0  # not reached: exec replaces this process


if __name__ == "__main__":
    sys.exit(main())
