"""MXNet 1.9: the spec as a Gluon ``HybridSequential`` of native NCHW layers, run imperative or hybridized.

Modes:
- ``imperative``: plain Gluon calls, op by op through MXNet's engine, autograd off (predict mode);
- ``hybrid``: ``hybridize(static_alloc=True, static_shape=True)``: one cached symbolic graph with
  static memory; the graph is built on the first forward, which the harness times separately.

MXNet is imported lazily, by ``mxnet_module``: its OpenMP pool size is read once, when the library
loads (``OMP_NUM_THREADS``; unset, MXNet takes half the CPUs on x86), so ``build`` sets the
variable from ``options.threads`` before the first import. If MXNet was already loaded with another
count, that count stays in effect: ``build`` warns and ``build_facts`` reports the effective one.

Training (``train``): the hybridized network under ``autograd.record``, Gluon's
``SoftmaxCrossEntropyLoss`` and a ``gluon.Trainer`` with SGD and momentum (``step(batch)`` scales the
summed gradient to the batch mean). MXNet's engine is asynchronous: a step returns before it has
run, so the harness's ``sync`` (``waitall``) ends each timed epoch.

This module must import under MXNet's own environment (NumPy 1.23, no TensorFlow).
"""

from __future__ import annotations

import ctypes
import os
import sys
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

from ..environment import thread_count
from ..models import BN_EPS, BatchNorm, Conv, Dense, Flatten, GlobalAvgPool, Layer, MaxPool, ModelSpec, ReLU, Softmax
from .registry import IN_EFFECT, INT8_KERNELS, BuildOptions, Built, Forward, FrameworkInfo, TrainOptions

FRAMEWORK = FrameworkInfo(
    name="mxnet",
    title="MXNet",
    import_name="mxnet",
    modes=("imperative", "hybrid"),
    devices=("cpu", "cuda"),
    mode_pairs=(("imperative", "hybrid"),),
    train_modes=("hybrid",),
    transforms=("int8 toolchain=native calibrator=minmax",),
)
FEATURES = ("MKLDNN", "BLAS_OPEN", "BLAS_MKL", "OPENMP", "CUDA", "CUDNN")
CPU_WORKER_THREADS = "1"  # engine workers = operators run in parallel: 1, like the other frameworks' inter-op pools

# How MXNet was loaded in this process: the OpenMP threads it read then (see ``mxnet_module``).
_loaded: dict[str, str] = {}
_int8: dict[str, str] = {}  # what the last int8 build quantized and which int8 ops its graph runs

# canonical tensor kind -> Gluon parameter suffix
_PARAM = {"weight": "weight", "bias": "bias", "gamma": "gamma", "beta": "beta", "mean": "running_mean",
          "var": "running_var"}  # fmt: skip


def mxnet_module(threads: int | None = None) -> Any:
    """MXNet, imported on first use; with ``threads`` given, after setting the thread variables it reads at load."""
    if "mxnet" not in sys.modules:
        if threads is not None:
            os.environ["OMP_NUM_THREADS"] = str(thread_count(threads))
        os.environ.setdefault("MXNET_CPU_WORKER_NTHREADS", CPU_WORKER_THREADS)
        _loaded["OMP_NUM_THREADS"] = os.environ.get("OMP_NUM_THREADS", "unset")
        _loaded["cpu_worker_threads"] = os.environ["MXNET_CPU_WORKER_NTHREADS"]
    import mxnet

    if "omp_threads" not in _loaded:  # first use here (MXNet may have been imported elsewhere, earlier)
        _loaded.setdefault("OMP_NUM_THREADS", "unknown: mxnet imported elsewhere first")
        _loaded["omp_threads"] = str(omp_threads())
    return mxnet


def omp_threads() -> int:
    """OpenMP threads MXNet runs operators with, as libgomp states it on the thread that loaded MXNet.

    MXNet's OpenMP setup runs when the library loads: it leaves ``OMP_NUM_THREADS`` in effect when
    set, else calls ``omp_set_num_threads`` with its own default; either way this reads the result.
    Returns 0 when libgomp cannot be asked.
    """
    try:
        return int(ctypes.CDLL("libgomp.so.1").omp_get_max_threads())
    except OSError:
        return 0


def version() -> str:
    return str(mxnet_module().__version__)


def cuda_available() -> bool:
    mx = mxnet_module()
    return bool(mx.runtime.Features().is_enabled("CUDA")) and mx.context.num_gpus() > 0


def build_facts() -> dict[str, str]:
    """Compile-time features from ``mx.runtime.Features``, the runtime switches MXNet reads, and its threads."""
    mx = mxnet_module()
    features = mx.runtime.Features()
    facts = {"mxnet": version(), **{f.lower(): str(features.is_enabled(f)) for f in FEATURES}}
    facts["MXNET_MKLDNN_ENABLED"] = os.environ.get("MXNET_MKLDNN_ENABLED", "unset")
    in_use = mkldnn_in_use(features.is_enabled("MKLDNN"), os.environ.get("MXNET_MKLDNN_ENABLED"))
    facts["mkldnn_in_use"] = str(in_use)
    blas = "MKL" if features.is_enabled("BLAS_MKL") else "OpenBLAS" if features.is_enabled("BLAS_OPEN") else "BLAS"
    facts[IN_EFFECT] = "oneDNN" if in_use else blas
    facts.update(_loaded)
    facts.update(_int8)
    return facts


def mkldnn_in_use(compiled: bool, env: str | None) -> bool:
    """Whether MKLDNN (oneDNN) kernels run: compiled in, and not switched off by ``MXNET_MKLDNN_ENABLED``.

    MXNet parses the variable as a dmlc boolean ("0"/"false" switch it off; default on).
    """
    return compiled and (env is None or env.strip().lower() not in ("0", "false"))


def build(spec: ModelSpec, weights: dict[str, np.ndarray], options: BuildOptions) -> Built:
    FRAMEWORK.check(options)
    mx = mxnet_module(options.threads)
    _check_threads(thread_count(options.threads))
    ctx = _context(mx, options.device)
    _int8.clear()
    net = make_net(spec, weights, options.mode, ctx)
    params, buffers = count_params(net)
    if options.transform == "int8":
        net = quantized_net(net, options, ctx)
    return Built(_forward(mx, net, ctx), params=params, buffers=buffers, threads=int(_loaded["omp_threads"]) or None)


def quantized_net(net: Any, options: BuildOptions, ctx: Any) -> Any:
    """MXNet's own post-training quantization (``contrib.quantization.quantize_net``, oneDNN int8, naive min/max
    calibration on the cell's images), hybridized; the float net where MXNet has no int8 CPU kernels here, with
    the proof saying so (the harness then skips the cell)."""
    mx = mxnet_module()
    if not mkldnn_in_use(mx.runtime.Features().is_enabled("MKLDNN"), os.environ.get("MXNET_MKLDNN_ENABLED")):
        _int8[INT8_KERNELS] = "none: MXNet's int8 CPU kernels are oneDNN's, and oneDNN is off in this build or variant"
        return net
    if options.mode != "hybrid":
        _int8[INT8_KERNELS] = "none: MXNet quantizes a hybridized symbol graph; the imperative mode runs float ops"
        return net
    from mxnet.contrib.quantization import quantize_net

    images = mx.nd.array(np.asarray(options.data["calibration"], dtype=np.float32), ctx=ctx)
    # the last batch padded with images already seen: a min/max calibration sees the same extremes
    loader = mx.io.NDArrayIter(
        data=images, batch_size=min(CALIBRATION_BATCH, int(images.shape[0])), last_batch_handle="pad"
    )
    net.hybridize()
    quantized = quantize_net(net, quantized_dtype="auto", quantize_mode="full", calib_data=loader,
                             calib_mode="naive", num_calib_examples=int(images.shape[0]), ctx=ctx)  # fmt: skip
    quantized.hybridize(static_alloc=True, static_shape=True)
    graph = quantized(mx.nd.zeros((options.batch, *images.shape[1:]), ctx=ctx))  # the cached graph, at the cell's batch
    del graph
    _int8[INT8_KERNELS] = int8_ops(quantized)
    _int8["int8_model"] = ("mxnet.contrib.quantization.quantize_net: oneDNN int8, quantized_dtype auto, "
                           "naive (min/max) calibration")  # fmt: skip
    return quantized


def int8_ops(net: Any) -> str:
    """The conv and fully connected nodes of the quantized symbol graph, int8 or float (``quantized`` attribute)."""
    import json

    symbol = net._cached_graph[1]  # (inputs, output symbol) of the hybridized SymbolBlock
    nodes = json.loads(symbol.tojson())["nodes"]
    int8: dict[str, int] = {}
    floats: dict[str, int] = {}
    for node in nodes:
        op = str(node.get("op", ""))
        if op in ("null",) or not any(k in op.lower() for k in ("conv", "fully_connected", "fullyconnected")):
            continue
        attrs = node.get("attrs", {})
        quantized = op.startswith("_contrib_quantized") or str(attrs.get("quantized", "")).lower() == "true"
        bucket = int8 if quantized else floats
        bucket[op] = bucket.get(op, 0) + 1
    listed = ", ".join(f"{op} x{n}" for op, n in floats.items())
    if not int8:
        return f"none: no quantized conv or fully connected node in the graph ({listed or 'none at all'})"
    tail = f"; float: {listed}" if listed else ""
    return ", ".join(f"{op} x{n} (int8)" for op, n in int8.items()) + tail + " (the quantized symbol graph)"


CALIBRATION_BATCH = 16


def make_net(spec: ModelSpec, weights: dict[str, np.ndarray], mode: str, ctx: Any) -> Any:
    """The Gluon network as the mode runs it: as built (imperative) or hybridized with static memory."""
    net = to_gluon(spec, weights, ctx)
    if mode == "hybrid":
        net.hybridize(static_alloc=True, static_shape=True)  # the cached graph is built on the first call
    return net


def _check_threads(requested: int) -> None:
    effective = int(_loaded["omp_threads"])
    _loaded["threads_requested"] = str(requested)
    if effective and effective != requested:
        warnings.warn(
            f"MXNet was loaded with {effective} OpenMP threads in this process; {requested} requested",
            RuntimeWarning,
            stacklevel=3,
        )


def _context(mx: Any, name: str) -> Any:
    if name == "cuda":
        if not cuda_available():
            build = "a CUDA build" if mx.runtime.Features().is_enabled("CUDA") else "a CPU-only build"
            raise RuntimeError(f"CUDA requested but no GPU is available to MXNet ({build})")
        return mx.gpu(0)
    return mx.cpu()


def to_gluon(spec: ModelSpec, weights: dict[str, np.ndarray], ctx: Any) -> Any:
    """The spec as native Gluon blocks named after the spec's layers, canonical weights loaded strictly."""
    nn = mxnet_module().gluon.nn
    net = nn.HybridSequential(prefix=f"{spec.name}_")
    for layer, shape_in, _ in spec.walk():
        for block in _blocks(nn, layer, shape_in):
            net.add(block)
    net.initialize(ctx=ctx)
    load_weights(net, weights, ctx)
    return net


def _blocks(nn: Any, layer: Layer, shape_in: tuple[int, ...]) -> list[Any]:
    """Gluon blocks for one spec layer, with every input size given so no parameter waits for a first call."""
    prefix = f"{layer.name}_"
    if isinstance(layer, Conv):
        cin = shape_in[0]
        return [nn.Conv2D(
            layer.out, layer.kernel, strides=layer.stride, padding=layer.pad, groups=cin if layer.depthwise else 1,
            layout="NCHW", use_bias=layer.bias, in_channels=cin, prefix=prefix,
        )]  # fmt: skip
    if isinstance(layer, BatchNorm):
        return [nn.BatchNorm(axis=1, epsilon=BN_EPS, use_global_stats=True, in_channels=shape_in[0], prefix=prefix)]
    if isinstance(layer, ReLU):
        return [nn.Activation("relu", prefix=prefix)]
    if isinstance(layer, MaxPool):
        return [nn.MaxPool2D(layer.size, layer.stride, prefix=prefix)]
    if isinstance(layer, GlobalAvgPool):
        return [nn.GlobalAvgPool2D(prefix=prefix), nn.Flatten(prefix=f"{layer.name}_flatten_")]
    if isinstance(layer, Flatten):
        return [nn.Flatten(prefix=prefix)]  # NCHW flattened from axis 1: C, H, W order, as the spec says
    if isinstance(layer, Dense):
        return [nn.Dense(layer.out, flatten=True, in_units=shape_in[0], prefix=prefix)]  # (out, in) as is
    if isinstance(layer, Softmax):
        return [nn.HybridLambda(_softmax, prefix=prefix)]
    raise TypeError(f"mxnet backend cannot lower {layer!r}")


def _softmax(F: Any, x: Any) -> Any:  # F: mx.nd imperative, mx.sym once hybridized
    return F.softmax(x, axis=1)


def load_weights(net: Any, weights: dict[str, np.ndarray], ctx: Any) -> None:
    """Every Gluon parameter set from exactly one canonical tensor (a missing or extra one raises)."""
    mx = mxnet_module()
    params = net.collect_params()
    names = {f"{key.rsplit('.', 1)[0]}_{_PARAM[key.rsplit('.', 1)[1]]}": key for key in weights}
    if set(names) != set(params.keys()):
        raise KeyError(f"canonical tensors and Gluon parameters differ: {sorted(set(names) ^ set(params.keys()))}")
    for name, key in names.items():
        params[name].set_data(mx.nd.array(weights[key], ctx=ctx, dtype=np.float32))


def count_params(net: Any) -> tuple[int, int]:
    """(parameters with a gradient, batch-norm running mean + var) through Gluon's own parameter API."""
    params = net.collect_params().values()
    trainable = sum(int(p.data().size) for p in params if p.grad_req != "null")
    running = sum(int(p.data().size) for p in params if p.name.endswith(("running_mean", "running_var")))
    return trainable, running


def _forward(mx: Any, net: Callable[[Any], Any], ctx: Any) -> Forward:
    def forward(x: np.ndarray) -> np.ndarray:
        with mx.autograd.predict_mode():
            y = net(mx.nd.array(x, ctx=ctx, dtype=np.float32))
            return y.asnumpy()  # type: ignore[no-any-return]  # asnumpy waits for the engine: the fetch is timed

    return forward


# --- training ------------------------------------------------------------------------------------------

_CANONICAL = {v: k for k, v in _PARAM.items()}


class MXNetTrainer:
    """The spec's logits network, hybridized, trained by autograd and a ``gluon.Trainer`` (SGD, momentum)."""

    def __init__(self, spec: ModelSpec, weights: dict[str, np.ndarray], options: TrainOptions) -> None:
        FRAMEWORK.check(options)
        self.mx = mx = mxnet_module(options.threads)
        _check_threads(thread_count(options.threads))
        self.ctx = _context(mx, options.device)
        self.net = make_net(spec, weights, "hybrid", self.ctx)
        self.params, _ = count_params(self.net)
        self.threads: int | None = int(_loaded["omp_threads"]) or None
        self.batch = options.batch
        self.loss = mx.gluon.loss.SoftmaxCrossEntropyLoss()
        self.trainer = mx.gluon.Trainer(
            self.net.collect_params(), "sgd", {"learning_rate": options.learning_rate, "momentum": options.momentum}
        )

    def step(self, x: np.ndarray, y: np.ndarray, record: bool) -> float | None:
        mx = self.mx
        data = mx.nd.array(x, ctx=self.ctx, dtype=np.float32)
        labels = mx.nd.array(y, ctx=self.ctx, dtype=np.float32)  # Gluon's loss takes class indices as floats
        with mx.autograd.record():
            loss = self.loss(self.net(data), labels)
        loss.backward()
        self.trainer.step(self.batch)  # gradients of the summed loss, scaled by 1 / batch: the mean's
        return float(loss.mean().asscalar()) if record else None  # asscalar waits for the step

    def sync(self) -> None:
        self.mx.nd.waitall()

    def predict(self, x: np.ndarray) -> np.ndarray:
        mx = self.mx
        with mx.autograd.predict_mode():
            return self.net(mx.nd.array(x, ctx=self.ctx, dtype=np.float32)).asnumpy()  # type: ignore[no-any-return]

    def weights(self) -> dict[str, np.ndarray]:
        """Gluon parameters (``conv1_weight``) under canonical keys (``conv1.weight``)."""
        found = {}
        for name, param in self.net.collect_params().items():
            layer, _, kind = name.rpartition("_")
            if name.endswith(("running_mean", "running_var")):
                layer, kind = name.rsplit("_", 2)[0], "_".join(name.rsplit("_", 2)[1:])
            found[f"{layer}.{_CANONICAL[kind]}"] = param.data().asnumpy().astype(np.float32)
        return found


def train(spec: ModelSpec, weights: dict[str, np.ndarray], options: TrainOptions) -> MXNetTrainer:
    return MXNetTrainer(spec, weights, options)
