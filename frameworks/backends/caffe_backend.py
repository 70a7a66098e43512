"""Caffe 1.0 (Debian bullseye's ``python3-caffe``): the spec as a prototxt made with ``caffe.NetSpec``,
run by ``caffe.Net`` in the TEST phase on the CPU.

One mode, ``net``: copy the batch into the input blob, ``Net.forward()``, copy the output blob out.
Caffe's convolutions are im2col + GEMM through ``libblas.so.3``, whose target Debian's BLAS
alternatives choose: the images ``caffe-atlas``, ``caffe-openblas`` and ``caffe-mkl`` are one build of
Caffe on three BLAS libraries (``docker/caffe.Dockerfile``). Which one runs is read from the shared
objects mapped into the process (``frameworks.loaded``), never from the image's name, and recorded
as ``blas_loaded`` and ``in_effect``. Caffe has no thread setting of its own: the BLAS reads
``OPENBLAS_NUM_THREADS``/``MKL_NUM_THREADS``/``OMP_NUM_THREADS`` (predict sets them before this module
is imported) and threadpoolctl reads the count back; ATLAS fixes its threads when it is compiled, and
Debian's is the serial build: one thread whatever is asked (``threads_fixed``).

Layers: a spec batch norm is Caffe's ``BatchNorm`` (running mean and variance, global statistics)
followed by a ``Scale`` with bias (gamma, beta); a global average pool is a global ``Pooling``
then ``Flatten``; everything else maps one to one, and the blob shapes are checked against the
spec (Caffe rounds pooled sizes up: a spec whose pooling does not divide evenly fails here, not
silently). Caffe's ``BatchNorm`` keeps a third blob, the moving-average normaliser (one value, set
to 1): it is neither a weight nor a statistic of the network and is not counted.

``image_check`` is the image's build-time check (``python -m frameworks.selfcheck caffe``, after
LeNet-5 against the float64 reference): exactly the BLAS the image was built for (``DLBENCH_BLAS``)
is mapped.

This module must import on Python 3.9.
"""

from __future__ import annotations

import os
import tempfile
from typing import Any

import numpy as np

from ..loaded import blas_facts, blas_families, blas_threads, mapped_libraries
from ..models import BN_EPS, BatchNorm, Conv, Dense, Flatten, GlobalAvgPool, Layer, MaxPool, ModelSpec, ReLU, Softmax
from .registry import IN_EFFECT, THREADS_FIXED, BuildOptions, Built, Forward, FrameworkInfo

os.environ.setdefault("GLOG_minloglevel", "2")  # Caffe logs every layer it sets up to stderr otherwise
import caffe  # after the logging variable: glog reads it when Caffe loads
from caffe import layers as L
from caffe import params as P

FRAMEWORK = FrameworkInfo(
    name="caffe",
    title="Caffe",
    import_name="caffe",
    modes=("net",),
    devices=("cpu",),
    transform_notes=(("int8", "BVLC Caffe has no int8 inference"),),
)
INPUT = "data"
BLAS_ENV = "DLBENCH_BLAS"  # the BLAS the image was built for (docker/caffe.Dockerfile): checked, not trusted
EXPECTED = {"atlas": "ATLAS", "openblas": "OpenBLAS", "mkl": "MKL"}


def version() -> str:
    return str(getattr(caffe, "__version__", "unknown"))


def cuda_available() -> bool:
    return False


def build_facts() -> dict[str, str]:
    """Caffe's version and mode, and the BLAS as mapped into this process (what really runs)."""
    facts = {"caffe": version(), "caffe_mode": "CPU", **blas_facts()}
    facts[IN_EFFECT] = facts.get("blas_in_effect", "unknown")
    facts["image_blas"] = os.environ.get(BLAS_ENV, "unset")
    threads = blas_threads()
    if threads is not None:
        facts["blas_threads"] = str(threads)
    elif facts[IN_EFFECT] == "ATLAS":
        facts[THREADS_FIXED] = "1"  # Debian's ATLAS is the serial build (it links no libpthread)
    return facts


def build(spec: ModelSpec, weights: dict[str, np.ndarray], options: BuildOptions) -> Built:
    FRAMEWORK.check(options)
    caffe.set_mode_cpu()
    net, output = make_net(spec, weights, options.batch)
    params, buffers = count_params(net)
    return Built(_forward(net, output), params=params, buffers=buffers, threads=threads_in_use())


def threads_in_use() -> int | None:
    """The BLAS's own thread count; ATLAS, which threadpoolctl cannot ask, runs the threads it was
    compiled for: Debian's ``libatlas.so.3`` is its serial build (it links no libpthread), so one."""
    threads = blas_threads()
    if threads is None and blas_families(mapped_libraries()) == ["ATLAS"]:
        return 1
    return threads


# --- the network ---------------------------------------------------------------------------------------


def to_netspec(spec: ModelSpec, batch: int) -> tuple[Any, dict[str, str]]:
    """The spec as a ``caffe.NetSpec`` and, per spec layer, the blob its output is in."""
    n = caffe.NetSpec()
    top = L.Input(shape=dict(dim=[batch, *spec.input_shape]))
    setattr(n, INPUT, top)
    blobs: dict[str, str] = {}
    current = INPUT
    for layer, shape_in, _ in spec.walk():
        for name, native, in_place in _layers(layer, shape_in, top):
            setattr(n, name, native)
            top = native
            current = current if in_place else name
        blobs[layer.name] = current
    return n, blobs


def _layers(layer: Layer, shape_in: tuple[int, ...], bottom: Any) -> list[tuple[str, Any, bool]]:
    """(name, Caffe layer, in place) for one spec layer; Caffe names each layer after its top blob."""
    if isinstance(layer, Conv):
        conv = L.Convolution(
            bottom, num_output=layer.out, kernel_size=layer.kernel, stride=layer.stride, pad=layer.pad,
            group=shape_in[0] if layer.depthwise else 1, bias_term=layer.bias,
        )  # fmt: skip
        return [(layer.name, conv, False)]
    if isinstance(layer, BatchNorm):
        norm = L.BatchNorm(bottom, use_global_stats=True, eps=BN_EPS, in_place=True)
        return [(layer.name, norm, True), (f"{layer.name}_scale", L.Scale(norm, bias_term=True, in_place=True), True)]
    if isinstance(layer, ReLU):
        return [(layer.name, L.ReLU(bottom, in_place=True), True)]
    if isinstance(layer, MaxPool):
        return [(layer.name, L.Pooling(bottom, pool=P.Pooling.MAX, kernel_size=layer.size, stride=layer.stride), False)]
    if isinstance(layer, GlobalAvgPool):
        pooled = L.Pooling(bottom, pool=P.Pooling.AVE, global_pooling=True)
        return [(f"{layer.name}_pool", pooled, False), (layer.name, L.Flatten(pooled), False)]
    if isinstance(layer, Flatten):
        return [(layer.name, L.Flatten(bottom), False)]  # NCHW from axis 1: C, H, W order, as the spec says
    if isinstance(layer, Dense):
        return [(layer.name, L.InnerProduct(bottom, num_output=layer.out), False)]  # weight (out, in) as is
    if isinstance(layer, Softmax):
        return [(layer.name, L.Softmax(bottom), False)]
    raise TypeError(f"caffe backend cannot lower {layer!r}")


def make_net(spec: ModelSpec, weights: dict[str, np.ndarray], batch: int) -> tuple[Any, str]:
    """``caffe.Net`` from the generated prototxt, its blob shapes checked against the spec, weights loaded;
    returns the net and the name of its output blob."""
    netspec, blobs = to_netspec(spec, batch)
    with tempfile.NamedTemporaryFile("w", suffix=".prototxt", delete=False) as f:
        f.write(str(netspec.to_proto()))
    try:
        net = caffe.Net(f.name, caffe.TEST)
    finally:
        os.unlink(f.name)
    check_shapes(net, spec, blobs, batch)
    load_weights(net, spec, weights)
    return net, blobs[spec.layers[-1].name]


def check_shapes(net: Any, spec: ModelSpec, blobs: dict[str, str], batch: int) -> None:
    """Every spec layer's output blob has the spec's shape (Caffe's pooling rounds up, the spec's down)."""
    for layer, _, shape_out in spec.walk():
        found = tuple(net.blobs[blobs[layer.name]].data.shape)
        if found != (batch, *shape_out):
            raise ValueError(f"caffe: {layer.name} gives {found}, the spec {(batch, *shape_out)}")


def load_weights(net: Any, spec: ModelSpec, weights: dict[str, np.ndarray]) -> None:
    """Every Caffe parameter blob set from exactly one canonical tensor (missing, extra or misshapen raise)."""
    expected: dict[str, list[np.ndarray]] = {}
    for layer in spec.layers:
        w = {key.rsplit(".", 1)[1]: a for key, a in weights.items() if key.rsplit(".", 1)[0] == layer.name}
        if isinstance(layer, Conv):
            expected[layer.name] = [w["weight"]] + ([w["bias"]] if layer.bias else [])
        elif isinstance(layer, Dense):
            expected[layer.name] = [w["weight"], w["bias"]]
        elif isinstance(layer, BatchNorm):
            expected[layer.name] = [w["mean"], w["var"], np.ones(1, dtype=np.float32)]  # normaliser 1: as is
            expected[f"{layer.name}_scale"] = [w["gamma"], w["beta"]]
    if set(expected) != set(net.params):
        raise KeyError(f"canonical tensors and Caffe parameters differ: {sorted(set(expected) ^ set(net.params))}")
    for name, arrays in expected.items():
        blobs = net.params[name]
        if len(blobs) != len(arrays):
            raise KeyError(f"caffe: {name} has {len(blobs)} parameter blobs, the spec {len(arrays)}")
        for blob, array in zip(blobs, arrays):
            if tuple(blob.data.shape) != array.shape:
                raise ValueError(f"caffe: {name} blob {tuple(blob.data.shape)} is not the canonical {array.shape}")
            blob.data[...] = np.asarray(array, dtype=np.float32)


def count_params(net: Any) -> tuple[int, int]:
    """(weights, biases and batch-norm gamma/beta; batch-norm running mean + variance), from Caffe's own
    layers and blobs. The BatchNorm layer's third blob (the moving-average normaliser) is neither."""
    types = {name: layer.type for name, layer in zip(net._layer_names, net.layers)}
    trainable = buffers = 0
    for name, blobs in net.params.items():
        if types[name] == "BatchNorm":
            buffers += int(blobs[0].count) + int(blobs[1].count)
        else:
            trainable += sum(int(b.count) for b in blobs)
    return trainable, buffers


def _forward(net: Any, output: str) -> Forward:
    data = net.blobs[INPUT]

    def forward(x: np.ndarray) -> np.ndarray:
        if tuple(x.shape) != tuple(data.data.shape):  # another batch size: Caffe reshapes every blob
            data.reshape(*x.shape)
            net.reshape()
        data.data[...] = x
        net.forward()
        return np.array(net.blobs[output].data, dtype=np.float32, copy=True)

    return forward


# --- the image's build-time check (python -m frameworks.selfcheck caffe) --------------------------------


def image_check() -> list[str]:
    """After a forward pass: exactly the BLAS the image was built for is mapped (MKL with its kernels)."""
    wanted = EXPECTED.get(os.environ.get(BLAS_ENV, ""))
    paths = mapped_libraries()
    families = blas_families(paths)
    print(f"caffe {version()}: BLAS mapped {families} ({build_facts().get('blas_loaded')}), threads {threads_in_use()}")
    if wanted is None:
        return [f"caffe: {BLAS_ENV} is {os.environ.get(BLAS_ENV)!r}, not one of {', '.join(EXPECTED)}"]
    if families != [wanted]:
        return [f"caffe: the image is built for {wanted} but {families or 'no BLAS'} is mapped"]
    if wanted == "MKL" and not any("libmkl_core" in p for p in paths):
        return ["caffe: libmkl_rt is mapped but MKL loaded no computational layer (libmkl_core)"]
    return []
