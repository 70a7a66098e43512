"""Apache TVM: the spec's ONNX graph (``onnx_graph``) imported by the Relax ONNX frontend, compiled untuned.

TVM compiles models it imports: the same ONNX graph as ONNX Runtime and OpenVINO goes through
``tvm.relax.frontend.onnx.from_onnx`` with the cell's batch as a static shape, its initializers
detached as parameters (counted through TVM's own tensors) and bound back as constants, then
``tvm.compile`` with TVM's default Relax pipeline for an LLVM target of this CPU, run by the Relax
virtual machine.

Mode ``untuned``: no tuning (MetaSchedule is out of scope): the default pipeline legalizes each
operator to a plain TIR loop nest and schedules none of them, so no kernel is parallelized; the
build facts say so (``tuning``, and ``parallel_launches`` counted in the generated code).

The target is ``llvm -mcpu=native`` as LLVM means it: TVM 0.2x takes targets as dicts and its
LLVM rejects ``mcpu="native"`` (it logs an error and compiles for ``generic``), so the host CPU is
named as LLVM itself detects it (``llvm_get_system_cpu``), and recorded.

TVM is imported lazily (``tvm_module``): its thread pool size is read once, when the runtime
loads (``TVM_NUM_THREADS``, else ``OMP_NUM_THREADS``), so ``build`` sets ``TVM_NUM_THREADS`` from
``options.threads`` before the first import, and reads the size back.
"""

from __future__ import annotations

import os
import re
import sys
import warnings
from typing import Any

import numpy as np

from ..environment import thread_count
from ..models import ModelSpec
from .onnx_graph import INPUT, checked_model
from .registry import IN_EFFECT, INT8_KERNELS, BuildOptions, Built, Forward, FrameworkInfo

FRAMEWORK = FrameworkInfo(
    name="tvm",
    title="Apache TVM",
    import_name="tvm",
    modes=("untuned",),
    devices=("cpu",),
    transforms=("int8 toolchain=qdq",),
)
THREADS_ENV = "TVM_NUM_THREADS"
PARALLEL_LAUNCH = "TVMBackendParallelLaunch"  # what generated code calls to run a loop on the thread pool
# the frontend names parameters by initializer (canonical keys; some releases write '.' as '_')
_BUFFER_SUFFIXES = (".mean", ".var", "_mean", "_var")

# How TVM was loaded in this process, and what the last build compiled (``build_facts``).
_loaded: dict[str, str] = {}
_compiled: dict[str, str] = {}


def tvm_module(threads: int | None = None) -> Any:
    """TVM, imported on first use; with ``threads`` given, after setting the variable its thread pool reads."""
    if "tvm" not in sys.modules and threads is not None:
        os.environ[THREADS_ENV] = str(thread_count(threads))
    _loaded.setdefault(THREADS_ENV, os.environ.get(THREADS_ENV, "unset"))
    import tvm

    return tvm


def pool_threads() -> int:
    """The threads of TVM's runtime thread pool, as TVM states them (``runtime.NumThreads``)."""
    return int(tvm_module().get_global_func("runtime.NumThreads")())


def version() -> str:
    return str(tvm_module().__version__)


def cuda_available() -> bool:
    return False  # the CPU (LLVM) target only here


def host_cpu() -> str:
    """The CPU LLVM detects on this host: what ``-mcpu=native`` stands for."""
    return str(tvm_module().target.codegen.llvm_get_system_cpu())


def target_spec() -> dict[str, str]:
    return {"kind": "llvm", "mcpu": host_cpu()}


def build_facts() -> dict[str, str]:
    """TVM and its LLVM as TVM states them, the target, the tuning (none), and the thread pool."""
    tvm = tvm_module()
    codegen = tvm.target.codegen
    facts = {
        "tvm": version(),
        "llvm": str(codegen.llvm_version_major()),
        "target": str(tvm.target.Target(target_spec())),
        "mcpu_native": f"{host_cpu()} (LLVM's host CPU, {codegen.llvm_get_system_triple()})",
        "vector_width": str(codegen.llvm_get_vector_width(tvm.target.Target(target_spec()))),
        "tuning": "none: untuned, TVM's default Relax pipeline",
        "pool_threads": str(pool_threads()),
        IN_EFFECT: "TVM LLVM codegen (untuned)",
    }
    facts.update(_loaded)
    facts.update(_compiled)
    return facts


def build(spec: ModelSpec, weights: dict[str, np.ndarray], options: BuildOptions) -> Built:
    FRAMEWORK.check(options)
    tvm = tvm_module(options.threads)
    threads = _check_threads(thread_count(options.threads))
    _compiled.clear()
    if options.transform == "int8":  # the project's QDQ graph (TVM has no PTQ toolchain of its own in Relax)
        from ..quantization import from_arrays
        from .onnx_graph import to_qdq

        qdq = to_qdq(from_arrays(spec, weights, dict(options.data)))
        module, params = import_model(qdq, spec, options.batch)
        _compiled[INT8_KERNELS] = int8_kernels(module)
        _compiled["int8_model"] = "the project's QDQ graph (frameworks.quantization)"
        _compiled["model_bytes"] = str(qdq.ByteSize())
    else:
        module, params = import_onnx(spec, weights, options.batch)
    counts = count_params(module, params)
    executable = compile_module(bind_params(module, params))
    _compiled["parallel_launches"] = str(parallel_launches(executable))
    vm = tvm.relax.VirtualMachine(executable, tvm.cpu())
    return Built(_forward(tvm, vm), params=counts[0], buffers=counts[1], threads=threads)


def import_onnx(spec: ModelSpec, weights: dict[str, np.ndarray], batch: int) -> tuple[Any, list[Any]]:
    """The Relax module from the ONNX graph (static batch), and its parameters detached, in argument order."""
    return import_model(checked_model(spec, weights), spec, batch)


def import_model(model: Any, spec: ModelSpec, batch: int) -> tuple[Any, list[Any]]:
    """The Relax module of an ONNX ModelProto (static batch), and its parameters detached, in argument order."""
    tvm = tvm_module()
    from tvm.relax.frontend.onnx import from_onnx

    shape = {INPUT: [batch, *spec.input_shape]}
    module = from_onnx(model, shape_dict=shape, keep_params_in_input=True)
    module, params = tvm.relax.frontend.detach_params(module)
    return module, list(params["main"])


def _param_vars(module: Any) -> list[Any]:
    """The main function's parameter variables after the input: one per ONNX initializer."""
    return list(module["main"].params)[1:]


def _name(var: Any) -> str:
    """A Relax variable's name (``name_hint`` before TVM 0.2x's FFI rewrite, ``name`` since)."""
    return str(getattr(var, "name_hint", None) or var.name)


def count_params(module: Any, params: list[Any]) -> tuple[int, int]:
    """(parameters, batch-norm mean + var) from the imported module's parameter tensors, through TVM."""
    sizes = {
        _name(var): int(np.prod(tensor.shape, dtype=np.int64))
        for var, tensor in zip(_param_vars(module), params, strict=True)
    }
    buffers = sum(size for name, size in sizes.items() if name.endswith(_BUFFER_SUFFIXES))
    return sum(sizes.values()) - buffers, buffers


def bind_params(module: Any, params: list[Any]) -> Any:
    """The parameters bound back as constants: the module ``from_onnx`` makes by default, and compiles."""
    tvm = tvm_module()
    bound = dict(zip(_param_vars(module), params, strict=True))
    return tvm.relax.transform.BindParams("main", bound)(module)


def compile_module(module: Any) -> Any:
    """``tvm.compile`` with the default Relax pipeline for this CPU's LLVM target: no tuning."""
    tvm = tvm_module()
    return tvm.compile(module, target=tvm.target.Target(target_spec()))


def parallel_launches(executable: Any) -> int:
    """Calls into the thread pool in the generated LLVM code: 0 means every kernel runs on one thread."""
    return sum(lib.inspect_source("ll").count(PARALLEL_LAUNCH) for lib in executable.mod.imports if lib.kind == "llvm")


def _check_threads(requested: int) -> int:
    """The pool's size read back; a warning when TVM was loaded earlier with another count."""
    effective = pool_threads()
    _loaded["threads_requested"] = str(requested)
    if effective != requested:
        warnings.warn(
            f"TVM was loaded with {effective} pool threads in this process; {requested} requested",
            RuntimeWarning,
            stacklevel=3,
        )
    return effective


def _forward(tvm: Any, vm: Any) -> Forward:
    main = vm["main"]
    device = tvm.cpu()

    def forward(x: np.ndarray) -> np.ndarray:
        y = main(tvm.runtime.tensor(np.ascontiguousarray(x, dtype=np.float32), device))
        return y.numpy()  # type: ignore[no-any-return]

    return forward


# One binding of the imported module's TVMScript: 'lv3: R.Tensor((1, 6, 28, 28), dtype="float32") = R.nn.conv2d(lv1,
_BINDING = re.compile(r'^\s*(\w+): R\.Tensor\(.*?dtype="(\w+)"\) = (R\.[\w.]+)\((\w+)')
_COMPUTE = ("R.nn.conv2d", "R.matmul", "R.nn.dense", "R.linear")


def int8_kernels(module: Any) -> str:
    """Which conv2d and matmul ops of the imported module take int8 inputs, read from its TVMScript: TVM's
    Relax ONNX frontend lowers a QDQ pair to quantize and dequantize, so an op fed by a dequantize computes
    in float32, whatever the graph's QDQ nodes say."""
    dtypes = {"input": "float32"}
    int8: dict[str, int] = {}
    floats: dict[str, int] = {}
    for line in str(module["main"].script()).splitlines():
        match = _BINDING.match(line)
        if match is None:
            continue
        name, dtype, op, first = match.groups()
        dtypes[name] = dtype
        if op in _COMPUTE:
            bucket = int8 if dtypes.get(first, "float32") in ("int8", "uint8") else floats
            bucket[op] = bucket.get(op, 0) + 1
    listed = ", ".join(f"{op.removeprefix('R.')} x{n}" for op, n in floats.items())
    if not int8:
        return (f"none: the Relax ONNX frontend dequantizes before every conv2d and matmul; {listed or 'no op'} "
                "compute in float32 (the imported module)")  # fmt: skip
    tail = f"; float: {listed}" if listed else ""
    return ", ".join(f"{op.removeprefix('R.')} x{n}" for op, n in int8.items()) + tail + " (the imported module)"
