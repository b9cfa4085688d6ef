"""The one answer type of the endpoint: status, headers and a JSON body, for success and errors.

Every way in (the Flask view, the WSGI fast path, the MLflow plugin) sends an Answer as it is;
only the plugin filters it first, for MLflow's worker. A fault of the relay's own becomes an
Answer here, in internal_error(), and nowhere else.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass

log = logging.getLogger("relay")


@dataclass(frozen=True)
class Answer:
    """What the endpoint answers: sent as it is by every adapter."""

    status: int
    body: bytes  # JSON text
    headers: tuple[tuple[str, str], ...] = ()

    @classmethod
    def json(cls, status: int, payload: dict, headers: tuple[tuple[str, str], ...] = ()
             ) -> Answer:
        # What Flask's jsonify writes: compact, in the given key order, a newline at the end.
        return cls(status, (json.dumps(payload, separators=(",", ":")) + "\n").encode(), headers)

    @classmethod
    def error(cls, status: int, message: str, headers: tuple[tuple[str, str], ...] = ()
              ) -> Answer:
        return cls.json(status, {"status": "error", "error": message}, headers)


DISABLED = Answer.json(200, {"status": "disabled"})


def internal_error(err: BaseException, method: str, path: str) -> Answer:
    """The answer to a fault of the relay's own, logged by type and place only: the message
    could echo a request's content."""
    tb = err.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    where = f"{tb.tb_frame.f_code.co_filename}:{tb.tb_lineno}" if tb else "?"
    log.error("internal error %s at %s on %s %s", type(err).__name__, where, method, path)
    return Answer.error(500, "the relay hit an internal error; nothing was stored from this "
                             "request")
