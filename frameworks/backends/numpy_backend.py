"""NumPy: the hand-written network (im2col convolutions), also the float64 reference.

Every other framework's output is checked against ``reference_forward`` (this code in float64)
before anything is timed. Training is hand-written too (``NumpyTrainer``: the "handcrafted" row):
a backward pass per layer kind (im2col convolution, ReLU, max pool, flatten, global average pool,
dense), the softmax cross-entropy gradient and SGD with momentum; in float64
(``reference_trainer``) it is the reference every framework's training is checked against.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..models import BN_EPS, BatchNorm, Conv, Dense, Flatten, GlobalAvgPool, Layer, MaxPool, ModelSpec, ReLU, Softmax
from .registry import IN_EFFECT, BuildOptions, Built, Forward, FrameworkInfo, TrainOptions

FRAMEWORK = FrameworkInfo(
    name="numpy",
    title="NumPy",
    import_name="numpy",
    modes=("im2col",),
    devices=("cpu",),
    train_modes=("im2col",),
    transform_notes=(
        (
            "int8",
            "NumPy has no integer matrix kernels (its BLAS multiplies floats): int8 would run as float arithmetic",
        ),
    ),
)

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
    FRAMEWORK.check(options)
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


# --- training: the hand-written backward pass ----------------------------------------------------------

Cache = tuple[object, ...]
Grads = dict[str, np.ndarray]


class _TrainOp:
    """One layer with its backward pass: ``forward`` keeps what ``backward`` needs, ``backward`` returns
    the gradient for the layer's input (None where nobody needs it) and for its weights."""

    def forward(self, x: np.ndarray, params: dict[str, np.ndarray]) -> tuple[np.ndarray, Cache]:
        raise NotImplementedError

    def backward(self, dy: np.ndarray, cache: Cache, params: dict[str, np.ndarray]) -> tuple[np.ndarray | None, Grads]:
        raise NotImplementedError


class _ConvOp(_TrainOp):
    """y = W · im2col(x) + b. dW = dy · colsᵀ (summed over the batch), db = Σ dy, dx = col2im(Wᵀ · dy)."""

    def __init__(self, layer: Conv, needs_dx: bool) -> None:
        if layer.depthwise:
            raise TypeError(f"{layer.name}: the hand-written trainer has no depthwise convolution")
        self.name, self.stride, self.pad, self.bias, self.needs_dx = (
            layer.name, layer.stride, layer.pad, layer.bias, needs_dx
        )  # fmt: skip

    def forward(self, x: np.ndarray, params: dict[str, np.ndarray]) -> tuple[np.ndarray, Cache]:
        weight = params[f"{self.name}.weight"]
        out, _, kernel, _ = weight.shape
        cols, oh, ow = im2col(x, kernel, self.stride, self.pad)
        y = np.matmul(weight.reshape(out, -1), cols)
        if self.bias:
            y += params[f"{self.name}.bias"][:, None]
        return y.reshape(x.shape[0], out, oh, ow), (cols, x.shape)

    def backward(self, dy: np.ndarray, cache: Cache, params: dict[str, np.ndarray]) -> tuple[np.ndarray | None, Grads]:
        cols, shape = cache
        assert isinstance(cols, np.ndarray) and isinstance(shape, tuple)
        weight = params[f"{self.name}.weight"]
        out = weight.shape[0]
        dy2 = dy.reshape(dy.shape[0], out, -1)  # (N, O, L)
        grads = {f"{self.name}.weight": np.tensordot(dy2, cols, axes=([0, 2], [0, 2])).reshape(weight.shape)}
        if self.bias:
            grads[f"{self.name}.bias"] = dy2.sum(axis=(0, 2))
        if not self.needs_dx:
            return None, grads
        dcols = np.matmul(weight.reshape(out, -1).T, dy2)  # (N, C*k*k, L)
        return col2im(dcols, shape, weight.shape[2], self.stride, self.pad), grads


class _ReluOp(_TrainOp):
    def forward(self, x: np.ndarray, params: dict[str, np.ndarray]) -> tuple[np.ndarray, Cache]:
        return np.maximum(x, 0), (x > 0,)

    def backward(self, dy: np.ndarray, cache: Cache, params: dict[str, np.ndarray]) -> tuple[np.ndarray | None, Grads]:
        (mask,) = cache
        return dy * mask, {}


class _MaxPoolOp(_TrainOp):
    """The gradient goes to the first maximum of each window in row-major order (as torch routes ties)."""

    def __init__(self, layer: MaxPool) -> None:
        self.size, self.stride = layer.size, layer.stride

    def forward(self, x: np.ndarray, params: dict[str, np.ndarray]) -> tuple[np.ndarray, Cache]:
        y = _maxpool(x, self.size, self.stride)
        return y, (x, y)

    def backward(self, dy: np.ndarray, cache: Cache, params: dict[str, np.ndarray]) -> tuple[np.ndarray | None, Grads]:
        x, y = cache
        assert isinstance(x, np.ndarray) and isinstance(y, np.ndarray)
        s, (oh, ow) = self.stride, y.shape[2:]
        dx = np.zeros_like(x)
        taken = np.zeros(y.shape, dtype=bool)
        for i in range(self.size):
            for j in range(self.size):
                window = (slice(None), slice(None), slice(i, i + s * oh, s), slice(j, j + s * ow, s))
                hit = (x[window] == y) & ~taken
                dx[window] += np.where(hit, dy, 0)
                taken |= hit
        return dx, {}


class _FlattenOp(_TrainOp):
    def forward(self, x: np.ndarray, params: dict[str, np.ndarray]) -> tuple[np.ndarray, Cache]:
        return x.reshape(x.shape[0], -1), (x.shape,)

    def backward(self, dy: np.ndarray, cache: Cache, params: dict[str, np.ndarray]) -> tuple[np.ndarray | None, Grads]:
        (shape,) = cache
        assert isinstance(shape, tuple)
        return dy.reshape(shape), {}


class _GlobalAvgPoolOp(_TrainOp):
    def forward(self, x: np.ndarray, params: dict[str, np.ndarray]) -> tuple[np.ndarray, Cache]:
        return x.mean(axis=(2, 3)), (x.shape,)

    def backward(self, dy: np.ndarray, cache: Cache, params: dict[str, np.ndarray]) -> tuple[np.ndarray | None, Grads]:
        (shape,) = cache
        assert isinstance(shape, tuple)
        _, _, h, w = shape
        return np.broadcast_to((dy / (h * w))[:, :, None, None], shape).copy(), {}


class _DenseOp(_TrainOp):
    """y = x Wᵀ + b. dW = dyᵀ x, db = Σ dy, dx = dy W."""

    def __init__(self, layer: Dense) -> None:
        self.name = layer.name

    def forward(self, x: np.ndarray, params: dict[str, np.ndarray]) -> tuple[np.ndarray, Cache]:
        return x @ params[f"{self.name}.weight"].T + params[f"{self.name}.bias"], (x,)

    def backward(self, dy: np.ndarray, cache: Cache, params: dict[str, np.ndarray]) -> tuple[np.ndarray | None, Grads]:
        (x,) = cache
        assert isinstance(x, np.ndarray)
        grads = {f"{self.name}.weight": dy.T @ x, f"{self.name}.bias": dy.sum(axis=0)}
        return dy @ params[f"{self.name}.weight"], grads


def _train_op(layer: Layer, first: bool) -> _TrainOp:
    if isinstance(layer, Conv):
        return _ConvOp(layer, needs_dx=not first)
    if isinstance(layer, ReLU):
        return _ReluOp()
    if isinstance(layer, MaxPool):
        return _MaxPoolOp(layer)
    if isinstance(layer, Flatten):
        return _FlattenOp()
    if isinstance(layer, GlobalAvgPool):
        return _GlobalAvgPoolOp()
    if isinstance(layer, Dense):
        return _DenseOp(layer)
    raise TypeError(f"the hand-written trainer has no backward pass for {type(layer).__name__} ({layer.name})")


def col2im(cols: np.ndarray, shape: tuple[int, ...], kernel: int, stride: int, pad: int) -> np.ndarray:
    """The adjoint of ``im2col``: each column entry added back onto the input position it was copied from."""
    n, c, h, w = shape
    oh = (h + 2 * pad - kernel) // stride + 1
    ow = (w + 2 * pad - kernel) // stride + 1
    taps = cols.reshape(n, c, kernel, kernel, oh, ow)
    dx = np.zeros((n, c, h + 2 * pad, w + 2 * pad), dtype=cols.dtype)
    for i in range(kernel):
        for j in range(kernel):
            dx[:, :, i : i + stride * oh : stride, j : j + stride * ow : stride] += taps[:, :, i, j]
    return dx[:, :, pad : pad + h, pad : pad + w] if pad else dx


def softmax_cross_entropy(logits: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The mean cross-entropy of softmax(logits) over the batch, and its gradient for the logits."""
    n = logits.shape[0]
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    total = exp.sum(axis=1, keepdims=True)
    rows = np.arange(n)
    loss = (np.log(total[:, 0]) - shifted[rows, labels]).mean()
    grad = exp / total
    grad[rows, labels] -= 1
    return loss, grad / logits.dtype.type(n)


class NumpyTrainer:
    """The spec's logits network trained by hand in ``dtype``: forward with caches, backward layer by layer,
    then SGD with momentum as torch.optim.SGD writes it (v = μ·v + g, w = w − lr·v; with a constant
    learning rate the same update as Keras's and MXNet's v = μ·v − lr·g, w = w + v)."""

    def __init__(self, spec: ModelSpec, weights: dict[str, np.ndarray], options: TrainOptions,
                 dtype: type[np.floating]) -> None:  # fmt: skip
        if options.device != "cpu":  # the reference trainer takes any framework's options
            raise ValueError("numpy trains on the CPU only")
        self.dtype = dtype
        self.ops = [_train_op(layer, i == 0) for i, layer in enumerate(spec.layers)]
        self.state = {key: np.array(weights[key], dtype=dtype) for key in spec.tensors()}
        self.velocity = {key: np.zeros_like(value) for key, value in self.state.items()}
        self.learning_rate, self.momentum = dtype(options.learning_rate), dtype(options.momentum)
        self.params = sum(a.size for a in self.state.values())
        self.threads = blas_threads()

    def forward(self, x: np.ndarray) -> tuple[np.ndarray, list[Cache]]:
        y = np.asarray(x, dtype=self.dtype)
        caches = []
        for op in self.ops:
            y, cache = op.forward(y, self.state)
            caches.append(cache)
        return y, caches

    def gradients(self, x: np.ndarray, y: np.ndarray) -> tuple[float, Grads]:
        """The batch's mean loss and its gradient for every weight (the weights unchanged)."""
        logits, caches = self.forward(x)
        loss, grad = softmax_cross_entropy(logits, np.asarray(y, dtype=np.int64))
        grads: Grads = {}
        upstream: np.ndarray | None = grad
        for op, cache in zip(reversed(self.ops), reversed(caches), strict=True):
            assert upstream is not None
            upstream, found = op.backward(upstream, cache, self.state)
            grads.update(found)
        return float(loss), grads

    def step(self, x: np.ndarray, y: np.ndarray, record: bool) -> float | None:
        loss, grads = self.gradients(x, y)
        for key, grad in grads.items():
            velocity = self.velocity[key]
            velocity *= self.momentum
            velocity += grad
            self.state[key] -= self.learning_rate * velocity
        return loss if record else None

    def sync(self) -> None:
        """NumPy is synchronous: every step has run when it returns."""

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.forward(x)[0].astype(np.float32)

    def weights(self) -> dict[str, np.ndarray]:
        return {key: value.astype(np.float32) for key, value in self.state.items()}


def train(spec: ModelSpec, weights: dict[str, np.ndarray], options: TrainOptions) -> NumpyTrainer:
    """The handcrafted row: the hand-written trainer in float32."""
    FRAMEWORK.check(options)
    return NumpyTrainer(spec, weights, options, np.float32)


def reference_trainer(spec: ModelSpec, weights: dict[str, np.ndarray], options: TrainOptions) -> NumpyTrainer:
    """The same trainer in float64: the reference of the fidelity checks."""
    return NumpyTrainer(spec, weights, options, np.float64)
