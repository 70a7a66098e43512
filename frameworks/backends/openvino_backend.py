"""OpenVINO: the spec's ONNX graph (``onnx_graph``) read by ``Core.read_model`` and compiled for the CPU plugin.

OpenVINO imports models, it has no layer API of its own to lower the spec into: it reads the same
ONNX graph as ONNX Runtime and TVM. The model is reshaped to the cell's batch (static shapes, as
OpenVINO deployments run) and compiled with ``PERFORMANCE_HINT=LATENCY`` and the thread count set
explicitly (``INFERENCE_NUM_THREADS``); both, and the precision the compiled model computes in,
are read back from the compiled model.

Modes:
- ``f32``: ``INFERENCE_PRECISION_HINT`` forced to f32: the float32 network every other cell runs;
- ``auto``: the plugin's default precision, which is bf16 on CPUs with AVX512-BF16 or AMX: there the
  output is outside the float32 tolerance, so the cell shows as unverified, and its build facts say
  which precision ran (``inference_precision``), never a silent pass;
- ``sparse`` (pruned weights only: the ``prune`` transform): ``f32`` with the CPU plugin's sparse weights
  decompression asked for (``CPU_SPARSE_WEIGHTS_DECOMPRESSION_RATE`` at the sparsity the weights have).
  The plugin accepts the property everywhere, and applies it only where it can (its documentation: AMX
  and int8 weights); whether it did is read from the compiled model's executed graph (each node's
  ``primitiveType``): without a sparse primitive the cell is skipped with the primitives that ran.

The parameter counts are OpenVINO's own: the sizes of the imported model's named constants (the
graph's initializers, which keep the canonical keys).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import openvino as ov

from ..environment import thread_count
from ..models import ModelSpec
from .onnx_graph import INPUT, checked_bytes
from .registry import FLOAT32, IN_EFFECT, PRECISION, SPARSE_KERNELS, BuildOptions, Built, Forward, FrameworkInfo

FRAMEWORK = FrameworkInfo(
    name="openvino",
    title="OpenVINO",
    import_name="openvino",
    modes=("f32", "auto", "sparse"),
    devices=("cpu",),
    mode_pairs=(("f32", "auto"),),  # sparse vs f32: the reports' sparse comparison
    transform_modes=(("sparse", "prune"),),
)
SPARSE_RATE = "CPU_SPARSE_WEIGHTS_DECOMPRESSION_RATE"
DEVICE = "CPU"  # OpenVINO's name for its CPU plugin
LATENCY = "LATENCY"
_BUFFER_KINDS = (".mean", ".var")

# What the last compiled model of this process runs with, read back from it (``build_facts``).
_compiled: dict[str, str] = {}
_core: list[Any] = []  # one ov.Core per process, made on first use


def core() -> Any:
    """The process's ``ov.Core`` (it loads the plugins: one is enough)."""
    if not _core:
        _core.append(ov.Core())
    return _core[0]


def version() -> str:
    return str(ov.__version__)


def cuda_available() -> bool:
    return False  # the CPU plugin only: OpenVINO's GPU plugin is for Intel GPUs, not CUDA


def build_facts() -> dict[str, str]:
    """The runtime and CPU plugin as OpenVINO states them, what the plugin would pick by default, and
    what the last compiled model reads back (precision, hint, streams, threads)."""
    plugin = core().get_versions(DEVICE)[DEVICE]
    facts = {
        "openvino": version(),
        "cpu_plugin": f"{plugin.description} {plugin.build_number}".strip(),
        "device": str(core().get_property(DEVICE, "FULL_DEVICE_NAME")),
        "capabilities": ",".join(core().get_property(DEVICE, "OPTIMIZATION_CAPABILITIES")),
        "default_precision": _type_name(core().get_property(DEVICE, "INFERENCE_PRECISION_HINT")),
    }
    facts.update(_compiled)
    return facts


def build(spec: ModelSpec, weights: dict[str, np.ndarray], options: BuildOptions) -> Built:
    FRAMEWORK.check(options)
    serialized, _, _ = checked_bytes(spec, weights)
    model = core().read_model(serialized)
    del serialized
    params, buffers = count_params(model)
    model.reshape({INPUT: [options.batch, *spec.input_shape]})
    _compiled.clear()
    config = compile_config(options.mode, options.threads)
    if options.mode == "sparse":
        config[SPARSE_RATE] = min(zero_share(weights), 1.0)
    compiled = core().compile_model(model, DEVICE, config)
    _compiled.update(compiled_facts(compiled, options.mode))
    if options.mode == "sparse":
        _compiled[SPARSE_KERNELS] = sparse_primitives(compiled)
    return Built(_forward(compiled), params=params, buffers=buffers, threads=int(_compiled["inference_threads"]))


def compile_config(mode: str, threads: int) -> dict[str, Any]:
    """The plugin properties a mode compiles with: the latency hint and explicit threads always;
    the precision forced to f32 in ``f32``, left to the plugin in ``auto``."""
    config: dict[str, Any] = {"PERFORMANCE_HINT": LATENCY, "INFERENCE_NUM_THREADS": thread_count(threads)}
    if mode in ("f32", "sparse"):
        config["INFERENCE_PRECISION_HINT"] = FLOAT32
    return config


def compiled_facts(compiled: Any, mode: str) -> dict[str, str]:
    """What the compiled model says it runs with; ``inference_precision`` is what decides the verdict."""
    precision = _type_name(compiled.get_property("INFERENCE_PRECISION_HINT"))
    return {
        PRECISION: precision,
        "precision_hint": "f32 (forced)" if mode == "f32" else "plugin default",
        "performance_hint": _enum_name(compiled.get_property("PERFORMANCE_HINT")),
        "num_streams": str(compiled.get_property("NUM_STREAMS")),
        "inference_threads": str(compiled.get_property("INFERENCE_NUM_THREADS")),
        "execution_devices": ",".join(compiled.get_property("EXECUTION_DEVICES")),
        IN_EFFECT: f"OpenVINO CPU plugin, {precision}",
    }


def zero_share(weights: dict[str, np.ndarray]) -> float:
    """The share of zeros among the weights' ``.weight`` tensors: the rate asked of the plugin."""
    tensors = [np.asarray(w) for k, w in weights.items() if k.endswith(".weight")]
    total = sum(t.size for t in tensors)
    return sum(t.size - int(np.count_nonzero(t)) for t in tensors) / total if total else 0.0


def sparse_primitives(compiled: Any) -> str:
    """From the executed graph: the nodes whose primitive is a sparse one, or "none" with what ran instead."""
    rate = compiled.get_property(SPARSE_RATE)
    kinds: dict[str, list[str]] = {}
    for op in compiled.get_runtime_model().get_ops():
        info = op.get_rt_info()
        layer = str(info["layerType"]) if "layerType" in info else op.get_type_name()
        if layer in ("FullyConnected", "Convolution", "MatMul"):
            primitive = str(info["primitiveType"]) if "primitiveType" in info else "?"
            kinds.setdefault(primitive, []).append(op.get_friendly_name())
    sparse = {k: v for k, v in kinds.items() if "sparse" in k.lower()}
    if sparse:
        return f"rate {rate}: " + "; ".join(f"{k}: {' '.join(v)}" for k, v in sorted(sparse.items()))
    ran = ", ".join(f"{k} ({len(v)})" for k, v in sorted(kinds.items()))
    return (f"none: {SPARSE_RATE} read back {rate}, but no executed conv or dense node has a sparse primitive "
            f"(they ran {ran}); the plugin decompresses sparse weights only with AMX and int8 weights")  # fmt: skip


def count_params(model: Any) -> tuple[int, int]:
    """(parameters, batch-norm mean + var) from the imported model's named constants: the ONNX
    initializers, by canonical key (the frontend's own helper constants have no tensor names)."""
    sizes: dict[str, int] = {}
    for op in model.get_ops():
        if op.get_type_name() != "Constant":
            continue
        for name in op.output(0).get_names():
            sizes[name] = int(np.prod(list(op.get_output_shape(0)), dtype=np.int64))
    buffers = sum(size for name, size in sizes.items() if name.endswith(_BUFFER_KINDS))
    return sum(sizes.values()) - buffers, buffers


def _type_name(element_type: Any) -> str:
    """An ``ov.Type`` as OpenVINO spells it in properties: 'f32', 'bf16'."""
    return str(element_type.get_type_name())


def _enum_name(value: Any) -> str:
    return str(getattr(value, "name", value))


def _forward(compiled: Any) -> Forward:
    request = compiled.create_infer_request()
    output = compiled.output(0)

    def forward(x: np.ndarray) -> np.ndarray:
        # share_outputs=False (the default): the result is a copy, not the request's reused buffer
        return np.asarray(request.infer({INPUT: np.ascontiguousarray(x, dtype=np.float32)})[output])

    return forward
