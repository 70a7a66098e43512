"""Several machines in one matrix, with real engines and a real sshd: a second Docker engine on its own
socket and an OpenSSH server on 127.0.0.1 in front of it (all traffic stays on loopback and unix
sockets), images shipped by save/load, a host lost mid-run and resumed, and a host key that does not
match. Parsing and redaction are tested without any of that."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from frameworks.options import UsageError
from frameworks.result import RESULTS_FILE, RUN_FILE, RunInfo
from runner.hosts import Host, check_host, context_host, load_hosts_file, parse_hosts, redact
from runner.rundir import load_results, read_run_info
from tests.conftest import REPO_ROOT
from tests.engines import ENGINE2, Engine, free_port, need_root, wait_for

# --- without engines ------------------------------------------------------------------------------------


def test_hosts_from_the_command_line_and_their_checks() -> None:
    local, remote = parse_hosts(["here=unix:///var/run/docker.sock", "box=ssh://bench@10.0.0.9:2222"])
    assert (local.name, local.scheme, local.is_remote) == ("here", "unix", False)
    assert (remote.scheme, remote.is_remote) == ("ssh", True)
    bad = [
        (["Box=unix:///x"], "lower-case"),
        (["box=http://x"], "must start with unix://, ssh:// or tcp://"),
        (["box=ssh://u:secret@h"], "no passwords in ssh:// URLs"),
        (["box=tcp://h:2376"], "tcp:// needs TLS"),
        (["a=unix:///x", "a=unix:///y"], "a named twice"),
        (["nosuchcontext"], "neither NAME=URL, a .toml hosts file, nor a docker context"),
    ]
    for values, message in bad:
        with pytest.raises(UsageError, match=message):
            parse_hosts(values)


def test_a_password_is_never_recorded() -> None:
    assert redact("ssh://bench:hunter2@box:22") == "ssh://bench@box:22"
    assert Host("x", "tcp://u:p@h:2376").public_url == "tcp://u@h:2376"


def test_a_hosts_file(tmp_path: Path) -> None:
    path = tmp_path / "hosts.toml"
    path.write_text(
        '[[host]]\nname = "laptop"\nurl = "unix:///var/run/docker.sock"\ncpus = "0-3"\n\n'
        '[[host]]\nname = "server"\nurl = "tcp://server:2376"\ntls_ca = "/x/ca.pem"\ntls_cert = "/x/c.pem"\n'
        'tls_key = "/x/k.pem"\nmemory = "16g"\n'
    )
    laptop, server = load_hosts_file(path)
    assert laptop.cpus == "0-3" and server.tls is not None and server.tls.verify and server.memory == "16g"
    path.write_text('[[host]]\nname = "x"\nurl = "unix:///s"\npassword = "no"\n')
    with pytest.raises(UsageError, match="unknown key"):
        load_hosts_file(path)


def test_a_docker_context(tmp_path: Path) -> None:
    import hashlib

    digest = hashlib.sha256(b"build-box").hexdigest()
    meta = tmp_path / ".docker" / "contexts" / "meta" / digest
    meta.mkdir(parents=True)
    (meta / "meta.json").write_text(
        json.dumps({"Name": "build-box", "Endpoints": {"docker": {"Host": "ssh://me@box"}}})
    )
    host = context_host("build-box", home=tmp_path)
    assert check_host(host).url == "ssh://me@box" and host.name == "build-box"


def test_a_machine_is_known_by_its_fingerprint_not_its_model_name() -> None:
    """Two machines a hypervisor calls "AMD EPYC" alike: one with AVX2 only, one with AVX-512 and bf16."""
    from frameworks.environment import machine_identity

    base = "processor\t: {n}\nvendor_id\t: AuthenticAMD\ncpu family\t: 25\nmodel\t\t: 1\nmodel name\t: AMD EPYC\n"
    zen3 = "".join(base.format(n=n) + "stepping\t: 1\ncpu cores\t: 2\nflags\t\t: avx avx2 fma hypervisor\n\n"
                   for n in range(2))  # fmt: skip
    zen4 = zen3.replace("avx2 fma", "avx2 fma avx512f avx512_bf16").replace("model\t\t: 1", "model\t\t: 17")
    a = machine_identity(zen3, ("L2 512K",), "KVM")
    b = machine_identity(zen4, ("L2 1024K",), "KVM")
    assert a.model_name == b.model_name == "AMD EPYC" and a.fingerprint != b.fingerprint
    assert a.flags == ("avx", "avx2", "fma") and "avx512_bf16" in b.flags and (a.cores, a.threads) == (2, 2)
    assert machine_identity(zen3, ("L2 512K",), "unknown").fingerprint == a.fingerprint, "the same in a container"


# --- with a second engine and an sshd ------------------------------------------------------------------

pytestmark_engines = [pytest.mark.docker, pytest.mark.slow]


@pytest.fixture(scope="module")
def engine2() -> Iterator[Engine]:
    need_root("sshd")
    engine = Engine(ENGINE2)
    engine.start()
    yield engine
    engine.stop()


@pytest.fixture(scope="module")
def sshd(engine2: Engine, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """An OpenSSH server on 127.0.0.1 whose sessions talk to the second engine, with a key made for the test;
    and a HOME whose ssh config and known_hosts reach it."""
    root = tmp_path_factory.mktemp("sshd")
    home = root / "home"
    (home / ".ssh").mkdir(parents=True)
    for name in ("host_key", "user_key", "other_host_key"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(root / name)], check=True)
    port = free_port()
    (root / "authorized_keys").write_text((root / "user_key.pub").read_text())
    os.chmod(root / "authorized_keys", 0o600)
    (root / "sshd_config").write_text(
        f"ListenAddress 127.0.0.1\nPort {port}\nHostKey {root / 'host_key'}\nPidFile {root / 'sshd.pid'}\n"
        f"AuthorizedKeysFile {root / 'authorized_keys'}\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n"
        f"PermitRootLogin prohibit-password\nUsePAM no\nStrictModes no\nSetEnv DOCKER_HOST={engine2.url}\n"
    )
    Path("/run/sshd").mkdir(exist_ok=True)
    proc = subprocess.Popen(["/usr/sbin/sshd", "-D", "-e", "-f", str(root / "sshd_config")],
                            stdout=subprocess.DEVNULL, stderr=(root / "sshd.log").open("ab"))  # fmt: skip
    host_key = (root / "host_key.pub").read_text().split()
    (home / ".ssh" / "config").write_text(
        f"Host 127.0.0.1\n  IdentityFile {root / 'user_key'}\n  IdentitiesOnly yes\n"
        f"  UserKnownHostsFile {home / '.ssh' / 'known_hosts'}\n"
    )
    known = f"[127.0.0.1]:{port} {host_key[0]} {host_key[1]}\n"
    (home / ".ssh" / "known_hosts").write_text(known)
    wait_for(lambda: _listening(port), 30, f"sshd ({(root / 'sshd.log').read_text()[-500:]})")
    yield {"home": str(home), "url": f"ssh://root@127.0.0.1:{port}", "known": known,
           "other_key": (root / "other_host_key.pub").read_text().split()[1]}  # fmt: skip
    proc.terminate()
    proc.wait(timeout=30)


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


def _runner(home: str, *args: str, timeout: float = 2400) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HOME": home, "DLBENCH_SSH_CONFIG": str(Path(home) / ".ssh" / "config")}
    return subprocess.run([sys.executable, "-m", "runner", "matrix", *args], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout, check=False)  # fmt: skip


TWO_VARIANTS = ["--variants", "cpu-numpy-openblas", "cpu-onnxruntime", "--models", "lenet5"]
QUICK = ["--iterations", "3", "--warmup", "1", "--min-time", "0", "--max-time", "0", "--no-peak"]
RECONNECT = ["--reconnect-wait", "1"]  # a lost or refusing host is given up after 3 s of waiting, not 30


@pytest.mark.docker
@pytest.mark.slow
def test_two_hosts_one_over_unix_one_over_ssh(sshd: dict[str, str], tmp_path: Path) -> None:
    hosts = ["--hosts", "here=unix:///var/run/docker.sock", f"there={sshd['url']}"]
    proc = _runner(sshd["home"], *hosts, *TWO_VARIANTS, *QUICK, "--ship-images", "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stderr[-4000:]
    (run_dir,) = list(tmp_path.iterdir())
    top = read_run_info(run_dir)
    assert top.hosts == {"here": "unix:///var/run/docker.sock", "there": sshd["url"]}
    assert ("[there] " in proc.stderr and "shipped in" in proc.stderr) or "already on the host" in proc.stderr
    for name in ("here", "there"):
        info = RunInfo.from_dict(json.loads((run_dir / "hosts" / name / RUN_FILE).read_text()))
        assert info.host_name == name and info.host.machine is not None
        results = load_results(run_dir / "hosts" / name).results
        assert {r.variant for r in results} == {"cpu-numpy-openblas", "cpu-onnxruntime"}
        assert {(r.status, r.host) for r in results} == {("ok", name)}
        assert all(r.verified for r in results)
    report = (run_dir / "report.md").read_text()
    assert "here" in report and "there" in report
    secrets = [p for p in run_dir.rglob("*") if p.is_file() and "user_key" in p.read_text(errors="replace")]
    assert not secrets, "no key path in the run's files"


@pytest.mark.docker
@pytest.mark.slow
def test_a_host_lost_mid_run_and_resumed(sshd: dict[str, str], engine2: Engine, tmp_path: Path) -> None:
    hosts = ["--hosts", "here=unix:///var/run/docker.sock", f"there={engine2.url}"]
    # MobileNet's 200 iterations (several seconds) keep the second host's second cell in flight when its engine
    # stops (a third model would only lengthen the first host's run)
    args = [*hosts, "--variants", "cpu-numpy-openblas", "--models", "lenet5", "mobilenet_v1",
            "--iterations", "200", "--warmup", "1", "--min-time", "0",
            "--max-time", "0", "--no-peak", "--ship-images", *RECONNECT,
            "--out", str(tmp_path)]  # fmt: skip
    env = {**os.environ, "HOME": sshd["home"], "DLBENCH_SSH_CONFIG": str(Path(sshd["home"]) / ".ssh" / "config")}
    proc = subprocess.Popen([sys.executable, "-m", "runner", "matrix", *args], cwd=REPO_ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:

        def first_there() -> bool:
            dirs = list(tmp_path.iterdir())
            path = dirs[0] / "hosts" / "there" if dirs else None
            return path is not None and (path / RESULTS_FILE).exists() and bool(load_results(path).results)

        wait_for(first_there, 900, "the second host's first cell")
        engine2.stop()
        _, stderr = proc.communicate(timeout=1800)
    finally:
        if proc.poll() is None:
            proc.kill()
        if engine2.proc is None:
            engine2.start()
    assert proc.returncode == 3, stderr[-3000:]
    (run_dir,) = list(tmp_path.iterdir())
    here = load_results(run_dir / "hosts" / "here").results
    there = load_results(run_dir / "hosts" / "there").results
    assert [r.status for r in here] == ["ok"] * 2, "the other host went on"
    assert there[0].status == "ok" and {r.status for r in there[1:]} == {"failed"}
    assert "stopped answering" in (there[-1].error or "")
    info = (run_dir / "hosts" / "there" / RUN_FILE).read_text().replace('"iterations": "200"', '"iterations": "3"')
    (run_dir / "hosts" / "there" / RUN_FILE).write_text(info)
    resumed = _runner(sshd["home"], "--resume", str(run_dir), "--hosts", *hosts[1:], "--no-report")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    latest = {r.model: r for r in load_results(run_dir / "hosts" / "there").results}
    assert {m: r.status for m, r in latest.items()} == {"lenet5": "ok", "mobilenet_v1": "ok"}


@pytest.mark.docker
@pytest.mark.slow
def test_an_ssh_host_key_that_does_not_match_is_refused(sshd: dict[str, str], tmp_path: Path) -> None:
    home = tmp_path / "home"
    shutil.copytree(sshd["home"], home)
    forged = sshd["known"].rsplit(" ", 1)[0] + " " + sshd["other_key"] + "\n"
    (home / ".ssh" / "known_hosts").write_text(forged)
    config = (home / ".ssh" / "config").read_text().replace(sshd["home"], str(home))
    (home / ".ssh" / "config").write_text(config + "  StrictHostKeyChecking no\n")  # a config that would accept it
    proc = _runner(str(home), "--hosts", f"there={sshd['url']}", *TWO_VARIANTS, *QUICK, *RECONNECT,
                   "--out", str(tmp_path / "o"), timeout=600)  # fmt: skip
    assert proc.returncode == 3
    assert "Host key verification failed" in proc.stderr or "REMOTE HOST IDENTIFICATION HAS CHANGED" in proc.stderr
    assert "trying again in 1 s" in proc.stderr, "--reconnect-wait sets the wait between the tries"
    (run_dir,) = list((tmp_path / "o").iterdir())
    assert {r.status for r in load_results(run_dir / "hosts" / "there").results} == {"failed"}
