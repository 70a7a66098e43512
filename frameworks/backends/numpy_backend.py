"""NumPy: the hand-written network (im2col convolutions), also the float64 reference.

Every other framework's output is checked against ``reference_forward`` (this code in float64)
before anything is timed.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..models import BN_EPS, BatchNorm, Conv, Dense, Flatten, GlobalAvgPool, Layer, MaxPool, ModelSpec, ReLU, Softmax
from .registry import IN_EFFECT, BuildOptions, Built, Forward, FrameworkInfo

FRAMEWORK = FrameworkInfo(name="numpy", title="NumPy", import_name="numpy", modes=("im2col",), devices=("cpu",))

Op = Callable[[np.ndarray], np.ndarray]


def version() -> str:
    return np.__version__


def build_facts() -> dict[str, str]:
    """NumPy's BLAS as NumPy states it (its build config) and as loaded (threadpool info)."""
    facts: dict[str, str] = {}
    try:
        config = np.show_config(mode="dicts")  # type: ignore[call-arg]
        blas = config.get("Build Dependencies", {}).get("blas", {})
        facts["blas"] = str(blas.get("name", "unknown"))
        if blas.get("version"):
            facts["blas_version"] = str(blas["version"])
    except TypeError:  # NumPy < 1.25 has no dict mode: read the build-time info
        info = getattr(np, "__config__", None)
        libs = getattr(info, "blas_opt_info", {}) if info is not None else {}
        facts["blas"] = ",".join(libs.get("libraries", [])) or "unknown"
    loaded = loaded_blas()
    if loaded:
        facts["blas_loaded"] = loaded
    in_effect = _blas_name(loaded) or _blas_name(facts["blas"])  # what is loaded wins: Debian links a generic libblas
    if in_effect:
        facts[IN_EFFECT] = in_effect
    threads = blas_threads()
    if threads is not None:
        facts["blas_threads"] = str(threads)
    return facts


def _blas_name(text: str) -> str | None:
    lowered = text.lower()
    for token, name in (("mkl", "MKL"), ("openblas", "OpenBLAS"), ("blis", "BLIS")):
        if token in lowered:
            return name
    return None


def blas_threads() -> int | None:
    """Threads the loaded BLAS says it runs with (threadpoolctl asks the library itself), or None."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return None
    counts = [int(pool["num_threads"]) for pool in threadpool_info() if pool.get("user_api") == "blas"]
    return max(counts) if counts else None


def loaded_blas() -> str:
    """The BLAS shared libraries actually mapped into this process (what really runs)."""
    names: set[str] = set()
    try:
        with open("/proc/self/maps", encoding="utf-8") as maps:
            for line in maps:
                path = line.rsplit(" ", 1)[-1].strip()
                base = path.rsplit("/", 1)[-1]
                if any(tag in base for tag in ("openblas", "mkl_rt", "libmkl", "libblas", "blis", "libcblas")):
                    names.add(base)
    except OSError:
        return ""
    return ",".join(sorted(names))


def cuda_available() -> bool:
    return False


def build(spec: ModelSpec, weights: dict[str, np.ndarray], options: BuildOptions) -> Built:
    if options.device != "cpu":
        raise ValueError("numpy runs on the CPU only")
    forward = compile_network(spec, weights, np.float32)
    buffers = sum(a.size for k, a in weights.items() if k.endswith((".mean", ".var")))
    params = sum(a.size for a in weights.values()) - buffers
    return Built(forward, params=params, buffers=buffers, threads=blas_threads())


def reference_forward(spec: ModelSpec, weights: dict[str, np.ndarray], x: np.ndarray) -> np.ndarray:
    """The float64 reference every framework is checked against."""
    return compile_network(spec, weights, np.float64)(x)


def compile_network(spec: ModelSpec, weights: dict[str, np.ndarray], dtype: type[np.floating]) -> Forward:
    ops = [_lower(layer, weights, dtype) for layer in spec.layers]

    def forward(x: np.ndarray) -> np.ndarray:
        y = np.asarray(x, dtype=dtype)
        for op in ops:
            y = op(y)
        return y

    return forward


def _lower(layer: Layer, weights: dict[str, np.ndarray], dtype: type[np.floating]) -> Op:
    def w(kind: str) -> np.ndarray:
        return np.ascontiguousarray(weights[f"{layer.name}.{kind}"], dtype=dtype)

    if isinstance(layer, Conv):
        bias = w("bias") if layer.bias else None
        if layer.depthwise:
            return _depthwise(w("weight"), bias, layer.stride, layer.pad)
        return _conv_im2col(w("weight"), bias, layer.stride, layer.pad)
    if isinstance(layer, BatchNorm):
        scale = w("gamma") / np.sqrt(w("var") + dtype(BN_EPS))
        shift = w("beta") - w("mean") * scale
        return lambda x: x * scale[:, None, None] + shift[:, None, None]
    if isinstance(layer, ReLU):
        return lambda x: np.maximum(x, 0)
    if isinstance(layer, MaxPool):
        return lambda x: _maxpool(x, layer.size, layer.stride)
    if isinstance(layer, GlobalAvgPool):
        return lambda x: x.mean(axis=(2, 3))
    if isinstance(layer, Flatten):
        return lambda x: x.reshape(x.shape[0], -1)
    if isinstance(layer, Dense):
        weight_t, bias_d = np.ascontiguousarray(w("weight").T), w("bias")
        return lambda x: x @ weight_t + bias_d
    if isinstance(layer, Softmax):
        return _softmax
    raise TypeError(f"numpy backend cannot lower {layer!r}")


def im2col(x: np.ndarray, kernel: int, stride: int, pad: int) -> tuple[np.ndarray, int, int]:
    """Unfold (N, C, H, W) into columns (N, C*k*k, OH*OW), one strided copy per kernel tap."""
    n, c, h, w = x.shape
    if pad:
        x = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    oh = (h + 2 * pad - kernel) // stride + 1
    ow = (w + 2 * pad - kernel) // stride + 1
    cols = np.empty((n, c, kernel, kernel, oh, ow), dtype=x.dtype)
    for i in range(kernel):
        for j in range(kernel):
            cols[:, :, i, j] = x[:, :, i : i + stride * oh : stride, j : j + stride * ow : stride]
    return cols.reshape(n, c * kernel * kernel, oh * ow), oh, ow


def _conv_im2col(weight: np.ndarray, bias: np.ndarray | None, stride: int, pad: int) -> Op:
    out, _, kernel, _ = weight.shape
    matrix = weight.reshape(out, -1)

    def conv(x: np.ndarray) -> np.ndarray:
        cols, oh, ow = im2col(x, kernel, stride, pad)
        y = np.matmul(matrix, cols)  # (N, out, OH*OW)
        if bias is not None:
            y += bias[:, None]
        return y.reshape(x.shape[0], out, oh, ow)

    return conv


def _depthwise(weight: np.ndarray, bias: np.ndarray | None, stride: int, pad: int) -> Op:
    channels, _, kernel, _ = weight.shape
    taps = weight.reshape(channels, kernel, kernel)

    def conv(x: np.ndarray) -> np.ndarray:
        n, c, h, w = x.shape
        xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad))) if pad else x
        oh = (h + 2 * pad - kernel) // stride + 1
        ow = (w + 2 * pad - kernel) // stride + 1
        y = np.zeros((n, c, oh, ow), dtype=x.dtype)
        for i in range(kernel):
            for j in range(kernel):
                window = xp[:, :, i : i + stride * oh : stride, j : j + stride * ow : stride]
                y += window * taps[:, i, j][:, None, None]
        if bias is not None:
            y += bias[:, None, None]
        return y

    return conv


def _maxpool(x: np.ndarray, size: int, stride: int) -> np.ndarray:
    n, c, h, w = x.shape
    oh = (h - size) // stride + 1
    ow = (w - size) // stride + 1
    y = np.full((n, c, oh, ow), -np.inf, dtype=x.dtype)
    for i in range(size):
        for j in range(size):
            np.maximum(y, x[:, :, i : i + stride * oh : stride, j : j + stride * ow : stride], out=y)
    return y


def _softmax(x: np.ndarray) -> np.ndarray:
    z = x - x.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)
