"""Where a Flask app keeps its relay, and the one way to get it back."""

from __future__ import annotations

from typing import TYPE_CHECKING

from flask import Flask, current_app

if TYPE_CHECKING:
    from .app import Relay

EXTENSION = "ui_telemetry"  # the key of app.extensions that Relay.init_app sets


def relay_of(app: Flask) -> Relay | None:
    """The relay installed on `app`, or None."""
    return app.extensions.get(EXTENSION)


def current_relay() -> Relay:
    """The relay of the app handling the current request."""
    relay = relay_of(current_app)
    if relay is None:
        raise RuntimeError("no relay on this app: call Relay(config).init_app(app) first")
    return relay
