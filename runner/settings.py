"""What every cell of a run shares, stored in run.json so that ``--resume`` reuses it exactly."""

from __future__ import annotations

import json
import shlex
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from frameworks.options import choose_scenarios, scenario_configs, transform_points
from frameworks.scenarios import DEFAULT_SCENARIO, SCENARIOS, ScenarioConfig
from frameworks.scenarios.config import DEFAULT_TIMEOUT_S, fields_of, flag
from frameworks.transforms import TransformPoint

from .cell import Cell
from .limits import parse_cpuset
from .presets import DEFAULT, EVERY_MODE

DEFAULT_MEMORY = "8g"
POINT_TIMEOUT = "point_timeout"  # a sweep's per-point limit: the runner's --timeout, per measurement
CELL_SLACK_S = 60.0  # a sweep's own process around its points


@dataclass(frozen=True)
class Settings:
    """What every cell of a run shares; stored in run.json so that ``--resume`` reuses it exactly.

    ``options`` are the scenario options given on the command line (``iterations``, ``batches``,
    ...), as strings; the scenario configs hold their defaults.
    """

    variants: tuple[str, ...]
    models: tuple[str, ...]
    launcher: str  # the resolved launcher: docker or local
    scenarios: tuple[str, ...] = (DEFAULT_SCENARIO,)
    options: dict[str, str] = field(default_factory=dict)
    transforms: dict[str, str] = field(default_factory=dict)  # --transforms and its options, as given
    cpus: str = ""
    memory: str = DEFAULT_MEMORY
    timeout: float = DEFAULT_TIMEOUT_S
    seed: int = 0
    out: str = "runs"
    preset: str = DEFAULT.name  # which modes each variant times (``presets.planned_modes``) unless ``modes`` says
    modes: tuple[str, ...] = ()  # --modes: exactly these modes of each variant, opt-in ones included
    exclude: tuple[str, ...] = ()  # --exclude: patterns of the cells left out (``presets.excluded``)

    def __post_init__(self) -> None:
        self.configs()  # bad options are a UsageError now, not in the middle of a run
        self.points()

    def points(self) -> list[TransformPoint]:
        """The transform points every cell runs at (one cell each); ``none`` alone by default."""
        return transform_points(self.transforms)

    def with_options(self, **values: object) -> Settings:
        """A copy with scenario options set, e.g. ``with_options(iterations=3, batches=(1, 4))``."""
        strings = {k: " ".join(map(_text, v)) if isinstance(v, tuple) else _text(v) for k, v in values.items()}
        return replace(self, options={**self.options, **strings})

    @property
    def threads(self) -> int:
        """One intra-op thread per CPU of the cpuset: every framework gets the same number."""
        return len(parse_cpuset(self.cpus))

    def configs(self) -> dict[str, ScenarioConfig]:
        """Each chosen scenario's config (model defaults still unresolved), with the runner's timeout per point."""
        chosen = choose_scenarios(self.scenarios)
        given = dict(self.options)
        if any(POINT_TIMEOUT in {f.name for f, _ in fields_of(s.config)} for s in chosen):
            given[POINT_TIMEOUT] = _num(self.timeout)
        return scenario_configs(chosen, given)

    def cell_timeout(self, cell: Cell) -> float:
        """How long the whole cell may take: ``timeout`` per measurement (a sweep makes one per point)."""
        points = cell.config.points()
        return self.timeout if points == 1 else self.timeout * points + CELL_SLACK_S

    def predict_args(self, cell: Cell, inputs_root: str = "") -> list[str]:
        """The arguments of ``python -m frameworks.predict`` for one cell (result as one JSON line on stdout);
        ``inputs_root`` is where the cell sees the runner's inputs directory."""
        inputs = []
        if cell.inputs is not None:
            inputs = ["--inputs", f"{inputs_root}/{cell.inputs.name}", "--inputs-sha256", cell.inputs.sha256]
        return [
            "--framework", cell.variant.framework, "--model", cell.model, "--mode", cell.mode,
            "--device", cell.variant.device, "--scenario", cell.scenario, *cell.config.to_args(),
            *cell.transform.to_args(), "--threads", str(self.threads), "--seed", str(self.seed), *inputs,
            "--output", "-",
        ]  # fmt: skip

    def spelled_options(self) -> dict[str, str]:
        """The scenario options with every scalar default spelled out (what run.json and the command show)."""
        spelled: dict[str, str] = {}
        for config in self.configs().values():
            for name, value in config.to_strings().items():
                if name != POINT_TIMEOUT and value != "":
                    spelled.setdefault(name, value)
        return {**spelled, **self.options}

    def command(self, hosts: Iterable[Any] = ()) -> str:
        """The command that reproduces this run (launcher resolved, every default spelled out; the hosts by
        name and URL, never their TLS paths)."""
        args = ["python", "-m", "runner", "matrix"]
        if self.preset != EVERY_MODE:
            args += ["--preset", self.preset]
        args += ["--variants", *self.variants, "--models", *self.models]
        if self.modes:
            args += ["--modes", *self.modes]
        if self.exclude:
            args += ["--exclude", *self.exclude]
        named = [f"{h.name}={h.public_url}" for h in hosts]
        if named:
            args += ["--hosts", *named]
        args += ["--scenarios", *self.scenarios]
        for name, value in self.spelled_options().items():
            args += [flag(name), *value.split()]
        for name, value in self.transforms.items():
            args += [flag(name), *value.split()]
        args += ["--launcher", self.launcher, "--cpus", self.cpus, "--memory", self.memory]
        args += ["--timeout", _num(self.timeout), "--out", self.out]
        return shlex.join(args)

    def to_dict(self) -> dict[str, str]:
        memory = self.memory if self.launcher == "docker" else f"not limited (local launcher; {self.memory} ignored)"
        return {
            "variants": " ".join(self.variants),
            "models": " ".join(self.models),
            "launcher": self.launcher,
            "scenarios": " ".join(self.scenarios),
            **self.spelled_options(),
            "options_given": " ".join(sorted(self.options)),
            **self.transforms,
            "transform_options": " ".join(self.transforms),
            "cpus": self.cpus,
            "threads": str(self.threads),
            "memory": memory,
            "memory_requested": self.memory,
            "timeout": _num(self.timeout),
            "seed": str(self.seed),
            "out": self.out,
            "isolation": ISOLATION[self.launcher],
            "preset": self.preset,
            "modes": " ".join(self.modes),
            "exclude": json.dumps(list(self.exclude)),  # a label glob may hold spaces
        }

    @classmethod
    def from_dict(cls, data: dict[str, str]) -> Settings:
        """Back from run.json; a missing or malformed entry raises ``ValueError`` naming it.

        Runs from before the scenario axis stored iterations, warmup, min_time and batch: they
        come back as the latency scenario's options. Runs from before presets planned every mode of
        each variant: they come back with the preset that does (``EVERY_MODE``).
        """
        try:
            scenarios = tuple(data.get("scenarios", DEFAULT_SCENARIO).split())
            names = {f.name for s in SCENARIOS.values() for f, _ in fields_of(s.config)}
            if "options_given" in data:
                options = {n: data[n] for n in data["options_given"].split()}
            else:
                options = {n: data[n] for n in ("iterations", "warmup", "min_time", "batch") if n in data}
            unknown = sorted(set(options) - names)
            if unknown:
                raise ValueError(f"options {', '.join(unknown)} belong to no scenario")
            transforms = {n: data[n] for n in data.get("transform_options", "").split()}
            return cls(
                variants=tuple(data["variants"].split()),
                models=tuple(data["models"].split()),
                launcher=data["launcher"],
                scenarios=scenarios,
                options=options,
                transforms=transforms,
                cpus=data["cpus"],
                memory=data.get("memory_requested", DEFAULT_MEMORY),
                timeout=float(data["timeout"]),
                seed=int(data.get("seed", "0")),
                out=data.get("out", "runs"),
                preset=data.get("preset", EVERY_MODE),
                modes=tuple(data.get("modes", "").split()),
                exclude=_patterns(data.get("exclude", "[]")),
            )
        except KeyError as exc:
            raise ValueError(f"settings.{exc.args[0]} is missing") from None
        except ValueError as exc:
            raise ValueError(f"settings: {exc}") from None


ISOLATION = {
    "docker": "one container per cell: network none, pinned cpuset, memory limit without swap, "
    "read-only root filesystem, tmpfs /tmp",
    "local": "one subprocess per cell in the image's virtualenv: pinned CPU affinity, no memory limit",
}


def _patterns(text: str) -> tuple[str, ...]:
    """run.json's ``exclude``: a JSON list of strings (``ValueError`` otherwise)."""
    patterns = json.loads(text)
    if not isinstance(patterns, list) or not all(isinstance(p, str) for p in patterns):
        raise ValueError("exclude must be a JSON list of strings")
    return tuple(patterns)


def _num(value: float) -> str:
    return f"{value:g}"


def _text(value: object) -> str:
    return _num(value) if isinstance(value, float) else str(value)
