"""NNabla 1.36 (the newest release with Python 3.9 wheels): the spec as a static graph built with
``nnabla.parametric_functions``, run by ``forward`` on the CPU extension context.

One mode, ``static``: the graph (input ``nn.Variable`` to output) is built once in ``build``; a
forward copies the batch into the input variable's buffer, runs ``y.forward(clear_buffer=True)``
(intermediate buffers released as soon as they are consumed) and copies the output out. The
parameters live in a parameter scope of their own per build, set from the canonical tensors:
NNabla's convolution weight is OIHW like the spec's, its affine weight is ``(in, out)`` (the
canonical ``(out, in)`` transposed) and its batch-norm tensors are ``(1, C, 1, 1)``.

Build facts: NNabla's version, the extension context it computes in (``cpu:float``), the math
libraries ``libnnabla.so`` itself links (``nnabla_links``: none in the PyPI build, whose CPU kernels
are its own Eigen code: the libraries the process maps are NumPy's, recorded as ``numpy_blas``),
and its threads: that build links no OpenMP and starts no thread, so it runs on one whatever is
asked (``threads_fixed``).

This module must import on Python 3.9.
"""

from __future__ import annotations

import itertools
import os
from typing import Any

import nnabla as nn
import nnabla.functions as F
import nnabla.parametric_functions as PF
import numpy as np
from nnabla.ext_utils import get_extension_context

from ..loaded import MATH_TAGS, OPENMP_TAGS, blas_facts, needed_libraries, omp_max_threads
from ..models import BN_EPS, BatchNorm, Conv, Dense, Flatten, GlobalAvgPool, Layer, MaxPool, ModelSpec, ReLU, Softmax
from .registry import IN_EFFECT, THREADS_FIXED, BuildOptions, Built, Forward, FrameworkInfo

FRAMEWORK = FrameworkInfo(
    name="nnabla",
    title="NNabla",
    import_name="nnabla",
    modes=("static",),
    devices=("cpu",),
    transform_notes=(("int8", "NNabla has no post-training int8 toolchain for its CPU kernels"),),
)
EXTENSION, TYPE_CONFIG = "cpu", "float"
_scopes = itertools.count()  # a parameter scope per build: two builds in one process never share parameters
# canonical tensor kind -> NNabla's parameter name under the layer's scope (PF nests its own scope in it)
_PARAM = {"weight": "W", "bias": "b", "gamma": "gamma", "beta": "beta", "mean": "mean", "var": "var"}
_BN_KINDS = ("gamma", "beta", "mean", "var")
_SCOPE = {Conv: "conv", Dense: "affine", BatchNorm: "bn"}  # the scope each parametric function opens


def version() -> str:
    return str(nn.__version__)


def cuda_available() -> bool:
    return False


def context() -> Any:
    return get_extension_context(EXTENSION, type_config=TYPE_CONFIG)


def build_facts() -> dict[str, str]:
    """NNabla's version and context, the math libraries its own library links, NumPy's BLAS, its threads."""
    ctx = nn.get_current_context()
    facts = {"nnabla": version(), "context": f"{','.join(ctx.backend)} ({ctx.array_class})"}
    links = own_math_links()
    facts["nnabla_links"] = ",".join(links) or "none"
    numpy_blas = blas_facts().get("blas_loaded")
    if numpy_blas:
        facts["numpy_blas"] = numpy_blas
    facts[IN_EFFECT] = "Eigen" if not links else ",".join(links)
    threads = omp_max_threads()
    if threads:
        facts["omp_threads"] = str(threads)
    elif not any(tag in name for name in links for tag in OPENMP_TAGS):
        facts[THREADS_FIXED] = "1"
    return facts


def own_math_links() -> list[str]:
    """The BLAS and OpenMP libraries ``libnnabla.so`` links itself (``DT_NEEDED``)."""
    library = os.path.join(os.path.dirname(nn.__file__), "libnnabla.so")
    tags = (*MATH_TAGS, *OPENMP_TAGS)
    return [name for name in needed_libraries(library) if any(tag in name.lower() for tag in tags)]


def build(spec: ModelSpec, weights: dict[str, np.ndarray], options: BuildOptions) -> Built:
    FRAMEWORK.check(options)
    nn.set_default_context(context())
    scope = f"{spec.name}_{next(_scopes)}"
    with nn.parameter_scope(scope):
        x = nn.Variable((options.batch, *spec.input_shape))
        y = to_graph(spec, x)
        load_weights(spec, weights)
        params, buffers = count_params()
    return Built(_forward(x, y), params=params, buffers=buffers, threads=omp_max_threads() or 1)  # no OpenMP: one


def to_graph(spec: ModelSpec, x: Any) -> Any:
    """The spec as NNabla functions on ``x`` (inside the caller's parameter scope)."""
    h = x
    for layer, shape_in, _ in spec.walk():
        h = _lower(layer, shape_in, h)
    return h


def _lower(layer: Layer, shape_in: tuple[int, ...], h: Any) -> Any:
    if isinstance(layer, Conv):
        k, p, s = layer.kernel, layer.pad, layer.stride
        return PF.convolution(
            h, layer.out, (k, k), pad=(p, p), stride=(s, s), with_bias=layer.bias,
            group=shape_in[0] if layer.depthwise else 1, name=layer.name,
        )  # fmt: skip
    if isinstance(layer, BatchNorm):
        return PF.batch_normalization(h, batch_stat=False, eps=BN_EPS, name=layer.name)
    if isinstance(layer, ReLU):
        return F.relu(h)
    if isinstance(layer, MaxPool):
        size, stride = (layer.size, layer.size), (layer.stride, layer.stride)
        return F.max_pooling(h, size, stride, ignore_border=True)  # floor, as the spec's shapes
    if isinstance(layer, GlobalAvgPool):
        return F.reshape(F.global_average_pooling(h), (h.shape[0], shape_in[0]))
    if isinstance(layer, Flatten):
        return F.reshape(h, (h.shape[0], -1))  # NCHW: C, H, W order
    if isinstance(layer, Dense):
        return PF.affine(h, layer.out, name=layer.name)
    if isinstance(layer, Softmax):
        return F.softmax(h, axis=1)
    raise TypeError(f"nnabla backend cannot lower {layer!r}")


def load_weights(spec: ModelSpec, weights: dict[str, np.ndarray]) -> None:
    """Every parameter of the current scope set from exactly one canonical tensor, converted to NNabla's
    layout (a missing, extra or misshapen one raises)."""
    params = nn.get_parameters(grad_only=False)
    scopes = {layer.name: _SCOPE[type(layer)] for layer in spec.layers if type(layer) in _SCOPE}
    names = {}
    for key in weights:
        layer, kind = key.rsplit(".", 1)
        names[f"{layer}/{scopes[layer]}/{_PARAM[kind]}"] = key
    if set(names) != set(params):
        raise KeyError(f"canonical tensors and NNabla parameters differ: {sorted(set(names) ^ set(params))}")
    for name, key in names.items():
        array = nnabla_layout(key, weights[key])
        if params[name].shape != array.shape:
            raise ValueError(f"nnabla: {name} is {params[name].shape}, the canonical tensor gives {array.shape}")
        params[name].d = array


def nnabla_layout(key: str, array: np.ndarray) -> np.ndarray:
    """The canonical tensor ``key`` in NNabla's layout: a dense weight transposed to ``(in, out)``,
    batch-norm tensors as ``(1, C, 1, 1)``; a convolution's OIHW and every bias as they are."""
    kind = key.rsplit(".", 1)[1]
    array = np.asarray(array, dtype=np.float32)
    if kind == "weight" and array.ndim == 2:
        return np.ascontiguousarray(array.T)
    if kind in _BN_KINDS:
        return array.reshape(1, -1, 1, 1)
    return array


def count_params() -> tuple[int, int]:
    """(parameters that take a gradient, those that do not: batch-norm mean and variance), NNabla's own
    ``get_parameters`` split by ``grad_only``."""
    trainable = sum(int(v.size) for v in nn.get_parameters(grad_only=True).values())
    every = sum(int(v.size) for v in nn.get_parameters(grad_only=False).values())
    return trainable, every - trainable


def _forward(x: Any, y: Any) -> Forward:
    def forward(batch: np.ndarray) -> np.ndarray:
        if tuple(batch.shape) != tuple(x.shape):
            raise ValueError(f"nnabla: the graph is built for input {tuple(x.shape)}, not {tuple(batch.shape)}")
        x.d = batch
        y.forward(clear_buffer=True)
        return np.array(y.d, dtype=np.float32, copy=True)

    return forward
