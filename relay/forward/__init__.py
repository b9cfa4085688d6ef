"""Stage 3: forward. The forwarder drains the spool into one sink, chosen by the URL's scheme."""

from __future__ import annotations

from .base import Sink


def make_sink(url: str, timeout: float) -> Sink:
    """The sink for an upstream URL: file://, nats:// or http(s)://."""
    scheme = url.split("://", 1)[0].lower()
    if scheme == "file":
        from .file import FileSink

        return FileSink(url)
    if scheme == "nats":
        from .nats import NatsSink  # nats-py is an extra: imported only when named

        return NatsSink(url, timeout)
    from .http import HttpSink

    return HttpSink(url, timeout)
