"""The project as a user installs it: ``pip install .`` (a wheel, not editable) and the ``dlbench`` command.

The slow test builds the wheel from this working tree, installs it in a fresh venv and uses it from a
directory outside the clone, for real: ``dlbench list``, one local cell on the committed trained weights
(its test accuracy present) and ``dlbench report``. The fast ones check what it rests on: the program
name, where the repository's files are found, and that missing trained weights are an error.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from runner import source
from runner.catalog import CATALOG_PATH, load_catalog
from runner.commands import CONSOLE_PROG, build_parser
from runner.images import build_context
from runner.local_launcher import venv_dir
from runner.paths import cache_dir
from runner.rundir import load_results
from tests.conftest import REPO_ROOT

MISSING_TRAINED = """
import pathlib, sys
import frameworks.trained as trained
trained.HERE = pathlib.Path(sys.argv[1])
from frameworks.predict import main
sys.exit(main(["--framework", "numpy", "--model", "lenet5", "--weights", "trained", "--iterations", "2",
               "--warmup", "1", "--min-time", "0"]))
"""


def test_the_console_name_is_the_programs_name() -> None:
    assert build_parser().prog == "python -m runner"
    parser = build_parser(CONSOLE_PROG)
    assert parser.prog == "dlbench" and parser.format_usage().startswith("usage: dlbench ")
    with pytest.raises(SystemExit) as exited:
        parser.parse_args(["no-such-command"])
    assert exited.value.code == 2


def test_a_checkout_reads_its_own_files() -> None:
    assert not source.installed(), "runner/_repo/ is a wheel's: it must not exist in the checkout"
    assert CATALOG_PATH == REPO_ROOT / "docker" / "catalog.toml"
    assert source.repo_path("frameworks/models.py") == REPO_ROOT / "frameworks" / "models.py"
    assert source.cell_root() == REPO_ROOT
    assert source.built_commit() is None


def test_missing_trained_weights_are_one_line_and_exit_2(tmp_path: Path) -> None:
    """Never the seeded weights in their place, with no accuracy and exit 0 (what a wheel without them did)."""
    done = subprocess.run([sys.executable, "-c", MISSING_TRAINED, str(tmp_path)], cwd=REPO_ROOT, capture_output=True,
                          text=True, timeout=300, check=False)  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert done.stdout == ""
    assert done.stderr.strip() == (f"error: the trained weights of lenet5 are not readable: "
                                   f"{tmp_path / 'lenet5-fashion-mnist.json'}: No such file or directory")  # fmt: skip


# --- the wheel, for real ------------------------------------------------------------------------------


def _run(command: list[str], cwd: Path, env: dict[str, str] | None = None, timeout: float = 600) -> str:
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    assert done.returncode == 0, f"{' '.join(command)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    return done.stdout + done.stderr


def _working_tree(into: Path) -> Path:
    """This working tree's files (tracked and untracked, not ignored) copied, so that no stale ``build/`` or
    egg-info of the checkout goes into the wheel and the checkout gets none."""
    names = subprocess.run(["git", "-C", str(REPO_ROOT), "ls-files", "-z", "-co", "--exclude-standard"],
                           capture_output=True, check=True).stdout.decode().split("\0")  # fmt: skip
    for name in filter(None, names):
        if (REPO_ROOT / name).is_file():
            (into / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO_ROOT / name, into / name)
    return into


def _package_files(site: Path) -> set[str]:
    """The installed packages' files, bytecode aside: what must not grow while the commands run."""
    return {p.relative_to(site).as_posix() for name in ("frameworks", "runner", "reports")
            for p in (site / name).rglob("*") if "__pycache__" not in p.parts}  # fmt: skip


@pytest.mark.slow
def test_the_wheel_installs_and_runs_from_any_directory(tmp_path: Path) -> None:
    """About 70 s here (2 cores): the build, a fresh venv with the dependencies from PyPI (pip's cache), one cell."""
    src = _working_tree(tmp_path / "src")
    # The host's setuptools (the dev environment has it): no isolated build environment to download each time.
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path / "dist"),
          str(src)], cwd=tmp_path)  # fmt: skip
    (wheel,) = (tmp_path / "dist").glob("dlbench_matrix-*.whl")
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", str(venv)], cwd=tmp_path)
    _run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check", str(wheel)],
         cwd=tmp_path)  # fmt: skip
    python, dlbench = str(venv / "bin" / "python"), str(venv / "bin" / "dlbench")
    site = Path(_run([python, "-c", "import runner, pathlib; print(pathlib.Path(runner.__file__).parent.parent)"],
                     cwd=tmp_path).strip())  # fmt: skip
    assert site.is_relative_to(venv), f"runner imported from {site}, not the wheel"
    before = _package_files(site)

    # The state a run writes goes to the current directory and a cache of its own; the local launcher's venv
    # for cpu-numpy-openblas is the user's (found, or made, like any user's).
    cache = tmp_path / "cache"
    cache.mkdir()
    venv_dir("numpy-openblas").parent.mkdir(parents=True, exist_ok=True)
    (cache / "venvs").symlink_to(cache_dir() / "venvs", target_is_directory=True)
    work = tmp_path / "work"
    work.mkdir()
    env = {**os.environ, "DLBENCH_CACHE": str(cache)}
    env.pop("PYTHONPATH", None)

    listing = _run([dlbench, "list"], cwd=work, env=env)
    assert "cpu-numpy-openblas" in listing and "catalog not found" not in listing
    usage = _run([dlbench, "matrix", "--help"], cwd=work, env=env)
    assert usage.startswith("usage: dlbench matrix")

    # The wheel builds the images a checkout builds: the same files under the same names, the same hashes.
    wheel_images = json.loads(_run([python, "-c", "import json; from runner.catalog import load_catalog; "
                                    "print(json.dumps({n: i.spec_hash() for n, i in load_catalog().images.items()}))"],
                                   cwd=work, env=env))  # fmt: skip
    assert wheel_images == {name: image.spec_hash() for name, image in load_catalog().images.items()}
    context = _run([python, "-c", "import hashlib; from runner.catalog import load_catalog; from runner.images import "
                    "build_context; print(hashlib.sha256(build_context(load_catalog().images['numpy-openblas']))"
                    ".hexdigest())"], cwd=work, env=env)  # fmt: skip
    assert context.strip() == hashlib.sha256(build_context(load_catalog().images["numpy-openblas"])).hexdigest()

    out = _run([dlbench, "matrix", "--launcher", "local", "--variants", "cpu-numpy-openblas", "--models", "lenet5",
                "--weights", "trained", "--iterations", "20", "--warmup", "2", "--min-time", "0.2", "--max-time", "1",
                "--no-peak", "--no-report", "--out", "runs"], cwd=work, env=env)  # fmt: skip
    assert "(ok)" in out
    (run_dir,) = (work / "runs").iterdir()
    (result,) = load_results(run_dir).results
    assert result.status == "ok" and result.verified and result.config["weights"] == "trained"
    assert result.accuracy is not None and result.accuracy > 0.8, "the trained weights' test accuracy"
    # The cell ran frameworks/ alone (site-packages' NumPy would shadow the venv's): a copy in the cache.
    (copy,) = (cache / "sources").iterdir()
    assert sorted(p.name for p in copy.iterdir()) == ["frameworks"]

    _run([dlbench, "report", str(run_dir)], cwd=work, env=env)
    assert (run_dir / "report.md").is_file() and (run_dir / "report.html").is_file()
    assert "cpu-numpy-openblas" in (run_dir / "report.md").read_text(encoding="utf-8")
    assert _package_files(site) == before, "a command wrote into site-packages"
    assert sorted(p.name for p in work.iterdir()) == ["runs"], "a command wrote into the current directory"
