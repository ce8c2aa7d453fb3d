"""RiskManager (STRATEGY.md §7): sizing, SL/TP distances and prices, adaptive lifetime, closed-trade history.

Everything that reaches an order is ``Decimal`` on the instrument grid; settings floats are converted through their
shortest repr (``to_decimal``) so ``0.1`` means exactly 0.1. The per-symbol history ring is the only state; it feeds the
win-rate adaptation of the TP/SL ratio (§7.4) and is rebuilt from trades.csv at start.
"""

from __future__ import annotations

import csv
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from bot.instruments import Instrument, to_decimal

if TYPE_CHECKING:
    from settings import Settings

SizeRefusal = Literal["below_exchange_minimum", "insufficient_margin"]
SideLike = int | str

_LONG_NAMES = {"BUY", "LONG"}
_SHORT_NAMES = {"SELL", "SHORT"}


def side_dir(side: SideLike) -> int:
    """+1 for LONG/Buy/+1, −1 for SHORT/Sell/−1; anything else is a programming error."""
    if isinstance(side, int) and side in (1, -1):
        return side
    if isinstance(side, str):
        up = side.upper()
        if up in _LONG_NAMES:
            return 1
        if up in _SHORT_NAMES:
            return -1
    raise ValueError(f"side must be +1/-1, 'Buy'/'Sell' or 'LONG'/'SHORT', got {side!r}")


@dataclass(frozen=True, slots=True)
class SizeDecision:
    """Outcome of §7.1: ``qty`` on the step grid, or ``qty == 0`` with a refusal ``reason``."""

    qty: Decimal
    reason: SizeRefusal | None = None
    notional: Decimal = Decimal(0)
    margin_needed: Decimal = Decimal(0)

    @property
    def ok(self) -> bool:
        return self.reason is None


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    net_pnl: float
    reason: str
    ts: float


class RiskManager:
    """Sizes positions, prices SL/TP and keeps the per-symbol closed-trade rings."""

    def __init__(self, settings: Settings, instruments: Mapping[str, Instrument]) -> None:
        self._s = settings
        self._r = settings.risk
        self._instruments = instruments
        self._history: dict[str, deque[HistoryEntry]] = {}

    # ------------------------------------------------------------------------------------------------ 7.1 sizing
    def leverage(self, sym: str) -> Decimal:
        """Settings leverage, capped by the instrument's maximum (the exchange would refuse more)."""
        return min(Decimal(self._s.trading.leverage), self._instruments[sym].max_leverage)

    def size(self, sym: str, P: Decimal, Q: Decimal, M: Decimal) -> SizeDecision:
        """Quantity for a position entered at ``P`` with equity ``Q`` and available margin ``M`` (§7.1)."""
        inst = self._instruments[sym]
        P, Q, M = to_decimal(P), to_decimal(Q), to_decimal(M)
        if not P.is_finite() or P <= 0:
            raise ValueError(f"{sym}: sizing price must be a positive finite number, got {P}")
        if not Q.is_finite() or not M.is_finite():
            raise ValueError(f"{sym}: equity/margin must be finite, got Q={Q} M={M}")
        lev = self.leverage(sym)
        if Q <= 0:
            return SizeDecision(Decimal(0), "insufficient_margin")
        t = self._s.trading
        margin = to_decimal(t.base_order_usdt) if t.base_order_usdt > 0 else Q * to_decimal(t.base_order_pct)
        cap = Q * to_decimal(self._r.max_position_notional_pct)
        notional = min(margin * lev, cap)
        q = min(inst.floor_step(notional / P), inst.max_order_qty)
        q_min = max(inst.min_order_qty, inst.ceil_step(inst.min_notional / P))
        if q < q_min:
            if q_min * P > cap:
                return SizeDecision(Decimal(0), "below_exchange_minimum", q_min * P, q_min * P / lev)
            q = q_min
        need = q * P / lev
        if need > M:
            return SizeDecision(Decimal(0), "insufficient_margin", q * P, need)
        return SizeDecision(q, None, q * P, need)

    # ------------------------------------------------------------------------------------------- 7.2 distances
    def distances(self, sym: str, range_pct: float, atr_pct: float) -> tuple[float, float]:
        """(sl, tp) as fractions of entry from the signal's volatility block, ratio-adapted and clamped."""
        r_ = self._r
        for name, v in (("range_pct", range_pct), ("atr_pct", atr_pct)):
            if v != v or v < 0:  # NaN or negative
                raise ValueError(f"{sym}: {name} must be a non-negative number, got {v}")
        r = min(range_pct, r_.max_vol_used_pct)
        t = min(atr_pct, r_.max_vol_used_pct)
        if r_.enable_dynamic_tpsl and (r > 0 or t > 0):
            sl = max(r * r_.sl_vol_multiplier / 100, t * r_.sl_atr_multiplier / 100, r_.min_sl_pct)
            tp = max(r * r_.tp_vol_multiplier / 100, t * r_.tp_atr_multiplier / 100, r_.min_tp_pct)
        else:
            sl, tp = r_.min_sl_pct, r_.min_tp_pct
        ratio = self.tpsl_ratio(sym)
        if ratio is not None:
            tp = sl * ratio
        sl = min(max(sl, r_.min_sl_pct), r_.max_sl_pct)
        tp = min(max(tp, r_.min_tp_pct), r_.max_tp_pct)
        return sl, tp

    def sltp_prices(self, sym: str, side: SideLike, e: Decimal, sl_pct: float,
                    tp_pct: float) -> tuple[Decimal, Decimal]:
        """(SL, TP) prices anchored on the average fill ``e``, tick-rounded, each at least one tick from ``e``."""
        inst = self._instruments[sym]
        d = side_dir(side)
        e = to_decimal(e)
        if not e.is_finite() or e <= 0:
            raise ValueError(f"{sym}: entry price must be positive, got {e}")
        sl_d, tp_d = to_decimal(sl_pct), to_decimal(tp_pct)
        tick = inst.tick_size
        if d == 1:
            sl = min(inst.round_tick(e * (1 - sl_d)), inst.floor_tick(e - tick))
            tp = max(inst.round_tick(e * (1 + tp_d)), inst.ceil_tick(e + tick))
        else:
            sl = max(inst.round_tick(e * (1 + sl_d)), inst.ceil_tick(e + tick))
            tp = min(inst.round_tick(e * (1 - tp_d)), inst.floor_tick(e - tick))
        if sl <= 0 or tp <= 0:
            raise ValueError(f"{sym}: SL/TP price not positive for e={e} (sl={sl}, tp={tp}); tick {tick} too coarse")
        return sl, tp

    # -------------------------------------------------------------------------------------------- 7.3 lifetime
    def lifetime(self, std_pct: float) -> float:
        """Maximum holding time in seconds, fixed at entry."""
        r = self._r
        base = r.base_position_lifetime_minutes * 60.0
        if r.enable_adaptive_lifetime:
            if std_pct < r.volatility_threshold_low:
                base *= r.low_volatility_lifetime_multiplier
            elif std_pct > r.volatility_threshold_high:
                base *= r.high_volatility_lifetime_multiplier
        return min(max(base, r.min_lifetime_sec), r.max_lifetime_sec)

    # ------------------------------------------------------------------------------------------- 7.4 history
    def record_close(self, sym: str, net_pnl: float | Decimal, reason: str, ts: float) -> None:
        ring = self._history.get(sym)
        if ring is None:
            ring = self._history[sym] = deque(maxlen=self._r.position_history_size)
        ring.append(HistoryEntry(float(net_pnl), str(reason), float(ts)))

    def history(self, sym: str) -> list[HistoryEntry]:
        return list(self._history.get(sym, ()))

    def win_rate(self, sym: str) -> float | None:
        ring = self._history.get(sym)
        if not ring:
            return None
        return sum(1 for h in ring if h.net_pnl > 0) / len(ring)

    def tpsl_ratio(self, sym: str) -> float | None:
        """TP/SL ratio from the win rate, or None while adaptation is off or the ring is too short."""
        r = self._r
        ring = self._history.get(sym)
        if not r.enable_dynamic_tpsl_ratio or ring is None or len(ring) < r.min_history_for_adaptation:
            return None
        wr = sum(1 for h in ring if h.net_pnl > 0) / len(ring)
        if wr > r.winrate_high:
            return r.tpsl_ratio_high_winrate
        if wr < r.winrate_low:
            return r.tpsl_ratio_low_winrate
        return r.tpsl_ratio_medium_winrate

    def rebuild_from_trades_csv(self, path: str | Path) -> int:
        """Refill the rings from the CLOSE rows of trades.csv (file order); returns rows read. Missing file → 0."""
        p = Path(path)
        if not p.exists():
            return 0
        n = 0
        with p.open(newline="") as f:
            reader = csv.DictReader(f)
            missing = {"ts", "event", "symbol", "reason", "net_pnl"} - set(reader.fieldnames or ())
            if missing:
                raise ValueError(f"{p}: not a trades.csv (missing columns {sorted(missing)})")
            for lineno, row in enumerate(reader, start=2):
                if row["event"] != "CLOSE":
                    continue
                try:
                    dt = datetime.fromisoformat(row["ts"])
                    ts = (dt if dt.tzinfo else dt.replace(tzinfo=UTC)).timestamp()
                    pnl = float(row["net_pnl"])
                except (TypeError, ValueError) as exc:
                    raise ValueError(f"{p}:{lineno}: bad CLOSE row ({exc}): {row}") from None
                self.record_close(row["symbol"], pnl, row["reason"], ts)
                n += 1
        return n
