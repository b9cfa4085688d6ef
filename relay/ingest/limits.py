"""How many records the relay takes, from whom: token buckets, never a client address.

Every installation_id and every session_id has a bucket (RELAY_RATE_LIMIT, by default 10
records a second with a burst of 600, far above a person clicking), and the relay has one for
all records together (RELAY_MAX_RECORDS_PER_S). A record is stored only if its installation's,
its session's and the relay's buckets each hold a token. The buckets live in a memory-mapped
table of the data dir, so all workers share them: admit() here decides, and
relay.store.buckets.SharedBuckets reads and writes them with the other workers held off.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field

from ..store import counters as c

RELAY_KEY = "*"  # the relay's own bucket; an id key is "i:<installation_id>" or "s:<session_id>"
MAX_RETRY_AFTER = 60


@dataclass(frozen=True)
class Bucket:
    """`rate` tokens a second, at most `burst` kept."""

    rate: float
    burst: float

    def refill(self, tokens: float, seconds: float) -> float:
        return min(self.burst, tokens + max(0.0, seconds) * self.rate)


@dataclass(frozen=True)
class Limits:
    per_id: Bucket | None  # each installation_id and each session_id; None: off
    relay: Bucket | None  # all records together; None: off

    @property
    def active(self) -> bool:
        return self.per_id is not None or self.relay is not None

    def bucket(self, key: str) -> Bucket:
        bucket = self.relay if key == RELAY_KEY else self.per_id
        assert bucket is not None
        return bucket

    def keys(self, installation_id: str, session_id: str) -> tuple[str, ...]:
        """The bucket keys of a record from this installation and session."""
        relay = (RELAY_KEY,) if self.relay else ()
        if self.per_id is None:
            return relay
        return (f"i:{installation_id}", f"s:{session_id}", *relay)


@dataclass
class Verdict:
    admitted: dict[tuple[str, ...], int]  # records taken, for each set of keys
    state: dict[str, tuple[float, float]]  # key: (tokens, at), to write back
    limited: Counter[str] = field(default_factory=Counter)  # records, by the limit that held
    retry_after: int = 0  # seconds until the batch, sent again whole, fits

    @property
    def counts(self) -> list[tuple[str, str, int]]:
        return [(c.LIMITED, limit, n) for limit, n in self.limited.items()]


def _which(key: str) -> str:
    return "relay" if key == RELAY_KEY else {"i": "installation", "s": "session"}[key[0]]


def admit(demand: Mapping[tuple[str, ...], int], state: Mapping[str, tuple[float, float]],
          limits: Limits, now: float) -> Verdict:
    """How many of the records wanted under each set of keys (a browser's installation and
    session, say) fit their buckets: as many as the emptiest of them allows. `state` holds the
    stored buckets of these keys; a key without one has a full bucket."""
    tokens: dict[str, float] = {}
    for keys in demand:
        for key in keys:
            if key not in tokens:
                bucket = limits.bucket(key)
                kept, at = state.get(key, (bucket.burst, now))
                tokens[key] = bucket.refill(kept, now - at)
    verdict = Verdict({}, {})
    for keys, wanted in demand.items():
        emptiest = min(keys, key=tokens.__getitem__)
        room = min(wanted, math.floor(tokens[emptiest]))
        verdict.admitted[keys] = room
        for key in keys:
            tokens[key] -= room
        if room < wanted:
            verdict.limited[_which(emptiest)] += wanted - room
    verdict.state = {key: (value, now) for key, value in tokens.items()}
    if verdict.limited:
        verdict.retry_after = _until_it_fits(demand, tokens, limits)
    return verdict


def _until_it_fits(demand: Mapping[tuple[str, ...], int], tokens: Mapping[str, float],
                   limits: Limits) -> int:
    """Seconds until the whole batch fits its buckets: a client (the browser module, MLflow's
    worker) sends the whole batch again, and the records already stored spend tokens too.
    A batch larger than a burst waits for the full bucket, and is let in part by part."""
    wanted: Counter[str] = Counter()
    for keys, n in demand.items():
        for key in keys:
            wanted[key] += n
    waits = [0.0]
    for key, n in wanted.items():
        bucket = limits.bucket(key)
        missing = min(n, bucket.burst) - tokens[key]
        if missing > 0:
            waits.append(missing / bucket.rate)
    return min(MAX_RETRY_AFTER, max(1, math.ceil(max(waits))))
