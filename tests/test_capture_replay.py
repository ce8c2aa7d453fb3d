"""The real 44 s Bybit capture and the ob500 archive sample through decoder → DataStorage, plus injected faults."""

from __future__ import annotations

import gzip
import json
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from bot.adapters.bybit.public_decoder import FrameError, decode_frame, iter_archive, iter_capture
from bot.clock import FixedClock
from bot.events import BookDelta, BookSnapshot, MarketEvent, TradeBatch
from bot.storage import DataStorage
from settings import Settings

DATA = Path(__file__).resolve().parents[1] / "data" / "ws"
CAPTURE = DATA / "bybit-v5-public-linear-2026-08-09-44s.ndjson.gz"
ARCHIVE = DATA / "bybit-archive-ob500-XRPUSDT-2024-12-01-sample.data.zip"
SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT", "DOGEUSDT")
THROUGH_BPS = 5.0
"""How far past the touch a trade may print (sweeps, book lag): the capture's worst is 2.8 bps (DOGE, 2 ticks)."""

_FRAMES = list(iter_capture(CAPTURE))


def _misfits(t: TradeBatch, ds: DataStorage) -> int:
    """How many prints of a frame are inconsistent with the book current when the frame arrives (every print of a
    frame is checked against that same book: publicTrade frames never carry book changes)."""
    b = ds.best(t.symbol)
    assert b is not None
    p = t.price
    buy_ok = (b.best_ask <= p) & (p <= b.best_ask * (1 + THROUGH_BPS * 1e-4))
    sell_ok = (b.best_bid * (1 - THROUGH_BPS * 1e-4) <= p) & (p <= b.best_bid)
    return int(np.count_nonzero(~np.where(t.is_buy, buy_ok, sell_ok)))


def _replay(
    depth: int = 50, book_filter: Callable[[MarketEvent], MarketEvent | None] = lambda e: e
) -> tuple[DataStorage, int, int]:
    """Replay the capture; returns (storage, trades checked, trades inconsistent with the book)."""
    clock = FixedClock()
    ds = DataStorage(Settings(websocket={"subscription_depth": depth}), clock, SYMBOLS)
    checked = bad = 0
    for recv, events in _FRAMES:
        clock.set(recv)
        for ev in events:
            if isinstance(ev, TradeBatch):
                checked += len(ev)
                bad += _misfits(ev, ds)
                ds.apply(ev)
                continue
            ev2 = book_filter(ev)
            if ev2 is None:
                continue
            ds.apply(ev2)
            b = ds.best(ev.symbol)
            assert b is not None and 0 < b.best_bid < b.best_ask, f"crossed/empty book after u={ev.update_id}"
    return ds, checked, bad


@pytest.mark.parametrize("depth", [50, 200])
def test_capture_books_never_cross_and_trades_sit_at_the_touch(depth: int) -> None:
    """Consistency rule for real, interleaved data. Bybit pushes publicTrade in real time but book deltas in
    batches (every 100 ms for orderbook.200), so the book current when a trade frame arrives is the *pre-trade*
    book. The aggressor takes liquidity, so a Buy must print at or above the best ask of that book (and a Sell at or
    below the best bid), and no further than THROUGH_BPS beyond it. The lower bound is exact (no tolerance):
    every one of the 327 trades in the capture satisfies it, so a book that is off by a single tick fails."""
    ds, checked, bad = _replay(depth)
    assert checked == 327
    assert bad == 0
    assert list(ds.issues) == []
    assert ds.resync_requested() == set()
    last_u = {}
    for _recv, events in _FRAMES:
        for ev in events:
            if not isinstance(ev, TradeBatch):
                last_u[ev.symbol] = ev.update_id
    for sym in SYMBOLS:
        top = ds.best(sym)
        assert top is not None and top.update_id == last_u[sym]  # every delta of every symbol was applied
        assert ds.book_valid(sym, _FRAMES[-1][0])
        assert len(ds.book_top(sym, "bid", 1000)) == depth
        assert ds.last_seq(sym) > 0
    assert sum(ds.last_seq(s) for s in SYMBOLS) == 327
    stored = np.concatenate([ds.trades_since(s, -math.inf).price for s in SYMBOLS])
    decoded = np.concatenate([ev.price for s in SYMBOLS for _, evs in _FRAMES for ev in evs
                              if isinstance(ev, TradeBatch) and ev.symbol == s])
    np.testing.assert_array_equal(stored, decoded)  # every print stored once, in frame order


def test_the_trade_rule_catches_a_wrong_book() -> None:
    """The same check fails on books maintained wrongly: deltas ignored, or deletes (size 0) ignored."""
    _, _, bad_snapshot_only = _replay(book_filter=lambda e: e if isinstance(e, BookSnapshot) else None)
    assert bad_snapshot_only >= 10

    def keep_deleted(e: MarketEvent) -> MarketEvent:
        if isinstance(e, BookDelta):
            bids = [lv for lv in e.bids if lv[1] > 0]
            asks = [lv for lv in e.asks if lv[1] > 0]
            return BookDelta(e.symbol, e.ts, bids, asks, e.update_id)
        return e

    ds, _, bad_no_delete = _replay(book_filter=keep_deleted)
    assert bad_no_delete >= 10
    assert ds.counters["rejected"] >= 1  # storage itself refused the crossed books this produced


def test_archive_sample_ingests_cleanly() -> None:
    frames = list(iter_archive(ARCHIVE))
    clock = FixedClock(frames[0][0])
    ds = DataStorage(Settings(websocket={"subscription_depth": 500}), clock)
    for ts, events in frames:
        clock.set(ts)
        ds.apply_batch(events)
        b = ds.best("XRPUSDT")
        assert b is not None and b.best_bid < b.best_ask and b.valid
    assert list(ds.issues) == []
    assert ds.best("XRPUSDT").update_id == frames[-1][1][-1].update_id  # type: ignore[union-attr]
    assert len(ds.book_top("XRPUSDT", "ask", 1000)) == 500
    assert 0 < ds.spread_bps("XRPUSDT") < 10  # type: ignore[operator]


# --- injected faults ------------------------------------------------------------------------------------------------

SYM = "BTCUSDT"
_BTC = [(recv, ev) for recv, evs in _FRAMES for ev in evs if not isinstance(ev, TradeBatch) and ev.symbol == SYM]
_BTC_RAW = []
with gzip.open(CAPTURE, "rt") as _fh:
    for _line in _fh:
        _rec = json.loads(_line)
        if _rec["msg"].get("topic") == f"orderbook.200.{SYM}":
            _BTC_RAW.append(json.dumps(_rec["msg"], separators=(",", ":")))
CUT = 200  # inject after this many BTC book events


def _storage_upto(k: int) -> tuple[DataStorage, FixedClock]:
    clock = FixedClock(_BTC[0][0])
    ds = DataStorage(Settings(), clock, [SYM])
    for recv, ev in _BTC[:k]:
        clock.set(recv)
        ds.apply(ev)
    return ds, clock


def _book_state(ds: DataStorage) -> tuple:
    return (ds.book_top(SYM, "bid", 1000).tobytes(), ds.book_top(SYM, "ask", 1000).tobytes(), ds.best(SYM))


def _snapshot_of(ds: DataStorage) -> BookSnapshot:
    """A fresh snapshot equal to ``ds``'s current book (what a resubscribe would deliver)."""
    b = ds.best(SYM)
    assert b is not None
    bids = [(p, s) for p, s, _ in ds.book_top(SYM, "bid", 1000).tolist()]
    asks = [(p, s) for p, s, _ in ds.book_top(SYM, "ask", 1000).tolist()]
    return BookSnapshot(SYM, b.ts, bids, asks, b.update_id)


def _finish(ds: DataStorage, clock: FixedClock, start: int) -> None:
    for recv, ev in _BTC[start:]:
        clock.set(recv)
        ds.apply(ev)


REFERENCE, _ = _storage_upto(len(_BTC))


def test_gap_is_reported_book_invalid_and_resync_until_a_snapshot() -> None:
    ds, clock = _storage_upto(CUT)
    before = _book_state(ds)
    ds.apply(_BTC[CUT + 1][1])  # the delta at CUT is lost
    assert [(i.kind, i.update_id) for i in ds.issues] == [("gap", _BTC[CUT + 1][1].update_id)]
    assert _book_state(ds)[:2] == before[:2]
    assert not ds.book_valid(SYM, clock.now())
    assert ds.resync_requested() == {SYM}
    for recv, ev in _BTC[CUT + 2 : CUT + 10]:  # deltas while waiting are dropped, not applied onto a broken book
        clock.set(recv)
        ds.apply(ev)
    assert _book_state(ds)[:2] == before[:2]
    assert ds.counters["dropped_awaiting_resync"] == 8
    assert len(ds.issues) == 1
    fresh, _ = _storage_upto(CUT + 10)
    ds.apply(_snapshot_of(fresh))
    assert ds.resync_requested() == set() and ds.book_valid(SYM, clock.now())
    _finish(ds, clock, CUT + 10)
    assert _book_state(ds) == _book_state(REFERENCE)


def test_crossed_update_is_rejected_and_the_book_kept() -> None:
    ds, clock = _storage_upto(CUT)
    before = _book_state(ds)
    top = ds.best(SYM)
    assert top is not None
    u = top.update_id + 1
    ds.apply(BookDelta(SYM, top.ts + 0.1, [(top.best_ask + 0.1, 3.0)], [], u))
    (issue,) = ds.issues
    assert issue.kind == "rejected" and "crossed" in issue.detail and issue.update_id == u
    assert _book_state(ds) == before
    assert ds.resync_requested() == {SYM}
    assert ds.book_valid(SYM, clock.now())  # the kept book is the last consistent one...
    ds.apply(_BTC[CUT][1])
    assert not ds.book_valid(SYM, clock.now())  # ...until a delta has to be dropped: now it lags the exchange
    assert _book_state(ds)[:2] == before[:2]


def test_update_emptying_a_side_is_rejected() -> None:
    ds, _ = _storage_upto(CUT)
    before = _book_state(ds)
    top = ds.best(SYM)
    assert top is not None
    bids = [(p, 0.0) for p, _s, _n in ds.book_top(SYM, "bid", 1000).tolist()]
    ds.apply(BookDelta(SYM, top.ts, bids, [], top.update_id + 1))
    (issue,) = ds.issues
    assert issue.kind == "rejected" and "empty bid side" in issue.detail
    assert _book_state(ds) == before
    assert ds.resync_requested() == {SYM}


def test_update_with_absurd_spread_is_rejected() -> None:
    ds, _ = _storage_upto(CUT)
    before = _book_state(ds)
    top = ds.best(SYM)
    assert top is not None
    asks = [(p, 0.0) for p, _s, _n in ds.book_top(SYM, "ask", 1000).tolist()] + [(top.best_ask * 1.2, 1.0)]
    ds.apply(BookDelta(SYM, top.ts, [], asks, top.update_id + 1))  # 20 % spread > max_valid_spread_bps (10 %)
    (issue,) = ds.issues
    assert issue.kind == "rejected" and "spread" in issue.detail
    assert _book_state(ds) == before
    assert ds.resync_requested() == {SYM}


@pytest.mark.parametrize("kind", ["duplicate", "out_of_order"])
def test_duplicate_and_out_of_order_frames_are_dropped(kind: str) -> None:
    ds, clock = _storage_upto(CUT)
    before = _book_state(ds)
    replayed = _BTC[CUT - 1][1] if kind == "duplicate" else _BTC[CUT - 5][1]
    ds.apply(replayed)
    (issue,) = ds.issues
    assert issue.kind == kind and issue.update_id == replayed.update_id
    assert _book_state(ds) == before
    assert ds.resync_requested() == set()
    assert ds.book_valid(SYM, clock.now())
    _finish(ds, clock, CUT)  # the stream continues as if nothing happened
    assert _book_state(ds) == _book_state(REFERENCE)


def test_malformed_frame_raises_and_the_loss_shows_up_as_a_gap() -> None:
    """The collector drops a frame the decoder refuses; storage never sees it and reports the hole it leaves."""
    raw = _BTC_RAW[CUT]
    assert decode_frame(raw)[0] == _BTC[CUT][1]
    corrupted = raw.replace('"b":[["', '"b":[["x', 1)  # non-numeric price in the first bid
    assert corrupted != raw
    ds, _ = _storage_upto(CUT)
    before = _book_state(ds)
    with pytest.raises(FrameError, match="Expected `float`"):
        ds.apply_batch(decode_frame(corrupted))
    assert _book_state(ds) == before and list(ds.issues) == []
    ds.apply_batch(decode_frame(_BTC_RAW[CUT + 1]))
    assert [i.kind for i in ds.issues] == ["gap"]
    assert ds.resync_requested() == {SYM}
    assert _book_state(ds)[:2] == before[:2]


def test_exchange_restart_u_1_replaces_the_book() -> None:
    ds, _ = _storage_upto(CUT)
    top = ds.best(SYM)
    assert top is not None
    ev = BookDelta(SYM, top.ts + 1, [(100.0, 1.0)], [(100.5, 2.0)], 1)
    ds.apply(ev)
    b = ds.best(SYM)
    assert b is not None and (b.best_bid, b.best_ask, b.update_id) == (100.0, 100.5, 1)
    assert len(ds.book_top(SYM, "bid", 1000)) == 1 and list(ds.issues) == []
    ds.apply(BookDelta(SYM, top.ts + 2, [(100.1, 1.0)], [], 2))
    assert ds.best(SYM).best_bid == 100.1  # type: ignore[union-attr]


def test_stale_book_is_invalid_and_resync_requested() -> None:
    ds, clock = _storage_upto(CUT)
    top = ds.best(SYM)
    assert top is not None
    stale = Settings().websocket.book_stale_sec
    assert ds.book_valid(SYM, top.ts + stale)
    assert not ds.book_valid(SYM, top.ts + stale + 0.01)
    clock.set(top.ts + stale + 1)
    assert ds.best(SYM).valid is False  # type: ignore[union-attr]
    assert ds.resync_requested() == {SYM}
    assert [i.kind for i in ds.issues] == ["stale"]
    ds.resync_requested()
    assert len(ds.issues) == 1  # reported once per episode
    fresh = _snapshot_of(ds)
    ds.apply(BookSnapshot(SYM, clock.now(), fresh.bids, fresh.asks, fresh.update_id + 5))
    assert ds.resync_requested() == set() and ds.book_valid(SYM, clock.now())
    assert not math.isnan(ds.mid(SYM))  # type: ignore[arg-type]
    assert np.all(np.diff(ds.book_top(SYM, "bid", 50)[:, 0]) < 0)
