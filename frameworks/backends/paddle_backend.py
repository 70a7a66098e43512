"""PaddlePaddle 3: the spec as a ``paddle.nn.Sequential`` of native NCHW layers, run in dynamic-graph
mode or by the Paddle Inference predictor.

Modes:
- ``dynamic``: the eval-mode layer called eagerly under ``paddle.no_grad``, op by op;
- ``static``: the same layer converted by ``paddle.jit.to_static`` for the cell's one input shape,
  saved by ``paddle.jit.save`` and loaded by the Paddle Inference predictor
  (``paddle.inference.create_predictor``) with its IR optimisation passes on (they fuse convolution
  and batch norm, and more). All of it happens in ``build``; the saved files are removed once the
  predictor has loaded them.

oneDNN: Paddle reads ``FLAGS_use_onednn`` from the environment when it loads (the two catalog
variants set it). ``build`` makes the predictor's configuration agree with it
(``enable_onednn``/``disable_onednn``; the flag alone would otherwise put oneDNN kernels into a
predictor configured without them), and the facts report the flag from ``paddle.get_flags`` and
``onednn_enabled()`` read back from the predictor's configuration. In Paddle 3 the dynamic graph
does not run oneDNN on ordinary NCHW tensors whatever the flag says: its kernel dispatch picks
the oneDNN backend only for tensors already in oneDNN's layout. There ``in_effect`` is Paddle's
CPU kernels on MKL. The tests check both statements against oneDNN's own verbose log.

Threads: ``dynamic`` sets them with ``paddle.base.core.set_num_threads`` (MKL and OpenMP) and reads
them back from MKL itself (``MKL_Get_Max_Threads`` of the libmklml that Paddle ships); ``static``
sets ``Config.set_cpu_math_library_num_threads`` and reads the predictor's configuration back.

Paddle lives in an environment of its own: paddlepaddle 3.3 pins ``opt_einsum==3.3.0`` (the host's
TensorFlow environment has 3.4), and it bundles its own MKL and oneDNN.
"""

from __future__ import annotations

import ctypes
import os
import tempfile
import warnings
from collections import OrderedDict
from typing import Any

import numpy as np

with warnings.catch_warnings():  # paddle.utils.cpp_extension warns at import that ccache is missing
    warnings.simplefilter("ignore", UserWarning)
    import paddle
    from paddle import inference, nn

from ..environment import thread_count
from ..models import BN_EPS, BatchNorm, Conv, Dense, Flatten, GlobalAvgPool, Layer, MaxPool, ModelSpec, ReLU, Softmax
from .registry import IN_EFFECT, BuildOptions, Built, Forward, FrameworkInfo

FRAMEWORK = FrameworkInfo(
    name="paddle",
    title="PaddlePaddle",
    import_name="paddle",
    modes=("dynamic", "static"),
    devices=("cpu",),
    mode_pairs=(("dynamic", "static"),),
    transform_notes=(
        (
            "int8",
            "Paddle's post-training quantization (paddle.static.quantization) is not wired into this project",
        ),
    ),
)
ONEDNN_FLAGS = ("FLAGS_use_onednn", "FLAGS_use_mkldnn")  # the second is the older name Paddle still reads
MKL_LIBRARY = "libmklml_intel.so"
INPUT_NAME = "x"

# canonical tensor kind -> paddle.nn.BatchNorm2D parameter name
_BN_PARAM = {"gamma": "weight", "beta": "bias", "mean": "_mean", "var": "_variance"}
_RUNNING = ("_mean", "_variance")

# Facts of the last build: the mode, what it configured and read back.
_state: dict[str, str] = {}


def version() -> str:
    return str(paddle.__version__)


def cuda_available() -> bool:
    return False


def onednn_flag() -> bool:
    """Whether Paddle's own flags ask for oneDNN kernels (read from the environment when Paddle loaded)."""
    flags = paddle.get_flags(list(ONEDNN_FLAGS))
    return any(bool(flags[name]) for name in ONEDNN_FLAGS)


def blas() -> str:
    return "MKL" if str(paddle.version.with_mkl).upper() == "ON" else "OpenBLAS"


def build_facts() -> dict[str, str]:
    """Paddle's build and flags as Paddle states them, plus what the last build configured and read back."""
    flags = paddle.get_flags(list(ONEDNN_FLAGS))
    facts = {
        "paddle": version(),
        "commit": str(paddle.version.commit)[:12],
        "with_mkl": str(paddle.version.with_mkl),
        "compiled_with_onednn": str(paddle.base.core.is_compiled_with_onednn()),
        "cuda": str(paddle.version.cuda()),
        **{name: str(bool(value)) for name, value in flags.items()},
    }
    facts.update(_state)
    return facts


def _mkl() -> Any | None:
    path = os.path.join(os.path.dirname(paddle.__file__), "libs", MKL_LIBRARY)
    try:
        return ctypes.CDLL(path)  # the copy Paddle loaded: the same handle, the same settings
    except OSError:
        return None


def mkl_threads() -> int | None:
    """The threads MKL says it runs with on this thread, or None when this Paddle has no MKL."""
    library = _mkl()
    return int(library.MKL_Get_Max_Threads()) if library is not None else None


def build(spec: ModelSpec, weights: dict[str, np.ndarray], options: BuildOptions) -> Built:
    FRAMEWORK.check(options)
    paddle.set_device("cpu")
    threads = thread_count(options.threads)
    model = to_layer(spec, weights)
    params, buffers = count_params(model)
    _state.clear()
    _state.update(mode=options.mode, threads_requested=str(threads))
    if options.mode == "dynamic":
        paddle.base.core.set_num_threads(threads)
        effective = mkl_threads()
        _state.update({"mkl_threads": str(effective), "onednn_in_use": "False", IN_EFFECT: blas()})
        return Built(_dynamic_forward(model), params=params, buffers=buffers, threads=effective)
    predictor, config = make_predictor(model, (options.batch, *spec.input_shape), threads)
    in_use = bool(config.onednn_enabled())
    _state.update(
        onednn_enabled=str(in_use),
        onednn_in_use=str(in_use),
        cpu_math_library_num_threads=str(config.cpu_math_library_num_threads()),
        ir_optim=str(config.ir_optim()),
    )
    _state[IN_EFFECT] = "oneDNN" if in_use else blas()
    return Built(
        _static_forward(predictor), params=params, buffers=buffers, threads=int(config.cpu_math_library_num_threads())
    )


def to_layer(spec: ModelSpec, weights: dict[str, np.ndarray]) -> nn.Sequential:
    """The spec as named native layers in eval mode, canonical weights loaded strictly."""
    layers = OrderedDict((layer.name, _layer(layer, shape_in)) for layer, shape_in, _ in spec.walk())
    model = nn.Sequential(*layers.items())
    load_weights(model, weights)
    model.eval()
    return model


def _layer(layer: Layer, shape_in: tuple[int, ...]) -> nn.Layer:
    if isinstance(layer, Conv):
        cin = shape_in[0]
        groups = cin if layer.depthwise else 1
        bias = None if layer.bias else False  # None: Paddle's default bias; False: none
        return nn.Conv2D(cin, layer.out, layer.kernel, layer.stride, layer.pad, groups=groups, bias_attr=bias,
                         data_format="NCHW")  # fmt: skip
    if isinstance(layer, BatchNorm):
        return nn.BatchNorm2D(shape_in[0], epsilon=BN_EPS, data_format="NCHW", use_global_stats=True)
    if isinstance(layer, ReLU):
        return nn.ReLU()
    if isinstance(layer, MaxPool):
        return nn.MaxPool2D(layer.size, layer.stride)
    if isinstance(layer, GlobalAvgPool):
        return nn.Sequential(nn.AdaptiveAvgPool2D(1), nn.Flatten())
    if isinstance(layer, Flatten):
        return nn.Flatten()  # NCHW flattened from axis 1: C, H, W order, as the spec says
    if isinstance(layer, Dense):
        return nn.Linear(shape_in[0], layer.out)  # weight (in, out): the canonical (out, in) transposed
    if isinstance(layer, Softmax):
        return nn.Softmax(axis=1)
    raise TypeError(f"paddle backend cannot lower {layer!r}")


def load_weights(model: nn.Layer, weights: dict[str, np.ndarray]) -> None:
    """Every Paddle parameter set from exactly one canonical tensor (a missing or extra one raises)."""
    state: dict[str, np.ndarray] = {}
    for key, array in weights.items():
        prefix, kind = key.rsplit(".", 1)
        value = np.array(array, dtype=np.float32, copy=True)
        if kind == "weight" and value.ndim == 2:
            value = np.ascontiguousarray(value.T)  # dense (out, in) -> Paddle's (in, out)
        state[f"{prefix}.{_BN_PARAM.get(kind, kind)}"] = value
    names = set(model.state_dict())
    if names != set(state):
        raise KeyError(f"canonical tensors and Paddle parameters differ: {sorted(names ^ set(state))}")
    model.set_state_dict(state)


def count_params(model: nn.Layer) -> tuple[int, int]:
    """(trainable parameters, batch-norm running mean + var) through Paddle's own parameter API.

    Paddle keeps the running statistics as parameters that take no gradient (``stop_gradient``).
    """
    trainable = running = 0
    for name, p in model.named_parameters():
        size = int(np.prod(p.shape))
        if not p.stop_gradient:
            trainable += size
        elif name.endswith(_RUNNING):
            running += size
    return trainable, running


def make_predictor(model: nn.Layer, input_shape: tuple[int, ...], threads: int) -> tuple[Any, Any]:
    """The layer as a static program for one input shape, loaded by a Paddle Inference predictor.

    oneDNN is configured as Paddle's flag says; the predictor and its configuration are returned
    (the configuration is read back for the facts).
    """
    spec = [paddle.static.InputSpec(list(input_shape), "float32", INPUT_NAME)]
    static = paddle.jit.to_static(model, input_spec=spec, full_graph=True)
    with tempfile.TemporaryDirectory(prefix="dlbench-paddle-") as tmp:
        prefix = os.path.join(tmp, "model")
        paddle.jit.save(static, prefix)
        program = next(f"{prefix}{suffix}" for suffix in (".json", ".pdmodel") if os.path.exists(prefix + suffix))
        config = inference.Config(program, f"{prefix}.pdiparams")
        config.disable_gpu()
        config.disable_glog_info()
        config.switch_ir_optim(True)
        config.set_cpu_math_library_num_threads(threads)
        if onednn_flag():
            config.enable_onednn()
        else:
            config.disable_onednn()
        predictor = inference.create_predictor(config)  # reads the files: they may go after this
    return predictor, config


def _dynamic_forward(model: nn.Layer) -> Forward:
    def forward(x: np.ndarray) -> np.ndarray:
        with paddle.no_grad():
            y = model(paddle.to_tensor(np.ascontiguousarray(x, dtype=np.float32)))
            return y.numpy()  # type: ignore[no-any-return]  # a copy to NumPy: the fetch is timed

    return forward


def _static_forward(predictor: Any) -> Forward:
    (source,) = (predictor.get_input_handle(name) for name in predictor.get_input_names())
    (sink,) = (predictor.get_output_handle(name) for name in predictor.get_output_names())

    def forward(x: np.ndarray) -> np.ndarray:
        source.copy_from_cpu(np.ascontiguousarray(x, dtype=np.float32))
        predictor.run()
        return sink.copy_to_cpu()  # type: ignore[no-any-return]

    return forward
