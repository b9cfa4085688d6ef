"""relay.ingest.limits and the endpoint's 429: token buckets per installation, per session and
for the relay, shared by workers through the spool; disabled componentIds dropped at ingest."""

from __future__ import annotations

import threading
import time
import urllib.request
from collections import Counter
from pathlib import Path

import pytest

from relay.control.config import ConfigError, load_config
from relay.ingest.limits import RELAY_KEY, Bucket, Limits, admit
from relay.serve.extension import relay_of

from ..conftest import build_app
from ..support import ENDPOINT, RelayServer, in_threads, make_record, wait_for

PER_ID = Limits(Bucket(rate=10, burst=5), None)


def wanting(limits: Limits, *records: tuple[str, str, int]) -> Counter[tuple[str, ...]]:
    """How many records each (installation, session) sends, as admit() takes them."""
    return Counter({limits.keys(i, s): n for i, s, n in records})


def test_a_full_bucket_takes_its_burst_then_refills_at_its_rate() -> None:
    demand = wanting(PER_ID, ("inst", "sess", 8))
    first = admit(demand, {}, PER_ID, now=100.0)
    assert first.admitted == {PER_ID.keys("inst", "sess"): 5}
    assert first.limited == {"installation": 3}
    assert first.retry_after == 1  # the whole batch again: a full bucket of 5, at 10 a second
    # 0.2 s later two tokens are back: two more go in.
    again = admit(wanting(PER_ID, ("inst", "sess", 3)), first.state, PER_ID, now=100.2)
    assert again.admitted == {PER_ID.keys("inst", "sess"): 2}


def test_each_session_has_a_bucket_of_its_own_within_one_installation() -> None:
    verdict = admit(wanting(PER_ID, ("inst", "a", 3), ("other", "b", 6)), {}, PER_ID, now=0.0)
    assert list(verdict.admitted.values()) == [3, 5]
    assert verdict.limited == {"installation": 1}
    verdict = admit(wanting(PER_ID, ("one", "shared", 3), ("two", "shared", 3)), {}, PER_ID,
                    now=0.0)
    assert list(verdict.admitted.values()) == [3, 2]
    assert verdict.limited == {"session": 1}


def test_the_relay_bucket_holds_for_everyone() -> None:
    limits = Limits(None, Bucket(rate=100, burst=4))
    assert limits.keys("i1", "s1") == limits.keys("i2", "s2") == (RELAY_KEY,)
    verdict = admit(Counter({(RELAY_KEY,): 6}), {}, limits, now=0.0)
    assert verdict.admitted == {(RELAY_KEY,): 4}
    assert verdict.limited == {"relay": 2} and verdict.retry_after == 1


def test_retry_after_says_when_the_whole_batch_fits_again() -> None:
    # Sent again whole, the batch's stored records spend tokens too.
    limits = Limits(Bucket(rate=2, burst=10), None)
    verdict = admit(wanting(limits, ("i", "s", 4)), {"i:i": (1.0, 0.0)}, limits, now=0.0)
    assert verdict.admitted == {limits.keys("i", "s"): 1}
    assert verdict.retry_after == 2  # 4 tokens at 2 a second
    # A batch larger than the burst waits for the full bucket.
    slow = Limits(Bucket(rate=0.5, burst=1), None)
    verdict = admit(wanting(slow, ("i", "s", 4)), {}, slow, now=0.0)
    assert verdict.admitted == {slow.keys("i", "s"): 1}
    assert verdict.retry_after == 2


def test_a_stored_bucket_refills_from_when_it_was_counted() -> None:
    state = {"i:i": (0.0, 10.0), "s:s": (5.0, 10.0)}
    verdict = admit(wanting(PER_ID, ("i", "s", 5)), state, PER_ID, now=10.3)
    assert verdict.admitted == {PER_ID.keys("i", "s"): 3}  # 0.3 s at 10 a second
    assert verdict.state["i:i"] == (pytest.approx(0.0), 10.3)


@pytest.mark.parametrize(("raw", "parsed"), [
    ("10/s:600", (10.0, 600.0)), ("10", (10.0, 600.0)), ("2.5 / s", (2.5, 150.0)),
    ("off", None), ("OFF", None)])
def test_rate_settings(raw: str, parsed: tuple[float, float] | None) -> None:
    assert load_config({"RELAY_RATE_LIMIT": raw}).rate_limit == parsed
    assert load_config({"RELAY_MAX_RECORDS_PER_S": "200"}).max_records_per_s == (200.0, 2000.0)


@pytest.mark.parametrize("raw", ["fast", "-1", "10/m", "10:0"])
def test_a_bad_rate_is_a_clear_error(raw: str) -> None:
    with pytest.raises(ConfigError, match="RELAY_RATE_LIMIT"):
        load_config({"RELAY_RATE_LIMIT": raw})


def metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_a_one_id_flood_is_answered_429_and_keeps_what_fits(tmp_path: Path) -> None:
    app = build_app(tmp_path / "data", {"RELAY_RATE_LIMIT": "1/s:10"})
    client = app.test_client()
    flooder = [make_record(installation_id="flood-1") for _ in range(25)]
    honest = [make_record() for _ in range(5)]
    resp = client.post(ENDPOINT, json={"records": flooder[:15] + honest + [{"bad": 1}]})
    assert resp.status_code == 429
    assert resp.headers["Retry-After"] == "10"  # a full bucket again, at one a second
    body = resp.get_json()
    assert body["status"] == "error" and "over the installation limit" in body["error"]
    assert (body["accepted"], body["rejected"], body["limited"]) == (15, 1, 5)
    stored = {r["event_id"] for r in waiting(app)}
    assert {r["event_id"] for r in honest} <= stored  # nobody else's records were pushed out
    assert len(stored & {r["event_id"] for r in flooder}) == 10
    text = client.get("/metrics").get_data(as_text=True)
    assert metric(text, 'ui_telemetry_records_limited_total{limit="installation"}') == 5


def waiting(app) -> list[dict]:
    from ..support import waiting_data

    return waiting_data(relay_of(app))


def test_a_retried_batch_after_retry_after_loses_nothing(tmp_path: Path) -> None:
    app = build_app(tmp_path / "data", {"RELAY_RATE_LIMIT": "5/s:8"})
    client = app.test_client()
    earlier = [make_record(installation_id="burst-1") for _ in range(5)]
    assert client.post(ENDPOINT, json={"records": earlier}).status_code == 200
    batch = [make_record(installation_id="burst-1") for _ in range(6)]
    first = client.post(ENDPOINT, json={"records": batch})
    assert first.status_code == 429 and first.get_json()["accepted"] == 3
    time.sleep(int(first.headers["Retry-After"]))
    second = client.post(ENDPOINT, json={"records": batch})  # as the browser module resends
    assert second.status_code == 200 and second.get_json()["accepted"] == 6
    stored = {r["event_id"] for r in waiting(app)}
    # The three stored twice are one record each upstream: the forwarder sends an event_id once.
    assert stored == {r["event_id"] for r in earlier + batch}


def test_a_disabled_component_is_dropped_at_ingest_and_counted(tmp_path: Path) -> None:
    app = build_app(tmp_path / "data",
                    {"RELAY_DISABLE_UI_EVENTS": "mlflow.secret.button,other.button"})
    client = app.test_client()
    off = make_record(params={"componentId": "mlflow.secret.button"})
    on = make_record()
    resp = client.post(ENDPOINT, json={"records": [off, on]})
    assert (resp.status_code, resp.get_json()) == (
        200, {"status": "success", "accepted": 1, "rejected": 1})
    assert [r["event_id"] for r in waiting(app)] == [on["event_id"]]
    text = client.get("/metrics").get_data(as_text=True)
    assert metric(text, "ui_telemetry_records_disabled_event_total") == 1


def test_limits_hold_across_workers_within_twice_the_rate(tmp_path: Path) -> None:
    srv = RelayServer(tmp_path / "data", {"RELAY_RATE_LIMIT": "20/s:20",
                                          "RELAY_FLUSH_INTERVAL": "1h"}, workers=2).start()
    stored = []
    lock = threading.Lock()
    stop = time.monotonic() + 3

    def flood() -> None:  # one installation id, as fast as it can, from several connections
        while time.monotonic() < stop:
            status, body = srv.post({"records": [make_record(installation_id="one")
                                                 for _ in range(5)]})
            assert status in (200, 429)
            with lock:
                stored.append(body["accepted"])

    try:
        in_threads(flood, 4, timeout=30)
        allowed = 20 + 20 * 3  # the burst, then the rate for 3 s
        assert allowed / 2 <= sum(stored) <= allowed * 2, sum(stored)
        with urllib.request.urlopen(srv.base + "/metrics", timeout=10) as resp:
            text = resp.read().decode()
        assert metric(text, "ui_telemetry_spool_depth") == sum(stored)
        assert metric(text, 'ui_telemetry_records_limited_total{limit="installation"}') > 0
    finally:
        srv.stop()


def test_a_rotating_id_flood_meets_the_relay_limit_and_honest_retries_all_arrive(
        tmp_path: Path) -> None:
    srv = RelayServer(tmp_path / "data", {"RELAY_MAX_RECORDS_PER_S": "100:100"}).start()
    honest = [make_record() for _ in range(40)]
    refused = []
    stop = time.monotonic() + 4

    def flood() -> None:  # a new installation and session for every record
        while time.monotonic() < stop:
            status, _ = srv.post({"records": [make_record() for _ in range(20)]})
            refused.append(status == 429)

    flooders = [threading.Thread(target=flood) for _ in range(2)]
    for t in flooders:
        t.start()
    try:
        pending = list(honest)
        deadline = time.monotonic() + 30
        while pending and time.monotonic() < deadline:  # as the browser module does
            status, body = srv.post({"records": pending[:5]})
            if status == 200:
                pending = pending[5:]
            else:
                assert status == 429
                time.sleep(1.0)  # the Retry-After of the relay's own limit
        for t in flooders:
            t.join(30)
        assert any(refused), "the flood never met the relay's limit"
        assert pending == []
        wait_for(lambda: honest_delivered(srv, honest), timeout=20)
    finally:
        srv.stop()


def honest_delivered(srv: RelayServer, honest: list[dict]) -> bool:
    from ..support import read_sink

    return {r["event_id"] for r in honest} <= {d["event_id"] for d in read_sink(srv.data_dir)}


def test_with_both_limits_off_every_record_is_stored(tmp_path: Path) -> None:
    app = build_app(tmp_path / "data", {"RELAY_RATE_LIMIT": "off",
                                         "RELAY_MAX_RECORDS_PER_S": "off"})
    flood = [make_record(installation_id="same") for _ in range(1000)]
    resp = app.test_client().post(ENDPOINT, json={"records": flood})
    assert (resp.status_code, resp.get_json()["accepted"]) == (200, 1000)
