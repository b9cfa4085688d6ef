"""A non-editable install carries templates/ and static/ and serves from any directory."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

from .support import REPO


def test_wheel_carries_templates_and_static(tmp_path: Path) -> None:
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "-q", "-w", str(tmp_path), str(REPO)], check=True, timeout=300,
                   capture_output=True)
    wheel = next(tmp_path.glob("ui_telemetry-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    for template in (REPO / "templates").glob("*.html"):
        assert f"relay/templates/{template.name}" in names
    for asset in (REPO / "static").rglob("*"):
        if asset.is_file():
            assert f"relay/static/{asset.relative_to(REPO / 'static')}" in names
    assert "relay/static/js/telemetry.js" in names
    assert any(n.endswith("entry_points.txt") for n in names)
