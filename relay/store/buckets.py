"""The rate limits' token buckets, shared by every worker: a memory-mapped table in the data dir.

A bucket is a slot of (the key's 64-bit hash, tokens, when they were counted). Workers read and
write the slots under an exclusive flock, so no token is spent twice. Nothing here needs to
outlive a restart (a bucket that is gone is a full one), so there is no transaction and no
fsync: a POST pays a few microseconds, where a SQLite transaction cost 200.

The table has a fixed size. A key's slot is found by open addressing over PROBES slots; when
all of them hold other keys, the one counted longest ago gives way (its key starts again from a
full bucket: more lenient, never stricter). The relay's own bucket keeps the total bounded
whatever the number of keys.
"""

from __future__ import annotations

import fcntl
import hashlib
import mmap
import os
import struct
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..ingest.limits import Verdict

SLOTS = 1 << 16
PROBES = 8
_SLOT = struct.Struct("<Qdd")  # key hash (0: empty), tokens, at


def _hash(key: str) -> int:
    return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "little") or 1


class SharedBuckets:
    """Token buckets in `path`, shared by the processes that open it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        size = SLOTS * _SLOT.size
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            if os.fstat(fd).st_size != size:
                fcntl.flock(fd, fcntl.LOCK_EX)
                try:
                    if os.fstat(fd).st_size != size:  # another worker may have just done it
                        os.ftruncate(fd, size)
                finally:
                    fcntl.flock(fd, fcntl.LOCK_UN)
            self._map = mmap.mmap(fd, size)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd

    def take(self, keys: Iterable[str],
             decide: Callable[[dict[str, tuple[float, float]]], Verdict]) -> Verdict:
        """Read the buckets of `keys`, let `decide` spend their tokens, and write them back,
        with the other workers held off meanwhile."""
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        try:
            slots: dict[str, tuple[int, bool]] = {}
            claimed: set[int] = set()
            for key in keys:
                slots[key] = self._slot(key, claimed)
                claimed.add(slots[key][0])
            state = {}
            for key, (slot, found) in slots.items():
                if found:
                    _, tokens, at = _SLOT.unpack_from(self._map, slot * _SLOT.size)
                    state[key] = (tokens, at)
            verdict = decide(state)
            for key, (tokens, at) in verdict.state.items():
                _SLOT.pack_into(self._map, slots[key][0] * _SLOT.size, _hash(key), tokens, at)
            return verdict
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    def _slot(self, key: str, claimed: set[int]) -> tuple[int, bool]:
        """The key's slot, and whether it holds the key's bucket already; never one that
        another key of the same request has `claimed`."""
        wanted = _hash(key)
        start = wanted % SLOTS
        oldest, oldest_at = start, float("inf")
        for i in range(PROBES):
            slot = (start + i) % SLOTS
            if slot in claimed:
                continue
            held, _, at = _SLOT.unpack_from(self._map, slot * _SLOT.size)
            if held == wanted:
                return slot, True
            if held == 0:
                return slot, False
            if at < oldest_at:
                oldest, oldest_at = slot, at
        return oldest, False

    def close(self) -> None:
        self._map.close()
        os.close(self._fd)
