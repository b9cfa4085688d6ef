"""What every sink is to the forwarder: send records, say how it went, check, close.

A sink answers every send with an Outcome; it never raises for an upstream's failure. The
records it gets are StoredRecords, each with its DATA line ready to go: no header, cookie or
address of any browser request exists at this layer to leak.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum

from ..store.codec import StoredRecord
from ..store.data import BATCH_SIZE


class Action(Enum):
    """What the forwarder does with a batch after a send."""

    DONE = "done"  # delivered: forget it
    RETRY = "retry"  # keep it and try again after a backoff
    STOP = "stop"  # keep it and pause until the config is refreshed (MLflow's rule)
    DROP = "drop"  # an answer no retry can change: give up on this batch


@dataclass(frozen=True)
class Outcome:
    action: Action
    kind: str = ""  # metric label of a failure: http_500, timeout, refused, ...
    detail: str = ""  # the failure in words, for `ui-telemetry status`
    retry_after: float | None = None  # seconds, when the upstream said

    @property
    def ok(self) -> bool:
        return self.action is Action.DONE

    @classmethod
    def retry(cls, kind: str, detail: str, retry_after: float | None = None) -> Outcome:
        return cls(Action.RETRY, kind, detail, retry_after)

    @classmethod
    def stop(cls, kind: str, detail: str) -> Outcome:
        return cls(Action.STOP, kind, detail)

    @classmethod
    def drop(cls, kind: str, detail: str) -> Outcome:
        return cls(Action.DROP, kind, detail)


DONE = Outcome(Action.DONE)


class Sink(ABC):
    """One upstream. The forwarder makes one per URL and closes it when the URL changes."""

    url: str
    batch_size: int = BATCH_SIZE  # the most records one send() carries

    @abstractmethod
    def send(self, records: Sequence[StoredRecord]) -> Outcome:
        """Deliver the records' DATA lines, in order; never raises for the upstream's fault."""

    def check(self) -> str | None:
        """A problem with this upstream, in words, that `ui-telemetry status` reports."""
        return None

    def close(self) -> None:  # noqa: B027 - most sinks hold nothing between sends
        """Let go of what the sink holds between sends (connections, threads)."""
