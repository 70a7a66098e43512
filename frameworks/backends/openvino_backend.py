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

The ``int8`` transform (``frameworks.transforms.int8``) replaces the float model before the reshape, in every
mode: toolchain ``qdq`` reads the project's QDQ graph (``onnx_graph.to_qdq``), whose FakeQuantize nodes the
plugin's low-precision transformations turn into int8 kernels (with the f32 hint too: it sets the precision of
the float parts only); toolchain ``native`` quantizes the float model with NNCF, OpenVINO's own post-training
quantizer, on the same calibration images. Which int8 kernels ran is read from the executed graph (each
conv or dense node's ``runtimePrecision``): with none in i8/u8 the cell is skipped, never reported as int8.

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
from .registry import (
    FLOAT32,
    IN_EFFECT,
    INT8_KERNELS,
    PRECISION,
    SPARSE_KERNELS,
    BuildOptions,
    Built,
    Forward,
    FrameworkInfo,
)

FRAMEWORK = FrameworkInfo(
    name="openvino",
    title="OpenVINO",
    import_name="openvino",
    modes=("f32", "auto", "sparse"),
    devices=("cpu",),
    mode_pairs=(("f32", "auto"),),  # sparse vs f32: the reports' sparse comparison
    transform_modes=(("sparse", "prune"),),
    transforms=("int8",),
)
SPARSE_RATE = "CPU_SPARSE_WEIGHTS_DECOMPRESSION_RATE"
DEVICE = "CPU"  # OpenVINO's name for its CPU plugin
LATENCY = "LATENCY"
_BUFFER_KINDS = (".mean", ".var")
# The executed graph's nodes that do a network's arithmetic, and the precisions that make them int8 kernels.
COMPUTE_LAYERS = ("Convolution", "FullyConnected", "MatMul", "Deconvolution")
SOURCE_COMPUTE = ("Convolution", "GroupConvolution", "MatMul", "ConvolutionBackpropData")  # as the model has them
INT8_PRECISIONS = ("i8", "u8")

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
    _compiled.clear()
    if options.transform == "int8":
        model, params, buffers = _int8_model(spec, weights, options)
    else:
        serialized, _, _ = checked_bytes(spec, weights)
        model = core().read_model(serialized)
        del serialized
        params, buffers = count_params(model)
    model.reshape({INPUT: [options.batch, *spec.input_shape]})
    config = compile_config(options.mode, options.threads)
    if options.mode == "sparse":
        config[SPARSE_RATE] = min(zero_share(weights), 1.0)
    compiled = core().compile_model(model, DEVICE, config)
    _compiled.update(compiled_facts(compiled, options.mode))
    if options.mode == "sparse":
        _compiled[SPARSE_KERNELS] = sparse_primitives(compiled)
    if options.transform == "int8":
        _compiled[INT8_KERNELS] = int8_layers(compiled, model)
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
        layer = _rt(info, "layerType", op.get_type_name())
        if layer in ("FullyConnected", "Convolution", "MatMul"):
            primitive = _rt(info, "primitiveType", "?")
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


def _rt(info: Any, key: str, default: str) -> str:
    """One runtime-info entry as text: ``str()`` of the ``OVAny`` it is wrapped in gives "<OVAny class>"."""
    return str(info[key].astype(str)) if key in info else default


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


# --- int8 --------------------------------------------------------------------------------------------------


def _int8_model(spec: ModelSpec, weights: dict[str, np.ndarray], options: BuildOptions) -> tuple[Any, int, int]:
    """The cell's int8 model, not yet reshaped, and (parameters, buffers): the QDQ graph's own constants
    (``qdq``), the float model's (``native``: NNCF's quantized constants lose their names)."""
    from ..quantization import from_arrays
    from .onnx_graph import to_qdq

    if options.setting("toolchain") == "qdq":
        serialized = to_qdq(from_arrays(spec, weights, dict(options.data))).SerializeToString()
        model = core().read_model(serialized)
        _compiled.update({"int8_model": "the project's QDQ graph (frameworks.quantization), read by Core.read_model",
                          "model_bytes": str(len(serialized))})  # fmt: skip
        return (model, *count_params(model))
    serialized, _, _ = checked_bytes(spec, weights)
    model = core().read_model(serialized)
    del serialized
    counts = count_params(model)
    quantized, how = nncf_quantize(model, options)
    _compiled.update({"int8_model": how, "model_bytes": str(ir_bytes(quantized))})
    return (quantized, *counts)


def nncf_quantize(model: Any, options: BuildOptions) -> tuple[Any, str]:
    """NNCF's post-training quantization of the float model on the cell's calibration images, in the project's
    batches of 16: the performance preset (symmetric int8), activation ranges from the extremes seen
    (``minmax``: NNCF's default averages each batch's) or the mean of each batch's 0.01 / 99.99 percentiles."""
    import contextlib
    import logging
    import sys

    import nncf
    from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters
    from nncf.quantization.range_estimator import (
        AggregatorType,
        RangeEstimatorParameters,
        RangeEstimatorParametersSet,
        StatisticsCollectorParameters,
        StatisticsType,
    )
    from openvino.passes import ConstantFolding, Manager

    from ..quantization import CALIBRATION_BATCH, PERCENTILE

    nncf.set_log_level(logging.ERROR)
    # The ONNX frontend reshapes a depthwise convolution's weights through ShapeOf/Split/Concat nodes (the graph's
    # batch is symbolic): NNCF finds no constant weight behind them and leaves all 13 of MobileNet's in float.
    passes = Manager()
    passes.register_pass(ConstantFolding())
    passes.run_passes(model)
    images = np.asarray(options.data["calibration"], dtype=np.float32)
    batches = [{INPUT: np.ascontiguousarray(images[i : i + CALIBRATION_BATCH])}
               for i in range(0, images.shape[0], CALIBRATION_BATCH)]  # fmt: skip
    if options.setting("calibrator") == "percentile":
        outlier = (100.0 - PERCENTILE) / 100.0
        quantile = StatisticsCollectorParameters(
            StatisticsType.QUANTILE, AggregatorType.MEAN, quantile_outlier_prob=outlier
        )
        ranges, named = RangeEstimatorParameters(min=quantile, max=quantile), f"mean per-batch quantiles {outlier:g}"
    else:
        ranges, named = RangeEstimatorParametersSet.MINMAX, "min/max over all batches"
    advanced = AdvancedQuantizationParameters(activations_range_estimator_params=ranges)
    with contextlib.redirect_stdout(sys.stderr):  # its progress bar: stdout carries predict's JSON lines
        quantized = nncf.quantize(
            model, nncf.Dataset(batches), preset=nncf.QuantizationPreset.PERFORMANCE,
            target_device=nncf.TargetDevice.CPU, subset_size=len(batches), advanced_parameters=advanced,
        )  # fmt: skip
    how = (f"nncf {nncf.__version__} quantize: preset performance (symmetric int8), target CPU, {images.shape[0]} "
           f"images in {len(batches)} batches, activations {named}, fast bias correction")  # fmt: skip
    return quantized, how


def ir_bytes(model: Any) -> int:
    """The model's size as OpenVINO IR (.xml + .bin), the form it would be deployed in."""
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory(prefix="dlbench-ov-") as tmp:
        path = Path(tmp) / "model.xml"
        ov.save_model(model, str(path), compress_to_fp16=False)
        return path.stat().st_size + path.with_suffix(".bin").stat().st_size


def int8_layers(compiled: Any, model: Any) -> str:
    """From the executed graph: conv and dense nodes by layer type, precision and primitive, int8 ones first
    ("Convolution x2 (u8 brgconv_avx512_I8), ..."), or "none: ..." when every one ran in float.

    The plugin may fuse a network's matmuls into a ``Subgraph`` node (its snippets, e.g. LeNet-5's fc2 and fc3
    with one thread), which computes in that node's precision: such nodes are found through their
    ``originalLayersNames`` among the compiled ``model``'s conv and matmul ops and counted as "MatMul in Subgraph".
    """
    sources = {op.get_friendly_name(): op.get_type_name() for op in model.get_ops()
               if op.get_type_name() in SOURCE_COMPUTE}  # fmt: skip
    counts: dict[tuple[str, str, str], int] = {}
    for op in compiled.get_runtime_model().get_ops():
        info = op.get_rt_info()
        layer = _rt(info, "layerType", op.get_type_name())
        precision, primitive = _rt(info, "runtimePrecision", "?"), _rt(info, "primitiveType", "?")
        if layer in COMPUTE_LAYERS:
            inner = [layer]
        else:
            originals = _rt(info, "originalLayersNames", "").split(",")
            inner = [f"{sources[name]} in {layer}" for name in originals if name in sources]
        for kind in inner:
            counts[(kind, precision, primitive)] = counts.get((kind, precision, primitive), 0) + 1
    listed = {key: f"{key[0]} x{n} ({key[1]} {key[2]})" for key, n in sorted(counts.items())}
    int8 = [text for key, text in listed.items() if key[1] in INT8_PRECISIONS]
    floats = [text for key, text in listed.items() if key[1] not in INT8_PRECISIONS]
    source = "OpenVINO executed graph, runtimePrecision"
    if not int8:
        return f"none: every conv and dense node ran in float ({', '.join(floats) or 'no such node'}; {source})"
    tail = f"; float: {', '.join(floats)}" if floats else ""
    return f"{', '.join(int8)}{tail} ({source})"
