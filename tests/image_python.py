"""``python`` of a catalog image, as an executable on the host: for frameworks on another Python.

Caffe, Caffe2, Chainer and NNabla run on Debian bullseye's Python 3.9 in their images only, so the
host's tests cannot import them. ``image_python(image)`` writes a small executable that runs
``python ARGS...`` inside the image (sealed like a cell: no network, read-only root, the variant's
environment) with this checkout's ``frameworks/`` mounted read-only over the image's copy, relays
stdout and stderr and exits with the container's status. Tests that call ``[python, "-m",
"frameworks.check", ...]`` (``conftest.framework_python``) then run there unchanged.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
WRAPPERS = Path(os.environ.get("DLBENCH_CACHE") or Path.home() / ".cache" / "dlbench") / "image-python"
APP = "/app"
TIMEOUT_S = 3000
# What the host's test passes on to the process in the image (predict reads the thread variables itself).
PASSED_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "BENCH_SEED")


def image_python(image: str) -> str | None:
    """The executable, or None when no engine answers or the image is not built."""
    from runner.catalog import CatalogError, load_catalog
    from runner.engine import EngineUnavailable, connect

    try:
        spec = load_catalog().images[image]
        client = connect(timeout=30)
    except (CatalogError, KeyError, EngineUnavailable):
        return None
    try:
        client.images.get(spec.tag)
    except Exception:  # ImageNotFound, or an engine that stopped answering
        return None
    finally:
        client.close()
    WRAPPERS.mkdir(parents=True, exist_ok=True)
    path = WRAPPERS / image
    text = (
        f"#!{sys.executable}\n"
        "import sys\n"
        f"sys.path.insert(0, {str(REPO_ROOT)!r})\n"
        "from tests.image_python import main\n"
        f"sys.exit(main({image!r}, sys.argv[1:]))\n"
    )
    if not path.exists() or path.read_text(encoding="utf-8") != text:
        path.write_text(text, encoding="utf-8")
        path.chmod(0o755)
    return str(path)


def main(image: str, args: list[str]) -> int:
    """Run ``python *args`` in ``image``; its stdout and stderr here; its exit status."""
    from runner.catalog import load_catalog
    from runner.engine import connect

    catalog = load_catalog()
    spec = catalog.images[image]
    variant_env = next((v.env for v in catalog.variants.values() if v.image.name == image), {})
    env = {**variant_env, "MPLCONFIGDIR": "/tmp/matplotlib"}
    env.update({k: os.environ[k] for k in PASSED_ENV if k in os.environ})
    client = connect()
    container = client.containers.run(
        spec.tag, ["python", *args], detach=True, environment=env, network_mode="none", read_only=True,
        tmpfs={"/tmp": "rw,size=512m"}, working_dir=APP,
        volumes={str(REPO_ROOT / "frameworks"): {"bind": f"{APP}/frameworks", "mode": "ro"}},
    )  # fmt: skip
    try:
        status = container.wait(timeout=TIMEOUT_S)
        sys.stdout.write(container.logs(stdout=True, stderr=False).decode("utf-8", "replace"))
        sys.stderr.write(container.logs(stdout=False, stderr=True).decode("utf-8", "replace"))
        return int(status.get("StatusCode", 1))
    finally:
        container.remove(force=True)
        client.close()
