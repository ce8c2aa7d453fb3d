"""Synthetic market from 1m OHLCV (ARCHITECTURE.md §5): intrabar paths, prints and a causal 50-level book."""

from replay.synthetic.builder import SyntheticMarketBuilder
from replay.synthetic.candles import Candles
from replay.synthetic.params import GeneratorParams
from replay.synthetic.profile import SymbolProfile, profile_from_candles
from replay.synthetic.scales import CausalScales, causal_scales

__all__ = ["Candles", "CausalScales", "GeneratorParams", "SymbolProfile", "SyntheticMarketBuilder", "causal_scales",
           "profile_from_candles"]
