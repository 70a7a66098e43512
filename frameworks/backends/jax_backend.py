"""JAX: the spec as one ``jax.lax`` function of the canonical tensors, compiled by XLA with ``jax.jit``.

Mode:
- ``jit``: ``jax.jit`` of the whole network for the cell's one input shape. Compilation is lazy: it
  happens on the first call, which the harness times separately as the first inference.

Layout: the canonical NCHW activations and OIHW kernels as given (``conv_general_dilated`` with
``("NCHW", "OIHW", "NCHW")`` and the spec's explicit padding; dense weights ``(out, in)``
contracted on their second axis). XLA's layout assignment chooses the physical layouts itself (on
the CPU it transposes to NHWC around the convolutions it hands to YNNPACK); those transposes are
part of the compiled program, so inside the timed region. Batch norm is computed from its four
tensors on every call, as in the other frameworks.

Precision: every convolution and dot asks for ``Precision.HIGHEST``. On a GPU, XLA's default for
float32 is TF32, which would time a different network; on the CPU, HIGHEST is plain float32.

Threads: XLA's CPU client sizes its intra-op pool (threads named ``XLAEigen``) once, when JAX first
initialises its backends, from ``PJRT_NPROC`` (else ``NPROC``, else every CPU). Backends are
initialised here, by ``init_backends``, after ``PJRT_NPROC`` is set from the request (or from
``OMP_NUM_THREADS``, which ``predict`` sets to the requested count before anything loads). JAX has no
call that states the pool size, so it is read back by counting the pool's threads in
``/proc/self/task``. A process whose backends started with another count keeps it: ``build`` warns
and the facts report the count in effect.

Kernels: which library runs the convolutions and dots is XLA's decision at compile time, so
``in_effect`` is read from the compiled executable's HLO once the first call has compiled it
(``kernel_facts``): YNNPACK or XNNPACK fusions, oneDNN, cuDNN, cuBLAS or Triton custom calls, else
Eigen (XLA:CPU's own convolution and dot thunks).
"""

from __future__ import annotations

import os
import re
import warnings
from collections import Counter
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import jaxlib
import numpy as np
from jax import lax

from ..environment import thread_count
from ..models import BN_EPS, BatchNorm, Conv, Dense, Flatten, GlobalAvgPool, Layer, MaxPool, ModelSpec, ReLU, Softmax
from .registry import IN_EFFECT, BuildOptions, Built, Forward, FrameworkInfo

FRAMEWORK = FrameworkInfo(
    name="jax",
    title="JAX",
    import_name="jax",
    modes=("jit",),
    devices=("cpu", "cuda"),
    transform_notes=(("int8", "JAX and XLA on the CPU have no post-training int8 toolchain"),),
)
THREADS_ENV = "PJRT_NPROC"  # XLA's DefaultThreadPoolSize reads it (then NPROC) when the CPU client starts
POOL_THREAD = "XLAEigen"  # XLA:CPU's intra-op pool threads are named tf_XLAEigen
PRECISION = lax.Precision.HIGHEST
DIMENSIONS = ("NCHW", "OIHW", "NCHW")
_BUFFER_KINDS = ("mean", "var")

# Facts of this process: the thread setting and the kernels of the last compiled network.
_state: dict[str, str] = {}
# The last network built ("net"): its jitted function, arguments to look its executable up by, whether it ran.
_last: dict[str, dict[str, Any]] = {}

Tree = dict[str, dict[str, jax.Array]]


def version() -> str:
    return str(jax.__version__)


def init_backends(threads: int | None = None) -> int:
    """Start JAX's backends (once per process), its CPU pool sized from ``threads``; the pool size in effect.

    Without ``threads``, the count ``predict`` put in ``OMP_NUM_THREADS`` applies, else XLA's default.
    Setting ``PJRT_NPROC`` after the backends started changes nothing: the count read back says so.
    """
    requested = str(thread_count(threads)) if threads is not None else os.environ.get("OMP_NUM_THREADS")
    if requested and "pool_threads" not in _state:
        os.environ[THREADS_ENV] = requested
    jax.devices()  # initialises every backend that can start here (the CPU client with its pool)
    if "pool_threads" not in _state:
        _state[THREADS_ENV] = os.environ.get(THREADS_ENV, "unset")
        _state["pool_threads"] = str(pool_threads())
    return int(_state["pool_threads"])


def pool_threads() -> int:
    """Threads of XLA:CPU's intra-op pool in this process, as the kernel lists them (0: none found)."""
    count = 0
    for task in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{task}/comm", encoding="utf-8") as comm:
                count += comm.read().strip().endswith(POOL_THREAD)
        except OSError:  # the thread ended while listing
            continue
    return count


def cuda_available() -> bool:
    init_backends()
    try:
        return bool(jax.devices("cuda"))
    except RuntimeError:  # "Unknown backend cuda" (CPU jaxlib) or a CUDA plugin that failed to start
        return False


def build_facts() -> dict[str, str]:
    """JAX's and XLA's versions and settings, the thread pool, and the kernels the compiler chose.

    Reading these before ``build`` starts no backend, so the thread setting made there still applies.
    """
    facts = {
        "jax": version(),
        "jaxlib": str(jaxlib.__version__),
        "XLA_FLAGS": os.environ.get("XLA_FLAGS", "unset") or "unset",
        "precision": PRECISION.name,
        "x64": str(bool(jax.config.read("jax_enable_x64"))),
    }
    if "pool_threads" in _state:
        device = jax.devices()[0]
        facts["platform"] = str(device.platform)
        facts["device_kind"] = str(device.device_kind)[:80]
        facts["platform_version"] = str(device.client.platform_version).splitlines()[0][:80]
    facts.update(_state)
    facts.update(kernel_facts())
    return facts


def kernel_facts() -> dict[str, str]:
    """The libraries the last network's executable calls (empty until its first call compiled it)."""
    net = _last.get("net")
    if not net or not net["ran"]:
        return {}
    if "hlo" not in net:  # the lookup hits jit's cache of the executable the first call compiled
        net["hlo"] = net["jitted"].lower(*net["example"]).compile().as_text()
    kernels = hlo_kernels(net["hlo"])
    libraries = Counter(library for library, _ in kernels.elements())
    return {
        "xla_kernels": ", ".join(f"{lib} {op} {n}" for (lib, op), n in sorted(kernels.items()))[:80],
        IN_EFFECT: "+".join(lib for lib, _ in libraries.most_common()) or "XLA",
    }


_COMPUTATION = re.compile(r"^(?:ENTRY )?%?([\w.\-]+) \(.*\{$")
_CALLS = re.compile(r"calls=%?([\w.\-]+)")
_FUSION_KIND = re.compile(r'"kind":"(__\w+)"')
_TARGET = re.compile(r'custom_call_target="([^"]+)"')
_OP = re.compile(r"\s(convolution|dot)\(")
_FUSION_LIBRARY = {"__ynn_fusion": "YNNPACK", "__xnn_fusion": "XNNPACK", "__onednn_fusion": "oneDNN",
                   "__triton_gemm": "Triton", "__triton": "Triton", "__cublas": "cuBLAS"}  # fmt: skip
_CALL_LIBRARY = (("cudnn", "cuDNN"), ("cublas", "cuBLAS"), ("onednn", "oneDNN"), ("triton", "Triton"))


def hlo_kernels(hlo: str) -> Counter[tuple[str, str]]:
    """(library, op) counts of a compiled module's convolutions and dots: where each one runs.

    A convolution or dot inside a fusion XLA hands to a library (``backend_config`` kind
    ``__ynn_fusion``, ...) runs there; a custom call names its library in its target (cuDNN
    convolutions, cuBLAS gemms); any other stays in XLA:CPU's own thunks, which call Eigen.
    """
    owner: dict[str, str] = {}  # fused computation -> the library its fusion instruction hands it to
    ops: list[tuple[str, str]] = []  # (computation, op) of every convolution and dot
    current = ""
    for line in hlo.splitlines():
        header = _COMPUTATION.match(line)
        if header:
            current = header.group(1)
            continue
        kind, calls = _FUSION_KIND.search(line), _CALLS.search(line)
        if kind and calls and kind.group(1) in _FUSION_LIBRARY:
            owner[calls.group(1)] = _FUSION_LIBRARY[kind.group(1)]
        target = _TARGET.search(line)
        if target:
            library = next((lib for token, lib in _CALL_LIBRARY if token in target.group(1).lower()), None)
            if library:
                ops.append((f"custom-call:{library}", "conv" if "conv" in target.group(1).lower() else "dot"))
            continue
        instruction = _OP.search(line)
        if instruction:
            ops.append((current, "conv" if instruction.group(1) == "convolution" else "dot"))
    found: Counter[tuple[str, str]] = Counter()
    for where, kind_of_op in ops:
        library = where.removeprefix("custom-call:") if where.startswith("custom-call:") else owner.get(where, "Eigen")
        found[(library, kind_of_op)] += 1
    return found


def build(spec: ModelSpec, weights: dict[str, np.ndarray], options: BuildOptions) -> Built:
    FRAMEWORK.check(options)
    threads = set_threads(options.threads)
    device = _device(options.device)
    tree = to_tree(spec, weights, device)
    params, buffers = count_params(tree)
    jitted = jax.jit(network(spec))  # compiled on the first call, for the shape it is called with
    example = (tree, np.zeros((options.batch, *spec.input_shape), np.float32))
    net: dict[str, Any] = {"jitted": jitted, "example": example, "ran": False}
    _last["net"] = net
    return Built(_forward(jitted, tree, net), params=params, buffers=buffers, threads=threads or None)


def set_threads(threads: int) -> int:
    """The CPU pool sized to the request (when this process starts its backends here); the size in effect."""
    requested = thread_count(threads)
    effective = init_backends(threads)
    _state["threads_requested"] = str(requested)
    if effective and effective != requested:
        warnings.warn(
            f"JAX's backends started with {effective} XLA:CPU threads in this process; {requested} requested",
            RuntimeWarning,
            stacklevel=3,
        )
    return effective


def _device(name: str) -> Any:
    if name == "cuda":
        if not cuda_available():
            raise RuntimeError(f"CUDA requested but no GPU is available to JAX (backends: {jax.default_backend()})")
        return jax.devices("cuda")[0]
    return jax.devices("cpu")[0]


def to_tree(spec: ModelSpec, weights: dict[str, np.ndarray], device: Any) -> Tree:
    """The canonical tensors on the device, in their canonical layouts: trainable ``params`` and the
    batch-norm running statistics as ``state`` (a missing or extra tensor raises)."""
    expected = spec.tensors()
    if set(weights) != set(expected):
        raise KeyError(f"canonical tensors and the spec differ: {sorted(set(weights) ^ set(expected))}")
    tree: Tree = {"params": {}, "state": {}}
    for key, array in weights.items():
        group = "state" if key.rsplit(".", 1)[1] in _BUFFER_KINDS else "params"
        tree[group][key] = jax.device_put(np.asarray(array, dtype=np.float32), device)
    return tree


def count_params(tree: Tree) -> tuple[int, int]:
    """(trainable parameters, batch-norm mean + var) over the tree's leaves, through JAX's pytree API."""
    leaves = jax.tree_util.tree_leaves
    return sum(int(a.size) for a in leaves(tree["params"])), sum(int(a.size) for a in leaves(tree["state"]))


def network(spec: ModelSpec) -> Callable[[Tree, jax.Array], jax.Array]:
    """The forward function of ``spec``: NCHW batch in, softmax out, every layer one or two lax ops."""
    steps = [(layer, shape_in) for layer, shape_in, _ in spec.walk()]

    def apply(tree: Tree, x: jax.Array) -> jax.Array:
        tensors = {**tree["params"], **tree["state"]}
        for layer, shape_in in steps:
            x = _layer(layer, shape_in, tensors, x)
        return x

    return apply


def _channel(v: jax.Array) -> jax.Array:
    return v[None, :, None, None]


def _layer(layer: Layer, shape_in: tuple[int, ...], t: dict[str, jax.Array], x: jax.Array) -> jax.Array:
    name = layer.name
    if isinstance(layer, Conv):
        y = lax.conv_general_dilated(
            x, t[f"{name}.weight"], window_strides=(layer.stride, layer.stride), padding=[(layer.pad, layer.pad)] * 2,
            dimension_numbers=DIMENSIONS, feature_group_count=shape_in[0] if layer.depthwise else 1,
            precision=PRECISION,
        )  # fmt: skip
        return y + _channel(t[f"{name}.bias"]) if layer.bias else y
    if isinstance(layer, BatchNorm):
        scale = t[f"{name}.gamma"] * lax.rsqrt(t[f"{name}.var"] + BN_EPS)
        return (x - _channel(t[f"{name}.mean"])) * _channel(scale) + _channel(t[f"{name}.beta"])
    if isinstance(layer, ReLU):
        return jax.nn.relu(x)
    if isinstance(layer, MaxPool):
        window, strides = (1, 1, layer.size, layer.size), (1, 1, layer.stride, layer.stride)
        return lax.reduce_window(x, -jnp.inf, lax.max, window, strides, "VALID")
    if isinstance(layer, GlobalAvgPool):
        return jnp.mean(x, axis=(2, 3))
    if isinstance(layer, Flatten):
        return x.reshape(x.shape[0], -1)  # NCHW: C, H, W order, as the spec says
    if isinstance(layer, Dense):  # weight (out, in) as is: contract x's features with its second axis
        y = lax.dot_general(x, t[f"{name}.weight"], (((1,), (1,)), ((), ())), precision=PRECISION)
        return y + t[f"{name}.bias"]
    if isinstance(layer, Softmax):
        return jax.nn.softmax(x, axis=1)
    raise TypeError(f"jax backend cannot lower {layer!r}")


def _forward(jitted: Callable[..., jax.Array], tree: Tree, net: dict[str, Any]) -> Forward:
    def forward(x: np.ndarray) -> np.ndarray:
        y = jitted(tree, np.ascontiguousarray(x, dtype=np.float32))  # the input is copied to the device here
        net["ran"] = True
        return np.asarray(y)  # waits for the result and copies it to the host: the fetch is timed

    return forward
