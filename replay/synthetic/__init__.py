"""Synthetic market from 1m OHLCV (ARCHITECTURE.md §5): intrabar paths, prints and a causal 50-level book."""

from replay.synthetic.builder import SyntheticMarketBuilder
from replay.synthetic.candles import Candles
from replay.synthetic.params import GeneratorParams
from replay.synthetic.profile import SymbolProfile, profile_from_candles

__all__ = ["Candles", "GeneratorParams", "SymbolProfile", "SyntheticMarketBuilder", "profile_from_candles"]
