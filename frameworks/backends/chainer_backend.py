"""Chainer 7.8.1: the spec as Chainer links and functions on NumPy arrays, run with
``chainer.config.train = False`` under ``no_backprop_mode`` (no graph kept, batch norm on its
running statistics).

Modes:
- ``numpy``: Chainer's CPU functions on NumPy: its convolutions are im2col + ``tensordot`` through
  NumPy's BLAS, so the BLAS is the build variant (NumPy's own OpenBLAS from PyPI, or Debian's
  NumPy with ``libblas.so.3`` pointed at MKL: the published "numpy with mkl" row);
- ``ideep``: ``chainer.config.use_ideep = 'auto'`` on links moved with ``to_intel64()``, where
  ideep4py is installed. It is never a silent fallback: without ideep4py the build raises.

The BLAS in effect is read from the libraries mapped into the process (``frameworks.loaded``), its
threads from threadpoolctl (NumPy's BLAS reads ``OPENBLAS_NUM_THREADS``/``MKL_NUM_THREADS`` once,
when it loads; predict sets them first).

This module must import on Python 3.9.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import chainer
import chainer.functions as F
import chainer.links as L
import numpy as np

from ..loaded import blas_facts, blas_threads
from ..models import BN_EPS, BatchNorm, Conv, Dense, Flatten, GlobalAvgPool, Layer, MaxPool, ModelSpec, ReLU, Softmax
from .registry import IN_EFFECT, BuildOptions, Built, Forward, FrameworkInfo

FRAMEWORK = FrameworkInfo(
    name="chainer",
    title="Chainer",
    import_name="chainer",
    modes=("numpy", "ideep"),
    devices=("cpu",),
    mode_pairs=(("numpy", "ideep"),),
    transform_notes=(("int8", "Chainer has no int8 inference"),),
)

# What the last build ran (build_facts reports it: the mode decides what is in effect).
_built: dict[str, str] = {}


def version() -> str:
    return str(chainer.__version__)


def cuda_available() -> bool:
    return False


def ideep_available() -> bool:
    return bool(chainer.backends.intel64.is_ideep_available())


def build_facts() -> dict[str, str]:
    """Chainer's and NumPy's versions, whether iDeep is there, and the BLAS as mapped."""
    facts = {"chainer": version(), "numpy": str(np.__version__), "ideep_available": str(ideep_available())}
    facts.update(blas_facts())
    facts.update(_built)
    blas = facts.get("blas_in_effect", "unknown")
    facts[IN_EFFECT] = "iDeep" if _built.get("use_ideep") == "auto" else blas
    threads = blas_threads()
    if threads is not None:
        facts["blas_threads"] = str(threads)
    return facts


def build(spec: ModelSpec, weights: dict[str, np.ndarray], options: BuildOptions) -> Built:
    FRAMEWORK.check(options)
    if options.mode == "ideep" and not ideep_available():
        raise RuntimeError("chainer ideep mode: ideep4py is not installed (chainer.backends.intel64 says so)")
    links, _, steps = to_chainer(spec, weights)
    params, buffers = count_params(links)
    use_ideep = "auto" if options.mode == "ideep" else "never"
    if use_ideep == "auto":
        links.to_intel64()
    _built.update(mode=options.mode, use_ideep=use_ideep)
    return Built(_forward(steps, use_ideep), params=params, buffers=buffers, threads=blas_threads())


def to_chainer(
    spec: ModelSpec, weights: dict[str, np.ndarray]
) -> tuple[Any, dict[str, Any], list[Callable[[Any], Any]]]:
    """The links (in a ``ChainList``), the same links by spec layer name, and the forward steps in order."""
    links = chainer.ChainList()
    named: dict[str, Any] = {}
    steps = [_step(layer, shape_in, links, named) for layer, shape_in, _ in spec.walk()]
    load_weights(named, weights)
    return links, named, steps


def _step(layer: Layer, shape_in: tuple[int, ...], links: Any, named: dict[str, Any]) -> Callable[[Any], Any]:
    """One spec layer: a link added to ``links`` (and ``named``), or a Chainer function."""
    if isinstance(layer, Conv):
        cin = shape_in[0]
        link = L.Convolution2D(
            cin, layer.out, layer.kernel, stride=layer.stride, pad=layer.pad, nobias=not layer.bias,
            groups=cin if layer.depthwise else 1,
        )  # fmt: skip
        return _named(links, named, layer.name, link)
    if isinstance(layer, BatchNorm):
        return _named(links, named, layer.name, L.BatchNormalization(shape_in[0], eps=BN_EPS))
    if isinstance(layer, Dense):
        return _named(links, named, layer.name, L.Linear(shape_in[0], layer.out))  # W is (out, in), as the spec's
    if isinstance(layer, ReLU):
        return F.relu
    if isinstance(layer, MaxPool):
        size, stride = layer.size, layer.stride
        return lambda x: F.max_pooling_2d(x, size, stride, cover_all=False)  # floor, as the spec's shapes
    if isinstance(layer, GlobalAvgPool):
        return lambda x: F.mean(x, axis=(2, 3))
    if isinstance(layer, Flatten):
        return lambda x: F.reshape(x, (x.shape[0], -1))  # NCHW: C, H, W order
    if isinstance(layer, Softmax):
        return lambda x: F.softmax(x, axis=1)
    raise TypeError(f"chainer backend cannot lower {layer!r}")


def _named(links: Any, named: dict[str, Any], name: str, link: Any) -> Any:
    links.add_link(link)  # ChainList names its children by index: ``named`` keeps the spec's names
    named[name] = link
    return link


# canonical tensor kind -> the Chainer attribute it is stored in
_ATTR = {"weight": "W", "bias": "b", "gamma": "gamma", "beta": "beta", "mean": "avg_mean", "var": "avg_var"}


def load_weights(named: dict[str, Any], weights: dict[str, np.ndarray]) -> None:
    """Every Chainer parameter and running statistic set from exactly one canonical tensor."""
    wanted = set()
    for name, link in named.items():
        wanted |= {(name, path.lstrip("/")) for path, _ in link.namedparams()}
        if isinstance(link, L.BatchNormalization):
            wanted |= {(name, "avg_mean"), (name, "avg_var")}
    given = {(key.rsplit(".", 1)[0], _ATTR[key.rsplit(".", 1)[1]]): key for key in weights}
    if set(given) != wanted:
        raise KeyError(f"canonical tensors and Chainer parameters differ: {sorted(set(given) ^ wanted)}")
    for (name, attr), key in given.items():
        target = getattr(named[name], attr)
        array = target.array if isinstance(target, chainer.Variable) else target
        if array.shape != weights[key].shape:
            raise ValueError(f"chainer: {name}.{attr} is {array.shape}, the canonical tensor {weights[key].shape}")
        array[...] = weights[key]


def count_params(links: Any) -> tuple[int, int]:
    """(Chainer's parameters, batch norm's running mean + variance), through Chainer's own API."""
    params = sum(int(p.size) for p in links.params())
    buffers = sum(
        int(link.avg_mean.size) + int(link.avg_var.size)
        for link in links.children()
        if isinstance(link, L.BatchNormalization)
    )
    return params, buffers


def _forward(steps: list[Callable[[Any], Any]], use_ideep: str) -> Forward:
    def forward(x: np.ndarray) -> np.ndarray:
        train, ideep = chainer.using_config("train", False), chainer.using_config("use_ideep", use_ideep)
        with train, ideep, chainer.no_backprop_mode():
            y: Any = np.ascontiguousarray(x, dtype=np.float32)
            for step in steps:
                y = step(y)
        return np.array(y.array, dtype=np.float32, copy=True)

    return forward
