"""The framework registry: each backend module's static facts, read without importing any framework.

A framework is one module ``frameworks/backends/<name>_backend.py`` that opens with a literal
declaration::

    FRAMEWORK = FrameworkInfo(name="torch", title="PyTorch", import_name="torch",
                              modes=("eager", "jit", "compile"), devices=("cpu", "cuda"), ...)

The registry finds those modules and reads the declaration from their source (``ast``), so the
host lists frameworks, modes and titles without importing torch or TensorFlow; the module itself,
and with it the framework, is imported only by ``load_backend``. The module then provides what
``Backend`` describes: build a model from the spec and the canonical weights, and run it.
"""

from __future__ import annotations

import ast
import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Protocol

from ..registry import Registry

if TYPE_CHECKING:
    import numpy as np

    from ..models import ModelSpec

Forward = Callable[["np.ndarray"], "np.ndarray"]
DEVICES: tuple[str, ...] = ("cpu", "cuda")
BACKENDS_DIR = Path(__file__).resolve().parent
SUFFIX = "_backend.py"
# The build-fact key every backend fills with the math library in effect ("oneDNN", "MKL", ...),
# as the framework itself states it: the reports compare builds by it.
IN_EFFECT = "in_effect"
# The build-fact key of a build that runs a fixed number of threads whatever it is asked ("1": Debian's
# serial ATLAS, NNabla's single-threaded CPU kernels): its threads_in_use says so, and thread sweeps read it.
THREADS_FIXED = "threads_fixed"
# The build-fact key a backend fills with the floating-point precision its compiled model computes in,
# read back from the framework ("f32", "bf16"), where the framework may choose one below float32 (the
# OpenVINO CPU plugin picks bf16 by default on CPUs that have it). Below float32, an output outside the
# float32 tolerance is that precision's doing: the cell is unverified, and this fact says why.
PRECISION = "inference_precision"
FLOAT32 = "f32"
# The build-fact key a sparse mode fills, read back from inside the framework after the first inference: the
# layers a sparse kernel ran ("fc1 fc2 fc3: torch.sparse CSR addmm"), or "none" with why. A mode whose framework
# says no sparse kernel ran is never reported as a sparse result: its cell is skipped with that reason.
SPARSE_KERNELS = "sparse_kernels"
# Likewise for the int8 transform: the int8 kernels that ran, read from inside the framework after the first
# inference ("QLinearConv x2, QGemm x3 (ONNX Runtime profile)"), or "none: ..." (it fell back to float kernels).
INT8_KERNELS = "int8_kernels"


@dataclass(frozen=True)
class BuildOptions:
    mode: str
    device: str = "cpu"
    threads: int = 1
    batch: int = 1
    # a build-level transform (``frameworks.transforms``) and its settings, for backends that declare it in
    # ``FrameworkInfo.transforms``; "none" for every other build (weights-level transforms arrive as weights)
    transform: str = "none"
    transform_config: tuple[tuple[str, str], ...] = ()
    # the build-level transform's data (int8: the calibration images and the project's scales), read-only
    data: Mapping[str, np.ndarray] = field(default_factory=dict, compare=False, hash=False)

    def setting(self, name: str) -> str:
        """One of the transform's settings (``toolchain``), as a string; KeyError if it has none by that name."""
        return dict(self.transform_config)[name]


@dataclass(frozen=True)
class Built:
    """A model lowered to one framework: the forward function and the framework's own counts."""

    forward: Forward
    params: int  # trainable parameters, counted through the framework's own API
    buffers: int  # non-trainable state (batch-norm running statistics), likewise
    threads: int | None = None  # intra-op threads the framework says it uses, read back after the build


@dataclass(frozen=True)
class TrainOptions:
    """How the train scenario trains: the same for every framework (SGD with momentum, mean softmax
    cross-entropy over the batch, no weight decay, no augmentation)."""

    mode: str
    device: str = "cpu"
    threads: int = 1
    batch: int = 64
    learning_rate: float = 0.01
    momentum: float = 0.9
    eval_batch: int = 500  # the fixed batch size of ``Trainer.predict``


class Trainer(Protocol):
    """A network being trained by one framework's own machinery, from the canonical weights.

    The network is the spec without its final softmax: ``step`` computes the logits, the mean
    softmax cross-entropy, its gradient by the framework's autodiff (NumPy: by hand) and one SGD
    update with momentum by the framework's optimizer; ``predict`` returns logits.
    """

    params: int  # trainable parameters, counted through the framework's own API
    threads: int | None  # intra-op threads the framework says it uses

    def step(self, x: np.ndarray, y: np.ndarray, record: bool) -> float | None:
        """One update on a batch (``options.batch`` images, int64 labels); the batch's loss before the
        update when ``record`` (reading it waits for the step), else None (nothing waits)."""
        ...

    def sync(self) -> None:
        """Wait until every step asked for has run (asynchronous engines: MXNet's, a GPU's)."""
        ...

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Logits for ``options.eval_batch`` images, in inference mode."""
        ...

    def weights(self) -> dict[str, np.ndarray]:
        """The current weights in the canonical layout and keys (float32 copies)."""
        ...


class Backend(Protocol):
    """What a ``<framework>_backend`` module provides (checked structurally); frameworks whose
    ``FrameworkInfo.train_modes`` is not empty also provide ``train``."""

    def version(self) -> str: ...
    def build_facts(self) -> dict[str, str]: ...
    def cuda_available(self) -> bool: ...
    def build(self, spec: ModelSpec, weights: dict[str, np.ndarray], options: BuildOptions) -> Built: ...
    def train(self, spec: ModelSpec, weights: dict[str, np.ndarray], options: TrainOptions) -> Trainer: ...


@dataclass(frozen=True)
class FrameworkInfo:
    """A framework's static facts: what the host, the runner and the reports need without importing it."""

    name: str
    title: str  # as the reports print it: "PyTorch", "ONNX Runtime"
    import_name: str  # the framework's own top-level package, to test availability cheaply
    modes: tuple[str, ...]
    devices: tuple[str, ...] = ("cpu",)
    # (baseline, candidate) mode comparisons the reports draw; empty: every mode against the first
    mode_pairs: tuple[tuple[str, str], ...] = ()
    # the modes the train scenario trains in, with the framework's own training machinery; empty: none
    train_modes: tuple[str, ...] = ()
    # the build-level transforms (``frameworks.transforms``) its ``build`` applies; weights-level ones
    # (pruning) need nothing from a backend, since every backend builds from the weights it is given
    transforms: tuple[str, ...] = ()
    # (mode, transform): modes that run only on that transform's weights (a sparse mode: pruned weights)
    transform_modes: tuple[tuple[str, str], ...] = ()
    # (transform, why not): what a cell skipped for a build-level transform it does not run says
    transform_notes: tuple[tuple[str, str], ...] = ()
    module: str = ""  # the backend module, set by discovery

    def __post_init__(self) -> None:
        if not self.modes:
            raise ValueError(f"framework {self.name}: no modes")
        unknown = [d for d in self.devices if d not in DEVICES]
        if unknown:
            raise ValueError(f"framework {self.name}: unknown device(s) {unknown}; valid devices: {', '.join(DEVICES)}")
        stray = [m for pair in self.mode_pairs for m in pair if m not in self.modes]
        if stray:
            raise ValueError(f"framework {self.name}: mode_pairs name modes it does not have: {stray}")
        stray_modes = [m for m, _ in self.transform_modes if m not in self.modes]
        if stray_modes:
            raise ValueError(f"framework {self.name}: transform_modes name modes it does not have: {stray_modes}")
        untrained = [m for m in self.train_modes if m not in self.modes]
        if untrained:
            raise ValueError(f"framework {self.name}: train_modes name modes it does not have: {untrained}")

    def runs_mode(self, mode: str, transform: str) -> bool:
        """Whether cells of this mode are planned under this transform (a sparse mode: only on pruned weights)."""
        needs = dict(self.transform_modes).get(mode)
        return needs is None or needs == transform

    def supports(self, transform: str, level: str, settings: Mapping[str, str] | None = None) -> bool:
        """Whether cells of this transform can run here: every weights-level one, the build-level ones declared.

        An entry of ``transforms`` is a name ("int8"), or a name with the settings it is limited to
        ("int8 toolchain=native", "int8 toolchain=qdq,native calibrator=minmax").
        """
        if level == "weights":
            return True
        given = settings or {}
        for entry in self.transforms:
            name, *limits = entry.split()
            if name != transform:
                continue
            allowed = dict(limit.split("=", 1) for limit in limits)
            if all(given.get(key, "") in values.split(",") for key, values in allowed.items()):
                return True
        return False

    def check(self, options: BuildOptions | TrainOptions) -> None:
        """Refuse a mode or device this framework does not have, naming the valid ones.

        Every backend's ``build`` and trainer call this first, so a bad option is refused in the same
        words everywhere and the lists come from the declaration, never from a copy in the backend.
        """
        training = isinstance(options, TrainOptions)
        modes = self.train_modes if training else self.modes
        if options.mode not in modes:
            what = "training mode" if training else "mode"
            raise ValueError(f"unknown {self.name} {what} {options.mode!r}; valid {what}s: {', '.join(modes)}")
        if options.device not in self.devices:
            raise ValueError(f"unknown device {options.device!r}; valid devices: {', '.join(self.devices)}")

    def comparisons(self) -> tuple[tuple[str, str], ...]:
        """The mode pairs to compare: the declared ones, else each mode against the first (a mode that runs on
        a transform's weights only, a sparse mode, is compared where that transform's cells are)."""
        only = dict(self.transform_modes)
        return self.mode_pairs or tuple((self.modes[0], m) for m in self.modes[1:] if m not in only)


FRAMEWORKS: Registry[FrameworkInfo] = Registry("framework")


def register_framework(info: FrameworkInfo) -> FrameworkInfo:
    """Add a framework whose backend module is ``info.module`` (discovery does this for frameworks/backends)."""
    if not info.module:
        raise ValueError(f"framework {info.name}: no backend module")
    return FRAMEWORKS.register(info.name, info)


def declared_framework(path: Path, module: str | None = None) -> FrameworkInfo:
    """The ``FRAMEWORK = FrameworkInfo(...)`` declaration of a backend module, read from its source.

    ``module`` is the name ``load_backend`` imports it by (default: ``frameworks.backends.<file>``).
    """
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in tree.body:
        if (
            isinstance(node, ast.Assign)
            and [getattr(t, "id", None) for t in node.targets] == ["FRAMEWORK"]
            and isinstance(node.value, ast.Call)
            and getattr(node.value.func, "id", None) == "FrameworkInfo"
        ):
            try:
                fields = {kw.arg: ast.literal_eval(kw.value) for kw in node.value.keywords if kw.arg}
            except ValueError:
                raise ValueError(f"{path}: FRAMEWORK must be declared with literal keyword arguments") from None
            return FrameworkInfo(**fields, module=module or f"{__package__}.{path.stem}")
    raise ValueError(f"{path}: no FRAMEWORK = FrameworkInfo(...) declaration")


def _discover() -> None:
    for path in sorted(BACKENDS_DIR.glob(f"*{SUFFIX}")):
        register_framework(declared_framework(path))


_discover()


def get_framework(name: str) -> FrameworkInfo:
    """Look a framework up; an unknown name lists the valid ones."""
    return FRAMEWORKS.get_entry(name)


def list_frameworks() -> list[str]:
    return list(FRAMEWORKS)


def check_mode(framework: str, mode: str) -> None:
    info = get_framework(framework)
    if mode not in info.modes:
        raise KeyError(f"unknown mode {mode!r} for {framework}; valid modes: {', '.join(info.modes)}")


def is_installed(framework: str) -> bool:
    """Whether the framework's package can be found, without importing it."""
    import importlib.util

    return importlib.util.find_spec(get_framework(framework).import_name) is not None


def load_backend(framework: str) -> Backend:
    """Import the backend module (and so the framework) now."""
    module: ModuleType = importlib.import_module(get_framework(framework).module)
    return module  # type: ignore[return-value]
