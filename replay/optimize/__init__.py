"""Parameter optimization, out-of-sample validation, walk-forward and apply (issue 11, parts 1-4).

``space`` (OPTIMIZABLE fields → distributions), ``objective`` (the worker-side replay and the score), ``study`` (the
ask/tell loop over SQLite), ``run`` (hold-out), ``walkforward``, ``overfit`` (deflated Sharpe ratio), ``executors``
(local pool / Dask), ``apply`` (presets, overlay, proposals, audit), ``cli``.
"""
