"""Caffe2 (``caffe2.python`` of the torch 1.10.2 wheel): the spec built with ``brew`` into a
``ModelHelper`` net, run by a workspace of its own.

Modes:
- ``default``: Caffe2's CPU operators (its convolutions are im2col + GEMM through the MKL the wheel
  links: ``BLAS_INFO=mkl``, as ``caffe2.python.build`` states it);
- ``ideep``: the same net on the IDEEP device (MKL-DNN through ideep): the published "caffe2 (mkl)"
  row. An operator IDEEP lacks runs through its CPU fallback, as Caffe2 does it.

The network is created once in ``build`` (``Workspace.create_net``); a forward feeds the batch
into the input blob, runs the net and fetches the output blob to NumPy: feed + run + fetch is
the timed region. The weights are fed from the canonical layout (Caffe2's conv weight is OIHW
and its FC weight ``(out, in)``, as the spec's); batch norm is ``SpatialBN`` in test mode, its
running mean and variance Caffe2's computed parameters (``ModelHelper.GetComputedParams``).

Threads: Caffe2's operators and the MKL inside the wheel run on the wheel's own OpenMP (its
``libgomp``), which reads ``OMP_NUM_THREADS`` once, when it loads (predict sets it first); the
count in effect is read back from that ``libgomp`` (``omp_get_max_threads``).

This module must import on Python 3.9.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
from caffe2.proto import caffe2_pb2
from caffe2.python import brew, core, model_helper, workspace
from caffe2.python import build as caffe2_build  # not `build`: this module defines build()

from ..loaded import omp_max_threads
from ..models import BN_EPS, BatchNorm, Conv, Dense, Flatten, GlobalAvgPool, Layer, MaxPool, ModelSpec, ReLU, Softmax
from .registry import IN_EFFECT, BuildOptions, Built, Forward, FrameworkInfo

FRAMEWORK = FrameworkInfo(
    name="caffe2",
    title="Caffe2",
    import_name="caffe2",
    modes=("default", "ideep"),
    devices=("cpu",),
    mode_pairs=(("default", "ideep"),),
    transform_notes=(
        (
            "int8",
            "Caffe2's int8 ops (Int8Conv, DNNLOWP) need a network quantized op by op; not wired into this project",
        ),
    ),
)
INPUT = "data"
DEVICE_TYPES = {"default": caffe2_pb2.CPU, "ideep": caffe2_pb2.IDEEP}
_FACT_KEYS = ("TORCH_VERSION", "BLAS_INFO", "USE_MKL", "USE_MKLDNN", "USE_OPENMP", "CUDA_VERSION")
_nets = itertools.count()  # a workspace and net name per build, so builds in one process never share blobs

# What the last build ran on (build_facts reports it: the mode decides the math library in effect).
_built: dict[str, str] = {}


def version() -> str:
    return str(caffe2_build.build_options.get("TORCH_VERSION", "unknown"))


def cuda_available() -> bool:
    return False  # the CPU variant only: the wheel's GPU operators are not part of this comparison


def build_facts() -> dict[str, str]:
    """The build options Caffe2 states (``caffe2.python.build``), whether it has MKL-DNN (IDEEP), and the
    mode and OpenMP threads of the last build."""
    options = caffe2_build.build_options
    facts = {key.lower(): str(options[key]) for key in _FACT_KEYS if options.get(key)}
    facts["use_mkldnn_runtime"] = str(bool(workspace.C.use_mkldnn))
    facts.update(_built)
    blas = str(options.get("BLAS_INFO", ""))
    default = "MKL" if blas == "mkl" else blas or "unknown"
    facts[IN_EFFECT] = "MKL-DNN (iDeep)" if _built.get("device") == "IDEEP" else default
    threads = omp_max_threads(("libgomp",))
    if threads:
        facts["omp_threads"] = str(threads)
    return facts


def build(spec: ModelSpec, weights: dict[str, np.ndarray], options: BuildOptions) -> Built:
    FRAMEWORK.check(options)
    if options.mode == "ideep" and not workspace.C.use_mkldnn:
        raise RuntimeError("this Caffe2 was built without MKL-DNN: no IDEEP device")
    device = core.DeviceOption(DEVICE_TYPES[options.mode])
    model, output = to_model(spec, f"{spec.name}_{options.mode}_{next(_nets)}")
    model.net.Proto().device_option.CopyFrom(device)
    for op in model.net.Proto().op:
        op.device_option.CopyFrom(device)
    ws = workspace.C.Workspace()
    load_weights(ws, model, spec, weights, device)
    ws.create_blob(INPUT).feed(np.zeros((options.batch, *spec.input_shape), dtype=np.float32), device)
    ws.create_net(model.net.Proto().SerializeToString())
    params, buffers = count_params(ws, model)
    _built.update(mode=options.mode, device="IDEEP" if options.mode == "ideep" else "CPU")
    threads = omp_max_threads(("libgomp",)) or None
    return Built(_forward(ws, model.net.Proto().name, output, device), params, buffers, threads=threads)


def to_model(spec: ModelSpec, name: str) -> tuple[Any, str]:
    """The spec as a ``ModelHelper`` (NCHW, no initialisers: the weights are fed) and its output blob."""
    model = model_helper.ModelHelper(name=name, init_params=False, arg_scope={"order": "NCHW", "use_cudnn": False})
    blob = INPUT
    for layer, shape_in, _ in spec.walk():
        blob = _add(model, layer, shape_in, blob)
    return model, blob


def _add(model: Any, layer: Layer, shape_in: tuple[int, ...], blob: str) -> str:
    """One spec layer as Caffe2 operators; returns its output blob (named after the layer)."""
    name = layer.name
    if isinstance(layer, Conv):
        cin = shape_in[0]
        brew.conv(
            model, blob, name, cin, layer.out, layer.kernel, stride=layer.stride, pad=layer.pad,
            group=cin if layer.depthwise else 1, no_bias=not layer.bias,
        )  # fmt: skip
    elif isinstance(layer, BatchNorm):
        brew.spatial_bn(model, blob, name, shape_in[0], epsilon=BN_EPS, is_test=True)
    elif isinstance(layer, ReLU):
        brew.relu(model, blob, name)
    elif isinstance(layer, MaxPool):
        brew.max_pool(model, blob, name, kernel=layer.size, stride=layer.stride)
    elif isinstance(layer, GlobalAvgPool):
        brew.average_pool(model, blob, f"{name}_pool", global_pooling=True)
        model.net.Flatten(f"{name}_pool", name)
    elif isinstance(layer, Flatten):
        model.net.Flatten(blob, name)  # NCHW from axis 1: C, H, W order, as the spec says
    elif isinstance(layer, Dense):
        brew.fc(model, blob, name, shape_in[0], layer.out)  # weight (out, in), as the spec's
    elif isinstance(layer, Softmax):
        brew.softmax(model, blob, name)
    else:
        raise TypeError(f"caffe2 backend cannot lower {layer!r}")
    return name


# canonical tensor kind -> brew's blob suffix
_SUFFIX = {"weight": "_w", "bias": "_b", "gamma": "_s", "beta": "_b", "mean": "_rm", "var": "_riv"}


def load_weights(ws: Any, model: Any, spec: ModelSpec, weights: dict[str, np.ndarray], device: Any) -> None:
    """Every Caffe2 parameter blob (trainable and computed) fed from exactly one canonical tensor."""
    wanted = {str(b) for b in [*model.params, *model.GetComputedParams()]}
    names = {}
    for key in weights:
        layer, kind = key.rsplit(".", 1)
        names[f"{layer}{_SUFFIX[kind]}"] = key
    if set(names) != wanted:
        raise KeyError(f"canonical tensors and Caffe2 parameters differ: {sorted(set(names) ^ wanted)}")
    for blob, key in names.items():
        ws.create_blob(blob).feed(np.ascontiguousarray(weights[key], dtype=np.float32), device)


def count_params(ws: Any, model: Any) -> tuple[int, int]:
    """(the model's parameters, its computed parameters: batch-norm running mean + variance), counted
    from the blobs in the workspace."""

    def size(names: list[Any]) -> int:
        return sum(int(np.asarray(ws.blobs[str(n)].fetch()).size) for n in names)

    return size(list(model.params)), size(list(model.GetComputedParams()))


def _forward(ws: Any, net: str, output: str, device: Any) -> Forward:
    # The blobs and the net point into the workspace, which must live as long as they do: the closure
    # keeps it (a collected Workspace leaves them dangling, and the next feed crashes the process).
    data, out, run = ws.blobs[INPUT], ws.blobs[output], ws.nets[net].run

    def forward(x: np.ndarray, _workspace: Any = ws) -> np.ndarray:
        data.feed(np.ascontiguousarray(x, dtype=np.float32), device)
        run()
        return np.array(out.fetch(), dtype=np.float32, copy=True)

    return forward
