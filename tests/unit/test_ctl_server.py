"""The control socket under bad input and misbehaving clients: every request gets an answer or a
closed connection, and no client can hold up the daemon's loop."""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from pylvs.core.control import ServiceSpec
from pylvs.core.ipvs import IPVS
from pylvs.ctl import MAX_LINE, ControlClient, ControlServer
from pylvs.loop import Loop


class Served:
    def __init__(self, name: str) -> None:
        self.name = name
        self.ipvs = IPVS()
        self.loop = Loop()
        self.server = ControlServer(self.ipvs, name, extra={"ping": lambda: "pong"})
        self.loop.add(self.server)
        self.running = True
        self.thread = threading.Thread(target=self.loop.run, args=(lambda: self.running,))
        self.thread.start()

    def client(self, timeout: float = 5.0) -> ControlClient:
        return ControlClient(self.name, timeout=timeout)

    def raw(self) -> socket.socket:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(5.0)
        sock.connect("\0" + self.name)
        return sock

    def stop(self) -> None:
        self.running = False
        self.loop.wake()
        self.thread.join(5)
        self.loop.close()


@pytest.fixture
def served() -> Iterator[Served]:
    s = Served(f"pylvs-test-{os.getpid()}-{time.monotonic_ns()}")
    try:
        yield s
    finally:
        s.stop()


def _read_reply(sock: socket.socket) -> dict[str, object] | None:
    data = b""
    while not data.endswith(b"\n"):
        chunk = sock.recv(65536)
        if not chunk:
            return None
        data += chunk
    reply: dict[str, object] = json.loads(data.splitlines()[0])
    return reply


SVC = ServiceSpec(protocol=6, addr="203.0.113.10", port=80, scheduler="rr")


@pytest.mark.parametrize(
    "line",
    [
        b"[" * 200000 + b"\n",  # before: RecursionError ended the daemon and its table
        b"{" * 5000 + b"\n",
        b'{"op": "ping", "args": ' + b"[" * 60 + b"]" * 60 + b"}\n",
        b"x" * (MAX_LINE + 10) + b"\n",
        b'{"op": "add_service", "args": {"spec": {"port": ' + b"9" * 5000 + b"}}}\n",
        b"\xff\xfe\n",
        b"null\n",
        b"\n\n\n",
    ],
)
def test_any_line_gets_an_answer_and_the_daemon_keeps_its_table(
    served: Served, line: bytes
) -> None:
    with served.client() as ctl:
        ctl.add_service(SVC)
    with served.raw() as sock:
        sock.sendall(line)
        if line.strip():
            reply = _read_reply(sock)
            assert reply is None or reply["ok"] is False
    with served.client() as ctl:
        assert ctl.ping()
        assert [s.port for s in ctl.services()] == [80]


def test_clients_that_do_not_read_cannot_stall_the_others(served: Served) -> None:
    """Before, replies were written with a blocking 2 s sendall in the loop: five clients that
    sent 4,000 requests each without reading delayed another client's ping by 14 s."""
    floods = []
    request = json.dumps({"op": "services"}).encode() + b"\n"
    with served.client() as ctl:
        for port in range(1, 40):
            ctl.add_service(ServiceSpec(protocol=6, addr="203.0.113.10", port=port))
    for _ in range(5):
        sock = served.raw()
        sock.setblocking(False)
        sent = 0
        try:
            for _ in range(4000):
                sock.send(request)
                sent += 1
        except BlockingIOError:
            pass  # the server stopped reading this client: it has not read its replies
        floods.append(sock)
    try:
        with served.client(timeout=5.0) as ctl:
            started = time.monotonic()
            assert ctl.ping()
            assert time.monotonic() - started < 5.0
    finally:
        for sock in floods:
            sock.close()
    assert served.server.status()["requests"] > 0


def test_many_clients_at_once(served: Served) -> None:
    clients = [served.client() for _ in range(100)]
    try:
        assert all(c.ping() for c in clients)
    finally:
        for c in clients:
            c.close()
    with served.client() as ctl:
        assert ctl.ping()
