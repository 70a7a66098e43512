"""PyTorch: the spec as an ``nn.Sequential`` of native layers, run eager, traced+frozen, or compiled.

Modes:
- ``eager``: the eval-mode module under ``torch.inference_mode``;
- ``jit``: ``torch.jit.trace`` then ``torch.jit.freeze``, done once in ``build``;
- ``compile``: ``torch.compile`` of the eval module; compilation happens lazily on the first
  forward, which the harness times separately as the first inference;
- ``sparse`` (pruned weights only: the ``prune`` transform): eager, with every dense layer's weight a
  CSR tensor (``torch.sparse``, int32 indices: int64 ones are copied on every MKL call) multiplied by
  ``torch.sparse.addmm``; convolutions stay dense, since torch has no sparse convolution on the CPU. A
  probe forward at build time, under a dispatch mode that sees every op's arguments, records which
  layers' products ran on a sparse layout: the cell's ``sparse_kernels`` fact comes from torch itself.

The int8 transform (``toolchain=native``, ``calibrator=minmax``: the X86 quantizer's observers are min/max
ones, and torch offers no percentile) is torch's PT2E post-training quantization, from ``torchao``
(``torch.ao``'s quantizer moved there): ``torch.export`` of the eval module, ``prepare_pt2e`` with
``X86InductorQuantizer`` (its default static config: uint8 activations, per-channel int8 weights), the
calibration images run through it, ``convert_pt2e``. ``compile`` then compiles it as torchao's x86 Inductor
tutorial says, with Inductor's freezing on, which lets torchao's patterns turn quantize-dequantize pairs
around a convolution or linear into oneDNN's int8 ``qconv``/``qlinear`` kernels. ``eager`` and ``jit`` run the
converted graph as it is: quantize and dequantize ops around float convolutions and products. Which int8
kernels ran is read from oneDNN's own verbose log of a probe forward at build time (``int8_kernels``), which
also compiles the ``compile`` mode (under freezing, which is set for that compilation only): its first
inference is then a compiled one. Float kernels there give "none", and the cell is skipped.

Training (``train``): autograd and ``torch.optim.SGD`` on the module in train mode, eager or with
the module ``torch.compile``d (forward and backward graphs by AOTAutograd, compiled on the first
step, which the first epoch's time includes); the optimizer step stays eager in both.
"""

from __future__ import annotations

import contextlib
import re
import warnings
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn

from ..environment import thread_count
from ..models import BN_EPS, BatchNorm, Conv, Dense, Flatten, GlobalAvgPool, Layer, MaxPool, ModelSpec, ReLU, Softmax
from .registry import IN_EFFECT, INT8_KERNELS, SPARSE_KERNELS, BuildOptions, Built, Forward, FrameworkInfo, TrainOptions

FRAMEWORK = FrameworkInfo(
    name="torch",
    title="PyTorch",
    import_name="torch",
    modes=("eager", "jit", "compile", "sparse"),
    devices=("cpu", "cuda"),
    mode_pairs=(("eager", "jit"), ("eager", "compile")),  # sparse vs eager: the reports' sparse comparison
    train_modes=("eager", "compile"),
    transform_modes=(("sparse", "prune"),),
    transforms=("int8 toolchain=native calibrator=minmax",),
)
# (the caffe2 image's old torch imports this module too: it lacks the newer layouts)
_SPARSE_LAYOUTS = tuple(
    getattr(torch, n) for n in ("sparse_csr", "sparse_csc", "sparse_coo", "sparse_bsr") if hasattr(torch, n)
)
_sparse_facts: dict[str, str] = {}  # the last sparse build's probe, read by build_facts
_int8_facts: dict[str, str] = {}  # the last int8 build's model and oneDNN probe, likewise
CUDNN_BENCHMARK = True  # inputs have one fixed shape per cell: let cuDNN pick its fastest algorithm once
INTEROP_THREADS = 1  # a sequential network has no inter-op parallelism (onnxruntime gets inter_op 1 too)


def version() -> str:
    return str(torch.__version__)


def cuda_available() -> bool:
    return bool(torch.cuda.is_available())


def build_facts() -> dict[str, str]:
    """What this torch was built with, as it states it, plus the GPU precision settings it runs under.

    The harness reads the facts before it builds, so a CUDA build applies those settings here (they
    touch nothing on the CPU) and reports them as read back from torch, not as intended.
    """
    facts = {"torch": version(), **_config_facts(torch.__config__.show())}
    blas = facts.get("blas", "")
    if blas:
        facts[IN_EFFECT] = "OpenBLAS" if blas == "open" else "MKL" if "mkl" in blas.lower() else blas
    facts["intra_op_threads"] = str(torch.get_num_threads())
    facts["mkldnn_available"] = str(torch.backends.mkldnn.is_available())
    facts["cpu_capability"] = str(torch.backends.cpu.get_cpu_capability())
    facts.update(_sparse_facts)
    facts.update(_int8_facts)
    if torch.version.cuda:
        _set_gpu_precision()
        facts["cuda"] = str(torch.version.cuda)
        facts["cudnn"] = str(torch.backends.cudnn.version())
        facts["tf32"] = str(torch.backends.cuda.matmul.allow_tf32 or torch.backends.cudnn.allow_tf32)
        facts["cudnn_benchmark"] = str(torch.backends.cudnn.benchmark)
    return facts


def _config_facts(config: str) -> dict[str, str]:
    """A few short facts from ``torch.__config__.show()`` (a free-form text: parse only what is stable)."""
    patterns = {
        "blas": r"BLAS_INFO=([^,\s]+)",
        "mkl": r"Math Kernel Library Version ([\d.]+)",
        "openblas": r"OpenBLAS ([\d.]+)",
        "onednn": r"(?:MKL-DNN|oneDNN) v?([\d.]+)",
        "openmp": r"OpenMP \d+ \(a\.k\.a\. OpenMP ([\d.]+)\)",
    }
    facts = {}
    for key, pattern in patterns.items():
        match = re.search(pattern, config)
        if match:
            facts[key] = match.group(1)
    return facts


def _set_gpu_precision() -> None:
    """Full fp32 on the GPU: TF32 would make cuda cells faster by computing a different network."""
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cudnn.benchmark = CUDNN_BENCHMARK


def set_threads(threads: int) -> int:
    """Intra-op threads, explicitly (0 means every CPU this process may run on); returns the count set.

    Set on every build, not left to torch's default, because an earlier build in the same process
    may have changed it. The inter-op pool can be sized only once per process, before first use.
    """
    count = thread_count(threads)
    torch.set_num_threads(count)
    with contextlib.suppress(RuntimeError):  # already set, or inter-op work has started: keep what is there
        torch.set_num_interop_threads(INTEROP_THREADS)
    return count


def build(spec: ModelSpec, weights: dict[str, np.ndarray], options: BuildOptions) -> Built:
    FRAMEWORK.check(options)
    device = _device(options.device)
    set_threads(options.threads)
    model = to_module(spec, weights).to(device)
    params, buffers = count_params(model)
    _sparse_facts.clear()
    _int8_facts.clear()
    if options.mode == "sparse":
        model = sparsify(model)
        _sparse_facts[SPARSE_KERNELS] = probe_sparse(model, (options.batch, *spec.input_shape), device)
    if options.transform == "int8":
        return _build_int8(model, options, (options.batch, *spec.input_shape), device, params, buffers)
    runner = make_runner(model, options.mode, (options.batch, *spec.input_shape), device)
    grad_mode = torch.no_grad if options.mode == "sparse" else torch.inference_mode  # CSR weights refuse inference
    return Built(_forward(runner, device, grad_mode), params=params, buffers=buffers, threads=torch.get_num_threads())


class SparseLinear(nn.Module):
    """A dense layer whose weight is a CSR tensor: y = b + x W^T as ``torch.sparse.addmm(b, W, x^T)^T``."""

    def __init__(self, dense: nn.Linear) -> None:
        super().__init__()
        weight = dense.weight.detach().to_sparse_csr()
        self.weight = torch.sparse_csr_tensor(
            weight.crow_indices().to(torch.int32), weight.col_indices().to(torch.int32), weight.values(),
            size=weight.shape,
        )  # fmt: skip
        self.bias = dense.bias.detach().unsqueeze(1) if dense.bias is not None else None
        self.nnz = int(weight.values().numel())
        self.size = int(dense.weight.numel())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.bias is None:
            return torch.sparse.mm(self.weight, x.t()).t()
        return torch.sparse.addmm(self.bias, self.weight, x.t()).t()


def sparsify(model: nn.Sequential) -> nn.Sequential:
    """The module with every ``nn.Linear`` replaced by a ``SparseLinear`` (convolutions as they are)."""
    return nn.Sequential(
        OrderedDict((name, SparseLinear(m) if isinstance(m, nn.Linear) else m) for name, m in model.named_children())
    )


def probe_sparse(model: nn.Sequential, input_shape: tuple[int, ...], device: torch.device) -> str:
    """Which layers' products torch ran on a sparse layout, seen by a dispatch mode in one forward (untimed)."""
    from torch.utils._python_dispatch import TorchDispatchMode

    seen: list[str] = []

    class Watch(TorchDispatchMode):  # type: ignore[misc]
        def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
            layouts = {a.layout for a in args if isinstance(a, torch.Tensor)}
            sparse = sorted(str(layout).removeprefix("torch.") for layout in layouts & set(_SPARSE_LAYOUTS))
            if sparse:
                seen.append(f"{func.__name__}({','.join(sparse)})")
            return func(*args, **(kwargs or {}))

    with torch.no_grad(), Watch():
        model(torch.zeros(input_shape, device=device))
    layers = [(n, m) for n, m in model.named_children() if isinstance(m, SparseLinear)]
    convs = [n for n, m in model.named_children() if isinstance(m, nn.Conv2d)]
    if not seen:
        return "none: no op ran on a sparse layout"
    kept = ", ".join(f"{n} {m.nnz / m.size:.1%} nonzero" for n, m in layers)
    ops = ", ".join(sorted(set(seen)))
    dense = f"; convolutions dense ({' '.join(convs)}): torch has no sparse CPU convolution" if convs else ""
    return f"{len(seen)} of {len(layers)} dense layers on CSR weights ({kept}): {ops}{dense}"


def _device(name: str) -> torch.device:
    if name == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError("CUDA requested but no GPU is available to torch")
        _set_gpu_precision()
    return torch.device(name)


def to_module(spec: ModelSpec, weights: dict[str, np.ndarray]) -> nn.Sequential:
    """The spec as named native layers in eval mode, weights loaded strictly (a missing tensor raises)."""
    shapes = {layer.name: shape_in for layer, shape_in, _ in spec.walk()}
    model = nn.Sequential(OrderedDict((layer.name, _layer(layer, shapes[layer.name])) for layer in spec.layers))
    model.load_state_dict(_state_dict(spec, weights), strict=True)
    return model.eval()


def _layer(layer: Layer, shape_in: tuple[int, ...]) -> nn.Module:
    if isinstance(layer, Conv):
        cin = shape_in[0]
        groups = cin if layer.depthwise else 1
        return nn.Conv2d(cin, layer.out, layer.kernel, layer.stride, layer.pad, groups=groups, bias=layer.bias)
    if isinstance(layer, BatchNorm):
        return nn.BatchNorm2d(shape_in[0], eps=BN_EPS)
    if isinstance(layer, ReLU):
        return nn.ReLU()
    if isinstance(layer, MaxPool):
        return nn.MaxPool2d(layer.size, layer.stride)
    if isinstance(layer, GlobalAvgPool):
        return nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
    if isinstance(layer, Flatten):
        return nn.Flatten()  # NCHW flattened from dim 1: C, H, W order, as the spec says
    if isinstance(layer, Dense):
        return nn.Linear(shape_in[0], layer.out)  # weight (out, in): the canonical layout as is
    if isinstance(layer, Softmax):
        return nn.Softmax(dim=1)
    raise TypeError(f"torch backend cannot lower {layer!r}")


# canonical tensor kind -> nn.BatchNorm2d state name
_BN_STATE = {"gamma": "weight", "beta": "bias", "mean": "running_mean", "var": "running_var"}


def _state_dict(spec: ModelSpec, weights: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    """Canonical keys renamed to torch's (only batch norm differs); arrays copied (canonical ones are read-only)."""
    state: dict[str, torch.Tensor] = {}
    for key, array in weights.items():
        prefix, kind = key.rsplit(".", 1)
        state[f"{prefix}.{_BN_STATE.get(kind, kind)}"] = torch.from_numpy(np.array(array, dtype=np.float32, copy=True))
    for bn in spec.layers:
        if isinstance(bn, BatchNorm):
            state[f"{bn.name}.num_batches_tracked"] = torch.tensor(0, dtype=torch.long)
    return state


def count_params(model: nn.Module) -> tuple[int, int]:
    """(parameters, batch-norm running mean + var) through torch's own API; ``num_batches_tracked`` is no state."""
    params = sum(p.numel() for p in model.parameters())
    buffers = sum(b.numel() for name, b in model.named_buffers() if name.endswith(("running_mean", "running_var")))
    return params, buffers


def make_runner(model: nn.Module, mode: str, input_shape: tuple[int, ...], device: torch.device) -> Callable[..., Any]:
    """What the forward calls for each mode: the module itself, its frozen trace, or its compiled wrapper."""
    if mode == "jit":
        return trace_and_freeze(model, torch.zeros(input_shape, device=device))
    if mode == "compile":
        return torch.compile(model)  # lazy: compiles on the first call, not here
    return model


def trace_and_freeze(model: nn.Module, example: torch.Tensor) -> torch.jit.ScriptModule:
    """TorchScript once, at build: trace, then freeze (weights inlined as constants, conv+BN folded).

    TorchScript is deprecated (torch 2.13 warns on every trace and freeze); the mode measures it
    on purpose, so that warning is silenced here and nowhere else.
    """
    with warnings.catch_warnings(), torch.no_grad():
        warnings.filterwarnings("ignore", message=r".*torch\.jit\.\w+` is deprecated", category=DeprecationWarning)
        traced = torch.jit.trace(model, example)
        return torch.jit.freeze(traced)


def _forward(runner: Callable[..., Any], device: torch.device, grad_mode: Any = torch.inference_mode) -> Forward:
    def forward(x: np.ndarray) -> np.ndarray:
        with grad_mode():
            y = runner(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).to(device))
            return y.cpu().numpy()  # .cpu() waits for the GPU: the fetch is inside the timed region

    return forward


# --- int8 --------------------------------------------------------------------------------------------------

# oneDNN primitives that do a network's products (reorders only move weights into its layouts).
ONEDNN_PRODUCTS = ("convolution", "inner_product", "matmul")
INT8_TYPES = ("u8", "s8")


def _build_int8(
    model: nn.Module, options: BuildOptions, input_shape: tuple[int, ...], device: torch.device, params: int,
    buffers: int,
) -> Built:  # fmt: skip
    """PT2E int8 of the module (see the module docstring), its runner for the mode, and the oneDNN probe."""
    if device.type != "cpu":
        raise ValueError("the int8 transform runs on the CPU only (torchao's X86 Inductor quantizer)")
    converted = quantize_pt2e(model, np.asarray(options.data["calibration"], dtype=np.float32), input_shape)
    if options.mode == "compile":
        runner: Callable[..., Any] = torch.compile(converted)
    elif options.mode == "jit":
        runner = trace_and_freeze(exported_eval(converted), torch.zeros(input_shape))
    else:
        runner = converted
    kernels = probe_int8(runner, input_shape, freezing=options.mode == "compile")
    _int8_facts.update({
        INT8_KERNELS: kernels,
        "int8_model": ("torchao PT2E: torch.export, prepare_pt2e with X86InductorQuantizer (default static config: "
                       "uint8 activations, per-channel int8 weights, min/max observers), convert_pt2e"
                       + (", torch.compile with Inductor freezing" if options.mode == "compile" else "")),
        "model_bytes": str(graph_bytes(converted)),
        "torchao": _torchao_version(),
    })  # fmt: skip
    return Built(_forward(runner, device), params=params, buffers=buffers, threads=torch.get_num_threads())


def quantize_pt2e(model: nn.Module, images: np.ndarray, input_shape: tuple[int, ...]) -> torch.fx.GraphModule:
    """The module exported, observed on ``images`` (in batches of the cell's static batch size) and converted."""
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e
    from torchao.quantization.pt2e.quantizer import x86_inductor_quantizer as xiq

    batch = input_shape[0]
    exported = torch.export.export(model, (torch.zeros(input_shape),)).module()
    quantizer = xiq.X86InductorQuantizer()
    quantizer.set_global(xiq.get_default_x86_inductor_quantization_config())
    prepared = prepare_pt2e(exported, quantizer)
    with torch.no_grad():
        for start in range(0, images.shape[0], batch):
            chunk = images[start : start + batch]
            if chunk.shape[0] < batch:  # the exported shape is static: the last batch completed from the first images
                chunk = np.concatenate([chunk, np.resize(images, (batch - chunk.shape[0], *images.shape[1:]))])
            prepared(torch.tensor(chunk))  # a copy: the calibration images are read-only
    return convert_pt2e(prepared)


def exported_eval(model: torch.fx.GraphModule) -> torch.fx.GraphModule:
    """The converted graph marked as in eval mode, which ``torch.jit.freeze`` requires: an exported module refuses
    ``.eval()``, since its graph is fixed at export, and it was exported from the eval-mode module."""
    from torchao.quantization.pt2e import move_exported_model_to_eval

    model = move_exported_model_to_eval(model)
    for module in model.modules():
        module.training = False
    return model


def graph_bytes(model: torch.fx.GraphModule) -> int:
    """The serialized size of the tensors the converted graph reads (int8 weights, scales, zero points, biases);
    its state dict also keeps the exported float weights, which no node reads."""
    import io

    used = {str(node.target) for node in model.graph.nodes if node.op == "get_attr"}
    tensors = {name: t for name, t in model.state_dict().items() if name in used}
    buffer = io.BytesIO()
    torch.save(tensors, buffer)
    return len(buffer.getvalue())


def _torchao_version() -> str:
    import torchao

    return str(torchao.__version__)


def probe_int8(runner: Callable[..., Any], input_shape: tuple[int, ...], *, freezing: bool) -> str:
    """One forward under oneDNN's verbose log (printed by C code on fd 1: captured there), as the timed forward
    runs it (``inference_mode``: a compiled runner is compiled here, for that grad mode, so never again)."""
    import ctypes
    import os
    import sys
    import tempfile

    import torch._inductor.config as inductor_config

    patch = inductor_config.patch(freezing=True) if freezing else contextlib.nullcontext()
    libc = ctypes.CDLL(None)
    with tempfile.TemporaryFile(mode="w+b") as log:
        sys.stdout.flush()
        saved = os.dup(1)
        os.dup2(log.fileno(), 1)
        try:
            with patch, torch.inference_mode(), torch.backends.mkldnn.verbose(torch.backends.mkldnn.VERBOSE_ON):
                runner(torch.zeros(input_shape))
        finally:
            libc.fflush(None)
            sys.stdout.flush()
            os.dup2(saved, 1)
            os.close(saved)
        log.seek(0)
        lines = log.read().decode("utf-8", "replace").splitlines()
    return describe_onednn(lines)


def describe_onednn(lines: list[str]) -> str:
    """The products oneDNN ran on int8 sources, from its verbose exec lines ("oneDNN convolution x2 (u8/s8:
    brg_conv_fwd:avx512_core_vnni), ... (oneDNN verbose)"), or "none: ..." with the float ones it ran."""
    int8: dict[str, int] = {}
    floats: dict[str, int] = {}
    for line in lines:
        fields = line.split(",")
        if not fields[0].startswith("onednn_verbose") or "exec" not in fields[:4]:
            continue
        at = fields.index("exec")
        if len(fields) <= at + 5 or fields[at + 2] not in ONEDNN_PRODUCTS:
            continue
        kind, implementation, memory = fields[at + 2], fields[at + 3], fields[at + 5]
        source, weight = re.search(r"src\w*:(\w+):", memory), re.search(r"wei:(\w+):", memory)
        dtype = source.group(1) if source else "?"
        key = f"{kind} x{{}} ({dtype}/{weight.group(1) if weight else '?'}: {implementation})"
        counts = int8 if dtype in INT8_TYPES else floats
        counts[key] = counts.get(key, 0) + 1
    float_text = ", ".join(key.format(n) for key, n in floats.items())
    if not int8:
        return (f"none: oneDNN ran no int8 primitive ({float_text or 'no oneDNN product primitive'}); "
                "the graph computes in float between its quantize and dequantize ops (oneDNN verbose)")  # fmt: skip
    tail = f"; float: {float_text}" if float_text else ""
    return f"oneDNN {', '.join(key.format(n) for key, n in int8.items())}{tail} (oneDNN verbose)"


# --- training ------------------------------------------------------------------------------------------

_CANONICAL_BN = {v: k for k, v in _BN_STATE.items()}


class TorchTrainer:
    """The spec's logits network trained by autograd and ``torch.optim.SGD`` (momentum, no dampening)."""

    def __init__(self, spec: ModelSpec, weights: dict[str, np.ndarray], options: TrainOptions) -> None:
        FRAMEWORK.check(options)
        self.device = _device(options.device)
        set_threads(options.threads)
        self.model = to_module(spec, weights).to(self.device).train()
        self.params, _ = count_params(self.model)
        self.threads: int | None = torch.get_num_threads()
        # dynamic=False: one fixed batch shape per step (and another for predict), never a dynamic graph
        self.runner = torch.compile(self.model, dynamic=False) if options.mode == "compile" else self.model
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=options.learning_rate, momentum=options.momentum)
        self.batch_norms = {layer.name for layer in spec.layers if isinstance(layer, BatchNorm)}

    def _tensor(self, array: np.ndarray, dtype: torch.dtype) -> torch.Tensor:
        array = np.ascontiguousarray(array)
        if not array.flags.writeable:  # torch shares the memory and may write it: never a read-only view
            array = array.copy()
        return torch.from_numpy(array).to(device=self.device, dtype=dtype)

    def step(self, x: np.ndarray, y: np.ndarray, record: bool) -> float | None:
        self.optimizer.zero_grad(set_to_none=True)
        loss = nn.functional.cross_entropy(self.runner(self._tensor(x, torch.float32)), self._tensor(y, torch.long))
        loss.backward()
        self.optimizer.step()
        return float(loss.detach().item()) if record else None  # .item() waits for the step

    def sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize()

    def predict(self, x: np.ndarray) -> np.ndarray:
        self.model.eval()
        try:
            with torch.no_grad():
                return self.runner(self._tensor(x, torch.float32)).cpu().numpy()  # type: ignore[no-any-return]
        finally:
            self.model.train()

    def weights(self) -> dict[str, np.ndarray]:
        """The state dict under canonical keys (batch norm renamed back; ``num_batches_tracked`` is no weight)."""
        found = {}
        for name, tensor in self.model.state_dict().items():
            prefix, kind = name.rsplit(".", 1)
            if kind == "num_batches_tracked":
                continue
            canonical = _CANONICAL_BN.get(kind, kind) if prefix in self.batch_norms else kind
            found[f"{prefix}.{canonical}"] = tensor.detach().cpu().numpy().astype(np.float32)
        return found


def train(spec: ModelSpec, weights: dict[str, np.ndarray], options: TrainOptions) -> TorchTrainer:
    return TorchTrainer(spec, weights, options)
