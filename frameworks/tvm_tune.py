"""MetaSchedule tuning of the TVM backend's models for this CPU: ``python -m frameworks.tvm_tune``.

Run in TVM's environment (``python -m runner tune tvm`` finds it). Each model's Relax module goes through
the same passes as the backend's ``tuned`` build (``tvm_backend.scheduled_module``), and MetaSchedule
(evolutionary search, XGBoost cost model) tunes every kernel it extracts, ``--trials`` candidates per
kernel, measured on this machine. The records go into one JSON database per (target, CPU fingerprint):
``frameworks/tvm_tuning/<fingerprint>-<target hash>/``, beside ``tuning.json``, which says what was tuned,
with how many trials, how long it took, with which TVM, on which machine. A tuned cell applies it.

Candidates are built in this process (``InProcessBuilder``): MetaSchedule's own builder starts a fresh
worker process for every batch, and each worker's first build imports TVM's tensor intrinsics, which
parses hundreds of TVMScript functions (25 s a batch on this 2-core machine, longer than its 30 s
timeout under any load: every candidate failed to build). The measurements run in MetaSchedule's own
runner process, with the kernel's threads and nothing else.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from .backends import tvm_backend as tb
from .models import MODELS, get_model
from .weights import canonical_weights

TUNING_SCHEMA = 1


def in_process_builder() -> Any:
    """A MetaSchedule builder that compiles and exports candidates in this process (see the module's doc)."""
    tvm = tb.tvm_module()
    from tvm.ir.utils import derived_object
    from tvm.s_tir import meta_schedule as ms
    from tvm.s_tir.meta_schedule.builder import BuilderResult, PyBuilder
    from tvm.s_tir.meta_schedule.builder.local_builder import default_build, default_export

    @derived_object
    class InProcessBuilder(PyBuilder):  # type: ignore[misc]
        def build(self, build_inputs: list[Any]) -> list[Any]:
            results = []
            for given in build_inputs:
                try:
                    results.append(BuilderResult(default_export(default_build(given.mod, given.target, None)), None))
                except Exception as exc:  # a candidate that does not compile is a failed trial, not a failed tuning
                    results.append(BuilderResult(None, f"{type(exc).__name__}: {exc}"[:2000]))
            return results

    del tvm, ms
    return InProcessBuilder()


def tune_model(model: str, trials: int, work_dir: Path, threads: int) -> dict[str, Any]:
    """Tune one model at batch 1 into ``work_dir``'s database; what was tuned, and how long it took."""
    tvm = tb.tvm_module(threads)
    from tvm.s_tir import meta_schedule as ms

    spec = get_model(model)
    module, params = tb.import_onnx(spec, canonical_weights(spec, 0), 1)
    target = tb.tuning_target()
    prepared = tb.pre_schedule(tb.bind_params(module, params), target)
    tasks = ms.relax_integration.extract_tasks(prepared, target)
    started = time.perf_counter()
    ms.relax_integration.tune_relax(
        prepared, {}, target, str(work_dir),
        max_trials_global=trials * len(tasks), max_trials_per_task=trials, num_trials_per_iter=min(trials, 64),
        builder=in_process_builder(), runner=ms.runner.LocalRunner(), seed=0,
    )  # fmt: skip
    seconds = time.perf_counter() - started
    del tvm
    return {
        "trials_per_task": trials,
        "tasks": len(tasks),
        "seconds": round(seconds, 1),
        "tuned_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def keep_best_records(work_dir: Path) -> tuple[int, int]:
    """The tuning records cut to the fastest measured one per kernel: all a build applies (MetaSchedule takes
    the top record), at a fortieth of the size to commit. Returns (records before, records kept)."""
    path = work_dir / "database_tuning_record.json"
    lines = [line for line in path.read_text().splitlines() if line.strip()]
    best: dict[int, tuple[float, str]] = {}
    for line in lines:
        workload, (_trace, run_secs, _target, _args) = json.loads(line)
        if not run_secs or any(t is None or t <= 0 for t in run_secs):
            continue  # a candidate that did not build or run
        mean = sum(run_secs) / len(run_secs)
        if workload not in best or mean < best[workload][0]:
            best[workload] = (mean, line)
    path.write_text("".join(line + "\n" for _, (_, line) in sorted(best.items())))
    return len(lines), len(best)


def write_record(work_dir: Path, tuned: dict[str, dict[str, Any]]) -> Path:
    """``tuning.json``: the target, the machine, TVM, and each model's tuning (earlier models kept)."""
    path = work_dir / tb.TUNING_FILE
    record = json.loads(path.read_text()) if path.exists() else {"models": {}}
    machine = tb.tuning_machine()
    record.update({
        "schema": TUNING_SCHEMA,
        "target": str(tb.tuning_target()),
        "fingerprint": machine.fingerprint,
        "machine": f"{machine.vendor} family {machine.family} model {machine.model}, "
                   f"{machine.threads} CPUs, {' '.join(machine.flags)}",
        "tvm": tb.version(),
    })  # fmt: skip
    record["models"].update(tuned)
    path.write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m frameworks.tvm_tune", description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS), help=f"default: {' '.join(MODELS)}")
    parser.add_argument("--trials", type=int, default=16, help="candidates measured per kernel (default 16)")
    parser.add_argument("--root", type=Path, default=tb.tuning_root(), help="where the databases live")
    parser.add_argument("--threads", type=int, default=0, help="kernel threads while measuring (0: every CPU)")
    args = parser.parse_args(argv)
    unknown = [m for m in args.models if m not in MODELS]
    if unknown or args.trials < 1:
        what = f"unknown model(s) {' '.join(unknown)}; valid models: {', '.join(MODELS)}" if unknown else \
            "--trials must be at least 1"  # fmt: skip
        print(f"error: {what}", file=sys.stderr)
        return 2
    work_dir = args.root / tb.database_key()
    work_dir.mkdir(parents=True, exist_ok=True)
    tuned = {}
    for model in args.models:
        print(f"tuning {model}: {args.trials} trials per kernel into {work_dir}", file=sys.stderr, flush=True)
        tuned[model] = tune_model(model, args.trials, work_dir, args.threads)
        print(f"tuned {model}: {json.dumps(tuned[model])}", file=sys.stderr, flush=True)
        before, kept = keep_best_records(work_dir)
        print(f"database: {kept} kernels' best records kept of {before} measured", file=sys.stderr, flush=True)
        write_record(work_dir, {model: tuned[model]})
    for junk in (work_dir / "logs",):  # MetaSchedule's per-task logs: megabytes, not the database
        if junk.is_dir():
            for f in junk.iterdir():
                f.unlink()
            junk.rmdir()
    print(json.dumps({"database": str(work_dir), "models": tuned}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
