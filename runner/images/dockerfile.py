"""The Dockerfile check: a small parser (stages, ARGs, continuations) and the rules an image's
Dockerfile must keep (build args declared, every FROM renders, only ``/opt/venv`` reaches the final
stage), checked without an engine."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field

from ..catalog import ImageSpec
from ..source import repo_path
from .errors import ImageValidationError


@dataclass(frozen=True)
class Stage:
    """One ``FROM`` stage of a Dockerfile: its base, name and (instruction, arguments) lines."""

    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)


@dataclass(frozen=True)
class Dockerfile:
    global_args: dict[str, str | None]
    stages: list[Stage]

    def declared_args(self) -> set[str]:
        names = set(self.global_args)
        for stage in self.stages:
            names |= {_arg_name(a) for op, a in stage.instructions if op == "ARG"}
        return names


def parse_dockerfile(text: str) -> Dockerfile:
    """Instructions (continuations joined, comments dropped), split into stages at each FROM."""
    global_args: dict[str, str | None] = {}
    stages: list[Stage] = []
    for op, rest in _instructions(text):
        if op == "FROM":
            words = rest.split()
            name = words[2] if len(words) >= 3 and words[1].upper() == "AS" else None
            stages.append(Stage(words[0], name))
        elif not stages and op == "ARG":
            key, _, default = rest.partition("=")
            global_args[key.strip()] = default.strip().strip('"') if default else None
        elif not stages:
            raise ImageValidationError(f"{op} before the first FROM")
        else:
            stages[-1].instructions.append((op, rest))
    if not stages:
        raise ImageValidationError("no FROM instruction")
    return Dockerfile(global_args, stages)


def _instructions(text: str) -> Iterator[tuple[str, str]]:
    logical = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not logical and (not line or line.startswith("#")):
            continue
        if logical and line.startswith("#"):
            continue
        if line.endswith("\\"):
            logical += line[:-1] + " "
            continue
        logical += line
        op, _, rest = logical.strip().partition(" ")
        yield op.upper(), rest.strip()
        logical = ""
    if logical.strip():
        op, _, rest = logical.strip().partition(" ")
        yield op.upper(), rest.strip()


def _arg_name(arg: str) -> str:
    return arg.split("=", 1)[0].strip()


def render_base(stage: Stage, args: dict[str, str], defaults: dict[str, str | None]) -> str:
    """A stage's FROM image with ``${VAR}``/``$VAR`` replaced by the build args or global defaults."""

    def value(match: re.Match[str]) -> str:
        key = match.group(1) or match.group(2)
        found = args.get(key, defaults.get(key))
        if found is None:
            raise ImageValidationError(f"FROM {stage.base}: {key} has no value")
        return found

    return re.sub(r"\$\{(\w+)\}|\$(\w+)", value, stage.base)


def check_dockerfile(image: ImageSpec, args: dict[str, str]) -> Dockerfile:
    """The Dockerfile parses, every build arg passed is declared, every FROM renders, and the final
    stage is a fresh base that takes only ``/opt/venv`` from the build stage."""
    where = f"{image.name}: {image.dockerfile}"
    try:
        parsed = parse_dockerfile(repo_path(image.dockerfile).read_text(encoding="utf-8"))
        for stage in parsed.stages:
            render_base(stage, args, parsed.global_args)
    except ImageValidationError as exc:
        raise ImageValidationError(f"{where}: {exc}") from None
    undeclared = sorted(set(args) - parsed.declared_args())
    if undeclared:
        raise ImageValidationError(f"{where}: build arg(s) {', '.join(undeclared)} not declared by an ARG")
    if len(parsed.stages) < 2:
        raise ImageValidationError(f"{where}: not multi-stage (the final stage must not see build inputs)")
    for op, rest in parsed.stages[-1].instructions:
        if op == "COPY" and "--from=" in rest and not rest.split()[1].startswith("/opt/venv"):
            raise ImageValidationError(f"{where}: the final stage copies {rest!r}; only /opt/venv may cross")
        if op in ("COPY", "ADD") and "build-extras" in rest:
            raise ImageValidationError(f"{where}: the final stage copies build-extras")
    return parsed
