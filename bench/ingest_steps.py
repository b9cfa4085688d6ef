"""Where a POST's time goes, in-process (no gunicorn, no network). Prints figures; asserts nothing.

    python bench/ingest_steps.py [--requests 3000]

Each request carries 20 new records, as in relay_throughput.py. The steps are timed one by one
on the same bodies, then the whole WSGI call of the relay against a bare Flask view that only
parses the JSON.
"""

from __future__ import annotations

import argparse
import io
import itertools
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from flask import Flask, jsonify, request  # noqa: E402

from relay.control.config import ENDPOINT, load_config  # noqa: E402
from relay.control.policy import CI_VARIABLES  # noqa: E402
from relay.ingest.validation import BatchResult, validate_batch  # noqa: E402
from relay.serve.app import create_app  # noqa: E402
from relay.serve.extension import relay_of  # noqa: E402
from tests.support import make_record  # noqa: E402


def bodies(n: int) -> list[bytes]:
    records = [make_record() for _ in range(20)]
    for k, record in enumerate(records):
        record["event_id"] = f"@@@@@@@@-0000-4000-8000-{k:012x}"
    template = json.dumps({"records": records})
    return [template.replace("@@@@@@@@", f"{i:08x}").encode() for i in range(n)]


def per_call(fn: Callable[[bytes], object], items: list[bytes]) -> float:
    t0 = time.perf_counter()
    for item in items:
        fn(item)
    return (time.perf_counter() - t0) / len(items) * 1e3


def wsgi_post(app: Flask) -> Callable[[bytes], object]:
    def call(body: bytes) -> bytes:
        environ = {"REQUEST_METHOD": "POST", "PATH_INFO": ENDPOINT, "SERVER_NAME": "127.0.0.1",
                   "SERVER_PORT": "5000", "HTTP_HOST": "127.0.0.1:5000",
                   "CONTENT_TYPE": "application/json", "CONTENT_LENGTH": str(len(body)),
                   "wsgi.input": io.BytesIO(body), "wsgi.url_scheme": "http",
                   "SERVER_PROTOCOL": "HTTP/1.1", "wsgi.errors": sys.stderr}
        status: list[str] = []
        out = app(environ, lambda s, h, e=None: status.append(s))
        data = b"".join(out)
        if not status[0].startswith("200"):
            raise SystemExit(f"unexpected {status[0]}: {data[:200]!r}")
        return data
    return call


def encode(batch: BatchResult, encode_all: Callable[[list[dict]], list[str]]) -> list[str]:
    """The texts the endpoint stores: the codec's stored form of each valid record."""
    return encode_all(batch.records)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=3000)
    args = parser.parse_args()
    n = args.requests
    data_dir = Path(tempfile.mkdtemp(prefix="ingest-steps-"))
    for name in CI_VARIABLES:  # a server's usual environment (see relay_throughput.relay_env)
        os.environ.pop(name, None)
    os.environ.pop("RELAY_IGNORE_CI", None)
    app = create_app(load_config({"RELAY_DATA_DIR": str(data_dir), "RELAY_RATE_LIMIT": "off",
                                  "RELAY_MAX_RECORDS_PER_S": "off"}), start_forwarder=False)
    relay = relay_of(app)
    bare = Flask("bare")

    @bare.post(ENDPOINT)
    def ingest() -> object:
        body = request.get_json(force=True)
        return jsonify(status="success", accepted=len(body["records"]), rejected=0)

    sample = bodies(n)
    parsed = [json.loads(b) for b in sample]
    texts = [encode(validate_batch(p, 1000), relay.codec.encode) for p in parsed]
    at = itertools.count()

    def store(_: bytes) -> None:
        i = next(at)
        relay.spool.store(texts[i], limit=10**9)
        if i % 500 == 499:  # the forwarder's job in a server, once a second
            relay.spool.checkpoint()

    print(f"per request of 20 records, mean of {n}:")
    steps = [
        ("json.loads", lambda b: json.loads(b)),
        ("validate_batch", lambda b: validate_batch(json.loads(b), 1000)),
        ("Codec.encode", lambda b: encode(validate_batch(json.loads(b), 1000),
                                                      relay.codec.encode)),
    ]
    for name, fn in steps:
        print(f"   {name:28} {per_call(fn, sample):.3f} ms (cumulative)")
    print(f"   {'Spool.store + checkpoints':28} {per_call(store, sample):.3f} ms")
    relay_ms = per_call(wsgi_post(app), sample)
    bare_ms = per_call(wsgi_post(bare), sample)
    print(f"   {'whole POST, relay':28} {relay_ms:.3f} ms")
    print(f"   {'whole POST, bare Flask':28} {bare_ms:.3f} ms")


if __name__ == "__main__":
    main()
