"""Reports: Markdown and self-contained HTML from result files, and a static site of runs.

Pure functions of ``RUN_DIR/results.jsonl`` and ``RUN_DIR/run.json``: nothing here runs a
benchmark or imports Docker or a deep-learning framework, so reports render on any machine.

- ``load``: read a run directory; bad lines are reported by line number and skipped. A run on
  several machines (``RUN_DIR/hosts/NAME/``) is read machine by machine; a machine is known by its
  fingerprint (``MachineIdentity``), results written before schema 3 by their CPU model.
- ``machines``: what tells two machines apart, and the same cell compared across a run's machines.
- ``cells``/``compare``: per-cell figures; speedups with bootstrap intervals and Mann-Whitney U.
  The matrix, study tables, comparisons and history are the latency scenario's view.
- ``sweeps``: sweep scenarios (batch sizes, thread counts): each point's figures from its samples.
- ``training``, ``pruning``: the train scenario's section, and the prune transform's (pruned cells are
  never in the matrix: accuracy, size and latency against sparsity, speedups over the dense weights and
  kernels, and the CPU features sparse and int8 kernels depend on).
- ``int8``: the int8 transform's section (int8 cells are never in the matrix either): each int8 cell against its
  float32 cell, with the slower ones marked, the CPU's int8 features, accuracy against calibration size, and the
  int8 cells that did not run.
- ``verdicts``: each cell's validity verdict (``frameworks.validity``) in words, the main signal beside every
  figure; a warning the verdict already states is not repeated, an unknown load is said.
- ``summary``, ``heatmap``: the page's opening: the machine by its fingerprint and the extensions its kernels
  dispatch on, governor, boost, the code that measured, the GEMM peak; the fastest valid cells; each framework
  against the fastest valid cell of each model.
- ``gemm``: the run's float32 GEMM peak, and the float32 cells whose GFLOP/s claims more than it (flagged).
- ``memory``: latency against peak memory per model, with the Pareto front.
- ``skips``: cells that did not run, gathered by a reason several share, listed once.
- ``content``: what a report says, computed once (its parts: ``matrix_view``, ``study``, ``sweep_tables``,
  ``run_facts``, ``several``); ``markdown`` and ``html`` render it.
- ``charts``: matplotlib (Agg) figures as inline SVG.
- ``publish``: the static site (index, one page per run, latest, per-machine history by fingerprint).
"""

from __future__ import annotations

from .load import LoadProblem, Run, load_run
from .publish import publish_site
from .render import render_run

__all__ = ["LoadProblem", "Run", "load_run", "publish_site", "render_run"]
