"""DeepSparse: Neural Magic's sparsity-aware CPU engine, compiling the spec's ONNX graph (``onnx_graph``).

DeepSparse imports models, it has no layer API to lower the spec into: it compiles the same ONNX graph as
ONNX Runtime, OpenVINO and TVM, for the cell's batch size (``batch_size``, a static batch) on the cell's
threads (``num_cores``). It takes a file, not bytes: the serialized graph goes into an anonymous in-memory
file (``memfd``, read through ``/proc/self/fd``), so a 550 MB VGG-16 needs no room in a small ``/tmp``.

Mode ``engine``: ``deepsparse.Engine``, the default scheduler, one stream.

What DeepSparse did with the weights is read from DeepSparse itself, never inferred from them: its debug
analysis (``DebugAnalysisEngine.analyze``, what ``model_debug_analysis`` runs) lists the layers the engine
compiled, each with its kernel's name and the ``kernel_sparsity`` it measured. An engine built for timing
cannot be instrumented (its ``benchmark_execute`` returns no layer records, and a debug engine's own runs
are instrumented, so not what is timed), so ``build`` compiles a debug twin of the timed engine first (the
same graph, batch and cores), runs it once, keeps the summary and frees it; the timed engine is compiled
after it. The facts (``build_facts``):

- ``sparse_kernels`` (``registry.SPARSE_KERNELS``): the layers DeepSparse compiled to its kernel-sparse
  kernels (named ``ks_...``: ``ks_gevm_be-89.8%`` for a dense layer, ``ks_convolution-75.1%`` for a
  convolution), each with its kernel_sparsity, out of the layers that compute the graph's nodes; where
  there are none, ``0 of N layers on ks_ (kernel-sparse) kernels`` and what the analysis said instead
  (never ``none: ...``, which the harness takes for a sparse mode that ran no sparse kernel and skips:
  a dense DeepSparse cell is an ordinary timing);
- ``kernel_sparsity``: how many of those layers report a kernel_sparsity above zero at all (a layer whose
  kernel is not a ``ks_`` one, a Winograd convolution, can report one too: the zeros it measured);
- ``analysis_threads``: the threads the analysis run says it ran on, which is also the cell's
  ``threads_in_use`` (``Engine.num_cores`` only repeats the request: asked for more cores than the
  process may run on, the engine says so and runs on what it has);
- ``instruction_set``: the build DeepSparse loaded and the CPU it detected, as its banner states them
  (``system=avx512_vnni, binary=avx512``; read while a one-node graph is compiled, the first engine of
  the process, which is when DeepSparse prints it), else the engine's ``cpu_avx_type`` and ``cpu_vnni``.

DeepSparse 1.8.0 is its last release (end of life in June 2025; 1.9.0 on PyPI is an sdist that refuses
to build): it needs Python < 3.12, onnx < 1.15 and NumPy < 2, hence an image of its own.
"""

from __future__ import annotations

import collections
import contextlib
import gc
import os
import re
import sys
from collections.abc import Iterator
from typing import Any

# No usage events from DeepSparse or SparseZoo (set before either is imported; a cell has no network anyway).
os.environ.setdefault("NM_DISABLE_ANALYTICS", "1")

import deepsparse
import numpy as np
import onnx
from deepsparse.engine import DebugAnalysisEngine, Engine
from onnx import TensorProto, helper

from ..environment import thread_count
from ..models import ModelSpec
from ..weights import make_input
from .onnx_graph import OPSET, checked_bytes
from .registry import IN_EFFECT, SPARSE_KERNELS, BuildOptions, Built, Forward, FrameworkInfo

FRAMEWORK = FrameworkInfo(
    name="deepsparse",
    title="DeepSparse",
    import_name="deepsparse",
    modes=("engine",),
    devices=("cpu",),
    transform_notes=(
        ("int8", "DeepSparse's int8 path (quantized ONNX graphs) is not wired into this project's DeepSparse backend"),
    ),
)
SPARSE_PREFIX = "ks_"  # DeepSparse's name for its kernel-sparse kernels: ks_gevm_be-89.8%_3, ks_convolution-75.1%_12
NO_NODE = "<none>"  # the canonical name of an engine layer that computes no node of the graph (shuffles, glue)
FACT_MAX = 80  # a build fact is a short string (a report's cell)
BANNER = re.compile(
    r"DeepSparse,.*?version: (?P<version>.*?)\s*\(system=(?P<system>[^,)]+), binary=(?P<binary>[^)]+)\)"
)
ANALYSIS_SEED = 7  # the analysis run's input (kernel sparsity does not depend on it)

# What the process and its last build say (``build_facts``): the banner, once; the last engine's facts.
_banner: dict[str, str] = {}
_built: dict[str, str] = {}


def version() -> str:
    return str(deepsparse.__version__)


def cuda_available() -> bool:
    return False  # a CPU engine


def build_facts() -> dict[str, str]:
    """The release and the graph library, the instruction set DeepSparse runs, and what the last build's
    analysis said (``sparse_kernels`` among them)."""
    facts = {"deepsparse": version(), "onnx": str(onnx.__version__), "opset": str(OPSET)}
    facts.update(_banner)
    facts.update(_built)
    return facts


def build(spec: ModelSpec, weights: dict[str, np.ndarray], options: BuildOptions) -> Built:
    FRAMEWORK.check(options)
    serialized, params, buffers = checked_bytes(spec, weights)
    cores = thread_count(options.threads)
    _built.clear()
    with _memory_file(serialized) as path:
        del serialized
        _read_banner()
        analysis = analyze(
            path, make_input(spec, options.batch, np.random.default_rng(ANALYSIS_SEED)), options.batch, cores
        )
        gc.collect()  # the debug twin's memory goes before the timed engine's comes
        engine = Engine(path, batch_size=options.batch, num_cores=cores)
    threads = int(analysis["num_threads"])
    _built.update(analysis_facts(analysis["layer_info"]))
    _built.update(
        {
            "num_cores": str(engine.num_cores),
            "analysis_threads": str(threads),
            "analysis": "DeepSparse debug analysis of a twin engine (same graph, batch and cores), 1 run",
            "fraction_of_supported_ops": f"{engine.fraction_of_supported_ops:g}",
            "scheduler": str(getattr(engine.scheduler, "name", engine.scheduler)),
            "num_streams": str(engine.num_streams),
            IN_EFFECT: "DeepSparse",
        }
    )
    _banner.setdefault(
        "instruction_set", f"{engine.cpu_avx_type}{', vnni' if engine.cpu_vnni else ''} (engine cpu info)"
    )
    return Built(_forward(engine), params=params, buffers=buffers, threads=threads)


def analyze(path: str, x: np.ndarray, batch: int, cores: int) -> dict[str, Any]:
    """DeepSparse's debug analysis of the graph at ``path``, compiled as the timed engine is, run once."""
    twin = DebugAnalysisEngine(path, batch_size=batch, num_cores=cores, num_iterations=1, num_warmup_iterations=0)
    try:
        return dict(twin.analyze([np.ascontiguousarray(x, dtype=np.float32)]))
    finally:
        del twin


def analysis_facts(layers: list[dict[str, Any]]) -> dict[str, str]:
    """``sparse_kernels``, ``sparse_kernel_kinds`` and ``kernel_sparsity`` from the analysis's layer records,
    stated as DeepSparse states them: its kernel names and measured kernel_sparsity, nothing inferred."""
    graph_layers = [layer for layer in layers if str(layer.get("canonical_name", NO_NODE)) != NO_NODE]
    total = len(graph_layers)
    sparse = [layer for layer in graph_layers if str(layer["name"]).startswith(SPARSE_PREFIX)]
    nonzero = [layer for layer in graph_layers if float(layer["kernel_sparsity"]) > 0]
    if nonzero:
        top = max(nonzero, key=lambda layer: float(layer["kernel_sparsity"]))
        measured = f"> 0 in {len(nonzero)} of {total} layers, max {float(top['kernel_sparsity']):.2f} ({_node(top)})"
    else:
        measured = f"0 in all {total} layers"
    facts = {"kernel_sparsity": measured}
    if not sparse:
        # Not "none: ...": the harness skips a cell whose sparse_kernels starts with "none", and a dense
        # DeepSparse cell is a dense timing, not a sparse one that failed.
        why = "kernel_sparsity 0 in all" if not nonzero else f"kernel_sparsity > 0 in {len(nonzero)}"
        facts[SPARSE_KERNELS] = f"0 of {total} layers on ks_ (kernel-sparse) kernels; {why}"
        return facts
    head = f"{len(sparse)} of {total} layers on ks_ kernels: "
    items = [f"{_node(layer)} {float(layer['kernel_sparsity']):.2f}" for layer in sparse]
    facts[SPARSE_KERNELS] = fitted(head, items)
    kinds = collections.Counter(_kind(str(layer["name"])) for layer in sparse)
    facts["sparse_kernel_kinds"] = fitted("", [f"{kind} {count}" for kind, count in kinds.items()])
    return facts


def fitted(head: str, items: list[str], limit: int = FACT_MAX) -> str:
    """``head`` and as many of ``items`` as fit in ``limit`` characters, then how many more there are."""
    for shown in range(len(items), 0, -1):
        rest = len(items) - shown
        text = head + ", ".join(items[:shown]) + (f" +{rest} more" if rest else "")
        if len(text) <= limit:
            return text
    return (head + f"{len(items)} layers")[:limit]


def _node(layer: dict[str, Any]) -> str:
    """The graph node an engine layer computes (its first, for a fused layer): the spec's layer name."""
    names = str(layer["canonical_name"]).split(",")
    return names[0] + ("+" if len(names) > 1 else "")


def _kind(name: str) -> str:
    """An engine layer's kernel without its sparsity and index: ``ks_gevm_be-89.8%_3`` -> ``ks_gevm_be``."""
    return re.sub(r"(-[0-9.]+%)?_[0-9]+$", "", name)


def _read_banner() -> None:
    """DeepSparse's banner (release, edition, the system's and the binary's instruction sets), printed once
    per process by the first engine DeepSparse compiles: compile a one-node graph first, reading stderr."""
    if _banner:
        return
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])],
        "banner",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1])],
    )
    opsets = [helper.make_opsetid("", OPSET)]
    model = helper.make_model(graph, opset_imports=opsets, ir_version=helper.find_min_ir_version_for(opsets))
    with _memory_file(model.SerializeToString()) as path, _stderr_read() as text:
        Engine(path, batch_size=1, num_cores=1)
    match = BANNER.search(" ".join(text))
    if match:
        _banner["build"] = match.group("version")[:FACT_MAX]
        _banner["instruction_set"] = f"system={match.group('system')}, binary={match.group('binary')} (banner)"


@contextlib.contextmanager
def _memory_file(data: bytes) -> Iterator[str]:
    """``data`` in an anonymous in-memory file, named by a path the process can open."""
    fd = os.memfd_create("model.onnx")
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        view.release()
        del view, data  # the file holds the bytes now: the caller may free its copy (VGG-16's is 550 MB)
        yield f"/proc/self/fd/{fd}"
    finally:
        os.close(fd)


@contextlib.contextmanager
def _stderr_read() -> Iterator[list[str]]:
    """What the process writes to file descriptor 2 meanwhile (native code included), passed on afterwards."""
    text: list[str] = []
    sys.stderr.flush()
    saved, fd = os.dup(2), os.memfd_create("stderr")
    os.dup2(fd, 2)
    try:
        yield text
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.lseek(fd, 0, os.SEEK_SET)
        chunks = []
        while True:
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                break
            chunks.append(chunk)
        os.close(fd)
        text.append(b"".join(chunks).decode("utf-8", "replace"))
        sys.stderr.write(text[-1])
        sys.stderr.flush()


def _forward(engine: Any) -> Forward:
    def forward(x: np.ndarray) -> np.ndarray:
        # a fresh array per call (the engine's outputs are not reused between runs)
        return np.asarray(engine.run([np.ascontiguousarray(x, dtype=np.float32)])[0], dtype=np.float32)

    return forward
