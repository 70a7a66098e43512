"""The machines a matrix runs on: Docker engines named by the user, and how to reach them safely.

A host is a name and an engine URL: ``unix:///path`` (a local socket), ``ssh://user@host[:port]``
(through the system's ssh client, so ~/.ssh/config, jump hosts and agents work; a host key that does
not match known_hosts is an error, never accepted: the client runs with ``StrictHostKeyChecking=yes``
and ``BatchMode=yes`` whatever the configuration says) or ``tcp://host:port`` (TLS, verified,
unless the hosts file says ``tls = false`` in so many words). Hosts come from ``--hosts NAME=URL``,
from a TOML hosts file (``[[host]]`` tables: name, url, optional tls_ca / tls_cert / tls_key, cpus,
memory), or from the names of existing ``docker context``s.

What is recorded about a host (run.json, results, reports) is its name and its URL without any
password; TLS and key paths are never recorded.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import tomllib

from frameworks.options import UsageError

_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
SCHEMES = ("unix", "ssh", "tcp")
SSH_OPTIONS = ("-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes")
SSH_CONFIG_ENV = "DLBENCH_SSH_CONFIG"  # an ssh config file for the runner's connections instead of ~/.ssh/config
LOCAL = "local"  # the name of the one machine of a run without --hosts


@dataclass(frozen=True)
class Tls:
    ca: str | None = None
    cert: str | None = None
    key: str | None = None
    verify: bool = True


@dataclass(frozen=True)
class Host:
    """One machine of the matrix."""

    name: str
    url: str
    tls: Tls | None = None  # tcp:// only
    cpus: str | None = None  # the cpuset its cells are pinned to (default: all of its CPUs)
    memory: str | None = None  # the container memory limit there (default: the run's)

    @property
    def scheme(self) -> str:
        return urlsplit(self.url).scheme

    @property
    def public_url(self) -> str:
        """The URL as it may be recorded: no password, ever."""
        return redact(self.url)

    @property
    def is_remote(self) -> bool:
        """Whether its engine's files are another machine's (bind mounts of this host's paths do not exist there)."""
        return self.scheme != "unix"


def redact(url: str) -> str:
    """``ssh://user:secret@host`` -> ``ssh://user@host``; anything else unchanged."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}@{netloc}" if user else netloc))


def check_host(host: Host) -> Host:
    """A host whose name and URL make sense; anything else is a one-line ``UsageError``."""
    if not _NAME.fullmatch(host.name):
        raise UsageError(f"host name {host.name!r}: lower-case letters, digits and '-' only")
    parts = urlsplit(host.url)
    if parts.scheme not in SCHEMES:
        raise UsageError(f"host {host.name}: {redact(host.url)!r}: the URL must start with unix://, ssh:// or tcp://")
    if parts.scheme == "unix" and not parts.path:
        raise UsageError(f"host {host.name}: {redact(host.url)!r} names no socket")
    if parts.scheme in ("ssh", "tcp") and not parts.hostname:
        raise UsageError(f"host {host.name}: {redact(host.url)!r} names no machine")
    if parts.scheme == "ssh" and parts.password is not None:
        raise UsageError(f"host {host.name}: no passwords in ssh:// URLs: use a key (the ssh agent or ~/.ssh/config)")
    if parts.scheme == "tcp" and host.tls is None:
        raise UsageError(f"host {host.name}: tcp:// needs TLS (tls_ca, tls_cert, tls_key in the hosts file), "
                         "or tls = false to talk in the clear")  # fmt: skip
    return host


def parse_hosts(values: list[str]) -> list[Host]:
    """``--hosts`` values: ``NAME=URL``, a hosts file (``*.toml``), or a docker context's name."""
    hosts: list[Host] = []
    for value in values:
        if "=" in value:
            name, _, url = value.partition("=")
            hosts.append(check_host(Host(name.strip(), url.strip())))
        elif value.endswith(".toml"):
            hosts += load_hosts_file(Path(value))
        else:
            hosts.append(check_host(context_host(value)))
    names = [h.name for h in hosts]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise UsageError(f"--hosts: {', '.join(twice)} named twice")
    return hosts


def load_hosts_file(path: Path) -> list[Host]:
    """``[[host]]`` tables of a TOML file."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"{path}: hosts file not found") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path}: not valid TOML: {exc}") from None
    tables = data.get("host")
    if not isinstance(tables, list) or not tables:
        raise UsageError(f"{path}: no [[host]] tables")
    return [check_host(_host_table(t, f"{path}: host {i + 1}")) for i, t in enumerate(tables)]


def _host_table(table: Any, where: str) -> Host:
    known = {"name", "url", "tls", "tls_ca", "tls_cert", "tls_key", "cpus", "memory"}
    if not isinstance(table, dict):
        raise UsageError(f"{where}: must be a table")
    unknown = sorted(set(table) - known)
    if unknown:
        raise UsageError(f"{where}: unknown key(s) {', '.join(unknown)} (known: {', '.join(sorted(known))})")
    for key in ("name", "url"):
        if not isinstance(table.get(key), str):
            raise UsageError(f"{where}: {key} must be a string")
    tls = None
    if any(k in table for k in ("tls", "tls_ca", "tls_cert", "tls_key")):
        tls = Tls(table.get("tls_ca"), table.get("tls_cert"), table.get("tls_key"), verify=table.get("tls", True))
    return Host(table["name"], table["url"], tls, table.get("cpus"), table.get("memory"))


def context_host(name: str, home: Path | None = None) -> Host:
    """An existing ``docker context`` (its metadata under ~/.docker/contexts), as a host of that name."""
    root = (home or Path.home()) / ".docker" / "contexts"
    digest = hashlib.sha256(name.encode()).hexdigest()
    try:
        meta = json.loads((root / "meta" / digest / "meta.json").read_text())
        endpoint = meta["Endpoints"]["docker"]
    except (OSError, ValueError, KeyError):
        raise UsageError(f"--hosts {name!r}: neither NAME=URL, a .toml hosts file, nor a docker context") from None
    tls_dir = root / "tls" / digest / "docker"
    tls = None
    if tls_dir.is_dir():
        files = {f: str(tls_dir / f"{f}.pem") for f in ("ca", "cert", "key") if (tls_dir / f"{f}.pem").is_file()}
        tls = Tls(files.get("ca"), files.get("cert"), files.get("key"), verify=not endpoint.get("SkipTLSVerify"))
    return Host(name.lower(), endpoint["Host"], tls)


# --- reaching an engine ------------------------------------------------------------------------------


def connect_host(host: Host, timeout: int = 600) -> Any:
    """A docker client for the host's engine, checked with a ping; ``EngineUnavailable`` when it does not answer."""
    import docker

    from .engine import EngineUnavailable, first_line

    kwargs: dict[str, Any] = {"base_url": host.url, "timeout": timeout}
    if host.scheme == "ssh":
        strict_ssh()
        kwargs["use_ssh_client"] = True
    if host.scheme == "tcp" and host.tls is not None and (host.tls.verify or host.tls.cert):
        client_cert = (host.tls.cert, host.tls.key) if host.tls.cert and host.tls.key else None
        kwargs["tls"] = docker.tls.TLSConfig(  # type: ignore[attr-defined]
            client_cert=client_cert, ca_cert=host.tls.ca, verify=host.tls.verify
        )
    try:
        client = docker.DockerClient(**kwargs)  # type: ignore[attr-defined]
        client.ping()
    except Exception as exc:
        raise EngineUnavailable(
            f"host {host.name} ({host.public_url}): no Docker engine answers ({first_line(exc, 200)})"
        ) from None
    return client


_SHIM: Path | None = None


def strict_ssh() -> None:
    """Put an ``ssh`` first on PATH that always checks host keys strictly and never prompts.

    The docker SDK runs the system's ``ssh`` with no options of its own; options on the command line
    win over every configuration file, so a known_hosts mismatch fails the connection whatever
    ~/.ssh/config says, and a missing key fails instead of waiting for a password.
    """
    global _SHIM
    if _SHIM is not None:
        return
    real = _real_ssh()
    shim_dir = Path(tempfile.mkdtemp(prefix="dlbench-ssh-"))
    shim = shim_dir / "ssh"
    config = f'${{{SSH_CONFIG_ENV}:+-F}} ${{{SSH_CONFIG_ENV}:+"${SSH_CONFIG_ENV}"}}'
    shim.write_text(f'#!/bin/sh\nexec {real} {" ".join(SSH_OPTIONS)} {config} "$@"\n')
    shim.chmod(stat.S_IRWXU)
    os.environ["PATH"] = f"{shim_dir}{os.pathsep}{os.environ.get('PATH', '')}"
    _SHIM = shim


def _real_ssh() -> str:
    import shutil

    found = shutil.which("ssh")
    if found is None:
        raise UsageError("ssh:// hosts need the ssh client (apt-get install openssh-client)")
    return found
