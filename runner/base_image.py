"""Registry-free base images: a Debian release from Debian packages, ``docker import``-ed.

Machines that reach no container registry (only PyPI and a Debian mirror) cannot pull
``python:3.11-slim``. ``debootstrap --variant=minbase`` builds an equivalent root filesystem from the
Debian mirror the host already uses; it is tarred reproducibly (sorted names, one mtime, numeric
owners, no device nodes, logs or caches), so the same packages give the same tarball bytes, and
imported as ``dlbench/base:<release>``. One per release in ``RELEASES``: bookworm (the default,
Debian's ``/usr/bin/python3`` 3.11) and bullseye (3.9: the last release with ``python3-caffe``, and a
Python old enough for the frameworks that stopped at 3.9). The Dockerfiles only rely on ``python3 -m
venv``, which every base has.
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
import re
import shutil
import stat
import subprocess
import tarfile
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

from .engine import DockerClient


class BaseImageError(RuntimeError):
    """The base image could not be built: one line saying which step failed and why."""


# Debian release -> its own python3 (what the Debian-built base has, and all it has).
RELEASES: dict[str, str] = {"bookworm": "3.11", "bullseye": "3.9"}
DEFAULT_RELEASE = "bookworm"
SUITE = DEFAULT_RELEASE


def base_tag(release: str = DEFAULT_RELEASE) -> str:
    """The Debian-built base image of ``release``: ``dlbench/base:<release>``."""
    if release not in RELEASES:
        raise BaseImageError(f"unknown Debian release {release!r}; valid releases: {', '.join(RELEASES)}")
    return f"dlbench/base:{release}"


PACKAGES = ("python3", "python3-venv", "ca-certificates")
DEFAULT_MIRROR = "http://deb.debian.org/debian"
SOURCES_DIR = Path("/etc/apt/sources.list.d")
SOURCES_LIST = Path("/etc/apt/sources.list")
DEFAULT_MTIME = 946684800  # 2000-01-01: any fixed value; SOURCE_DATE_EPOCH overrides it
LABEL_TAR_SHA = "dlbench.base.tar-sha256"
LABEL_PACKAGES = "dlbench.base.packages"
# Written by the bootstrap itself, differing run to run, and useless in an image (Docker mounts
# its own /etc/hosts, /etc/resolv.conf and /etc/hostname): removed before tarring.
VOLATILE = (
    "dev/*",
    "proc/*",
    "sys/*",
    "run/*",
    "tmp/*",
    "var/tmp/*",
    "var/log/**/*.log",
    "var/log/apt/*",
    "var/log/bootstrap.log",
    "var/cache/apt/*.bin",
    "var/cache/apt/archives/*.deb",
    "var/cache/ldconfig/aux-cache",
    "var/cache/debconf/*-old",
    "var/lib/apt/lists/*",
    "var/lib/dpkg/*-old",
    "debootstrap",
    "etc/hostname",
    "etc/resolv.conf",
    "etc/machine-id",
    "**/__pycache__",
)

Log = Callable[[str], None]
BASE_TAG = base_tag(DEFAULT_RELEASE)


def debian_mirror(sources_dir: Path = SOURCES_DIR, sources_list: Path = SOURCES_LIST, suite: str = SUITE) -> str:
    """The Debian mirror the host's apt uses for ``suite``: the one a firewalled machine can reach.

    A host on bookworm names no bullseye source: then the mirror it uses for its own release, which
    serves the other releases too (Debian's archive layout is one tree for all of them).
    """
    found = _host_mirror(sources_dir, sources_list, suite)
    if found is None and suite != DEFAULT_RELEASE:
        found = _host_mirror(sources_dir, sources_list, DEFAULT_RELEASE)
    return found or DEFAULT_MIRROR


def _host_mirror(sources_dir: Path, sources_list: Path, suite: str) -> str | None:
    for path in sorted(sources_dir.glob("*.sources")):
        uri = _deb822_mirror(path.read_text(encoding="utf-8", errors="replace"), suite)
        if uri:
            return uri
    lists = [sources_list, *sorted(sources_dir.glob("*.list"))]
    for path in lists:
        if path.is_file():
            uri = _one_line_mirror(path.read_text(encoding="utf-8", errors="replace"), suite)
            if uri:
                return uri
    return None


def _deb822_mirror(text: str, suite: str) -> str | None:
    for stanza in re.split(r"\n\s*\n", text):
        fields = _deb822_fields(stanza)
        if fields.get("enabled", "yes").lower() == "no" or "deb" not in fields.get("types", "").split():
            continue
        if suite in fields.get("suites", "").split():
            uris = fields.get("uris", "").split()
            if uris:
                return uris[0].rstrip("/")
    return None


def _deb822_fields(stanza: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    for line in stanza.splitlines():
        if line.startswith("#") or ":" not in line or line[:1].isspace():
            continue
        key, value = line.split(":", 1)
        fields[key.strip().lower()] = value.strip()
    return fields


def _one_line_mirror(text: str, suite: str) -> str | None:
    for line in text.splitlines():
        words = re.sub(r"\[[^]]*\]", "", line.split("#", 1)[0]).split()
        if len(words) >= 3 and words[0] == "deb" and words[2] == suite:
            return words[1].rstrip("/")
    return None


def debootstrap_command(
    rootfs: Path, mirror: str, suite: str = SUITE, packages: tuple[str, ...] = PACKAGES
) -> list[str]:
    """minbase: essential packages + apt; ``--include`` adds Python, venv and the CA certificates."""
    return [
        "debootstrap",
        "--variant=minbase",
        f"--include={','.join(packages)}",
        "--components=main",
        suite,
        str(rootfs),
        mirror,
    ]


def debootstrap(rootfs: Path, mirror: str, *, suite: str = SUITE, packages: tuple[str, ...] = PACKAGES,
                log: Log = print) -> None:  # fmt: skip
    """Run debootstrap (root only), streaming its progress lines."""
    if shutil.which("debootstrap") is None:
        raise BaseImageError("debootstrap is not installed (apt-get install debootstrap; .ci/install-docker does)")
    command = debootstrap_command(rootfs, mirror, suite, packages)
    log(f"base image: {' '.join(command)}")
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as proc:
        assert proc.stdout is not None
        tail: list[str] = []
        for line in proc.stdout:
            tail = [*tail[-19:], line.rstrip()]
            if line.startswith(("I: Retrieving", "I: Validating")):
                continue  # one line per package: too chatty
            log(f"  {line.rstrip()}")
    if proc.returncode != 0:
        raise BaseImageError(f"debootstrap failed (exit {proc.returncode}): {tail[-1] if tail else 'no output'}")


def clean_rootfs(rootfs: Path) -> None:
    """Remove what differs from one bootstrap to the next and has no place in an image.

    Matches relative paths against ``VOLATILE`` while walking without following symlinks: the
    rootfs holds absolute links (``/etc/alternatives``) that would otherwise lead onto the host.
    """
    for path in sorted(_volatile_paths(rootfs), reverse=True):
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif path.is_symlink() or path.exists():
            path.unlink()


def _volatile_paths(rootfs: Path) -> list[Path]:
    found = []
    for path in _walk(rootfs):
        relative = path.relative_to(rootfs).as_posix()
        if any(_matches(relative, pattern) for pattern in VOLATILE):
            found.append(path)
    return found


def _matches(relative: str, pattern: str) -> bool:
    """fnmatch on whole path components, ``**`` standing for any number of them."""
    regex = "/".join(
        "(?:.*/)?" if part == "**" else fnmatch.translate(part).removesuffix(r"\Z").replace(".*", "[^/]*")
        for part in pattern.split("/")
    ).replace("(?:.*/)?/", "(?:.*/)?")
    return re.fullmatch(regex, relative) is not None


def compile_python(rootfs: Path, log: Log = print, *, release: str = DEFAULT_RELEASE) -> None:
    """Byte-compile Debian's Python again, reproducibly, after ``clean_rootfs`` removed the pyc files.

    Hash-based pycs (``checked-hash``) stay valid although the tarball resets every mtime, so the
    stdlib is not recompiled at each container start on a read-only root filesystem; marshal writes
    the same bytes for the same source with the hash seed fixed (3.11 and 3.9 alike: two bullseye
    bootstraps give the same tarball too).
    """
    stdlib = f"usr/lib/python{RELEASES[release]}"
    dirs = [d for d in (stdlib, "usr/lib/python3/dist-packages") if (rootfs / d).is_dir()]
    if not dirs:
        return
    command = ["chroot", str(rootfs), "/usr/bin/python3", "-m", "compileall", "-q", "--invalidation-mode"]
    command += ["checked-hash", *(f"/{d}" for d in dirs)]
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "PYTHONHASHSEED": "0", "LC_ALL": "C.UTF-8"}
    proc = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if proc.returncode != 0:
        log(f"base image: compileall left some files uncompiled: {proc.stdout.strip().splitlines()[-1:]}")


def _walk(rootfs: Path) -> Iterator[Path]:
    """Every path under ``rootfs`` in sorted order (by name bytes), directories before their contents."""
    for entry in sorted(os.scandir(rootfs), key=lambda e: os.fsencode(e.name)):
        path = Path(entry.path)
        yield path
        if entry.is_dir(follow_symlinks=False):
            yield from _walk(path)


def tar_rootfs(rootfs: Path, out: IO[bytes], *, mtime: int | None = None) -> None:
    """A reproducible tarball of ``rootfs``: the same tree gives the same bytes.

    Names are sorted, every mtime is ``mtime`` (``SOURCE_DATE_EPOCH`` when set), owners are numeric
    only, and device nodes, sockets and FIFOs are left out (Docker provides /dev at run time).
    """
    when = _fixed_mtime() if mtime is None else mtime
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.GNU_FORMAT) as tar:
        for path in _walk(rootfs):
            info = _tarinfo(tar, path, rootfs, when)
            if info is None:
                continue
            if info.isreg():
                with path.open("rb") as data:
                    tar.addfile(info, data)
            else:
                tar.addfile(info)


def _fixed_mtime() -> int:
    return int(os.environ.get("SOURCE_DATE_EPOCH", DEFAULT_MTIME))


def _tarinfo(tar: tarfile.TarFile, path: Path, rootfs: Path, mtime: int) -> tarfile.TarInfo | None:
    mode = path.lstat().st_mode
    if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode) or stat.S_ISLNK(mode)):
        return None
    info = tar.gettarinfo(str(path), arcname=path.relative_to(rootfs).as_posix())
    info.mtime = mtime
    info.uname = info.gname = ""
    return info


def tar_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def import_rootfs(client: DockerClient, tarball: Path, tag: str, *, packages: tuple[str, ...]) -> str:
    """``docker import`` the tarball with the environment ``python:3.11-slim`` images expect."""
    repository, _, version = tag.rpartition(":")
    changes = [
        "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "ENV LANG=C.UTF-8",
        f"LABEL {LABEL_TAR_SHA}={tar_sha256(tarball)} {LABEL_PACKAGES}={','.join(packages)}",
        'CMD ["/usr/bin/python3"]',
    ]
    client.api.import_image_from_file(str(tarball), repository=repository, tag=version, changes=changes)
    return str(client.images.get(tag).id)


def base_image_exists(client: DockerClient, tag: str = BASE_TAG) -> bool:
    import docker.errors

    try:
        client.images.get(tag)
    except docker.errors.ImageNotFound:
        return False
    return True


def build_base_image(
    client: DockerClient,
    *,
    release: str = DEFAULT_RELEASE,
    tag: str | None = None,
    mirror: str | None = None,
    packages: tuple[str, ...] = PACKAGES,
    force: bool = False,
    workdir: Path | None = None,
    log: Log = print,
) -> str:
    """Build (or, unless ``force``, reuse) the base image of a Debian release; returns its tag
    (``dlbench/base:<release>`` unless ``tag`` says otherwise).

    Needs root, debootstrap and the Debian mirror; takes a few minutes. The root filesystem and the
    tarball live in a temporary directory that is removed afterwards.
    """
    tag = tag or base_tag(release)
    if not force and base_image_exists(client, tag):
        log(f"base image: {tag} exists (force=True rebuilds it)")
        return tag
    mirror = mirror or debian_mirror(suite=release)
    with tempfile.TemporaryDirectory(prefix="dlbench-base-", dir=workdir) as tmp:
        rootfs, tarball = Path(tmp) / "rootfs", Path(tmp) / "rootfs.tar"
        debootstrap(rootfs, mirror, suite=release, packages=packages, log=log)
        clean_rootfs(rootfs)
        compile_python(rootfs, log, release=release)
        with tarball.open("wb") as out:
            tar_rootfs(rootfs, out)
        log(f"base image: rootfs tarball {tarball.stat().st_size / 1e6:.0f} MB, sha256 {tar_sha256(tarball)[:16]}")
        image_id = import_rootfs(client, tarball, tag, packages=packages)
    log(f"base image: {tag} ({image_id[:19]})")
    return tag


def pick_base_image(client: DockerClient, preferred: str, fallback: str = BASE_TAG) -> str:
    """``preferred`` (the catalog's ``python:3.11-slim``) when the engine has it, else the Debian-built
    one (``fallback``: the image's release's, ``base_tag(image.release)``).

    Without either the preferred name is returned, and the build pulls it where a registry answers.
    """
    if base_image_exists(client, preferred):
        return preferred
    if base_image_exists(client, fallback):
        return fallback
    return preferred
