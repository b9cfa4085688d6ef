"""ui-telemetry: the relay that receives, scrubs, spools and forwards UI telemetry.

A record's way: ingest/ (validate) -> store/ (spool) -> forward/ (to a sink), with control/
(settings, on/off) beside them, served by serve/ or inside MLflow by mlflow/.
"""

from .serve.app import Relay, create_app

__all__ = ["Relay", "create_app"]
