"""Fashion-MNIST, offline: the idx files of Debian's ``dataset-fashion-mnist`` package, checked, then
padded to 32 x 32 and normalised. Standard library and NumPy only (every image can run it).

Nothing is downloaded at run time: the files are where the package puts them
(``/usr/share/datasets/fashion-mnist``; ``$DLBENCH_FASHION_MNIST`` names another directory holding
the same four files). Each file's size and sha256 are checked against the package's own (version
``PACKAGE_VERSION``: Debian recompressed the upstream archives, so these are not upstream's
checksums), then each file's idx header (magic number, image count, 28 x 28) once it is
decompressed. Anything wrong is one ``DatasetError`` line that names the file and the package to
install; ``python -m frameworks.datasets`` prints it and exits 2, as predict does.

Preprocessing, the same for every framework: each 28 x 28 image is scaled to [0, 1], padded with
background (0) to 32 x 32 (LeNet-5's input), and normalised with the mean and standard deviation of
the 60,000 training images' pixels (computed here from their histogram, over the unpadded images).
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import os
import struct
import sys
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    import numpy as np

NAME = "fashion-mnist"
TITLE = "Fashion-MNIST"
PACKAGE = "dataset-fashion-mnist"
PACKAGE_VERSION = "0.0~git20200523.55506a9-1"
DEFAULT_DIR = "/usr/share/datasets/fashion-mnist"
DIR_ENV = "DLBENCH_FASHION_MNIST"
CLASSES = 10
SIDE = 28  # as stored
PAD = 2  # each side: 28 + 2 * 2 = 32
IMAGE_MAGIC, LABEL_MAGIC = 0x803, 0x801  # idx: unsigned bytes, 3 dimensions / 1 dimension
INSTALL = f"install Debian's {PACKAGE} package (apt-get install {PACKAGE})"


class DatasetError(RuntimeError):
    """A missing, damaged or unexpected dataset file: one line naming the file and the fix."""


@dataclass(frozen=True)
class IdxFile:
    name: str
    size: int  # bytes of the .gz file
    sha256: str  # of the .gz file as the package ships it
    count: int  # images or labels inside
    kind: Literal["images", "labels"]


FILES: tuple[IdxFile, ...] = (
    IdxFile("train-images-idx3-ubyte.gz", 26421856,
            "b0564c3eedabfbf835052cff8503ea422014ce006caf5b757f851416ee8300c7", 60000, "images"),
    IdxFile("train-labels-idx1-ubyte.gz", 29491,
            "0ae29f65d86684f32d1b9c85147786c547b9c6aebcaf235f0400a0cce308b056", 60000, "labels"),
    IdxFile("t10k-images-idx3-ubyte.gz", 4422079,
            "cc1d090a38ace84dfa1aa66e3ada7c336ef481a96936906477e6dd344da56eaa", 10000, "images"),
    IdxFile("t10k-labels-idx1-ubyte.gz", 5125,
            "8d3605d196f4be44669e46906da9733c8131fef761fdbfec72c424d5222f1a05", 10000, "labels"),
)  # fmt: skip
TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES, TEST_LABELS = FILES


def directory() -> Path:
    return Path(os.environ.get(DIR_ENV) or DEFAULT_DIR)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def check_file(root: Path, spec: IdxFile) -> Path:
    """The file's path once its size and sha256 are the package's; else ``DatasetError``."""
    path = root / spec.name
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise DatasetError(f"{TITLE}: {path} is missing: {INSTALL}") from None
    except OSError as exc:
        raise DatasetError(f"{TITLE}: cannot read {path} ({exc.strerror or exc}): {INSTALL}") from None
    if size != spec.size:
        raise DatasetError(f"{TITLE}: {path} has {size} bytes, {PACKAGE} {PACKAGE_VERSION} ships {spec.size}: "
                           f"the file is damaged; reinstall the package "
                           f"(apt-get install --reinstall {PACKAGE})")  # fmt: skip
    found = _sha256(path)
    if found != spec.sha256:
        raise DatasetError(f"{TITLE}: {path} has sha256 {found[:16]}…, {PACKAGE} {PACKAGE_VERSION} ships "
                           f"{spec.sha256[:16]}…: reinstall the package "
                           f"(apt-get install --reinstall {PACKAGE})")  # fmt: skip
    return path


def check_dataset(root: str | None = None) -> str:
    """Check every file (size and sha256); the sha256 of their sha256s, which names the data a cell read."""
    return _checked(str(Path(root) if root is not None else directory()))


@lru_cache(maxsize=4)
def _checked(root: str) -> str:
    base = Path(root)
    for spec in FILES:
        check_file(base, spec)
    return hashlib.sha256("".join(f"{f.name} {f.sha256}\n" for f in FILES).encode()).hexdigest()


def read_idx(path: Path, spec: IdxFile) -> bytes:
    """The decompressed payload after the idx header, once the header says what ``spec`` says."""
    try:
        data = gzip.decompress(path.read_bytes())
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise DatasetError(f"{TITLE}: {path} does not decompress ({exc}): reinstall {PACKAGE}") from None
    images = spec.kind == "images"
    header = 16 if images else 8
    if len(data) < header:
        raise DatasetError(f"{TITLE}: {path} is too short for an idx header: reinstall {PACKAGE}")
    magic, count = struct.unpack(">II", data[:8])
    expected_magic = IMAGE_MAGIC if images else LABEL_MAGIC
    rows, cols = struct.unpack(">II", data[8:16]) if images else (1, 1)
    if magic != expected_magic or count != spec.count or (rows, cols) != ((SIDE, SIDE) if images else (1, 1)):
        raise DatasetError(
            f"{TITLE}: {path} holds {count} {spec.kind} (magic {magic:#x}, {rows} x {cols}), expected "
            f"{spec.count} (magic {expected_magic:#x}): reinstall {PACKAGE}"
        )
    body = data[header:]
    if len(body) != count * rows * cols:
        raise DatasetError(f"{TITLE}: {path} holds {len(body)} bytes of {spec.kind}, expected {count * rows * cols}")
    return body


@dataclass(frozen=True)
class Split:
    """Images as the networks take them (N, 1, 32, 32) float32, and their labels (N,) int64."""

    x: np.ndarray
    y: np.ndarray

    def __len__(self) -> int:
        return int(self.y.shape[0])


@dataclass(frozen=True)
class FashionMNIST:
    train: Split
    test: Split
    mean: float  # of the training pixels in [0, 1]
    sd: float
    sha256: str  # ``check_dataset``'s digest


def preprocess(raw: np.ndarray, mean: float, sd: float) -> np.ndarray:
    """(N, 28, 28) uint8 to (N, 1, 32, 32) float32: scaled to [0, 1], padded with 0, normalised."""
    import numpy as np

    n = raw.shape[0]
    scale, shift = np.float32(1.0 / (255.0 * sd)), np.float32(mean / sd)
    out = np.full((n, 1, SIDE + 2 * PAD, SIDE + 2 * PAD), -shift, dtype=np.float32)
    out[:, 0, PAD:-PAD, PAD:-PAD] = raw.astype(np.float32) * scale - shift
    return out


def fashion_mnist(root: str | None = None) -> FashionMNIST:
    """The checked, preprocessed dataset (cached for the process: 60,000 + 10,000 images, ~290 MB)."""
    base = str(Path(root) if root is not None else directory())
    mean, sd = pixel_stats(base)
    return FashionMNIST(_split(base, "train"), _split(base, "test"), mean, sd, check_dataset(base))


def test_split(root: str | None = None) -> Split:
    """The 10,000 test images alone, normalised with the training set's statistics (an inference cell's
    accuracy needs no more: the training images are read for their mean and sd, not kept)."""
    return _split(str(Path(root) if root is not None else directory()), "test")


def _raw(root: str, spec: IdxFile) -> np.ndarray:
    import numpy as np

    check_dataset(root)
    array = np.frombuffer(read_idx(Path(root) / spec.name, spec), dtype=np.uint8)
    if spec.kind == "images":
        return array.reshape(spec.count, SIDE, SIDE)
    if array.size and int(array.max()) >= CLASSES:
        raise DatasetError(f"{TITLE}: {Path(root) / spec.name} holds label {int(array.max())}; there are {CLASSES}")
    return array


@lru_cache(maxsize=2)
def pixel_stats(root: str) -> tuple[float, float]:
    """Mean and standard deviation of the training pixels in [0, 1], exactly, from their histogram."""
    import numpy as np

    raw = _raw(root, TRAIN_IMAGES)
    counts = np.zeros(256, dtype=np.float64)
    for start in range(0, raw.shape[0], 2000):  # bincount widens to int64: in chunks, not 376 MB at once
        counts += np.bincount(raw[start : start + 2000].ravel(), minlength=256)
    values = np.arange(256, dtype=np.float64) / 255.0
    total = counts.sum()
    mean = float((counts * values).sum() / total)
    return mean, float(np.sqrt((counts * (values - mean) ** 2).sum() / total))


@lru_cache(maxsize=4)
def _split(root: str, which: str) -> Split:
    import numpy as np

    images, labels = (TRAIN_IMAGES, TRAIN_LABELS) if which == "train" else (TEST_IMAGES, TEST_LABELS)
    split = Split(preprocess(_raw(root, images), *pixel_stats(root)), _raw(root, labels).astype(np.int64))
    split.x.setflags(write=False)
    split.y.setflags(write=False)
    return split


def main(argv: list[str] | None = None) -> int:
    """``python -m frameworks.datasets``: check and load Fashion-MNIST, print what it holds; exit 2 if it cannot."""
    parser = argparse.ArgumentParser(prog="python -m frameworks.datasets", description=main.__doc__)
    parser.add_argument("--dir", help=f"the directory of the idx files (default: ${DIR_ENV}, else {DEFAULT_DIR})")
    args = parser.parse_args(argv)
    try:
        data = fashion_mnist(args.dir)
    except DatasetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{TITLE}: {len(data.train)} training and {len(data.test)} test images, {data.train.x.shape[1:]} each; "
          f"training pixels mean {data.mean:.4f}, sd {data.sd:.4f}; files sha256 {data.sha256[:16]}…")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
