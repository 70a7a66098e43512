"""Images: build contexts, Dockerfile stages, staleness, validation, the base image, and the built images.

Tests marked ``docker`` need an engine (``bash .ci/install-docker``); in CI (CI=true) they fail
when none answers, elsewhere they skip. They reuse the images ``.ci/setup`` built
(``python -m runner build``); an image that is missing or stale is built here first, by the
session-scoped ``ensure_built`` fixture (cached by its spec-hash label, one build at a time).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io
import os
import re
import shutil
import subprocess
import tarfile
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

import runner.images as images_module
import runner.images.pip as pip_module
import runner.images.resolve as resolve_module
import runner.source as source_module
from runner.base_image import (
    BASE_TAG,
    LABEL_TAR_SHA,
    build_base_image,
    clean_rootfs,
    debian_mirror,
    debootstrap,
    debootstrap_command,
    tar_rootfs,
    tar_sha256,
)
from runner.catalog import REPO_ROOT, ImageSpec, baked_files, load_catalog
from runner.engine import engine_version
from runner.images import (
    CA_NAME,
    EXTRAS_DIR,
    LABEL_BASE,
    LABEL_BASE_ID,
    LABEL_HASH,
    ImageBuildError,
    ImageValidationError,
    PipSettings,
    _follow_build,
    build_args,
    build_context,
    build_image,
    catalog_build_args,
    check_dockerfile,
    host_pip_settings,
    image_labels,
    image_state,
    matching_wheels,
    parse_dockerfile,
    render_base,
    validate_image,
)
from tests.conftest import IN_CI

CATALOG = load_catalog()
CPU_IMAGES = [i.name for i in CATALOG.images.values() if i.device == "cpu"]
CUDA_IMAGES = [i.name for i in CATALOG.images.values() if i.device == "cuda"]
TORCH_CPU_WHEEL = "torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl"


def _members(context: bytes) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(context)) as tar:
        return {m.name: m for m in tar.getmembers()}


# --- the host's pip settings and local wheels --------------------------------------------------------


def test_host_pip_settings_pass_only_http_indexes_and_local_dirs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cert = tmp_path / "ca.crt"
    cert.write_text("pem", encoding="utf-8")
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    config = {
        "cert": str(cert),
        "extra-index-url": "file:///opt/pypi/simple https://mirror.example/simple",
        "find-links": f"{wheels} file://{wheels} /does/not/exist https://example.org/links",
    }
    monkeypatch.setattr(pip_module, "_pip_config_values", lambda python: dict(config))
    for name in [k for k in os.environ if k.startswith("PIP_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("PIP_INDEX_URL", "file:///local/simple")
    settings = host_pip_settings()
    assert settings == PipSettings(cert, None, ("https://mirror.example/simple",), (wheels, wheels))
    monkeypatch.setenv("PIP_INDEX_URL", "https://pypi.example/simple")
    monkeypatch.setenv("PIP_CERT", str(tmp_path / "missing.crt"))
    settings = host_pip_settings()
    assert settings.index_url == "https://pypi.example/simple"
    assert settings.cert is None, "a CA bundle that does not exist is not passed"


def test_pip_config_list_is_parsed(monkeypatch: pytest.MonkeyPatch) -> None:
    out = (
        ":env:.cert='/env/ca.crt'\nglobal.cert='/etc/ssl/certs/ca-certificates.crt'\n"
        "global.extra-index-url='file:///opt/pypi/simple file:///opt/pypi-more/simple'\n"
        "install.find-links='/opt/wheels'\n"
    )
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: SimpleNamespace(stdout=out, returncode=0))
    assert pip_module._pip_config_values("python") == {
        "cert": "/etc/ssl/certs/ca-certificates.crt",
        "extra-index-url": "file:///opt/pypi/simple file:///opt/pypi-more/simple",
        "find-links": "/opt/wheels",
    }


@pytest.fixture()
def wheel_dir(tmp_path: Path) -> Path:
    names = [
        TORCH_CPU_WHEEL,
        "torch-2.12.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl",
        "torch-2.13.0+cpu-cp312-cp312-manylinux_2_28_x86_64.whl",
        "torch-2.13.0-cp311-cp311-macosx_11_0_arm64.whl",
        "numpy-2.4.6-cp311-cp311-manylinux_2_27_x86_64.manylinux_2_28_x86_64.whl",
        "sympy-1.14.0-py3-none-any.whl",
        "not-a-wheel.whl",
    ]
    for name in names:
        (tmp_path / name).write_bytes(b"wheel")
    return tmp_path


def test_matching_wheels_takes_only_pinned_installable_wheels(wheel_dir: Path) -> None:
    torch = CATALOG.images["torch"]
    assert [w.name for w in matching_wheels(torch, [wheel_dir])] == [
        "numpy-2.4.6-cp311-cp311-manylinux_2_27_x86_64.manylinux_2_28_x86_64.whl",
        TORCH_CPU_WHEEL,
    ]


def test_cuda_images_never_take_a_cpu_build(wheel_dir: Path) -> None:
    names = [w.name for w in matching_wheels(CATALOG.images["cuda-torch"], [wheel_dir])]
    assert all("+cpu" not in n for n in names)
    assert not matching_wheels(CATALOG.images["tensorflow"], [wheel_dir])[1:]


# --- build context -----------------------------------------------------------------------------------


def test_context_holds_only_what_the_dockerfile_copies() -> None:
    image = CATALOG.images["numpy-openblas"]
    members = _members(build_context(image, PipSettings()))
    files = {n for n, m in members.items() if m.isfile()}
    expected = {p.relative_to(REPO_ROOT).as_posix() for p in baked_files(image)}
    assert files - {f"{EXTRAS_DIR}/README.md"} == expected
    assert image.dockerfile in files
    assert not [n for n in files if "__pycache__" in n or n.endswith(".pyc")]
    assert not [n for n in files if n.startswith(("tests/", "runner/", "reports/", ".git"))]
    assert all(m.mtime == images_module.CONTEXT_MTIME and m.uid == 0 for m in members.values())


def test_context_carries_the_ca_bundle_and_matching_wheels(tmp_path: Path, wheel_dir: Path) -> None:
    cert = tmp_path / "host-ca.crt"
    cert.write_bytes(b"-----BEGIN CERTIFICATE-----\n")
    settings = PipSettings(cert=cert, find_links=(wheel_dir,))
    members = _members(build_context(CATALOG.images["torch"], settings))
    extras = sorted(n for n, m in members.items() if n.startswith(f"{EXTRAS_DIR}/") and m.isfile())
    assert extras == [
        f"{EXTRAS_DIR}/README.md",
        f"{EXTRAS_DIR}/{CA_NAME}",
        f"{EXTRAS_DIR}/wheels/numpy-2.4.6-cp311-cp311-manylinux_2_27_x86_64.manylinux_2_28_x86_64.whl",
        f"{EXTRAS_DIR}/wheels/{TORCH_CPU_WHEEL}",
    ]
    onnx = _members(build_context(CATALOG.images["onnxruntime"], settings))
    assert not [n for n in onnx if "/wheels/" in n and "torch" in n]


def test_context_is_deterministic() -> None:
    image = CATALOG.images["numpy-mkl"]
    assert build_context(image, PipSettings()) == build_context(image, PipSettings())


def test_build_args_and_labels() -> None:
    image = CATALOG.images["torch"]
    args = build_args(image, "dlbench/base:bookworm", PipSettings(extra_index_urls=("https://a/simple",)))
    assert args["BASE_IMAGE"] == "dlbench/base:bookworm"
    assert args["REQUIREMENTS"] == "torch==2.13.0 numpy==2.4.6 torchao==0.18.0"
    assert args["EXTRA_INDEX_URL"] == "https://a/simple"
    assert args["PYTHON_HEADERS"] == "1" and "gcc" in args["APT_PACKAGES"]
    assert catalog_build_args(image)["BASE_IMAGE"] == "python:3.11-slim"
    labels = image_labels(image, "dlbench/base:bookworm", "sha256:abc")
    assert labels[LABEL_HASH] == image.spec_hash() and labels[LABEL_BASE_ID] == "sha256:abc"


# --- Dockerfiles ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(CATALOG.images))
def test_catalog_dockerfiles_check(name: str) -> None:
    image = CATALOG.images[name]
    parsed = check_dockerfile(image, build_args(image, None, PipSettings("/ca", "https://i", ("https://e",))))
    # Each Dockerfile's own default base; caffe.Dockerfile is for bullseye only (python3-caffe is there alone).
    own_default = {"docker/caffe.Dockerfile": "dlbench/base:bullseye"}.get(image.dockerfile, "python:3.11-slim")
    assert parsed.global_args["BASE_IMAGE"] == own_default
    assert [s.base for s in parsed.stages] == ["${BASE_IMAGE}", "${BASE_IMAGE}"]
    assert render_base(parsed.stages[-1], {"BASE_IMAGE": "dlbench/base:bookworm"}, parsed.global_args) == (
        "dlbench/base:bookworm"
    )


@pytest.mark.parametrize("dockerfile", sorted({i.dockerfile for i in CATALOG.images.values()}))
def test_final_stage_sees_no_build_inputs(dockerfile: str) -> None:
    """Only the build stage copies build-extras or reads index URLs and the CA bundle; the final
    stage takes the virtualenv alone, runs as a non-root user and keeps caches under /tmp."""
    parsed = parse_dockerfile((REPO_ROOT / dockerfile).read_text(encoding="utf-8"))
    builder, final = parsed.stages[0], parsed.stages[-1]
    assert builder.name == "builder" and final.name is None
    builder_text = " ".join(rest for _, rest in builder.instructions)
    assert "build-extras" in builder_text and "PIP_CERT" in builder_text
    final_text = " ".join(f"{op} {rest}" for op, rest in final.instructions)
    for secret in ("build-extras", "ca-bundle", "PIP_CERT", "PIP_FIND_LINKS", "INDEX_URL", "wheels"):
        assert secret not in final_text, secret
    copies = [rest for op, rest in final.instructions if op == "COPY"]
    assert "--from=builder /opt/venv /opt/venv" in copies
    assert "frameworks/ /app/frameworks/" in copies
    users = [rest for op, rest in final.instructions if op == "USER"]
    assert users and users[-1].split(":")[0] not in ("0", "root")
    env = " ".join(rest for op, rest in final.instructions if op == "ENV")
    for setting in ("HOME=/tmp", "XDG_CACHE_HOME=/tmp/", "PYTHONDONTWRITEBYTECODE=1", "PATH=/opt/venv/bin:"):
        assert setting in env, setting
    if dockerfile == "docker/Dockerfile":
        assert "TORCHINDUCTOR_CACHE_DIR=/tmp/" in env and "TRITON_CACHE_DIR=/tmp/" in env
    assert ("WORKDIR", "/app") in final.instructions
    cmd = [rest for op, rest in final.instructions if op == "CMD"][-1]
    assert "frameworks.predict --all" in cmd and "/results/" in cmd


def _with_dockerfile(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str, **changes: Any) -> ImageSpec:
    (tmp_path / "docker").mkdir(exist_ok=True)
    (tmp_path / "docker" / "Dockerfile").write_text(text, encoding="utf-8")
    monkeypatch.setattr(source_module, "SOURCE_ROOT", tmp_path)
    return dataclasses.replace(CATALOG.images["numpy-openblas"], **changes)


GOOD = (REPO_ROOT / "docker" / "Dockerfile").read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("text", "changes", "expected"),
    [
        (GOOD, {"build_args": {"NOPE": "1"}}, "build arg(s) NOPE not declared by an ARG"),
        ("ARG BASE_IMAGE=x\nFROM ${BASE_IMAGE}\nARG REQUIREMENTS APT_PACKAGES\n", {}, "not declared"),
        ("FROM ${NOWHERE}\n", {}, "FROM ${NOWHERE}: NOWHERE has no value"),
        ("# nothing\n", {}, "no FROM instruction"),
        ("RUN true\nFROM x\n", {}, "RUN before the first FROM"),
        (GOOD.replace("COPY frameworks/ /app/frameworks/", "COPY docker/build-extras/ /x/"), {}, "copies build-extras"),
        (GOOD.replace("COPY --from=builder /opt/venv", "COPY --from=builder /tmp/build-extras"), {}, "only /opt/venv"),
    ],
)
def test_check_dockerfile_rejects(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str, changes: dict[str, Any], expected: str
) -> None:
    image = _with_dockerfile(tmp_path, monkeypatch, text, **changes)
    with pytest.raises(ImageValidationError) as info:
        check_dockerfile(image, build_args(image, None, PipSettings()))
    assert expected in str(info.value) and "\n" not in str(info.value)


def test_single_stage_is_rejected(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    text = "ARG BASE_IMAGE=python:3.11-slim\nFROM ${BASE_IMAGE}\n" + "".join(
        f"ARG {a}\n" for a in ("REQUIREMENTS", "APT_PACKAGES", "FRAMEWORK", "DEVICE", "IMAGE_NAME")
    )
    image = _with_dockerfile(tmp_path, monkeypatch, text)
    with pytest.raises(ImageValidationError, match="not multi-stage"):
        check_dockerfile(image, catalog_build_args(image))


def test_parse_dockerfile_joins_continuations_and_drops_comments() -> None:
    parsed = parse_dockerfile("ARG A=1\n# c\nFROM b AS one\nRUN a \\\n  # inner\n  && b\nFROM one\nUSER 1\n")
    assert parsed.global_args == {"A": "1"}
    assert [(s.base, s.name) for s in parsed.stages] == [("b", "one"), ("one", None)]
    assert parsed.stages[0].instructions == [("RUN", "a  && b")]


# --- staleness, with a stand-in for the engine ---------------------------------------------------


class _FakeImages:
    def __init__(self, found: dict[str, Any]) -> None:
        self.found = found

    def get(self, ref: str) -> Any:
        import docker.errors

        if ref not in self.found:
            raise docker.errors.ImageNotFound(ref)
        return self.found[ref]


def _client(found: dict[str, Any]) -> Any:
    return SimpleNamespace(images=_FakeImages(found))


def test_image_state_from_labels() -> None:
    image = CATALOG.images["numpy-openblas"]
    labels = image_labels(image, "dlbench/base:bookworm", "sha256:base1")
    built = SimpleNamespace(id="sha256:img", labels=labels)
    base = SimpleNamespace(id="sha256:base1", labels={})
    assert image_state(_client({}), image) == "missing"
    assert image_state(_client({image.tag: built, "dlbench/base:bookworm": base}), image) == "current"
    assert image_state(_client({image.tag: built}), image) == "current", "a base that is gone forces nothing"
    rebuilt_base = SimpleNamespace(id="sha256:base2", labels={})
    assert image_state(_client({image.tag: built, "dlbench/base:bookworm": rebuilt_base}), image) == "stale"
    changed = dataclasses.replace(image, requirements=("numpy==2.4.5",))
    assert image_state(_client({image.tag: built}), changed) == "stale"
    unlabelled = SimpleNamespace(id="sha256:img", labels=None)
    assert image_state(_client({image.tag: unlabelled}), image) == "stale"


def test_follow_build_streams_and_fails_in_one_line() -> None:
    image = CATALOG.images["numpy-openblas"]
    lines: list[str] = []
    chunks = [{"stream": "Step 1/2 : FROM x\n"}, {"aux": {"ID": "sha256:abc"}}, {"stream": "Successfully built abc\n"}]
    assert _follow_build(image, chunks, lines.append) == "sha256:abc"
    assert lines == ["  Step 1/2 : FROM x", "  Successfully built abc"]
    message = "The command '/bin/sh -c pip install' returned a non-zero code: 1"
    error = {"error": "x", "errorDetail": {"message": message}}
    with pytest.raises(ImageBuildError, match=r"^numpy-openblas: build failed: The command .* non-zero code: 1$"):
        _follow_build(image, [{"stream": "Step 1/2\n"}, error], lines.append)
    with pytest.raises(ImageBuildError, match="without an image ID"):
        _follow_build(image, [{"stream": "Step 1/2\n"}], lines.append)


# --- validation without a build (CUDA images) ------------------------------------------------------


def _pypi_reachable() -> None:
    import urllib.request

    try:
        urllib.request.urlopen("https://pypi.org/simple/pip/", timeout=10).close()
    except OSError as exc:
        if IN_CI:
            pytest.fail(f"PyPI is not reachable: {exc}")
        pytest.skip(f"PyPI is not reachable: {exc}")


@pytest.mark.slow
@pytest.mark.parametrize("name", CUDA_IMAGES)
def test_cuda_images_validate(name: str) -> None:
    """Dockerfile checks plus a metadata-only resolve of every pin and dependency for cp311/manylinux."""
    _pypi_reachable()
    image = CATALOG.images[name]
    result = validate_image(image, cache=None)
    resolved = {p.name.lower(): p for p in result.packages}
    for requirement in image.requirements:
        pinned, version = requirement.split("==")
        assert resolved[pinned.split("[")[0].lower()].version == version
    assert any(n.startswith("nvidia-") for n in resolved), "the CUDA libraries come as nvidia-* wheels"
    if image.framework == "torch":
        assert "+cpu" not in resolved["torch"].version


@pytest.mark.slow
def test_a_pin_that_does_not_exist_is_a_one_line_error() -> None:
    _pypi_reachable()
    image = dataclasses.replace(CATALOG.images["numpy-openblas"], requirements=("numpy==0.0.424242",))
    with pytest.raises(ImageValidationError) as info:
        validate_image(image, cache=None)
    assert str(info.value).startswith("numpy-openblas: pins do not resolve: ERROR") and "\n" not in str(info.value)


def test_validate_without_resolving_checks_the_dockerfile() -> None:
    for name in CUDA_IMAGES:
        assert validate_image(CATALOG.images[name], pip=PipSettings(), resolve=False).stages == 2


def test_validation_cache_reuses_a_resolve_of_the_same_spec(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []

    def fake_resolve(image: ImageSpec, pip: PipSettings | None = None) -> list[images_module.Resolved]:
        calls.append(image.name)
        return [images_module.Resolved("torch", "2.13.0", "https://x/torch.whl")]

    monkeypatch.setattr(resolve_module, "resolve_requirements", fake_resolve)
    image = CATALOG.images["cuda-torch"]
    first = validate_image(image, pip=PipSettings(), cache=tmp_path)
    second = validate_image(image, pip=PipSettings(), cache=tmp_path)
    assert (first.cached, second.cached) == (False, True) and second.packages == first.packages
    assert "(cached resolve)" in images_module.describe(second)
    validate_image(dataclasses.replace(image, apt=()), pip=PipSettings(), cache=tmp_path)
    assert calls == ["cuda-torch", "cuda-torch"], "a changed spec resolves again"
    for stamp in tmp_path.iterdir():
        os.utime(stamp, (0, 0))
    assert not validate_image(image, pip=PipSettings(), cache=tmp_path).cached, "an old resolve expires"


# --- the base image: mirror, reproducible tarball ---------------------------------------------------


def test_debian_mirror_from_deb822_and_one_line_sources(tmp_path: Path) -> None:
    sources = tmp_path / "sources.list.d"
    sources.mkdir()
    (sources / "a.sources").write_text(
        "Types: deb\nURIs: http://other.example/debian\nSuites: trixie\nComponents: main\n\n"
        "Types: deb-src\nURIs: http://src.example/debian\nSuites: bookworm\n\n"
        "Types: deb\n# http://snapshot.debian.org/archive/debian/20250520T000000Z\n"
        "URIs: http://deb.debian.org/debian/\nSuites: bookworm bookworm-updates\nComponents: main\n",
        encoding="utf-8",
    )
    assert debian_mirror(sources, tmp_path / "none.list") == "http://deb.debian.org/debian"
    (sources / "a.sources").unlink()
    one_line = tmp_path / "sources.list"
    one_line.write_text("# x\ndeb [arch=amd64] http://mirror.example/debian bookworm main\n", encoding="utf-8")
    assert debian_mirror(sources, one_line) == "http://mirror.example/debian"
    assert debian_mirror(sources, tmp_path / "none.list") == "http://deb.debian.org/debian"


def test_debootstrap_command_is_minbase_with_python() -> None:
    command = debootstrap_command(Path("/r"), "http://m/debian")
    assert command[:2] == ["debootstrap", "--variant=minbase"]
    assert "--include=python3,python3-venv,ca-certificates" in command
    assert command[-3:] == ["bookworm", "/r", "http://m/debian"]


def _fake_rootfs(root: Path, outside: Path) -> None:
    (root / "usr/bin").mkdir(parents=True)
    (root / "usr/lib/python3/__pycache__").mkdir(parents=True)
    (root / "usr/lib/python3/__pycache__/x.pyc").write_bytes(b"pyc")
    (root / "usr/bin/python3").write_bytes(b"\x7fELF")
    (root / "usr/bin/python3").chmod(0o755)
    os.link(root / "usr/bin/python3", root / "usr/bin/python3.11")
    (root / "bin").symlink_to("usr/bin")
    (root / "etc/alternatives").mkdir(parents=True)
    (root / "etc/alternatives/outside").symlink_to(outside)  # absolute: must never be followed
    (root / "etc/hostname").write_text("builder\n", encoding="utf-8")
    (root / "var/log/apt").mkdir(parents=True)
    (root / "var/log/apt/history.log").write_text("today\n", encoding="utf-8")
    (root / "dev").mkdir()
    os.mkfifo(root / "dev/fifo")
    (root / "secret").write_text("0600\n", encoding="utf-8")
    (root / "secret").chmod(0o600)


def _tar_bytes(root: Path, mtime: int | None = None) -> bytes:
    out = io.BytesIO()
    tar_rootfs(root, out, mtime=mtime)
    return out.getvalue()


def test_rootfs_tarball_is_reproducible(tmp_path: Path) -> None:
    outside = tmp_path / "host"
    (outside / "__pycache__").mkdir(parents=True)
    root = tmp_path / "rootfs"
    _fake_rootfs(root, outside)
    clean_rootfs(root)
    assert (outside / "__pycache__").is_dir(), "clean_rootfs followed a symlink out of the rootfs"
    assert not (root / "usr/lib/python3/__pycache__").exists() and not (root / "etc/hostname").exists()
    assert (root / "var/log/apt").is_dir() and not (root / "var/log/apt/history.log").exists()
    first = _tar_bytes(root)
    os.utime(root / "usr/bin/python3", (1, 1))
    os.utime(root / "usr", (2, 2))
    assert _tar_bytes(root) == first, "mtimes do not reach the tarball"
    with tarfile.open(fileobj=io.BytesIO(first)) as tar:
        members = tar.getmembers()
    names = [m.name for m in members]
    assert names == sorted(names, key=lambda n: [os.fsencode(p) for p in n.split("/")])
    assert "dev" in names and "dev/fifo" not in names, "no device nodes or FIFOs"
    assert {m.mtime for m in members} == {946684800} and {(m.uname, m.gname) for m in members} == {("", "")}
    by_name = {m.name: m for m in members}
    assert by_name["usr/bin/python3.11"].islnk() and by_name["usr/bin/python3.11"].linkname == "usr/bin/python3"
    assert by_name["bin"].issym() and by_name["secret"].mode == 0o600
    assert _tar_bytes(root, mtime=0) != first


@pytest.mark.slow
@pytest.mark.skipif(
    not (IN_CI or os.environ.get("DLBENCH_TEST_DEBOOTSTRAP") == "1"),
    reason="runs in CI, or with DLBENCH_TEST_DEBOOTSTRAP=1 (root, debootstrap, about 3 minutes)",
)
def test_two_debootstraps_give_the_same_tarball(tmp_path: Path) -> None:
    """Two whole bootstraps from the mirror, side by side (each mostly waits on the mirror and dpkg): the same
    tarball bytes."""
    from concurrent.futures import ThreadPoolExecutor

    from runner.base_image import compile_python

    def bootstrap(name: str) -> str:
        root = tmp_path / name
        debootstrap(root, debian_mirror(), log=lambda line: None)
        clean_rootfs(root)
        compile_python(root)
        tarball = tmp_path / f"{name}.tar"
        with tarball.open("wb") as out:
            tar_rootfs(root, out)
        shutil.rmtree(root)
        return tar_sha256(tarball)

    with ThreadPoolExecutor(2) as pool:
        digests = list(pool.map(bootstrap, ("one", "two")))
    assert digests[0] == digests[1]


# --- with an engine --------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def client(docker_client: Any) -> Any:
    """The shared engine fixture (conftest.py): fails in CI, skips elsewhere, when no engine answers."""
    return docker_client


@pytest.fixture(scope="session")
def base_image(client: Any) -> str:
    """The catalog's base where the engine has it, else the Debian-built one (built if missing)."""
    from runner.base_image import base_image_exists, pick_base_image

    preferred = CATALOG.images["numpy-openblas"].base_image
    if base_image_exists(client, preferred):
        return preferred
    return build_base_image(client) if not base_image_exists(client, BASE_TAG) else pick_base_image(client, preferred)


@pytest.fixture(scope="session")
def ensure_built(client: Any, base_image: str) -> Callable[[str], str]:
    """Build an image unless current (the spec-hash label says so); returns its tag."""
    done: dict[str, str] = {}

    def ensure(name: str) -> str:
        if name not in done:
            image = CATALOG.images[name]
            build_image(client, image, base_image=base_image, log=lambda line: None)
            done[name] = image.tag
        return done[name]

    return ensure


def run(client: Any, tag: str, command: list[str], **kwargs: Any) -> str:
    """Run like the benchmark: no network, read-only root, an exec-able tmpfs /tmp."""
    options: dict[str, Any] = {"network_mode": "none", "read_only": True, "tmpfs": {"/tmp": "exec"}}
    options.update({"remove": True, "stdout": True, "stderr": True, **kwargs})
    out = client.containers.run(tag, command, **options)
    return str(out.decode())


@pytest.mark.docker
def test_engine_version(client: Any) -> None:
    assert "(API 1." in engine_version(client)


@pytest.mark.docker
def test_base_image_runs_python(client: Any, base_image: str) -> None:
    out = run(client, base_image, ["python3", "-c", "import sys, ssl, venv; print(sys.version_info[:2])"])
    assert out.strip() == "(3, 11)"
    if base_image == BASE_TAG:
        assert len(client.images.get(BASE_TAG).labels[LABEL_TAR_SHA]) == 64


@pytest.mark.docker
@pytest.mark.parametrize("name", CPU_IMAGES)
def test_cpu_image_is_current_and_imports_its_framework(
    client: Any, ensure_built: Callable[[str], str], name: str
) -> None:
    image = CATALOG.images[name]
    tag = ensure_built(name)
    assert image_state(client, image) == "current"
    found = client.images.get(tag)
    assert found.labels[LABEL_HASH] == image.spec_hash() and found.labels[LABEL_BASE]
    assert found.attrs["Config"]["User"] == "10001:10001"
    code = (  # the backend's version() imports the framework under whatever module name it has (tflite: LiteRT)
        f"import os; from frameworks.backends.registry import load_backend; "
        f"load_backend({image.framework!r}).version(); print(os.getuid(), os.getcwd())"
    )
    out = run(client, tag, ["python", "-c", code])
    assert out.split()[-2:] == ["10001", "/app"]


@pytest.mark.docker
@pytest.mark.parametrize("name", CPU_IMAGES)
def test_cpu_image_runs_predict_offline_on_a_read_only_root(
    client: Any, ensure_built: Callable[[str], str], name: str
) -> None:
    tag = ensure_built(name)
    command = "python -m frameworks.predict --framework numpy --model lenet5 --iterations 3 --output -"
    out = run(client, tag, command.split(), stderr=False)
    assert '"status":"ok"' in out.replace(" ", ""), out[-500:]


_NO_BUILD_INPUTS = r"""
import hashlib, os, sys
host_ca = sys.argv[1]
config = ["/etc/pip.conf", "/etc/xdg/pip", "/root/.pip", "/root/.config/pip", "/tmp/.config/pip", "/opt/venv/pip.conf"]
bad = [p for p in ["/tmp/build-extras", *config] if os.path.exists(p)]
for top, dirs, files in os.walk("/"):
    dirs[:] = [d for d in dirs if os.path.join(top, d) not in ("/proc", "/sys", "/dev")]
    for name in files:
        path = os.path.join(top, name)
        if name == "ca-bundle.crt" or (name.endswith(".whl") and "python-wheels" not in top and "ensurepip" not in top):
            bad.append(path)
        elif name.endswith((".crt", ".pem")) and os.path.isfile(path):
            if hashlib.sha256(open(path, "rb").read()).hexdigest() == host_ca:
                bad.append(path + " (the host's CA bundle)")
bad += [k for k in os.environ if k.startswith("PIP_")]
print("BAD", bad)
"""


def _host_ca_digest(client: Any, base: str) -> str:
    """The host's pip CA bundle's sha256; "-" when it is the same as the base image's own bundle
    (a host without an intercepting proxy: then there is nothing host-specific to leak)."""
    settings = host_pip_settings()
    if settings.cert is None:
        return "-"
    digest = hashlib.sha256(settings.cert.read_bytes()).hexdigest()
    base_bundle = run(client, base, ["sha256sum", "/etc/ssl/certs/ca-certificates.crt"], user="0").split()[0]
    return "-" if base_bundle == digest else digest


@pytest.mark.docker
@pytest.mark.parametrize("name", CPU_IMAGES)
def test_no_build_input_reaches_the_image(client: Any, ensure_built: Callable[[str], str], name: str) -> None:
    """No CA bundle from the host, no build-extras, no wheels, no pip configuration, no PIP_* variable."""
    tag = ensure_built(name)
    host_ca = _host_ca_digest(client, client.images.get(tag).labels[LABEL_BASE])
    # As root, to see every directory; and with no tmpfs hiding what the image has in /tmp.
    out = run(client, tag, ["python", "-c", _NO_BUILD_INPUTS, host_ca], tmpfs={}, user="0")
    assert out.strip().splitlines()[-1] == "BAD []"
    history = " ".join(str(h.get("CreatedBy", "")) for h in client.images.get(tag).history())
    for secret in ("ca-bundle", "PIP_CERT", "build-extras", "INDEX_URL"):
        assert secret not in history, secret


@pytest.mark.docker
def test_numpy_mkl_runs_on_mkl_and_openblas_on_openblas(client: Any, ensure_built: Callable[[str], str]) -> None:
    script = (
        "import numpy as np; a = np.random.rand(200, 200); a @ a; np.linalg.inv(a); "
        "print(sorted({l.split()[-1].rsplit('/', 1)[-1] for l in open('/proc/self/maps') "
        "if 'blas' in l or 'mkl' in l or 'lapack' in l}))"
    )
    mkl = run(client, ensure_built("numpy-mkl"), ["python", "-c", script])
    assert "libmkl_rt.so.2" in mkl and "libmkl_core.so.2" in mkl and "openblas" not in mkl, mkl
    openblas = run(client, ensure_built("numpy-openblas"), ["python", "-c", script])
    assert "openblas" in openblas and "mkl" not in openblas, openblas


@pytest.mark.docker
@pytest.mark.slow
def test_torch_compile_works_in_the_container(client: Any, ensure_built: Callable[[str], str]) -> None:
    """Inductor's C++ codegen: gcc, Python.h and an exec-able /tmp for its cache, on a read-only root."""
    script = (
        "import torch; f = torch.compile(lambda x: torch.relu(x) * 2 + 1); x = torch.randn(64); "
        "assert torch.allclose(f(x), torch.relu(x) * 2 + 1); print('compiled ok')"
    )
    assert "compiled ok" in run(client, ensure_built("torch"), ["python", "-c", script])


@pytest.mark.docker
def test_a_current_image_is_not_rebuilt(client: Any, ensure_built: Callable[[str], str]) -> None:
    image = CATALOG.images["numpy-openblas"]
    tag = ensure_built(image.name)
    lines: list[str] = []
    assert build_image(client, image, base_image=None, log=lines.append) == client.images.get(tag).id
    assert lines and "current" in lines[0] and len(lines) == 1
    assert image_state(client, dataclasses.replace(image, requirements=("numpy==2.4.5",))) == "stale"
    assert image_state(client, dataclasses.replace(image, name="no-such-image")) == "missing"


@pytest.mark.docker
def test_no_cache_rebuilds_every_layer_and_says_how_long(client: Any, ensure_built: Callable[[str], str]) -> None:
    """``runner build --no-cache``: the cold build a fresh machine does, timed, on a tag of its own here."""
    ensure_built("numpy-openblas")
    image = dataclasses.replace(CATALOG.images["numpy-openblas"], name="test-numpy-openblas-cold")
    cached: list[str] = []
    cold: list[str] = []
    try:
        build_image(client, image, base_image=None, log=cached.append)
        assert any("Using cache" in line for line in cached), "the same steps as numpy-openblas come from its layers"
        build_image(client, image, base_image=None, log=cold.append, cache=False)  # current, and rebuilt
    finally:
        with contextlib.suppress(Exception):
            client.images.remove(image.tag, force=True)
    assert any("(forced, no cache)" in line for line in cold), cold[:3]
    assert not [line for line in cold if "Using cache" in line]
    assert [line for line in cold if re.fullmatch(r"test-numpy-openblas-cold: built \S+ \(sha256:\w+\) in \d+ s", line)]
