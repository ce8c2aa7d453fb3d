"""Bot orderLinkIds: ``{prefix}-{position_id}-{E|F|C}{n}-{REASON}`` (STRATEGY.md §8.1), within Bybit's 36 characters.

The id is how the bot recognises its own orders after a restart and how the CloseReasonDetector reads a close's
initiator (§9 row 4). If the long form would exceed 36 characters the reason is written as a two-letter code; the
parser accepts both forms.
"""

from __future__ import annotations

from dataclasses import dataclass

MAX_LEN = 36
CLOSE_TAGS = ("TIME_EXIT", "OPPOSITE_SIGNAL", "REVERSE", "PROTECTION_FAILED", "SL_HIT", "TP_HIT")
_SHORT = {"TIME_EXIT": "TE", "OPPOSITE_SIGNAL": "OS", "REVERSE": "RV", "PROTECTION_FAILED": "PF", "SL_HIT": "SL",
          "TP_HIT": "TP", "BUY": "B", "SELL": "S"}
_LONG = {v: k for k, v in _SHORT.items()}
_B36 = "0123456789abcdefghijklmnopqrstuvwxyz"


def base36(n: int) -> str:
    if n < 0:
        raise ValueError(f"base36 of a negative number: {n}")
    out = ""
    while True:
        n, r = divmod(n, 36)
        out = _B36[r] + out
        if n == 0:
            return out


def make_position_id(now: float, seq: int) -> str:
    """Unique across restarts (epoch ms) and within one ms (a per-process sequence): 10 characters."""
    return base36(round(now * 1000)) + base36(seq % 1296).rjust(2, "0")


@dataclass(frozen=True, slots=True)
class LinkId:
    prefix: str
    position_id: str
    kind: str  # "E" entry limit, "F" market fallback, "C" close
    n: int
    reason: str

    def __str__(self) -> str:
        return format_link_id(self.prefix, self.position_id, self.kind, self.n, self.reason)


def format_link_id(prefix: str, position_id: str, kind: str, n: int, reason: str) -> str:
    if kind not in ("E", "F", "C"):
        raise ValueError(f"orderLinkId kind must be E, F or C, got {kind!r}")
    s = f"{prefix}-{position_id}-{kind}{n}-{reason}"
    if len(s) > MAX_LEN:
        s = f"{prefix}-{position_id}-{kind}{n}-{_SHORT.get(reason, reason)}"
    if len(s) > MAX_LEN:
        raise ValueError(f"orderLinkId {s!r} exceeds Bybit's {MAX_LEN} characters; shorten order_link_prefix")
    return s


def parse_link_id(link_id: str, prefix: str) -> LinkId | None:
    """The parts of a bot orderLinkId with this prefix, or None for anything else (manual or foreign orders)."""
    if not link_id or not link_id.startswith(prefix + "-"):
        return None
    parts = link_id[len(prefix) + 1:].split("-")
    if len(parts) != 3:
        return None
    pid, tag, reason = parts
    if len(tag) < 2 or tag[0] not in "EFC" or not tag[1:].isdigit() or not pid:
        return None
    return LinkId(prefix, pid, tag[0], int(tag[1:]), _LONG.get(reason, reason))
