"""The HTML report of a run (``report.html``): one self-contained page a trader can open offline, even mailed alone.

plotly.js is inlined once; every figure has a fixed id, so the same run gives the same bytes. Modules: ``formatting``
(numbers for people), ``data`` (candles made coarse, the bot's execution log, optional study files), ``figures`` (one
builder per chart), ``layout`` (the page), ``studies`` (optimization / walk-forward hooks), ``build`` (the sections).

Data contract of the optional sections (written into the run folder by the optimizer / walk-forward; the report
draws whatever is present and skips what is not):

``optimization/trials.csv``
    One row per trial, the columns of Optuna's ``study.trials_dataframe()``: ``number`` (int), ``value`` (the
    objective; empty for a failed or pruned trial), optional ``state`` (COMPLETE | PRUNED | FAIL), and one
    ``params_<name>`` column per parameter (numbers; text values are listed but not drawn). Other columns are ignored.
``optimization/study.json`` (optional)
    ``{"direction": "maximize" | "minimize", "objective": "<metric name>"}``; default maximize, "objective".
``optimization/importance.json`` (optional)
    ``{"<param>": <importance>, ...}`` as the optimizer computed it; without it the report uses |Spearman ρ| of each
    parameter with the objective over the complete trials.
``walk_forward.json``
    ``{"objective": "<metric key>", "folds": [{"fold": 1, "train_start": ISO, "train_end": ISO, "test_start": ISO,
    "test_end": ISO, "in_sample": {<metrics>}, "out_of_sample": {<metrics>}, "params": {<chosen>}}, ...]}``; the
    metrics dicts use :func:`replay.metrics.compute_metrics` keys, ``params`` is optional.
``robustness.json``
    Written by ``python -m replay robustness`` (:func:`replay.robustness.run.run_study`): ``base``, ``seeds`` (rows,
    summary, flag), ``monte_carlo`` (per method: drawdown and PnL quantiles, risk of ruin, per-path drawdowns),
    ``stress`` (rows) and ``sensitivity`` (rows, grid, fragile); drawn by :mod:`replay.report.robustness`.
"""

from __future__ import annotations

from typing import Any

__all__ = ["write_report"]


def __getattr__(name: str) -> Any:
    """``write_report`` is imported on first use: ``python -m replay runs`` needs the formatting, not plotly."""
    if name == "write_report":
        from replay.report.build import write_report

        return write_report
    raise AttributeError(f"module 'replay.report' has no attribute {name!r}")
