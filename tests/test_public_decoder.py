"""Bybit public-frame decoder on the real capture, the real ob500 archive sample and hand-broken frames."""

from __future__ import annotations

import gzip
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from bot.adapters.bybit.public_decoder import (
    Continuity,
    FrameError,
    PublicDecoder,
    SequenceIssue,
    decode_frame,
    iter_archive,
    iter_capture,
)
from bot.events import BookDelta, BookSnapshot, TradeBatch

DATA = Path(__file__).resolve().parents[1] / "data"
CAPTURE = DATA / "ws" / "bybit-v5-public-linear-2026-08-09-44s.ndjson.gz"
ARCHIVE = DATA / "ws" / "bybit-archive-ob500-XRPUSDT-2024-12-01-sample.data.zip"
SHAPES = DATA / "ws" / "shape-examples"
SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT", "DOGEUSDT")


def _capture_msgs() -> list[dict]:
    with gzip.open(CAPTURE, "rt") as fh:
        return [json.loads(line)["msg"] for line in fh]


def _book_frame(**over: object) -> dict:
    frame = {
        "topic": "orderbook.50.BTCUSDT",
        "type": "delta",
        "ts": 1_786_310_818_130,
        "data": {"s": "BTCUSDT", "b": [["65000.10", "1.5"]], "a": [["65000.20", "0"]], "u": 42, "seq": 7},
    }
    frame.update(over)
    return frame


def test_capture_decodes_every_frame_with_expected_counts() -> None:
    kinds: Counter[tuple[str, str]] = Counter()
    trades: Counter[str] = Counter()
    n_lines = trade_frames = 0
    for _recv, events in iter_capture(CAPTURE):
        n_lines += 1
        for ev in events:
            kinds[(type(ev).__name__, ev.symbol)] += 1
            if isinstance(ev, TradeBatch):
                trades[ev.symbol] += len(ev)
        trade_frames += any(isinstance(ev, TradeBatch) for ev in events)
        assert sum(isinstance(ev, TradeBatch) for ev in events) <= 1  # a publicTrade frame is one batch
    assert n_lines == 2546
    assert sum(v for (k, _), v in kinds.items() if k == "BookSnapshot") == 4
    assert sum(v for (k, _), v in kinds.items() if k == "BookDelta") == 1594
    assert sum(v for (k, _), v in kinds.items() if k == "TradeBatch") == trade_frames == 102
    assert sum(trades.values()) == 327
    assert sum(1 for m in _capture_msgs() if m.get("topic", "").startswith("publicTrade.")) == trade_frames
    for sym in SYMBOLS:
        assert kinds[("BookSnapshot", sym)] == 1
        assert kinds[("BookDelta", sym)] > 300
        assert trades[sym] > 0


def test_first_snapshot_and_trade_match_the_raw_frames() -> None:
    msgs = _capture_msgs()
    raw_book = next(m for m in msgs if m.get("topic") == "orderbook.200.BTCUSDT")
    (snap,) = decode_frame(json.dumps(raw_book))
    assert isinstance(snap, BookSnapshot)
    assert snap.symbol == "BTCUSDT"
    assert snap.ts == pytest.approx(raw_book["ts"] / 1000.0)
    assert snap.update_id == raw_book["data"]["u"]
    assert snap.bids[0] == (65114.2, 6.054)
    assert len(snap.bids) == len(raw_book["data"]["b"]) == 200
    assert snap.asks[0] == (float(raw_book["data"]["a"][0][0]), float(raw_book["data"]["a"][0][1]))

    raw_trade = next(m for m in msgs if m.get("topic", "").startswith("publicTrade."))
    (batch,) = decode_frame(json.dumps(raw_trade).encode())
    assert _rows(batch) == [
        ("BTCUSDT", 1786310819.680, 65114.2, 0.004, "Sell", "a9188a0a-82bc-50de-be60-03eedbe3cdd7")
    ]


def _rows(b: TradeBatch) -> list[tuple[str, float, float, float, str, str]]:
    """A batch as (symbol, ts, price, size, side, id) rows, after checking its column types."""
    assert isinstance(b, TradeBatch)
    assert (b.ts.dtype, b.price.dtype, b.size.dtype, b.is_buy.dtype, b.trade_id.dtype) == (
        np.float64, np.float64, np.float64, np.bool_, object)
    assert all(type(i) is str for i in b.trade_id)
    return [(b.symbol, t, p, v, "Buy" if buy else "Sell", i) for t, p, v, buy, i in
            zip(b.ts.tolist(), b.price.tolist(), b.size.tolist(), b.is_buy.tolist(), b.trade_id.tolist(), strict=True)]


def test_multi_trade_frame_keeps_order_and_fields() -> None:
    raw = next(m for m in _capture_msgs() if m.get("topic") == "publicTrade.ETHUSDT" and len(m["data"]) > 3)
    (batch,) = decode_frame(json.dumps(raw))
    assert _rows(batch) == [("ETHUSDT", d["T"] / 1000.0, float(d["p"]), float(d["v"]), d["S"], d["i"])
                            for d in raw["data"]]
    assert len(batch) == len(raw["data"]) > 3 and set(batch.is_buy.tolist()) <= {True, False}


def test_every_trade_frame_of_the_capture_decodes_to_its_rows() -> None:
    n = 0
    for msg in _capture_msgs():
        if not msg.get("topic", "").startswith("publicTrade."):
            continue
        (batch,) = decode_frame(json.dumps(msg))
        assert _rows(batch) == [(d["s"], d["T"] / 1000.0, float(d["p"]), float(d["v"]), d["S"], d["i"])
                                for d in msg["data"]]
        n += len(batch)
    assert n == 327


def test_empty_trade_frame_gives_no_event() -> None:
    frame = json.loads((SHAPES / "public_ws_trade.json").read_text())
    frame["data"] = []
    assert decode_frame(json.dumps(frame)) == []


def test_shape_examples_decode() -> None:
    (trade,) = decode_frame((SHAPES / "public_ws_trade.json").read_bytes())
    assert _rows(trade) == [("BTCUSDT", 1672304486.865, 16578.5, 0.001, "Buy", "20f43950-d8dd-5b31-9112-a178eb6023af")]
    (delta,) = decode_frame((SHAPES / "public_ws_orderbook_delta.json").read_bytes())
    assert isinstance(delta, BookDelta) and delta.bids[0] == (30247.2, 30.028)
    (snap,) = decode_frame((SHAPES / "public_ws_orderbook_snapshot.json").read_bytes())
    assert isinstance(snap, BookSnapshot)
    assert decode_frame((SHAPES / "public_ws_kline.json").read_bytes()) == []


@pytest.mark.parametrize(
    "frame",
    [
        {"success": True, "ret_msg": "", "conn_id": "x", "req_id": "", "op": "subscribe"},
        {"success": True, "ret_msg": "pong", "conn_id": "x", "op": "ping"},
        {"req_id": "1", "op": "pong", "args": ["1786310819526"], "conn_id": "x"},
        {"topic": "tickers.BTCUSDT", "type": "delta", "data": {"symbol": "BTCUSDT", "bid1Price": "1"}, "ts": 1},
        {"topic": "kline.1.BTCUSDT", "data": [{"start": 1}], "ts": 1, "type": "snapshot"},
    ],
)
def test_non_market_frames_are_ignored(frame: dict) -> None:
    assert decode_frame(json.dumps(frame)) == []


def test_delta_with_u_1_is_a_snapshot() -> None:
    frame = _book_frame()
    frame["data"]["u"] = 1  # type: ignore[index]
    (ev,) = decode_frame(json.dumps(frame))
    assert isinstance(ev, BookSnapshot) and ev.update_id == 1


def test_delta_decodes_with_zero_size_delete() -> None:
    (ev,) = decode_frame(json.dumps(_book_frame()))
    assert ev == BookDelta("BTCUSDT", 1786310818.130, [(65000.1, 1.5)], [(65000.2, 0.0)], 42)


def _broken(path: tuple[str, ...], value: object) -> str:
    frame = _book_frame()
    target: dict = frame
    for key in path[:-1]:
        target = target[key]
    if value is KeyError:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return json.dumps(frame)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ('{"topic": "orderbook.50.BTCUSDT", "type": "delta", ', "envelope"),
        ("not json at all", "envelope"),
        (_broken(("data",), KeyError), "missing 'data'"),
        (_broken(("ts",), KeyError), "missing 'data' or 'ts'"),
        (_broken(("data", "u"), KeyError), "`u`"),
        (_broken(("data", "b"), KeyError), "`b`"),
        (_broken(("data", "b"), [["65x00.10", "1.5"]]), "data"),
        (_broken(("data", "b"), [["-1", "1.5"]]), "> 0.0"),
        (_broken(("data", "a"), [["65000.2", "nan"]]), "data"),
        (_broken(("data", "a"), [["65000.2"]]), "data"),
        (_broken(("data", "s"), "ETHUSDT"), "does not match the topic"),
        (_broken(("type",), "update"), "neither snapshot nor delta"),
        (_broken(("ts",), "yesterday"), "envelope"),
    ],
)
def test_malformed_book_frames_raise_with_reason(raw: str, reason: str) -> None:
    with pytest.raises(FrameError) as exc:
        decode_frame(raw)
    assert reason in exc.value.reason
    assert "malformed Bybit frame" in str(exc.value)


@pytest.mark.parametrize(
    ("patch", "reason"),
    [
        ({"p": "abc"}, "data"),
        ({"p": "0"}, "> 0.0"),
        ({"v": "0"}, "> 0.0"),
        ({"S": "Hold"}, "data"),
        ({"s": "ETHUSDT"}, "does not match the topic"),
        ({"T": None}, "data"),
    ],
)
def test_malformed_trade_frames_raise_with_reason(patch: dict, reason: str) -> None:
    frame = json.loads((SHAPES / "public_ws_trade.json").read_text())
    frame["data"][0].update(patch)
    with pytest.raises(FrameError) as exc:
        decode_frame(json.dumps(frame))
    assert reason in exc.value.reason


def test_trade_frame_missing_id_raises() -> None:
    frame = json.loads((SHAPES / "public_ws_trade.json").read_text())
    del frame["data"][0]["i"]
    with pytest.raises(FrameError, match="`i`"):
        decode_frame(json.dumps(frame))


def test_continuity_has_no_issue_over_the_capture_for_all_symbols() -> None:
    dec = PublicDecoder()
    last_u: dict[str, int] = {}
    for msg in _capture_msgs():
        for ev in dec.decode(json.dumps(msg)):
            if not isinstance(ev, TradeBatch):
                last_u[ev.symbol] = ev.update_id
    assert dec.issues == []
    assert set(last_u) == set(SYMBOLS)
    assert dec.continuity.last_u == last_u


def _delta(u: int, sym: str = "BTCUSDT") -> BookDelta:
    return BookDelta(sym, 1.0, [(1.0, 1.0)], [], u)


def test_continuity_classifies_gap_duplicate_out_of_order() -> None:
    c = Continuity()
    assert c.check(_delta(5)) == SequenceIssue("BTCUSDT", "gap", -1, 5)  # no snapshot yet
    assert c.check(BookSnapshot("BTCUSDT", 1.0, [], [], 10)) is None
    assert c.check(_delta(11)) is None
    assert c.check(_delta(11)) == SequenceIssue("BTCUSDT", "duplicate", 12, 11)
    assert c.check(_delta(9)) == SequenceIssue("BTCUSDT", "out_of_order", 12, 9)
    assert c.check(_delta(12)) is None  # duplicates/out-of-order do not move the chain
    assert c.check(_delta(15)) == SequenceIssue("BTCUSDT", "gap", 13, 15)
    assert c.check(_delta(16)) is None  # one lost frame is one issue
    assert c.check(_delta(1, "ETHUSDT")).kind == "gap"  # type: ignore[union-attr]
    assert len(c.issues) == 5


def test_public_decoder_reports_issues_of_the_last_frame() -> None:
    dec = PublicDecoder()
    dec.decode(json.dumps(_book_frame(type="snapshot")))
    dec.decode(json.dumps(_book_frame()))  # u 42 again: duplicate
    assert dec.last_issues == [SequenceIssue("BTCUSDT", "duplicate", 43, 42)]
    frame = _book_frame()
    frame["data"]["u"] = 43  # type: ignore[index]
    dec.decode(json.dumps(frame))
    assert dec.last_issues == []
    dec.reset("BTCUSDT")
    dec.decode(json.dumps(_book_frame()))
    assert dec.last_issues[0].kind == "gap"


def test_archive_sample_decodes_contiguously() -> None:
    c = Continuity()
    kinds: Counter[str] = Counter()
    times = []
    for ts, events in iter_archive(ARCHIVE):
        times.append(ts)
        for ev in events:
            kinds[type(ev).__name__] += 1
            assert ev.symbol == "XRPUSDT"
            c.check(ev)
    assert kinds == {"BookSnapshot": 1, "BookDelta": 49}
    assert c.issues == []
    assert times == sorted(times) and times[0] == pytest.approx(1733011200.691)


def test_capture_reader_names_the_bad_line(tmp_path: Path) -> None:
    path = tmp_path / "cap.ndjson.gz"
    good = json.dumps({"recv_ts": 1.5, "msg": _book_frame()})
    bad = json.dumps({"recv_ts": 2.5, "msg": _book_frame(type="bogus")})
    with gzip.open(path, "wt") as fh:
        fh.write(good + "\n\n" + bad + "\n")
    it = iter_capture(path)
    recv, events = next(it)
    assert recv == 1.5 and len(events) == 1
    with pytest.raises(FrameError, match=r"cap.ndjson.gz:3: .*neither snapshot nor delta"):
        next(it)


def test_capture_reader_rejects_lines_without_envelope(tmp_path: Path) -> None:
    path = tmp_path / "cap.ndjson"
    path.write_text(json.dumps(_book_frame()) + "\n")  # a bare frame, no recv_ts/msg wrapper
    with pytest.raises(FrameError, match=r"cap\.ndjson:1: capture line"):
        list(iter_capture(path))
