"""docker-compose.yml, generated from the catalog: one service per variant.

The file is committed so that ``docker-compose up <variant>`` works without the runner; a test
regenerates it and fails when it is stale. The YAML is written by hand (block mappings, every
string JSON-quoted, which YAML reads the same), so the host needs no YAML library, and it keeps to
what both docker-compose 1.29 (Debian's) and Compose v2 accept.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from frameworks.compose_entry import USER_ENV
from frameworks.scenarios import DEFAULT_SCENARIO, SCENARIO_ENV

from .catalog import Catalog, Variant
from .docker_launcher import PIDS_LIMIT
from .images import catalog_build_args
from .source import repo_path

COMPOSE_PATH = repo_path("docker-compose.yml")  # an installed wheel carries a copy: it checks, never writes
RESULTS = "/results"
HEADER = """\
# Generated from docker/catalog.toml by runner/compose.py (python -m runner compose): do not edit.
# One service per variant; the runner builds these images itself (python -m runner build), compose
# can too: where no registry answers, build on the Debian-built base image:
#   DLBENCH_BASE_IMAGE=dlbench/base:bookworm docker-compose build cpu-numpy-openblas
#   DLBENCH_BASE_IMAGE_BULLSEYE=dlbench/base:bullseye docker-compose build cpu-caffe-openblas   (Debian bullseye's)
#   docker-compose up cpu-numpy-openblas       (results/cpu-numpy-openblas.jsonl, the caller's own file)
# The scenario is latency unless DLBENCH_SCENARIO says otherwise (throughput, threads):
#   DLBENCH_SCENARIO=throughput docker-compose up cpu-onnxruntime
"""
BASE_IMAGE_VAR = "DLBENCH_BASE_IMAGE"  # the bookworm images' base; each other release has its own variable


def base_image_var(release: str) -> str:
    """``DLBENCH_BASE_IMAGE`` for bookworm images, ``DLBENCH_BASE_IMAGE_BULLSEYE`` for bullseye ones: one
    override must not put an image on another Debian release."""
    from .base_image import DEFAULT_RELEASE

    return BASE_IMAGE_VAR if release == DEFAULT_RELEASE else f"{BASE_IMAGE_VAR}_{release.upper()}"


ENTRY_CAPABILITIES = ("SETUID", "SETGID", "CHOWN")  # compose_entry's, given up before the benchmark starts


class ComposeError(ValueError):
    """A variant the compose file cannot express: one line."""


def service_command(variant: Variant) -> list[str]:
    """Only this variant's framework (``--all`` with ``--framework``), on its device, into its own file;
    a variant that runs some of the framework's modes names each (``--mode`` once per mode).

    The scenario is ``$DLBENCH_SCENARIO`` (compose interpolates it; unset: latency), so
    ``DLBENCH_SCENARIO=throughput docker compose up cpu-torch`` sweeps batch sizes instead.
    """
    command = ["python", "-m", "frameworks.predict", "--framework", variant.framework, "--all"]
    command += ["--device", variant.device]
    if tuple(variant.modes) != _framework_modes(variant.framework):
        for mode in variant.modes:
            command += ["--mode", mode]
    return [*command, "--scenario", SCENARIO_ARG, "--output", f"{RESULTS}/{variant.name}.jsonl"]


SCENARIO_ARG = f"${{{SCENARIO_ENV}:-{DEFAULT_SCENARIO}}}"  # interpolated by compose, never escaped


def _framework_modes(framework: str) -> tuple[str, ...]:
    from frameworks.backends.registry import FRAMEWORKS

    return FRAMEWORKS[framework].modes


def _escape(value: str) -> str:
    """Compose interpolates ``$``: a literal one is ``$$``."""
    return value.replace("$", "$$")


def service(variant: Variant) -> dict[str, Any]:
    image = variant.image
    args = {k: _escape(v) for k, v in catalog_build_args(image).items()}
    args["BASE_IMAGE"] = f"${{{base_image_var(image.release)}:-{_escape(image.base_image)}}}"
    body: dict[str, Any] = {
        "image": image.tag,
        "build": {"context": ".", "dockerfile": image.dockerfile, "network": "host", "args": args},
        "command": [c if c == SCENARIO_ARG else _escape(c) for c in service_command(variant)],
    }
    body["environment"] = {
        **{k: _escape(v) for k, v in sorted(variant.env.items())},
        USER_ENV: f"${{{USER_ENV}:-}}",  # who the benchmark runs as, when the caller says (see compose_entry)
    }
    body.update(
        {
            # Root only until compose_entry has given the results directory's owner (or 10001) the results
            # file and become that user: the benchmark itself runs unprivileged, with no capabilities.
            "user": "0:0",
            "entrypoint": ["python", "-m", "frameworks.compose_entry"],
            "cap_drop": ["ALL"],
            "cap_add": list(ENTRY_CAPABILITIES),
            "security_opt": ["no-new-privileges:true"],
            "pids_limit": PIDS_LIMIT,
            "network_mode": "none",
            "read_only": True,
            "tmpfs": ["/tmp:exec"],  # Docker mounts tmpfs noexec by default; torch.compile dlopens from /tmp
            "volumes": [f"./results:{RESULTS}"],
        }
    )
    if variant.device == "cuda":
        gpu = {"driver": "nvidia", "count": "all", "capabilities": ["gpu"]}
        body["deploy"] = {"resources": {"reservations": {"devices": [gpu]}}}
    return body


def render_compose(catalog: Catalog) -> str:
    """The docker-compose.yml text for ``catalog`` (deterministic: catalog order)."""
    services = {v.name: service(v) for v in catalog.variants.values()}
    return HEADER + "\n" + "\n".join(_yaml({"services": services}, 0)) + "\n"


def _yaml(value: dict[str, Any], indent: int) -> list[str]:
    lines = []
    pad = "  " * indent
    for key, item in value.items():
        if isinstance(item, dict):
            lines.append(f"{pad}{key}:")
            lines += _yaml(item, indent + 1)
        elif isinstance(item, list) and item and isinstance(item[0], dict):
            lines.append(f"{pad}{key}:")
            for entry in item:
                first, *rest = _yaml(entry, indent + 2)
                lines.append(f"{pad}  - {first.lstrip()}")
                lines += rest
        else:
            lines.append(f"{pad}{key}: {_scalar(item)}")
    return lines


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):  # Compose v1 checks types: pids_limit must be a number, not "4096"
        return str(value)
    if isinstance(value, list):
        return "[" + ", ".join(_scalar(v) for v in value) + "]"
    return json.dumps(str(value))


def write_compose(catalog: Catalog, path: Path = COMPOSE_PATH) -> bool:
    """(Re)write the compose file; True when its content changed."""
    text = render_compose(catalog)
    if path.is_file() and path.read_text(encoding="utf-8") == text:
        return False
    path.write_text(text, encoding="utf-8")
    return True


def compose_is_current(catalog: Catalog, path: Path = COMPOSE_PATH) -> bool:
    return path.is_file() and path.read_text(encoding="utf-8") == render_compose(catalog)
