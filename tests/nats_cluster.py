"""A real 3-node NATS JetStream cluster on 127.0.0.1 (Debian's nats-server), for the tests and
the benchmarks."""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .support import REPO, free_port, stop_group, wait_for

NATS_SERVER = shutil.which("nats-server") or "/usr/sbin/nats-server"


@dataclass
class Node:
    name: str
    port: int
    cluster_port: int
    store: Path
    conf: Path
    log: Path
    proc: subprocess.Popen[bytes] | None = None


@dataclass
class Cluster:
    root: Path
    size: int = 3
    nodes: list[Node] = field(default_factory=list)
    not_ready: str = "no answer yet"  # why the last readiness check failed

    def __post_init__(self) -> None:
        for i in range(self.size):
            name = f"n{i + 1}"
            self.nodes.append(Node(name, free_port(), free_port(), self.root / name / "store",
                                   self.root / name / "nats.conf", self.root / name / "log"))
        routes = ", ".join(f"nats-route://127.0.0.1:{n.cluster_port}" for n in self.nodes)
        for node in self.nodes:
            node.store.mkdir(parents=True, exist_ok=True)
            node.conf.write_text(f"""
server_name: {node.name}
listen: 127.0.0.1:{node.port}
jetstream {{ store_dir: "{node.store}" }}
cluster {{
  name: ui-telemetry-test
  listen: 127.0.0.1:{node.cluster_port}
  routes: [{routes}]
}}
""")

    @property
    def url(self) -> str:
        """The servers part of a nats:// URL: every node."""
        return ",".join(f"127.0.0.1:{n.port}" for n in self.nodes)

    def start(self, *which: int) -> Cluster:
        for i in which or range(self.size):
            node = self.nodes[i]
            if node.proc is not None and node.proc.poll() is None:
                continue
            log = open(node.log, "ab")  # noqa: SIM115 - handed to the child
            node.proc = subprocess.Popen([NATS_SERVER, "-c", str(node.conf)], stdout=log,
                                         stderr=subprocess.STDOUT, start_new_session=True)
            log.close()
        try:
            wait_for(self.ready, timeout=30, interval=0.2)
        except AssertionError:
            # Stopped here, or the nodes outlive the test and their reconnecting routes take
            # the ports the next test's cluster picked.
            said = "\n".join(f"{n.name}: " + " | ".join(n.log.read_text(errors="replace")
                                                         .splitlines()[-3:])
                             for n in self.nodes)
            self.stop()
            raise AssertionError(f"the NATS cluster did not become ready in 30 s "
                                 f"({self.not_ready}):\n{said}") from None
        return self

    def kill9(self, *which: int) -> None:
        for proc in self._signal(signal.SIGKILL, which):
            proc.wait(10)

    def pause(self, *which: int) -> None:
        """SIGSTOP nodes (all by default): frozen with their connections open, as a node that
        stalls on a full disk or a long GC pause, not one that is gone."""
        self._signal(signal.SIGSTOP, which)

    def resume(self, *which: int) -> None:
        self._signal(signal.SIGCONT, which)

    def _signal(self, sig: int, which: tuple[int, ...]) -> list[subprocess.Popen[bytes]]:
        """Send sig to the running nodes among `which` (all by default); those nodes."""
        hit = []
        for i in which or range(self.size):
            proc = self.nodes[i].proc
            if proc is not None and proc.poll() is None:
                os.killpg(proc.pid, sig)
                hit.append(proc)
        return hit

    def stop(self) -> None:
        self.resume()  # a stopped process does not act on SIGTERM
        for node in self.nodes:
            stop_group(node.proc, grace=10)

    def running(self) -> list[int]:
        return [i for i, n in enumerate(self.nodes) if n.proc is not None and n.proc.poll() is None]

    def ready(self) -> bool:
        """Every running node answers, and JetStream has a leader (it takes writes)."""
        try:
            return run(self._ready())
        except Exception as err:  # noqa: BLE001 - not yet
            self.not_ready = f"{type(err).__name__}: {err}"
            return False

    async def _ready(self) -> bool:
        for i in self.running():
            nc = await self._connect([i])
            try:
                await nc.jetstream().account_info()
            finally:
                await nc.close()
        return True

    async def _connect(self, which: list[int] | None = None) -> Any:
        import nats

        async def quiet(err: Exception) -> None:
            pass

        servers = [f"nats://127.0.0.1:{self.nodes[i].port}"
                   for i in (which if which is not None else self.running())]
        return await nats.connect(servers=servers, connect_timeout=2, allow_reconnect=False,
                                  error_cb=quiet)

    # -- the stream -------------------------------------------------------------------------

    def add_stream(self, name: str, subject: str, replicas: int = 3,
                   duplicate_window: str = "8d") -> str:
        """The stream, made by the README's command (scripts/create_stream.py)."""
        def create() -> str:
            out = subprocess.run(
                [sys.executable, str(REPO / "scripts" / "create_stream.py"),
                 f"nats://{self.url}/{subject}", "--name", name, "--replicas", str(replicas),
                 "--duplicate-window", duplicate_window],
                capture_output=True, text=True, timeout=60)
            if out.returncode != 0:
                raise RuntimeError(out.stderr)
            return out.stdout

        return retrying(create)

    def messages(self, stream: str, subject: str) -> list[dict[str, Any]]:
        """Every message in the stream, read by sequence: {"data", "headers", "msg_id",
        "time"}."""
        async def read() -> list[dict[str, Any]]:
            nc = await self._connect()
            try:
                js = nc.jetstream()
                info = await js.stream_info(stream)
                out = []
                for seq in range(info.state.first_seq, info.state.last_seq + 1):
                    if info.state.messages == 0:
                        break
                    msg = await js.get_msg(stream, seq)
                    out.append({"data": json.loads(msg.data), "headers": msg.headers or {},
                                "msg_id": (msg.headers or {}).get("Nats-Msg-Id"),
                                "time": msg.time})
                return out
            finally:
                await nc.close()

        return retrying(lambda: run(read()))

    def count(self, stream: str) -> int:
        async def info() -> int:
            nc = await self._connect()
            try:
                return (await nc.jetstream().stream_info(stream)).state.messages
            finally:
                await nc.close()

        try:
            return run(info())
        except Exception:  # noqa: BLE001 - no quorum at this moment
            return -1


def run(coro: Any, timeout: float = 10) -> Any:
    """The coroutine's value within `timeout`, on a loop of its own: in a thread of its own
    when this one runs a loop already (Playwright's sync API keeps one in the test's thread)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(asyncio.wait_for(coro, timeout))
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, asyncio.wait_for(coro, timeout)).result()


def retrying(fn: Any, timeout: float = 30) -> Any:
    """fn()'s value, tried again while it raises (the cluster electing, a node coming back)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return fn()
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)
