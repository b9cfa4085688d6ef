"""Which event ids were delivered already, so a retried record is forwarded once.

The forwarder holds them in memory (a set of 128-bit ints) and the spool keeps them on disk
(`delivered`), so a new leader, after a restart or a kill -9, knows what its predecessor sent.
Memory is bounded twice: ids are forgotten after REMEMBER_SECONDS, and beyond MAX_IDS the oldest
are forgotten first; a record retried after that is forwarded again with the same event_id,
which the upstream de-duplicates.
"""

from __future__ import annotations

import time
from collections import deque

from .codec import unpack
from .spool import Spool

# A browser retries for at most the 7-day timestamp window: keep ids a day longer.
REMEMBER_SECONDS = 8 * 86400
MAX_IDS = 500_000  # about 40 MB of Python ints and set slots at most


class SeenIds:
    """The keys (StoredRecord.key) of delivered records, oldest forgotten first."""

    def __init__(self, max_ids: int = MAX_IDS, remember: float = REMEMBER_SECONDS) -> None:
        self.max_ids = max_ids
        self.remember = remember
        self._ids: set[int] = set()
        self._batches: deque[tuple[float, list[int]]] = deque()  # oldest first

    def __contains__(self, k: int) -> bool:
        return k in self._ids

    def __len__(self) -> int:
        return len(self._ids)

    def isdisjoint(self, keys: list[int]) -> bool:
        return self._ids.isdisjoint(keys)

    def load(self, spool: Spool) -> None:
        """Start from what the spool says was delivered (newest first, up to max_ids)."""
        self._ids.clear()
        self._batches.clear()
        now = time.time()
        for at, blob in spool.delivered_since(now - self.remember, self.max_ids):
            keys = unpack(blob)
            self._batches.appendleft((at, keys))
            self._ids.update(keys)
        self._trim(now)

    def add(self, keys: list[int]) -> None:
        now = time.time()
        self._batches.append((now, keys))
        self._ids.update(keys)
        self._trim(now)

    def _trim(self, now: float) -> None:
        while self._batches and (len(self._ids) > self.max_ids
                                 or self._batches[0][0] < now - self.remember):
            self._ids.difference_update(self._batches.popleft()[1])
