"""ONNX Runtime: the spec's ONNX graph (``onnx_graph``) run by an InferenceSession.

Modes are what ONNX Runtime does with the graph before running it:
- ``session``: every graph optimisation (``ORT_ENABLE_ALL``: constant folding, fusions, NCHWc layouts);
- ``basic``: the basic ones only (``ORT_ENABLE_BASIC``: folding, redundant nodes removed);
- ``disabled``: none (``ORT_DISABLE_ALL``): the graph as written, so session vs disabled is what the
  optimiser buys;
- ``openvino``: the OpenVINO execution provider (the ``onnxruntime-openvino`` wheel, which replaces the
  ``onnxruntime`` module, so it has an image of its own) on the CPU, in float32, with CPU fallback
  disabled: the session fails to build unless OpenVINO takes every node.

The graph depends on nothing but ``onnx``: ONNX Runtime, OpenVINO and TVM import the same one.

The int8 transform runs in every mode: the project's QDQ graph (``toolchain=qdq``) or ONNX Runtime's own
``quantize_static`` (``native``: QDQ format, per-channel int8 weights, uint8 activations, MinMax or
Percentile calibration, and on a CPU without VNNI the 7-bit weights its documentation advises,
``reduce_range``). Which kernels ran is read from a profiled session's node events (``int8_kernels``):
only the optimisation levels that fuse QDQ patterns run QLinearConv and QGemm; the others run the same
graph as float ops, and such a cell is never reported as int8.
"""

from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime as ort

from ..environment import thread_count
from ..models import ModelSpec
from .onnx_graph import INPUT, OPSET, OUTPUT, checked_bytes, count_params, to_onnx
from .registry import IN_EFFECT, INT8_KERNELS, BuildOptions, Built, Forward, FrameworkInfo

FRAMEWORK = FrameworkInfo(
    name="onnxruntime",
    title="ONNX Runtime",
    import_name="onnxruntime",
    modes=("session", "basic", "disabled", "openvino"),
    devices=("cpu", "cuda"),
    mode_pairs=(("disabled", "basic"), ("disabled", "session")),
    transforms=("int8",),
)
__all__ = ["OPSET", "count_params", "to_onnx"]  # the graph's API, still reachable here (it lives in onnx_graph)
PROVIDERS = {"cpu": ["CPUExecutionProvider"], "cuda": ["CUDAExecutionProvider", "CPUExecutionProvider"]}
OPENVINO_EP = "OpenVINOExecutionProvider"
# The graph optimisation level each mode runs with; the OpenVINO EP gets the graph as written, as
# OpenVINO's own backend does (its plugin does its own fusions).
LEVELS = {
    "session": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
    "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    "disabled": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
    "openvino": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
}
NO_CPU_FALLBACK = "session.disable_cpu_ep_fallback"
# The build fact that says why a cell has no thread count read back (``Built.threads`` is None).
THREADS_UNREPORTED = "threads_unreported"

# What the last session of this process was built with (read back after the build: ``build_facts``).
_session: dict[str, str] = {}


def version() -> str:
    return str(ort.__version__)


def cuda_available() -> bool:
    return "CUDAExecutionProvider" in ort.get_available_providers()


def openvino_available() -> bool:
    return OPENVINO_EP in ort.get_available_providers()


def build_facts() -> dict[str, str]:
    """Runtime and graph-library versions, this build's execution providers, the opset, and what the
    last session was made with (its providers, optimisation level and the OpenVINO EP's settings)."""
    facts = {
        "onnxruntime": version(),
        "onnx": str(onnx.__version__),
        "opset": str(OPSET),
        "providers": ",".join(ort.get_available_providers()),
        "device": str(ort.get_device()),
    }
    build_info = getattr(ort, "get_build_info", None)  # not in every release
    if build_info is not None:
        facts["build_info"] = str(build_info()).removeprefix("ORT Build Info: ")
    if openvino_available():
        from onnxruntime.capi import _pybind_state

        facts["openvino_devices"] = ",".join(_pybind_state.get_available_openvino_device_ids())
    facts.update(_session)
    return facts


def build(spec: ModelSpec, weights: dict[str, np.ndarray], options: BuildOptions) -> Built:
    FRAMEWORK.check(options)
    if options.transform == "int8":
        return _build_int8(spec, weights, options)
    serialized, params, buffers = checked_bytes(spec, weights)
    session = make_session(serialized, options)
    return Built(_forward(session), params=params, buffers=buffers, threads=session_threads(session, options.mode))


def session_threads(session: ort.InferenceSession, mode: str) -> int | None:
    """The intra-op threads the session was made with, read back; None for the OpenVINO EP, which runs
    every node on OpenVINO's own threads and reports none of its settings back (its provider options
    read back empty)."""
    if mode == "openvino":
        return None
    return int(session.get_session_options().intra_op_num_threads)


def session_options(threads: int, mode: str = "session") -> ort.SessionOptions:
    """Explicit thread counts (0 means every CPU this process may run on), the mode's optimisation level."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = thread_count(threads)
    options.inter_op_num_threads = 1  # sequential networks: nothing runs across nodes
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = LEVELS[mode]
    if mode == "openvino":
        options.add_session_config_entry(NO_CPU_FALLBACK, "1")  # every node on OpenVINO, or no session
    return options


def openvino_config(threads: int) -> dict[str, dict[str, str]]:
    """The OpenVINO CPU plugin's properties for the EP (its ``load_config``): float32 as the
    ``openvino`` framework's f32 mode runs, the latency hint, the threads set explicitly."""
    return {
        "CPU": {
            "INFERENCE_PRECISION_HINT": "f32",
            "PERFORMANCE_HINT": "LATENCY",
            "INFERENCE_NUM_THREADS": str(thread_count(threads)),
        }
    }


def make_session(model: bytes, options: BuildOptions) -> ort.InferenceSession:
    """A session on the requested device's providers; a CUDA or OpenVINO request never silently runs
    on ONNX Runtime's own CPU kernels."""
    if options.device not in PROVIDERS:
        raise ValueError(f"unknown device {options.device!r}; valid devices: {', '.join(PROVIDERS)}")
    if options.device == "cuda" and not cuda_available():
        raise RuntimeError(
            "CUDA requested but this onnxruntime has no CUDAExecutionProvider "
            f"(available: {', '.join(ort.get_available_providers())}); install onnxruntime-gpu"
        )
    mode = options.mode
    providers = _providers(options.device, mode, options.threads)
    _session.clear()
    session = ort.InferenceSession(model, sess_options=session_options(options.threads, mode), providers=providers)
    wanted = providers[0] if isinstance(providers[0], str) else providers[0][0]
    if session.get_providers()[0] != wanted:  # ORT falls back to the CPU silently when CUDA fails to load
        raise RuntimeError(f"{wanted} did not load; the session runs on {', '.join(session.get_providers())}")
    _session.update(_session_facts(session, mode, options.threads))
    return session


def _providers(device: str, mode: str, threads: int) -> list[str | tuple[str, dict[str, str]]]:
    if mode != "openvino":
        return list(PROVIDERS[device])
    if device != "cpu":
        raise ValueError(f"the openvino mode runs on the CPU only, not on {device!r}")
    if not openvino_available():
        raise RuntimeError(
            f"the openvino mode needs the OpenVINO execution provider; this onnxruntime has "
            f"{', '.join(ort.get_available_providers())} (the onnxruntime-openvino wheel brings it)"
        )
    return [(OPENVINO_EP, {"device_type": "CPU", "load_config": json.dumps(openvino_config(threads))})]


def _session_facts(session: ort.InferenceSession, mode: str, threads: int) -> dict[str, str]:
    """What the session says it runs with; for the OpenVINO EP, also what it was asked for (it reads nothing back)."""
    level = session.get_session_options().graph_optimization_level
    facts = {"session_providers": ",".join(session.get_providers()), "graph_optimization": level.name}
    if mode == "openvino":
        cpu = openvino_config(threads)["CPU"]
        facts["openvino_ep"] = f"device CPU, {cpu['INFERENCE_PRECISION_HINT']}, {cpu['PERFORMANCE_HINT']}"
        facts["openvino_threads_requested"] = cpu["INFERENCE_NUM_THREADS"]
        facts[THREADS_UNREPORTED] = "the OpenVINO EP reads none of its settings back"
        facts["cpu_ep_fallback"] = "disabled: every node runs on OpenVINO"
        facts[IN_EFFECT] = "OpenVINO EP"
    return facts


def _forward(session: ort.InferenceSession) -> Forward:
    def forward(x: np.ndarray) -> np.ndarray:
        return session.run([OUTPUT], {INPUT: np.ascontiguousarray(x, dtype=np.float32)})[0]

    return forward


# --- int8 --------------------------------------------------------------------------------------------------

# ONNX Runtime's kernels that compute in integers (QDQ fusions and the QOperator format), and the float ops
# that do the arithmetic when a QDQ pattern was not fused.
INT8_OPS = (
    "QLinearConv", "ConvInteger", "QGemm", "QLinearMatMul", "MatMulInteger", "QLinearGlobalAveragePool",
    "QLinearAveragePool", "QLinearAdd", "QLinearMul", "QLinearSoftmax", "QAttention", "DynamicQuantizeMatMul",
)  # fmt: skip
FLOAT_OPS = ("Conv", "FusedConv", "Gemm", "FusedGemm", "MatMul", "FusedMatMul", "GlobalAveragePool")
CALIBRATION_BATCH = 16
PERCENTILE = 99.99  # as frameworks.quantization's


def _build_int8(spec: ModelSpec, weights: dict[str, np.ndarray], options: BuildOptions) -> Built:
    """The int8 model of the cell's toolchain, its kernels read from a profiled run, then the timed session."""
    from ..quantization import from_arrays
    from .onnx_graph import to_qdq

    if options.setting("toolchain") == "qdq":
        params = from_arrays(spec, weights, dict(options.data))
        serialized, how = to_qdq(params).SerializeToString(), "the project's QDQ graph (frameworks.quantization)"
    else:
        serialized, how = _quantize_static(spec, weights, options)
    kernels = "none: the OpenVINO EP runs the graph as its own subgraph and names none of its kernels"
    if options.mode != "openvino":
        kernels = int8_kernels(serialized, options)
    session = make_session(serialized, options)
    _session.update({INT8_KERNELS: kernels, "int8_model": how, "model_bytes": str(len(serialized))})
    counted, _ = count_params(onnx.load_model_from_string(serialized))
    return Built(_forward(session), params=counted, buffers=0, threads=session_threads(session, options.mode))


def _quantize_static(spec: ModelSpec, weights: dict[str, np.ndarray], options: BuildOptions) -> tuple[bytes, str]:
    """ONNX Runtime's own post-training static quantization of the float graph, on the cell's calibration images."""
    import tempfile
    from pathlib import Path

    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    from ..environment import has_vnni

    images = np.asarray(options.data["calibration"], dtype=np.float32)
    percentile = options.setting("calibrator") == "percentile"
    step = 1 if percentile else CALIBRATION_BATCH  # its histogram collector stacks outputs: one shape only

    class Reader(CalibrationDataReader):  # type: ignore[misc]
        def __init__(self) -> None:
            self.batches = iter(range(0, images.shape[0], step))

        def get_next(self) -> dict[str, np.ndarray] | None:
            start = next(self.batches, None)
            return None if start is None else {INPUT: np.ascontiguousarray(images[start : start + step])}

    method = CalibrationMethod.Percentile if percentile else CalibrationMethod.MinMax
    reduce_range = not has_vnni()  # its docs: 7-bit weights where u8s8 kernels without VNNI could saturate
    extra = {"CalibPercentile": PERCENTILE} if percentile else {}
    with tempfile.TemporaryDirectory(prefix="dlbench-ortq-") as tmp:
        source, target = Path(tmp) / "float.onnx", Path(tmp) / "int8.onnx"
        source.write_bytes(checked_bytes(spec, weights)[0])
        quantize_static(str(source), str(target), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                        reduce_range=reduce_range, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        calibrate_method=method, extra_options=extra)  # fmt: skip
        serialized = target.read_bytes()
    how = (f"onnxruntime.quantization.quantize_static: QDQ, per-channel int8 weights, uint8 activations, "
           f"{method.name}{f' {PERCENTILE}' if percentile else ''}, reduce_range={reduce_range} "
           f"({'VNNI' if has_vnni() else 'no VNNI'} on this CPU)")  # fmt: skip
    return serialized, how


def int8_kernels(model: bytes, options: BuildOptions) -> str:
    """Which int8 kernels a session of this mode runs, from its profile (a probe session, one inference)."""
    import os

    probe = session_options(options.threads, options.mode)
    probe.enable_profiling = True
    probe.profile_file_prefix = os.path.join(tempfile_dir(), "dlbench-ort-profile")
    session = ort.InferenceSession(model, sess_options=probe, providers=_providers(options.device, options.mode, 1))
    shape = [
        options.batch,
        *[int(d.dim_value) for d in onnx.load_model_from_string(model).graph.input[0].type.tensor_type.shape.dim[1:]],
    ]
    session.run(None, {INPUT: np.zeros(shape, np.float32)})
    path = session.end_profiling()
    try:
        with open(path, encoding="utf-8") as f:
            events = json.load(f)
    finally:
        os.unlink(path)
    counts: dict[str, int] = {}
    for event in events:
        if event.get("cat") == "Node" and str(event.get("name", "")).endswith("_kernel_time"):
            op = str(event.get("args", {}).get("op_name", ""))
            counts[op] = counts.get(op, 0) + 1
    return describe_kernels(counts)


def tempfile_dir() -> str:
    import tempfile

    return tempfile.gettempdir()


def describe_kernels(counts: dict[str, int]) -> str:
    """ "QLinearConv x2, QGemm x3; float: GlobalAveragePool x1 (profile)", or "none: ..." when no int8 op ran."""
    int8 = [f"{op} x{n}" for op, n in counts.items() if op in INT8_OPS]
    floats = [f"{op} x{n}" for op, n in counts.items() if op in FLOAT_OPS]
    if not int8:
        return f"none: the graph ran as float ops ({', '.join(floats) or 'no compute op'}; ONNX Runtime profile)"
    tail = f"; float: {', '.join(floats)}" if floats else ""
    return f"{', '.join(int8)}{tail} (ONNX Runtime profile)"
