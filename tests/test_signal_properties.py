"""Property tests of the analysis chain on a real DataStorage (hypothesis).

- every imbalance output stays within [−100, 100];
- a symmetric book and a symmetric tape give exactly zero imbalance, momentum and composite;
- a mirrored market (bids ↔ asks, buy ↔ sell aggressor) gives exactly negated imbalance, momentum and composite, and
  BUY ↔ SELL with the same strength and reason.

Books use integer prices and sizes chosen so that level notionals are exact integers (bid size = ask price · u, ask size
= bid price · v): swapping u and v then swaps the side notionals *exactly*, so the mirror can be asserted with ``==``.
Trades print at one constant price so that price-direction features (absorption, confirmation, POC distance) are
neutral in both markets.
"""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from bot.analysis import ImbalanceAnalyzer, Signal, SignalGenerator, VolumeAnalyzer, evaluate
from bot.clock import FixedClock
from bot.events import BookSnapshot, Trade
from bot.instruments import InstrumentRegistry
from bot.storage import DataStorage
from settings import Settings

SYM = "BTCUSDT"
NOW = 1_700_000_000.0
MID = 1000
PRICE = float(MID)
INSTRUMENTS = InstrumentRegistry.bundled()
SETTINGS = Settings()
BOUNDARY_RATIOS = {0.3, 0.4, 0.6, 0.7}  # §5.6 band edges: the spec's bands are not mirror-symmetric exactly there
MIRROR_LABEL = {"BUY": "SELL", "SELL": "BUY", "HOLD": "HOLD", "BULLISH": "BEARISH", "BEARISH": "BULLISH",
                "NEUTRAL": "NEUTRAL", "STRONG_BUY": "STRONG_SELL", "STRONG_SELL": "STRONG_BUY",
                "MEDIUM_BUY": "MEDIUM_SELL", "MEDIUM_SELL": "MEDIUM_BUY"}
EVALS = (0.0, 2.0, 4.0, 30.0)


@dataclass(frozen=True)
class TradeSpec:
    gap: float  # seconds before the next (newer) trade
    size: int
    buy: bool


def book_levels(u: list[int], v: list[int]) -> tuple[list[tuple[float, float]], list[tuple[float, float]]]:
    bids = [(float(MID - k - 1), float((MID + k + 1) * uk)) for k, uk in enumerate(u)]
    asks = [(float(MID + k + 1), float((MID - k - 1) * vk)) for k, vk in enumerate(v)]
    return bids, asks


class Chain:
    """Storage + both analyzers + generator, with the market replayed up to each evaluation time."""

    def __init__(self, u: list[int], v: list[int], trades: list[TradeSpec], mirror: bool = False) -> None:
        self.clock = FixedClock(NOW - 3600)
        self.storage = DataStorage(SETTINGS, self.clock, [SYM])
        self.va = VolumeAnalyzer(SETTINGS, self.storage)
        self.ia = ImbalanceAnalyzer(SETTINGS, self.storage, INSTRUMENTS)
        self.sg = SignalGenerator(SETTINGS)
        self.bids, self.asks = book_levels(v, u) if mirror else book_levels(u, v)
        t = NOW + EVALS[-1]
        stamps = []
        for tr in reversed(trades):  # newest first: the last spec is the newest trade
            t -= tr.gap
            stamps.append(t)
        stamps.reverse()
        self.events = [
            Trade(SYM, ts, PRICE, float(tr.size), "Buy" if tr.buy != mirror else "Sell", f"x{i}")
            for i, (ts, tr) in enumerate(zip(stamps, trades, strict=True))
        ]
        self.next = 0
        self.u = 0

    def at(self, now: float) -> Signal:
        batch = []
        while self.next < len(self.events) and self.events[self.next].ts <= now:
            batch.append(self.events[self.next])
            self.next += 1
        self.clock.set(now)
        if batch:
            self.storage.apply_batch(batch)  # type: ignore[arg-type]
        self.u += 1
        self.storage.apply(BookSnapshot(SYM, now, self.bids, self.asks, self.u))
        return evaluate(SYM, now, self.storage, self.va, self.ia, self.sg)


sizes = st.lists(st.integers(1, 60), min_size=1, max_size=12)
trade_specs = st.lists(
    st.builds(TradeSpec, gap=st.floats(0.05, 25.0), size=st.integers(1, 120), buy=st.booleans()),
    min_size=0,
    max_size=120,
)
PROPS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPS
@given(
    books=st.lists(
        st.tuples(st.lists(st.floats(1e-4, 1e5), min_size=1, max_size=60),
                  st.lists(st.floats(1e-4, 1e5), min_size=1, max_size=60),
                  st.floats(0.0, 10.0)),
        min_size=1, max_size=8,
    )
)
def test_imbalance_outputs_stay_within_100(books: list[tuple[list[float], list[float], float]]) -> None:
    clock = FixedClock(NOW)
    storage = DataStorage(SETTINGS, clock, [SYM])
    ia = ImbalanceAnalyzer(SETTINGS, storage, INSTRUMENTS)
    for i, (bs, as_, sigma) in enumerate(books):
        now = NOW + 2 * i
        clock.set(now)
        bids = [(round(PRICE - 0.1 * (k + 1), 1), s) for k, s in enumerate(bs)]
        asks = [(round(PRICE + 0.1 * (k + 1), 1), s) for k, s in enumerate(as_)]
        storage.apply(BookSnapshot(SYM, now, bids, asks, i + 1))
        r = ia.compute(SYM, now, sigma)
        assert r.valid
        for x in (r.raw_imbalance, r.imbalance_score, r.historical_imbalance, r.combined_imbalance,
                  r.weighted_imbalance, r.depth.d, r.effective_imbalance):
            assert -100.0 <= x <= 100.0
        assert -200.0 <= r.imbalance_trend <= 200.0
        assert 0.0 <= r.depth.ratio <= 1.0


def _check_symmetric(u: list[int], pairs: list[tuple[float, int]]) -> int:
    """Assert the zero outputs; returns how many evaluations had enough data to be checked."""
    trades = []
    for gap, size in pairs:  # each pair: a buy and a sell of the same size at the same instant
        trades += [TradeSpec(0.0, size, True), TradeSpec(gap, size, False)]
    chain = Chain(u, u, trades)
    checked = 0
    for dt in EVALS:
        s = chain.at(NOW + dt)
        if s.reason == "insufficient_data":
            continue
        checked += 1
        assert s.effective_imbalance == 0.0
        assert s.momentum_score == 0.0
        assert s.bayesian_signal == "NEUTRAL" and s.bayesian_p == 0.5
        assert s.composite == 0.0 and s.ema == 0.0
        assert (s.action, s.reason, s.strength) == ("HOLD", "neutral", 0)
    return checked


@PROPS
@given(u=sizes, pairs=st.lists(st.tuples(st.floats(0.05, 25.0), st.integers(1, 120)), min_size=0, max_size=60))
def test_symmetric_market_gives_zero(u: list[int], pairs: list[tuple[float, int]]) -> None:
    _check_symmetric(u, pairs)


def test_symmetric_market_pinned_case_is_checked() -> None:
    assert _check_symmetric([5, 9, 2, 30], [(1.0 + (i % 7), 1 + i % 13) for i in range(60)]) == len(EVALS)


def _assert_mirror(a: Signal, b: Signal) -> None:
    assert b.effective_imbalance == -a.effective_imbalance
    assert b.momentum_score == -a.momentum_score
    assert b.composite == -a.composite and b.ema == -a.ema
    assert b.dir == -a.dir
    assert b.action == MIRROR_LABEL[a.action] and b.raw_action == MIRROR_LABEL[a.raw_action]
    assert (b.strength, b.raw_strength, b.reason, b.ohara_score) == (a.strength, a.raw_strength, a.reason,
                                                                     a.ohara_score)
    assert b.threshold == a.threshold
    assert b.bayesian_signal == MIRROR_LABEL[a.bayesian_signal]
    assert b.informed_direction == MIRROR_LABEL[a.informed_direction]
    for name, (f, w, wf) in a.factors.items():
        assert b.factors[name] == (-f + 0.0, w, -wf + 0.0), name


def _mirror_run(u: list[int], v: list[int], trades: list[TradeSpec], in_property: bool = True) -> list[Signal]:
    orig, mirr = Chain(u, v, trades), Chain(u, v, trades, mirror=True)
    out = []
    for dt in EVALS:
        a, b = orig.at(NOW + dt), mirr.at(NOW + dt)
        ratio = orig.va.compute(SYM, NOW + dt).large_orders.buy_ratio
        if in_property:
            assume(ratio not in BOUNDARY_RATIOS)
        else:
            assert ratio not in BOUNDARY_RATIOS
        _assert_mirror(a, b)
        out.append(a)
    return out


@PROPS
@given(u=sizes, v=sizes, trades=trade_specs)
def test_mirrored_market_mirrors_the_signal(u: list[int], v: list[int], trades: list[TradeSpec]) -> None:
    _mirror_run(u, v, trades)


def test_mirror_of_a_buy_is_a_sell() -> None:
    """A pinned market that produces BUY, so the mirror property is known to cover actionable signals."""
    trades = [TradeSpec(6.0, 3, i % 2 == 0) for i in range(200)]  # balanced background, one trade per 6 s
    for i in range(30):  # the last 30 s: buying, with a few large buys
        trades.append(TradeSpec(1.0, 60 if i in (10, 20, 25) else 2, i % 3 != 0))
    sigs = _mirror_run([40] * 10, [4] * 10, trades, in_property=False)
    assert any(s.action == "BUY" and s.strength >= 3 for s in sigs), [s.summary() for s in sigs]
