"""Suite-wide settings: Hypothesis draws its examples from a fixed seed per test, so CI on a fresh clone runs the
same examples every time and a failure there reproduces locally. ``HYPOTHESIS_PROFILE=explore`` draws fresh random
examples on every run (500 where a test does not set its own count) to look for new counterexamples; pin any it finds
with ``@example``."""

from __future__ import annotations

import os

from hypothesis import settings

settings.register_profile("ci", derandomize=True, database=None)
settings.register_profile("explore", max_examples=500)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
