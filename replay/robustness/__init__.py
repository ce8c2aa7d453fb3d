"""``python -m replay robustness RUN_OR_SETTINGS``: how much of a run's result survives other seeds, resampled trade
orders, stress windows and small parameter moves (:mod:`replay.robustness.run`; rules in
:mod:`replay.robustness.stats`)."""
