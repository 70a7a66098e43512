"""``train``: LeNet-5 trained on Fashion-MNIST by each framework's own training machinery, from the
same initial weights, with the same hyperparameters, on the same batches in the same order.

SGD with momentum 0.9, learning rate 0.01, batches of 64, mean softmax cross-entropy, no
augmentation, no weight decay; the canonical initial weights; one seeded permutation of the
training images per epoch, computed once by the harness (``frameworks.training``) and fed
identically to every framework. What differs is what is compared: autograd and
``torch.optim.SGD`` (eager, torch.compile), ``tf.GradientTape`` under ``tf.function`` (graph, XLA),
MXNet's Gluon ``Trainer`` (hybridized), and NumPy's hand-written backward pass.

Per epoch: the wall time of its steps (the first apart: it includes compilation), images/s and
the test accuracy on the 10,000 test images; the loss every 50 steps (and at each of the first
20); at the end the final accuracy, the peak memory and the trained weights in the canonical
layout with their sha256. The timing fields every scenario has (``--iterations`` ...) do not
apply: an epoch is timed once, as a whole. The runner's ``--timeout`` applies per epoch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar

from . import Scenario, register_scenario
from .config import ScenarioConfig, flag, option

if TYPE_CHECKING:
    from ..backends.registry import FrameworkInfo
    from ..harness import CellRequest
    from ..models import ModelSpec
    from ..result import Result

NAME = "train"
DATASET = "fashion-mnist"


@dataclass(frozen=True)
class TrainConfig(ScenarioConfig):
    IDENTITY: ClassVar[tuple[str, ...]] = (
        "epochs", "batch_size", "learning_rate", "momentum", "shuffle_seed", "train_images", "test_images",
    )  # fmt: skip

    epochs: int = field(default=2, metadata=option("training epochs (the first includes compilation)"))
    batch_size: int = field(default=64, metadata=option("images per training step"))
    learning_rate: float = field(default=0.01, metadata=option("SGD learning rate"))
    momentum: float = field(default=0.9, metadata=option("SGD momentum"))
    shuffle_seed: int = field(default=0, metadata=option("seed of the per-epoch batch order (every framework's)"))
    train_images: int = field(default=0, metadata=option("train on the first N training images (0: all 60,000)"))
    test_images: int = field(default=0, metadata=option("test on the first N test images (default 0: all 10,000)"))

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError(f"{flag('epochs')} and {flag('batch_size')} must be at least 1")
        if not self.learning_rate > 0:
            raise ValueError(f"{flag('learning_rate')} must be positive")
        if not 0 <= self.momentum < 1:
            raise ValueError(f"{flag('momentum')} must be in [0, 1)")
        if min(self.shuffle_seed, self.train_images, self.test_images) < 0:
            names = f"{flag('shuffle_seed')}, {flag('train_images')} and {flag('test_images')}"
            raise ValueError(f"{names} must not be negative")

    def cell_batch(self) -> int:
        return self.batch_size

    def largest_batch(self) -> int:
        return 1  # the cell makes its own reference (the runner's canonical inputs are the 3-channel model's)

    def points(self) -> int:
        return self.epochs  # the runner's timeout is per epoch

    def network(self, spec: ModelSpec) -> ModelSpec | None:
        from ..models import fashion_mnist_network

        return fashion_mnist_network(spec.name)

    def modes(self, info: FrameworkInfo) -> tuple[str, ...]:
        return info.train_modes

    def runs_transform(self, name: str) -> bool:
        from ..transforms import NONE

        return name == NONE  # training starts from the canonical weights; a pruned start would need masks kept

    def datasets(self) -> tuple[str, ...]:
        return (DATASET,)


def measure(request: CellRequest, spec: ModelSpec, config: ScenarioConfig, base: Result) -> Result:
    from ..harness import open_backend
    from ..training import train_cell

    assert isinstance(config, TrainConfig)
    backend, base = open_backend(request, base)
    if backend is None:
        return base
    return train_cell(backend, spec, request, config, base)


SCENARIO = register_scenario(
    Scenario(
        name=NAME,
        summary="LeNet-5 trained on Fashion-MNIST: epoch time, images/s, loss curve, test accuracy",
        config=TrainConfig,
        measure=measure,
    )
)
