"""Our cells against straightforward hand-written scripts of the same networks, alternating in one run.

A framework's cell must cost what the framework costs: lowering the spec adds layers of our own
(explicit padding, a layout permute, renamed parameters), and any of them could make a cell slower
than the script a user would write. For each framework, mode and model, this builds our cell's
forward and a hand-written model of the same architecture in the same framework and mode (the way
its documentation writes it: Keras with ``padding="same"`` on NHWC input, ``torch.nn`` modules,
Gluon's model zoo, ONNX exported by ``torch.onnx``), then alternates blocks of timed iterations of
the two in one process and prints ours / hand-written, paired round by round, with its 95%
confidence interval (the target is at most 1.03). Each framework runs in a process of its own with
the same thread count.

    python -m benchmarks.bench_handwritten [--frameworks torch tensorflow onnxruntime mxnet]
        [--models lenet5 mobilenet_v1 vgg16] [--threads 2] [--rounds 16] [--block 10] [--block-time 0.2]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
MODES = {"torch": ("eager", "compile"), "tensorflow": ("graph", "xla"), "onnxruntime": ("session",),
         "mxnet": ("hybrid",)}  # fmt: skip  # each framework's fast modes

Forward = Callable[[Any], Any]


# --- the hand-written scripts ----------------------------------------------------------------------


def torch_module(model: str) -> tuple[Any, tuple[int, ...]]:
    """The network as torch.nn modules, written out as a tutorial would, in eval mode, and its input shape."""
    from torch import nn

    def conv_bn(cin: int, cout: int, stride: int, groups: int = 1, k: int = 3) -> list[nn.Module]:
        return [nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]

    if model == "lenet5":
        net = nn.Sequential(nn.Conv2d(3, 6, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(6, 16, 5), nn.ReLU(),
                            nn.MaxPool2d(2), nn.Flatten(), nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84),
                            nn.ReLU(), nn.Linear(84, 10), nn.Softmax(1))  # fmt: skip
        shape = (1, 3, 32, 32)
    elif model == "vgg16":
        layers: list[nn.Module] = []
        cin = 3
        for v in (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"):
            if v == "M":
                layers.append(nn.MaxPool2d(2))
            else:
                layers += [nn.Conv2d(cin, int(v), 3, padding=1), nn.ReLU()]
                cin = int(v)
        net = nn.Sequential(*layers, nn.Flatten(), nn.Linear(25088, 4096), nn.ReLU(), nn.Linear(4096, 4096),
                            nn.ReLU(), nn.Linear(4096, 1000), nn.Softmax(1))  # fmt: skip
        shape = (1, 3, 224, 224)
    else:
        layers = conv_bn(3, 32, 2)
        cin = 32
        for cout, stride in ((64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2), *[(512, 1)] * 5, (1024, 2),
                             (1024, 1)):  # fmt: skip
            layers += conv_bn(cin, cin, stride, groups=cin) + conv_bn(cin, cout, 1, k=1)
            cin = cout
        net = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(1024, 1000), nn.Softmax(1))
        shape = (1, 3, 224, 224)
    return net.eval(), shape


def torch_script(model: str, mode: str, threads: int) -> tuple[Forward, tuple[int, ...]]:
    import torch

    torch.set_num_threads(threads)
    net, shape = torch_module(model)
    runner = torch.compile(net) if mode == "compile" else net

    def forward(x: Any) -> Any:
        with torch.inference_mode():
            return runner(torch.from_numpy(x)).numpy()

    return forward, shape


def tensorflow_script(model: str, mode: str, threads: int) -> tuple[Forward, tuple[int, ...]]:
    import keras
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    L = keras.layers
    if model == "lenet5":
        layers = [L.Conv2D(6, 5, activation="relu"), L.MaxPooling2D(), L.Conv2D(16, 5, activation="relu"),
                  L.MaxPooling2D(), L.Flatten(), L.Dense(120, activation="relu"), L.Dense(84, activation="relu"),
                  L.Dense(10, activation="softmax")]  # fmt: skip
        shape = (1, 32, 32, 3)
    elif model == "vgg16":
        layers = []
        for v in (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"):
            layers.append(L.MaxPooling2D() if v == "M" else L.Conv2D(int(v), 3, padding="same", activation="relu"))
        layers += [L.Flatten(), L.Dense(4096, activation="relu"), L.Dense(4096, activation="relu"),
                   L.Dense(1000, activation="softmax")]  # fmt: skip
        shape = (1, 224, 224, 3)
    else:
        layers = [L.Conv2D(32, 3, 2, padding="same", use_bias=False), L.BatchNormalization(), L.ReLU()]
        for cout, stride in ((64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2), *[(512, 1)] * 5, (1024, 2),
                             (1024, 1)):  # fmt: skip
            layers += [L.DepthwiseConv2D(3, stride, padding="same", use_bias=False), L.BatchNormalization(), L.ReLU(),
                       L.Conv2D(cout, 1, use_bias=False), L.BatchNormalization(), L.ReLU()]  # fmt: skip
        layers += [L.GlobalAveragePooling2D(), L.Dense(1000, activation="softmax")]
        shape = (1, 224, 224, 3)
    net = keras.Sequential([keras.Input(shape[1:]), *layers])
    run = tf.function(lambda x: net(x, training=False), input_signature=[tf.TensorSpec(shape, tf.float32)],
                      jit_compile=mode == "xla")  # fmt: skip
    return (lambda x: run(tf.convert_to_tensor(x)).numpy()), shape


def onnxruntime_script(model: str, mode: str, threads: int) -> tuple[Forward, tuple[int, ...]]:
    """What most people run ONNX Runtime on: a model exported from PyTorch by ``torch.onnx``."""
    import io

    import onnxruntime as ort
    import torch

    net, shape = torch_module(model)
    buffer = io.BytesIO()
    torch.onnx.export(net, (torch.zeros(shape),), buffer, input_names=["x"], output_names=["y"], dynamo=False)
    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    session = ort.InferenceSession(buffer.getvalue(), options, providers=["CPUExecutionProvider"])
    return (lambda x: session.run(["y"], {"x": x})[0]), shape


def mxnet_script(model: str, mode: str, threads: int) -> tuple[Forward, tuple[int, ...]]:
    import mxnet as mx
    from mxnet.gluon.model_zoo import vision

    if model == "lenet5":
        nn = mx.gluon.nn
        net = nn.HybridSequential()
        net.add(nn.Conv2D(6, 5, activation="relu"), nn.MaxPool2D(2), nn.Conv2D(16, 5, activation="relu"))
        net.add(nn.MaxPool2D(2), nn.Dense(120, activation="relu"), nn.Dense(84, activation="relu"), nn.Dense(10))
        shape = (1, 3, 32, 32)
    else:
        net = vision.vgg16() if model == "vgg16" else vision.mobilenet1_0()
        shape = (1, 3, 224, 224)
    net.initialize(mx.init.Xavier())
    net.hybridize(static_alloc=True, static_shape=True)
    return (lambda x: net(mx.nd.array(x)).softmax().asnumpy()), shape


SCRIPTS = {"torch": torch_script, "tensorflow": tensorflow_script, "onnxruntime": onnxruntime_script,
           "mxnet": mxnet_script}  # fmt: skip


# --- one framework, in its own process ---------------------------------------------------------------


def _blocks(ours: Forward, theirs: Forward, ours_shape: tuple[int, ...], theirs_shape: tuple[int, ...],
            rounds: int, block: int) -> tuple[list[float], list[float]]:  # fmt: skip
    """Alternating blocks (ours first in even rounds), fresh inputs outside the timer; per-iteration samples."""
    import numpy as np

    rng = np.random.default_rng(0)
    samples: dict[str, list[float]] = {"ours": [], "theirs": []}
    for r in range(rounds):
        order = [("ours", ours, ours_shape), ("theirs", theirs, theirs_shape)]
        for name, forward, shape in order if r % 2 == 0 else order[::-1]:
            for _ in range(block):
                x = rng.standard_normal(shape, dtype=np.float32)
                start = time.perf_counter_ns()
                forward(x)
                samples[name].append((time.perf_counter_ns() - start) * 1e-9)
    return samples["ours"], samples["theirs"]


def block_size(samples: list[float], block: int, block_time: float) -> int:
    """Iterations per block: at least ``block``, and enough for ``block_time`` seconds of the slower side.

    A block of ten LeNet-5 iterations lasts under a millisecond, and the first calls after a switch
    between two models in one process pay for the switch (caches, a thread pool waking up): with
    blocks that short, which model ran first decided a 10% difference. Blocks of a tenth of a second
    or more leave that cost in the noise.
    """
    per_iteration = max(statistics.median(samples), 1e-9)
    return max(block, math.ceil(block_time / per_iteration))


def paired_ratio(ours: list[float], theirs: list[float], block: int) -> tuple[float, float, float]:
    """Ours over hand-written, round by round: the median of the rounds' ratios of block medians, and
    its 95% confidence interval (order statistics, ``frameworks.stats.median_ci``).

    Both blocks of a round ran back to back, so a slow minute of the machine (this VM drifts by 5-10%
    over a VGG-16 run) moves both and cancels in their ratio, where it would not in a ratio of the
    two overall medians.
    """
    from frameworks.stats import median_ci

    ratios = sorted(
        statistics.median(ours[i : i + block]) / statistics.median(theirs[i : i + block])
        for i in range(0, min(len(ours), len(theirs)), block)
    )
    low, high = median_ci(ratios)
    return statistics.median(ratios), low, high


def child(framework: str, mode: str, model: str, threads: int, rounds: int, block: int,
          block_time: float) -> dict[str, Any]:  # fmt: skip
    from frameworks.backends.registry import BuildOptions, load_backend
    from frameworks.environment import LoadMeter
    from frameworks.models import get_model
    from frameworks.weights import canonical_weights

    spec = get_model(model)
    built = load_backend(framework).build(spec, canonical_weights(spec), BuildOptions(mode, "cpu", threads))
    theirs, theirs_shape = SCRIPTS[framework](model, mode, threads)
    ours_shape = (1, *spec.input_shape)
    warm_ours, warm_theirs = _blocks(built.forward, theirs, ours_shape, theirs_shape, 1, 5)  # compiles, caches
    block = block_size(warm_ours[1:] + warm_theirs[1:], block, block_time)
    meter = LoadMeter()
    meter.start()
    ours, hand = _blocks(built.forward, theirs, ours_shape, theirs_shape, rounds, block)
    load = meter.stop()
    ratio, low, high = paired_ratio(ours, hand, block)
    return {"ours_ms": statistics.median(ours) * 1e3, "theirs_ms": statistics.median(hand) * 1e3, "load": load,
            "block": block, "ratio": ratio, "ratio_ci": [low, high]}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frameworks", nargs="+", default=list(SCRIPTS))
    parser.add_argument("--models", nargs="+", default=["lenet5", "mobilenet_v1", "vgg16"])
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--rounds", type=int, default=16, help="alternations of the two (default 16)")
    parser.add_argument("--block", type=int, default=10, help="at least this many iterations per block")
    parser.add_argument("--block-time", type=float, default=0.2,
                        help="and at least this many seconds per block (default 0.2)")  # fmt: skip
    parser.add_argument("--python-mxnet", default=os.environ.get("BENCH_PYTHON_MXNET"),
                        help="the interpreter that has MXNet (default: the runner's local venv)")  # fmt: skip
    parser.add_argument("--child", nargs=4, metavar=("FRAMEWORK", "MODE", "MODEL", "_"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        framework, mode, model, _ = args.child
        print(json.dumps(child(framework, mode, model, args.threads, args.rounds, args.block, args.block_time)))
        return 0
    from tabulate import tabulate

    from frameworks.environment import THREAD_ENV

    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **{n: str(args.threads) for n in THREAD_ENV}}
    rows = []
    for framework in args.frameworks:
        python = _python(framework, args.python_mxnet)
        for mode in MODES[framework]:
            for model in args.models:
                command = [python, "-m", "benchmarks.bench_handwritten", "--child", framework, mode, model, "-"]
                command += ["--threads", str(args.threads), "--rounds", str(args.rounds), "--block", str(args.block),
                            "--block-time", str(args.block_time)]  # fmt: skip
                proc = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, check=False)
                if proc.returncode != 0:
                    rows.append(
                        [framework, mode, model, "—", "—", "—", "—", "—", proc.stderr.strip().splitlines()[-1][:80]]
                    )
                    continue
                r = json.loads(proc.stdout.strip().splitlines()[-1])
                load = f"{r['load']:.2f}" if r["load"] is not None else "?"
                ci = f"{r['ratio_ci'][0]:.3f}-{r['ratio_ci'][1]:.3f}"
                rows.append([framework, mode, model, f"{r['ours_ms']:.4g}", f"{r['theirs_ms']:.4g}",
                             f"{r['ratio']:.3f}", ci, r["block"], load])  # fmt: skip
                print(f"{framework} {mode} {model}: ours/hand-written {r['ratio']:.3f} (95% CI {ci})",
                      file=sys.stderr, flush=True)  # fmt: skip
    print(tabulate(rows, headers=["framework", "mode", "model", "ours ms", "hand-written ms", "ours / hand",
                                  "95% CI", "block", "other load"]))  # fmt: skip
    return 0


def _python(framework: str, mxnet_python: str | None) -> str:
    if framework != "mxnet":
        return sys.executable
    if mxnet_python:
        return mxnet_python
    from runner.local_launcher import venv_python

    found = venv_python("mxnet")
    if found is None:
        raise SystemExit("MXNet needs its own environment: python -m runner venv mxnet, or --python-mxnet")
    return str(found)


if __name__ == "__main__":
    sys.exit(main())
