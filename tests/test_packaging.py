"""A non-editable install carries templates/ and static/ and serves from any directory."""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.request
import zipfile
from pathlib import Path

import pytest

from .support import REPO, free_port, wait_for


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "-q", "-w", str(out), str(REPO)], check=True, timeout=300,
                   capture_output=True)
    return next(out.glob("ui_telemetry-*.whl"))


def test_wheel_carries_templates_and_static(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    for template in (REPO / "templates").glob("*.html"):
        assert f"relay/templates/{template.name}" in names
    for asset in (REPO / "static").rglob("*"):
        if asset.is_file():
            assert f"relay/static/{asset.relative_to(REPO / 'static')}" in names
    assert "relay/static/js/telemetry.js" in names
    assert any(n.endswith("entry_points.txt") for n in names)


def test_installed_wheel_serves_from_any_directory(wheel: Path, tmp_path: Path) -> None:
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target",
                    str(target), str(wheel)], check=True, timeout=300, capture_output=True)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(target), "RELAY_DATA_DIR": str(tmp_path / "data"),
           "RELAY_IGNORE_CI": "true"}
    proc = subprocess.Popen([sys.executable, "-m", "relay.serve.cli", "serve", "--port", str(port)],
                            cwd=elsewhere, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, start_new_session=True)
    base = f"http://127.0.0.1:{port}"

    def get(path: str) -> str:
        with urllib.request.urlopen(base + path, timeout=2) as resp:
            return resp.read().decode()

    try:
        wait_for(lambda: _up(get), timeout=30)
        assert "ui-telemetry-config" in get("/settings")
        assert "export function setEnabled" in get("/static/js/telemetry.js")
        code = "import relay; print(relay.__file__)"
        where = subprocess.run([sys.executable, "-c", code], cwd=elsewhere, env=env,
                               capture_output=True, text=True, check=True).stdout
        assert where.startswith(str(target)), "served from the checkout, not the wheel"
    finally:
        os.killpg(proc.pid, 15)
        proc.wait(30)


def _up(get) -> bool:  # type: ignore[no-untyped-def]
    try:
        get("/health")
        return True
    except OSError:
        return False
