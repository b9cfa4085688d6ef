"""ui-telemetry: the relay that receives, scrubs, spools and forwards UI telemetry."""

from .app import Relay, create_app

__all__ = ["Relay", "create_app"]
