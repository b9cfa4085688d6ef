"""The served UI: every page renders, carries the inert config and the strict CSP."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from relay.ingest.schema import describe

from ..conftest import build_app

PAGES = ["/", "/experiments", "/experiments/1", "/models", "/prompts", "/settings",
         "/usage-tracking"]


def config_of(html: str) -> dict:
    match = re.search(r'<script type="application/json" id="ui-telemetry-config">(.*?)</script>',
                      html, re.S)
    assert match, "no config block"
    return json.loads(match.group(1))


@pytest.mark.parametrize("path", PAGES)
def test_every_page_renders_with_config_and_csp(client: FlaskClient, path: str) -> None:
    resp = client.get(path)
    assert resp.status_code == 200
    csp = resp.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "unsafe-eval" not in csp
    html = resp.get_data(as_text=True)
    config = config_of(html)
    assert set(config) == {"disabled", "reason", "endpoint", "rolloutPercentage",
                           "disabledEvents", "flushIntervalMs"}
    assert config["disabled"] is False
    # The endpoint resolves against the page to the relay's path.
    from posixpath import join, normpath
    base = path if path.endswith("/") else path.rsplit("/", 1)[0] + "/"
    assert normpath(join(base, config["endpoint"])) == "/ajax-api/3.0/mlflow/ui-telemetry"
    # No inline script: every <script> is the inert config or an external module.
    for tag in re.findall(r"<script[^>]*>", html):
        assert 'type="application/json"' in tag or 'src="' in tag, tag
    assert not re.search(r"<[^>]+\s(style|on[a-z]+)=", html), "inline style or handler"


@pytest.mark.parametrize("path", PAGES)
def test_every_interactive_element_is_instrumented(client: FlaskClient, path: str) -> None:
    html = client.get(path).get_data(as_text=True)
    main = html.split('<main id="main"', 1)[1]
    for tag in re.findall(r"<(?:button|a|input|select|textarea)\b[^>]*>", main):
        assert "data-component-id=" in tag and "data-component-type=" in tag, tag
    for cid in re.findall(r'data-component-id="([^"]+)"', html):
        assert cid.startswith("mlflow."), cid


def test_config_cannot_break_out_of_its_script_tag(tmp_path: Path) -> None:
    app = build_app(tmp_path, {"RELAY_DISABLE_UI_EVENTS": "a</script><script>alert(1)</script>"})
    html = app.test_client().get("/").get_data(as_text=True)
    assert "</script><script>alert(1)" not in html
    assert config_of(html)["disabledEvents"][0].startswith("a</script>")


def test_usage_page_lists_every_schema_field(client: FlaskClient) -> None:
    html = client.get("/usage-tracking").get_data(as_text=True)
    for field in describe():
        assert f"<code>{field.name}</code>" in html
        assert field.description.replace("'", "&#39;").replace('"', "&#34;")[:40] in html


def test_settings_says_why_the_server_turned_it_off(client: FlaskClient,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DO_NOT_TRACK", "true")
    config = config_of(client.get("/settings").get_data(as_text=True))
    assert config["disabled"] is True
    assert config["reason"] == "turned off by the server administrator: DO_NOT_TRACK is set"


def test_gpc_request_gets_a_disabled_page(client: FlaskClient) -> None:
    config = config_of(client.get("/", headers={"Sec-GPC": "1"}).get_data(as_text=True))
    assert config["disabled"] is True and "Global Privacy Control" in config["reason"]


def test_unknown_pages_get_a_404_page(client: FlaskClient) -> None:
    resp = client.get("/experiments/404", headers={"Accept": "text/html"})
    assert resp.status_code == 404 and "<h1>404</h1>" in resp.get_data(as_text=True)
    resp = client.get("/nowhere", headers={"Accept": "application/json"})
    assert resp.status_code == 404 and resp.get_json()["status"] == "error"


def test_helper_works_in_another_flask_app(tmp_path: Path) -> None:
    """An embedding app (the real `mlflow server`) renders the block in its own template."""
    from relay.control.config import load_config
    from relay.serve.app import Relay

    other = Flask("embedding")
    Relay(load_config({"RELAY_DATA_DIR": str(tmp_path)})).init_app(other, ui=False)

    @other.get("/mine")
    def mine() -> str:
        from flask import render_template_string
        return render_template_string("<head>{{ ui_telemetry_config() }}</head>")

    client = other.test_client()
    resp = client.get("/mine")
    assert config_of(resp.get_data(as_text=True))["endpoint"] == "ajax-api/3.0/mlflow/ui-telemetry"
    assert "script-src 'self'" in resp.headers["Content-Security-Policy"]
    assert client.get("/ajax-api/3.0/mlflow/ui-telemetry").status_code == 200
    assert client.get("/settings").status_code == 404  # the embedding app's routes are its own


def test_static_files_are_served_and_confined(app: Flask) -> None:
    client = app.test_client()
    assert client.get("/static/js/telemetry.js").status_code == 200
    assert client.get("/static/css/app.css").status_code == 200
    assert client.get("/static/../relay/config.py").status_code == 404
    assert client.get("/static/js/../../pyproject.toml").status_code == 404
