"""Which trades of a batch the tape has seen already (STRATEGY.md §3: duplicates are dropped), by trade id.

Split from :mod:`bot.storage.tape` (:class:`~bot.storage.tape.TradeTape` is a ``TradeIds``) to keep it small. String
ids (Bybit's) are remembered in two rotating generations, so memory stays bounded; integer ids (synthetic feeds)
increase per symbol, so a high-water mark replaces the sets.
"""

from __future__ import annotations

import math

import numpy as np

ID_GENERATION = 10_000
"""String trade ids are remembered in two rotating generations of this size: at least the last 10k ids per symbol."""
_greater = np.greater
_count = np.count_nonzero

__all__ = ["ID_GENERATION", "TradeIds"]


class TradeIds:
    """The id memory of one symbol's tape."""

    def __init__(self) -> None:
        self._ids_cur: set[str] = set()
        self._ids_prev: set[str] = set()
        self.id_mark: float = -math.inf  # integer ids (synthetic feeds): every id <= this was seen

    def filter_ids(self, ids: tuple[str, ...] | list[str]) -> list[int] | None:
        """Indices of the batch to keep (first sighting of each id), or None if all are new (the usual case)."""
        batch = set(ids)
        if len(batch) == len(ids) and batch.isdisjoint(self._ids_cur) and batch.isdisjoint(self._ids_prev):
            self._remember(batch)
            return None
        keep: list[int] = []
        seen: set[str] = set()
        cur, prev = self._ids_cur, self._ids_prev
        for i, tid in enumerate(ids):
            if tid in seen or tid in cur or tid in prev:
                continue
            seen.add(tid)
            keep.append(i)
        self._remember(seen)
        return keep

    def filter_int_ids(self, ids: np.ndarray) -> np.ndarray | None:
        """Rows of an int64 id column to keep, or None if all are new. Integer ids increase per symbol, so a
        high-water mark replaces the id sets: ids <= the mark are duplicates. A batch whose ids do not strictly
        increase is de-duplicated exactly (first sighting of each id above the mark), one Python pass."""
        m = len(ids)
        mark = self.id_mark
        if ids.item(0) > mark and (m == 1 or _count(_greater(ids[1:], ids[:-1])) == m - 1):
            self.id_mark = ids.item(m - 1)
            return None
        keep = self.filter_int_id_list(ids.tolist())
        return None if keep is None else np.array(keep, dtype=np.intp)

    def filter_int_id_list(self, ids: list[int]) -> list[int] | None:
        """:meth:`filter_int_ids` for a list of Python ints (the small-batch path): same rule, same result."""
        mark = self.id_mark
        prev = mark
        for x in ids:
            if x <= prev:
                break
            prev = x
        else:
            self.id_mark = prev
            return None
        keep: list[int] = []
        seen: set[int] = set()
        hi = mark
        for i, x in enumerate(ids):
            if x <= mark or x in seen:
                continue
            seen.add(x)
            keep.append(i)
            if x > hi:
                hi = x
        self.id_mark = hi
        return None if len(keep) == len(ids) else keep

    def is_new_id(self, tid: str) -> bool:
        """``filter_ids([tid]) is None`` (same memory, same rotation) without building sets: one print's frame."""
        if tid in self._ids_cur or tid in self._ids_prev:
            return False
        cur = self._ids_cur
        cur.add(tid)
        if len(cur) >= ID_GENERATION:
            self._ids_prev = cur
            self._ids_cur = set()
        return True

    def _remember(self, ids: set[str]) -> None:
        self._ids_cur |= ids
        if len(self._ids_cur) >= ID_GENERATION:
            self._ids_prev = self._ids_cur
            self._ids_cur = set()
