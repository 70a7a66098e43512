"""Apache TVM: the spec's ONNX graph (``onnx_graph``) imported by the Relax ONNX frontend, compiled for this CPU.

TVM compiles models it imports: the same ONNX graph as ONNX Runtime and OpenVINO goes through
``tvm.relax.frontend.onnx.from_onnx`` with the cell's batch as a static shape, its initializers
detached as parameters (counted through TVM's own tensors) and bound back as constants, then
``tvm.compile`` for an LLVM target of this CPU, run by the Relax virtual machine. Three modes, by how
the kernels are scheduled (the build facts say which, and ``parallel_launches`` counts the loops the
generated code hands to the thread pool):

- ``tuned``: as TVM's users run it. The kernels MetaSchedule tuned on this machine, read from the
  database committed for this exact target and CPU fingerprint (``frameworks/tvm_tuning/``, made by
  ``python -m runner tune tvm``); ``tuning`` names it with its trials and tuning time, and
  ``tuned_kernels`` how many kernels came from it. A kernel the database lacks (another batch size)
  gets the default schedule; a machine with no database gets the default schedule throughout, and the
  cell says so (``tuning``: "no database for ...").
- ``default``: TVM 0.27's default CPU schedule rules (``s_tir.dlight.cpu``: GEMV and Reduction), the
  cheap schedule that needs no tuning. They schedule matrix-vector products and reductions only: a
  convolution stays a plain loop nest.
- ``untuned``: TVM's default Relax pipeline alone, which schedules no kernel and parallelizes nothing
  (VGG-16 takes seconds). Kept for comparison; the catalog makes it opt-in.

The wheel has no library offload for the CPU: ``apache-tvm`` 0.27 on PyPI is built without oneDNN
(DNNL), BLAS, MKL or a BYOC codegen for x86 (``offload_available`` checks its registry), so no mode
offers one; ``build_facts`` records the check.

The target is ``llvm -mcpu=native`` as LLVM means it: TVM 0.2x takes targets as dicts and its
LLVM rejects ``mcpu="native"`` (it logs an error and compiles for ``generic``), so the host CPU is
named as LLVM itself detects it (``llvm_get_system_cpu``), and recorded. The scheduled modes add
``num-cores`` (the machine's CPUs), which MetaSchedule's rules need and which keys the database.

TVM is imported lazily (``tvm_module``): its thread pool size is read once, when the runtime
loads (``TVM_NUM_THREADS``, else ``OMP_NUM_THREADS``), so ``build`` sets ``TVM_NUM_THREADS`` from
``options.threads`` before the first import, and reads the size back.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from ..environment import Machine, machine, thread_count
from ..models import ModelSpec
from .onnx_graph import INPUT, checked_model
from .registry import IN_EFFECT, INT8_KERNELS, BuildOptions, Built, Forward, FrameworkInfo

FRAMEWORK = FrameworkInfo(
    name="tvm",
    title="Apache TVM",
    import_name="tvm",
    modes=("tuned", "default", "untuned"),
    mode_pairs=(("untuned", "default"), ("default", "tuned"), ("untuned", "tuned")),
    devices=("cpu",),
    transforms=("int8 toolchain=qdq",),
)
THREADS_ENV = "TVM_NUM_THREADS"
PARALLEL_LAUNCH = "TVMBackendParallelLaunch"  # what generated code calls to run a loop on the thread pool
# the frontend names parameters by initializer (canonical keys; some releases write '.' as '_')
_BUFFER_SUFFIXES = (".mean", ".var", "_mean", "_var")
# Where the tuning databases live: one folder per (CPU fingerprint, target), with what was tuned in TUNING_FILE.
TUNING_ROOT = Path(__file__).resolve().parent.parent / "tvm_tuning"
TUNING_FILE = "tuning.json"
TUNING_ENV = "DLBENCH_TVM_TUNING"
# What a CPU library offload would register in TVM's function registry (none is in the PyPI wheel).
OFFLOAD_FUNCS = ("relax.ext.dnnl", "tvm.contrib.dnnl.conv2d", "tvm.contrib.cblas.matmul", "tvm.contrib.mkl.matmul")
# The attribute a scheduled kernel carries (TVM 0.27 names TIR "tirx"; earlier releases "tir").
SCHEDULED_ATTRS = ("tirx.is_scheduled", "tir.is_scheduled")
DEFAULT_RULES_SHORT = "default CPU rules (dlight GEMV, Reduction)"  # TVM's s_tir.dlight.cpu rules

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
        "target": str(tvm.target.Target(target_spec())),  # a scheduled build names its own below
        "mcpu_native": f"{host_cpu()} (LLVM's host CPU, {codegen.llvm_get_system_triple()})",
        "vector_width": str(codegen.llvm_get_vector_width(tvm.target.Target(target_spec()))),
        "pool_threads": str(pool_threads()),
        "offload": offload_available(),
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
    executable = compile_module(bind_params(module, params), options.mode, spec.name)
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


def compile_module(module: Any, mode: str = "untuned", model: str = "") -> Any:
    """``tvm.compile`` for this CPU's LLVM target, the kernels scheduled as ``mode`` says (module doc);
    what was done is left in the build facts (``tuning``, ``target``, ``tuned_kernels``, ``in_effect``)."""
    tvm = tvm_module()
    if mode == "untuned":
        target = tvm.target.Target(target_spec())
        _compiled.update(
            {"tuning": "none: untuned, TVM's default Relax pipeline", IN_EFFECT: "TVM LLVM codegen (untuned)"}
        )
        return tvm.compile(module, target=target)
    target = tuning_target()
    prepared = pre_schedule(module, target)
    database = find_database(target) if mode == "tuned" else None
    key = database_key()
    if database is not None:
        prepared = apply_database(prepared, target, database)
        scheduled, total = scheduled_kernels(prepared)
        _compiled["tuning"] = f"MetaSchedule database {key}"
        _compiled["tuned_kernels"] = f"{scheduled} of {total} kernels from the database"
        _compiled["tuned_trials"] = model_tuning(database, model)
        _compiled["tuned_with"] = tuned_with(database)
        _compiled[IN_EFFECT] = f"TVM LLVM codegen, MetaSchedule-tuned ({scheduled} of {total} kernels)"
    elif mode == "tuned":
        _compiled["tuning"] = f"no database {key}: default CPU rules instead"
        _compiled["tuned_kernels"] = "0: no database"
        _compiled[IN_EFFECT] = "TVM LLVM codegen, default schedule (no tuning database for this CPU)"
    else:
        _compiled["tuning"] = f"none: {DEFAULT_RULES_SHORT}; conv2d unscheduled"
        _compiled[IN_EFFECT] = "TVM LLVM codegen, default CPU schedule rules"
    _compiled["target"] = str(target)
    return tvm.compile(default_schedule(prepared, target), target=target)


def tuning_target() -> Any:
    """The target the scheduled modes compile for and the database is keyed by: LLVM's host CPU and the
    machine's CPUs (``num-cores``: MetaSchedule's parallel rules need it; a cell's threads are its pool's)."""
    tvm = tvm_module()
    return tvm.target.Target({**target_spec(), "num-cores": os.cpu_count() or 1})


def tuning_machine() -> Machine:
    return machine()


def database_key() -> str:
    """The database's folder: the CPU fingerprint and a hash of the exact target string."""
    target = str(tuning_target())
    return f"{tuning_machine().fingerprint}-{hashlib.sha256(target.encode()).hexdigest()[:8]}"


def tuning_root() -> Path:
    """Where the databases are read: ``frameworks/tvm_tuning``, or ``$DLBENCH_TVM_TUNING`` (a database kept
    outside the checkout, and the tests' freshly tuned one)."""
    return Path(os.environ.get(TUNING_ENV) or TUNING_ROOT)


def find_database(target: Any, root: Path | None = None) -> Path | None:
    """This machine's database folder, if one was committed for exactly this target; else None."""
    folder = (root or tuning_root()) / database_key()
    record = folder / TUNING_FILE
    if not record.is_file():
        return None
    if json.loads(record.read_text()).get("target") != str(target):  # a hash collision, or a hand-edited file
        return None
    return folder


def model_tuning(folder: Path, model: str) -> str:
    """How ``model`` itself was tuned into the database: its trials, kernels and time (the report's mark)."""
    tuned = json.loads((folder / TUNING_FILE).read_text()).get("models", {}).get(model)
    if tuned is None:
        return f"{model} not tuned in it (kernels shared with a tuned model apply)"
    return f"{tuned['trials_per_task']} trials per kernel, {tuned['tasks']} kernels, {tuned['seconds']:.0f} s of tuning"


def tuned_with(folder: Path) -> str:
    """The TVM release and the machine the database was tuned with (``tuning.json``)."""
    record = json.loads((folder / TUNING_FILE).read_text())
    return f"TVM {record.get('tvm', '?')}, CPU fingerprint {record.get('fingerprint', '?')}"


def pre_schedule(module: Any, target: Any) -> Any:
    """The passes before scheduling, the same in tuning and in a scheduled build (``static_shape_tuning_
    pipeline``'s): so the kernels a build looks up are the kernels that were tuned."""
    tvm = tvm_module()
    from tvm import relax

    passes = [relax.transform.DecomposeOpsForInference(), relax.transform.CanonicalizeBindings(),
              relax.pipeline.zero_pipeline()]  # fmt: skip
    with target:
        return tvm.transform.Sequential(passes)(module)


def apply_database(module: Any, target: Any, folder: Path) -> Any:
    tvm = tvm_module()
    with target:
        return tvm.relax.transform.MetaScheduleApplyDatabase(str(folder))(module)


def default_schedule(module: Any, target: Any) -> Any:
    """TVM's default CPU rules on every kernel not scheduled yet (they skip those a database scheduled)."""
    tvm_module()
    from tvm.s_tir import dlight

    with target:
        return dlight.ApplyDefaultSchedule(dlight.cpu.GEMV(), dlight.cpu.Reduction())(module)


def scheduled_kernels(module: Any) -> tuple[int, int]:
    """(kernels marked scheduled, all kernels) among the module's TIR functions."""
    tvm = tvm_module()
    funcs = [f for _, f in module.functions_items() if isinstance(f, tvm.tirx.PrimFunc)]
    done = sum(1 for f in funcs if f.attrs is not None and any(k in f.attrs for k in SCHEDULED_ATTRS))
    return done, len(funcs)


def offload_available() -> str:
    """Whether this TVM build can hand a kernel to a CPU library (oneDNN, BLAS, MKL), from its registry."""
    tvm = tvm_module()
    found = [name for name in OFFLOAD_FUNCS if tvm.get_global_func(name, True) is not None]
    if found:
        return "available: " + ", ".join(found)
    return "none: no dnnl, cblas or mkl function in this TVM's registry"


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
