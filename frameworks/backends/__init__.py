"""One thin module per framework (``<framework>_backend.py``), imported on demand by ``registry``.

A backend module provides::

    version() -> str
    build_facts() -> dict[str, str]       # BLAS, oneDNN/MKL, OpenMP, CUDA/cuDNN, as it states them
    cuda_available() -> bool
    build(spec, weights, options) -> Built   # Built(forward, params, buffers)

``Built.forward`` takes an NCHW float32 numpy batch and returns the softmax output as a numpy
array, covering feed + forward + fetch (and any device/engine synchronisation): exactly the
region the harness times. ``params``/``buffers`` are counted through the framework's own API
(so a missing layer shows up as a count that differs from the spec). Nothing else belongs in
a backend: timing, statistics and output live once in ``frameworks.harness``.
"""
