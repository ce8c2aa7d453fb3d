"""``python -m bot --mode live`` as a real process against the three local servers (:mod:`live_servers`), driven through
every socket and REST fault while it trades, with its view checked against the fake account's ledger after each one.

The bot trades the looped real capture. To make it trade within seconds, the settings file below (``EAGER``) lowers
the entry gates (strength 1, no cooldowns, tiny composite thresholds, few trades needed for the volume statistics),
shortens the heartbeat (ping 1 s, pong timeout 3 s), the reconnect backoff and the position lifetime (20 s, so the bot
closes the second position itself by TIME_EXIT). The test plays the matching engine: it fills the bot's resting entry
at its own limit price and plays the exchange's TP trigger.

"The bot's view" is what an operator sees: the latest STATUS line in bot.log (equity, position side/qty/entry) and
trades.csv (fees, net PnL); "the ledger" is :class:`bybit_account.FakeBybitAccount` (position, executions, balance).
After each fault the test waits (generously) until the two agree to the cent, and fails if they never do: the bot
learns of a change by stream or REST polling a moment after the ledger makes it, so equality is eventual, not instant.
"""

from __future__ import annotations

import csv
import re
import signal
from decimal import Decimal
from pathlib import Path

import bybit_http_server as http_server
from live_servers import KEY, SECRET, LiveServers, live_servers, stop_process, until

EAGER = """
[trading]
entry_signal_min_strength = 1
min_time_between_trades_sec = 0.0
reopen_cooldown_sec = 0.0
min_position_hold_time_sec = 0.0
close_on_opposite_strength = 5
decision_interval_sec = 1.0
monitor_positions_interval_sec = 1.0

[signals]
min_strength_for_action = 1
composite_thresholds = [0.01, 0.02, 0.03, 0.04, 0.05]
enable_adaptive_threshold = false
min_threshold = 0.01
base_threshold = 0.01
min_imbalance_for_entry = 0.0
min_ohara_for_entry = 0
min_momentum_for_entry = -100.0
max_momentum_for_entry = 100.0
cooldown_seconds = 0.0
enable_activity_gate = false

[volume]
default_min_trades = 1
volatility_min_trades = 3

[ohara]
min_ohara_score_for_trade = 0

[risk]
min_lifetime_sec = 20.0
max_lifetime_sec = 20.0

[execution]
fallback_after_sec = 120.0
reprice_every_sec = 1.0
reconcile_interval_sec = 5.0

[websocket]
ping_interval_sec = 1.0
pong_timeout_sec = 3.0
reconnect_delay_seconds = 0.2
reconnect_max_delay_sec = 1.0
"""

STATUS = re.compile(
    r"STATUS equity (?P<eq>-?[\d.]+) USDT .*?; positions (?P<n>\d+)(?::(?P<pos>[^;]*))?; "
    r"closed (?P<closed>\d+)"
)
POS = re.compile(r"(?P<sym>\w+):(?P<side>[LS])(?P<qty>[\d.]+)@(?P<avg>[\d.]+|None)\((?P<state>\w+)\)")
CENT = Decimal("0.01")


class View:
    """The running bot's view, read from its artifacts."""

    def __init__(self, log_dir: Path) -> None:
        self.log = log_dir / "bot.log"
        self.trades = log_dir / "trades.csv"

    def text(self) -> str:
        return self.log.read_text(encoding="utf-8") if self.log.exists() else ""

    def status(self) -> re.Match[str] | None:
        lines = [ln for ln in self.text().splitlines() if "STATUS equity" in ln]
        return STATUS.search(lines[-1]) if lines else None

    def position(self) -> tuple[Decimal, Decimal] | None:
        """(signed qty, avg entry) of the OPEN position in the latest status line; (0, 0) when flat or entering
        unfilled; None if the line shows a position in another state (partly entered, closing) or no line yet."""
        st = self.status()
        if st is None:
            return None
        if st["n"] == "0":
            return Decimal(0), Decimal(0)
        m = POS.search(st["pos"] or "")
        if m is not None and m["state"] == "OPENING" and Decimal(m["qty"]) == 0:
            return Decimal(0), Decimal(0)  # an entry resting unfilled holds nothing
        if m is None or m["state"] != "OPEN":
            return None
        return (Decimal(m["qty"]) * (1 if m["side"] == "L" else -1), Decimal(m["avg"]))

    def rows(self, event: str) -> list[dict[str, str]]:
        if not self.trades.exists():
            return []
        with self.trades.open(newline="") as f:
            return [r for r in csv.DictReader(f) if r["event"] == event]


def ledger_position(srv: LiveServers) -> tuple[Decimal, Decimal]:
    with srv.acct._lock:
        p = srv.acct.positions[srv.symbol]
        size = p["size"]
        return size, (p["cost"] / abs(size) if size else Decimal(0))


def agrees(view: View, srv: LiveServers, initial: Decimal) -> bool:
    """The bot's position (side, qty, entry to the tick), equity (to the cent), realised net PnL and fees of its
    closed positions (to the cent) equal the ledger's."""
    st, pos = view.status(), view.position()
    if st is None or pos is None:
        return False
    size, avg = ledger_position(srv)
    tick = Decimal("0.1")
    if pos[0] != size or (size and abs(pos[1] - avg) >= tick):
        return False
    with srv.acct._lock:
        balance = srv.acct.balance
        ledger_fees = sum((Decimal(e["execFee"]) for e in srv.acct.executions), Decimal(0))
    if Decimal(st["eq"]) != balance.quantize(CENT):
        return False
    closes = view.rows("CLOSE")
    closed_ids = {r["position_id"] for r in closes}
    # an open position's entry fee is on the ledger's balance already, and in its OPEN row, not in a CLOSE row
    open_fees = sum((Decimal(r["fees"]) for r in view.rows("OPEN") if r["position_id"] not in closed_ids), Decimal(0))
    if size and not open_fees:
        return False  # the OPEN row is not written yet
    net = sum((Decimal(r["net_pnl"]) for r in closes), Decimal(0)) - open_fees
    fees = sum((Decimal(r["fees"]) for r in closes), Decimal(0)) + open_fees
    return net.quantize(CENT) == (balance - initial).quantize(CENT) and fees.quantize(CENT) == ledger_fees.quantize(
        CENT
    )


def working_entry(srv: LiveServers) -> dict[str, object] | None:
    with srv.acct._lock:
        for o in srv.acct.orders.values():
            if "-E" in o["link"] and o["status"] in ("New", "PartiallyFilled"):
                return dict(o)
    return None


async def test_live_process_survives_every_fault_and_reconciles_to_the_ledger(tmp_path: Path) -> None:
    settings = tmp_path / "eager.toml"
    settings.write_text(EAGER, encoding="utf-8")
    log_dir = tmp_path / "run"
    view = View(log_dir)
    initial = Decimal(10000)
    async with live_servers(balance=str(initial)) as srv:
        proc = await srv.spawn(
            "live",
            log_dir,
            tmp_path,
            "--status-every",
            "0.2",
            "--settings",
            str(settings),
            env=srv.env(NAPORRR_CONFIRM_LIVE="1"),
        )
        pub, priv, acct = srv.pub, srv.priv, srv.acct

        async def consistent(what: str, timeout: float = 15.0) -> None:
            await until(lambda: agrees(view, srv, initial), timeout, proc, f"bot == ledger after {what}")

        try:
            # --- public WS: a disconnect, a connection whose pongs never come, a `u` gap (while warming up)
            await until(lambda: pub.connections == 1 and pub.position > 0, 20, proc, "public subscribe")
            pub.faults.no_pong.add(2)
            pub.faults.disconnect_at.add(pub.position + 20)
            await until(lambda: pub.connections >= 3, 20, proc, "reconnect after disconnect, then after no pong")
            ahead = ((pub.position + 5 + k) % len(pub.frames) for k in range(len(pub.frames)))  # the capture loops
            nxt = next(i for i in ahead if pub.frames[i].symbol == srv.symbol and pub.frames[i].kind == "delta")
            subs = pub.count("subscribe")
            pub.faults.gap_at.add(nxt)
            await until(
                lambda: ("fault", "gap", nxt) in pub.log and pub.count("subscribe") > subs,
                20,
                proc,
                "a resubscribe after the u gap",
            )
            await consistent("public faults (flat)")

            # --- an entry rests; the private WS drops under it; the bot reconnects and reconciles
            await until(lambda: working_entry(srv) is not None, 30, proc, "a resting entry")
            await priv.drop_all()
            await until(
                lambda: "reconciled after private stream connection #2" in view.text(),
                20,
                proc,
                "reconcile after the private reconnect",
            )
            entry = working_entry(srv)
            assert entry is not None, "the entry must still rest after the reconnect"
            await consistent("a private disconnect while the entry rests")
            acct.fill(str(entry["link"]), entry["qty"] - entry["cum"], entry["price"])  # type: ignore[operator]
            await until(lambda: acct.positions[srv.symbol]["sl"] > 0, 20, proc, "TP/SL on the exchange")
            await consistent("the entry fill and protection")

            # --- a pong that never comes on the private stream, with the position open
            conns = priv.connections
            priv.answer_pongs = False
            await until(lambda: priv.connections > conns, 20, proc, "private reconnect after the missing pong")
            priv.answer_pongs = True
            await until(
                lambda: f"reconciled after private stream connection #{conns + 1}" in view.text(),
                20,
                proc,
                "reconcile after the pong timeout",
            )
            await consistent("the private pong timeout (position open)")

            # --- the exchange closes the position (TP) while the private stream is down: REST polling sees it
            priv.accepting = False
            await priv.drop_all()
            await until(lambda: priv.clients == 0, 10, proc, "private stream down")
            tp = acct.positions[srv.symbol]["tp"]
            acct.exchange_close(srv.symbol, str(tp), "TakeProfit")
            await until(lambda: len(view.rows("CLOSE")) == 1, 20, proc, "the CLOSE seen through REST polling")
            await consistent("a fill while the private stream is down")
            # --- a REST error burst (10006, a 5xx, 10002 on the order and position paths), queued while the stream
            # is down (no entry can be placed before the reconciliation after it returns): the polling, the
            # reconciliation and the next entry all go through it
            srv.http.inject_rate_limit("/v5/order/create", method="POST", reset_in_ms=300)
            srv.http.inject("/v5/order/create", http_server.Reply("bad gateway", status=502), method="POST")
            # then the order is placed but its answer is lost: the retry meets "OrderLinkedID is duplicate"
            srv.http.lose_answer("/v5/order/create", http_server.Reply("gateway timeout", status=504))
            for reply in (
                http_server.envelope(
                    ret_code=10002, ret_msg="invalid request, please check your server timestamp or recv_window param"
                ),
                http_server.Reply("upstream error", status=503),
            ):
                srv.http.inject(
                    "/v5/position/list", reply if isinstance(reply, http_server.Reply) else http_server.Reply(reply)
                )
            srv.http.inject_rate_limit("/v5/position/list", reset_in_ms=300)
            placed = srv.http.count("/v5/order/create")
            priv.accepting = True
            n = priv.connections
            await until(
                lambda: (
                    priv.connections > n
                    and "reconciled after private stream connection" in view.text().rsplit("private stream down", 1)[-1]
                ),
                20,
                proc,
                "reconnect after the outage",
            )
            close = view.rows("CLOSE")[0]
            assert close["reason"] == "TP_HIT", close

            # 10006, 502, the placed-but-lost one and its duplicate retry: one order on the ledger, still worked
            await until(
                lambda: srv.http.count("/v5/order/create") >= placed + 4 and "answer was lost" in view.text(),
                30,
                proc,
                "an entry placed through the error burst",
            )
            with acct._lock:
                entries = [o for o in acct.orders.values() if "-E" in o["link"]]
            assert len(entries) == 2 and entries[-1]["status"] == "New", entries
            await until(
                lambda: not srv.http._faults[("GET", "/v5/position/list")],
                30,
                proc,
                "the position-list faults consumed",
            )
            entry = working_entry(srv)
            assert entry is not None

            # --- the entry fills while the private stream is down: the bot learns it by REST, protects by REST
            priv.accepting = False
            await priv.drop_all()
            await until(lambda: priv.clients == 0, 10, proc, "private stream down")
            acct.fill(str(entry["link"]), entry["qty"] - entry["cum"], entry["price"])  # type: ignore[operator]
            await until(lambda: acct.positions[srv.symbol]["sl"] > 0, 20, proc, "TP/SL set while the stream is down")
            await consistent("an entry fill while the private stream is down")
            n = priv.connections
            priv.accepting = True
            await until(lambda: priv.connections > n, 20, proc, "private reconnect")
            await until(
                lambda: f"reconciled after private stream connection #{priv.connections}" in view.text(),
                20,
                proc,
                "reconcile after the outage",
            )
            await consistent("the reconnect after the outage (position open)")

            # --- a plain private disconnect with the position open
            n = priv.connections
            await priv.drop_all()
            await until(
                lambda: (
                    priv.connections > n
                    and f"reconciled after private stream connection #{priv.connections}" in view.text()
                ),
                20,
                proc,
                "reconcile after the private disconnect",
            )
            await consistent("a private disconnect with the position open")

            # --- the bot closes it itself (TIME_EXIT, reduce-only market at the replayed market's price)
            await until(lambda: len(view.rows("CLOSE")) == 2, 45, proc, "the bot's own TIME_EXIT close")
            assert view.rows("CLOSE")[1]["reason"] == "TIME_EXIT"
            await consistent("the bot's own close")
        finally:
            code = await stop_process(proc, signal.SIGTERM)
        stderr = (tmp_path / "stderr.txt").read_text(encoding="utf-8")
        assert code == 0, stderr[-3000:]
        assert "Traceback" not in stderr
        # at the end, after SIGTERM: flat on both sides, two CLOSE rows whose fees and net PnL are the ledger's
        closes = view.rows("CLOSE")
        assert [r["reason"] for r in closes] == ["TP_HIT", "TIME_EXIT"]
        assert acct.positions[srv.symbol]["size"] == 0 and working_entry(srv) is None
        assert agrees(view, srv, initial)
        ex_fees = sum((Decimal(e["execFee"]) for e in acct.executions), Decimal(0))
        assert sum((Decimal(r["fees"]) for r in closes), Decimal(0)).quantize(CENT) == ex_fees.quantize(CENT)
        assert sum((Decimal(r["net_pnl"]) for r in closes), Decimal(0)).quantize(CENT) == (
            acct.balance - initial
        ).quantize(CENT)
        assert pub.count("snapshot") >= 3 and acct.auth_failures == 0 and priv.auth_failed == 0
        for path in [*log_dir.iterdir(), tmp_path / "stderr.txt"]:
            text = path.read_text(encoding="utf-8")
            assert KEY not in text and SECRET not in text, path.name
