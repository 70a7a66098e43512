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
"""

from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime as ort

from ..environment import thread_count
from ..models import ModelSpec
from .onnx_graph import INPUT, OPSET, OUTPUT, checked_bytes, count_params, to_onnx
from .registry import IN_EFFECT, BuildOptions, Built, Forward, FrameworkInfo

FRAMEWORK = FrameworkInfo(
    name="onnxruntime",
    title="ONNX Runtime",
    import_name="onnxruntime",
    modes=("session", "basic", "disabled", "openvino"),
    devices=("cpu", "cuda"),
    mode_pairs=(("disabled", "basic"), ("disabled", "session")),
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
