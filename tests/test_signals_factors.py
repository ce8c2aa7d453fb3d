"""generate() writes the factors dict as a literal: its keys are FACTOR_NAMES in order and each value is
(f, w, w·f) of factors() and the settings' weights, and the composite is their left-to-right sum from 0.0."""

from __future__ import annotations

from test_signals import imb, vol

from bot.analysis.results import BayesianBelief, ClusterStats, TapeStats
from bot.analysis.signals import FACTOR_NAMES, SignalGenerator
from settings import Settings


def test_factors_dict_is_names_weights_and_products_in_order() -> None:
    gen = SignalGenerator(Settings())
    cases = [
        (imb(), vol()),
        (imb(-37.3, bayesian=BayesianBelief(p=0.3, signal="BEARISH", confidence=0.4),
             cluster=ClusterStats(poc_distance_pct=-2.0)),
         vol(momentum_score=-12.7, tape=TapeStats(large_sells=3, large_net=-3, absorb_bear=True))),
    ]
    for k, (i, v) in enumerate(cases):
        sig = gen.generate("BTCUSDT", 1_700_000_000.0 + k, i, v, 1.0)
        f = gen.factors(i, v)
        assert tuple(sig.factors) == FACTOR_NAMES
        c = 0.0
        for name, fi, wi in zip(FACTOR_NAMES, f, gen._w, strict=True):
            assert sig.factors[name] == (fi, wi, wi * fi)
            c += wi * fi
        assert sig.composite == max(-1.0, min(1.0, c))
