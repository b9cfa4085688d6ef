"""Log text without anything of a client's: addresses, query strings, quoted request text.

Used by `ui-telemetry serve`'s gunicorn logger (relay.gunicorn_conf) and, inside `mlflow server`,
as a logging filter on the servers' own loggers (relay.mlflow_plugin).
"""

from __future__ import annotations

import logging
import re

# IPv4, and IPv6 written with colons (at least two groups, perhaps ending in an IPv4 address:
# ::ffff:192.0.2.1), wherever they stand in a message. IPv6 is scrubbed first, so a mapped
# address becomes one placeholder.
_IPV4_TEXT = r"(?:\d{1,3}\.){3}\d{1,3}"
_IPV4 = re.compile(rf"(?<![\w.]){_IPV4_TEXT}(?![\w.])")
_IPV6 = re.compile(rf"(?<![\w:])(?:[0-9A-Fa-f]{{0,4}}:){{2,7}}(?:{_IPV4_TEXT}|[0-9A-Fa-f]{{0,4}})"
                   r"(?![\w:.])")
_IP_FIELD = re.compile(r"\bip=\S*")
_QUERY = re.compile(r"\?\S*")
# A repr() of client text, as gunicorn's parse errors quote the raw request line or header.
_QUOTED = re.compile(r"'(?:[^'\\]|\\.)*'" + r'|"(?:[^"\\]|\\.)*"')
# gunicorn's "Invalid request from ip=...: <error>": of the error, only its kind is kept (the
# words before its first colon or parenthesis), never what it quotes of the request.
_INVALID = re.compile(r"Invalid request from ip=\S*: ([^:(']*)")
# gunicorn's "Error handling request <method> <uri>": the URI is the client's text.
_HANDLING = "Error handling request"
# MLflow's security checks name the Host or Origin they refused: header values of the client's.
_REFUSED = re.compile(r"(Rejected request with invalid Host header|Blocked cross-origin request)"
                      r"(?::| from) .*")


def scrub(message: str) -> str:
    """Remove client addresses, query strings and quoted request text from a log message."""
    invalid = _INVALID.match(message)
    if invalid:
        return f"Invalid request from ip=[scrubbed]: {invalid.group(1).strip()}"
    if message.startswith(_HANDLING):
        return _HANDLING
    message = _REFUSED.sub(r"\1", message)
    message = _IP_FIELD.sub("ip=[scrubbed]", message)
    message = _QUOTED.sub("[quoted]", message)
    message = _IPV6.sub("[address]", message)
    message = _IPV4.sub("[address]", message)
    return _QUERY.sub("?[query]", message)


def access_path(path: str, status: int | str) -> str:
    """The path an access log line may show: without its query, and not at all for a 404,
    whose path is whatever text a client chose."""
    return "[unknown path]" if str(status) == "404" else path.split("?", 1)[0]


# The loggers of the servers the relay may run under (uvicorn, gunicorn, waitress), and of
# MLflow's host and origin checks: their lines carry addresses, request lines, query strings and
# header values unless scrubbed.
SERVER_LOGGERS = ("uvicorn.access", "uvicorn.error", "uvicorn", "gunicorn.access",
                  "gunicorn.error", "waitress", "mlflow.server.fastapi_security",
                  "mlflow.server.security")


def scrub_server_logs() -> None:
    """Put a ScrubFilter on every server logger (once each)."""
    for name in SERVER_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, ScrubFilter) for f in logger.filters):
            logger.addFilter(ScrubFilter())


class ScrubFilter(logging.Filter):
    """Scrubs every record of the logger it is added to. uvicorn's access records keep their
    shape (five arguments, which its formatter unpacks), with no address and a safe path."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if record.name == "uvicorn.access" and isinstance(args, tuple) and len(args) == 5:
            _, method, path, version, status = args
            record.args = ("-", method, access_path(str(path), status), version, status)
        else:
            record.msg = scrub(record.getMessage())
            record.args = ()
            # A traceback could quote a request line: the error is kept, its frames are not.
            record.exc_info = None
            record.exc_text = None
        return True
