"""Lab clients: many HTTP requests and UDP echo exchanges from inside client namespaces, and one
long download (:func:`start_download`) that runs in the background while something fails.

Sockets belong to the network namespace of the thread that creates them (``setns(2)`` is per
thread), so every worker thread enters its client's namespace once and then makes all its
connections from there; no process is started per request (curl in a loop manages about a hundred
requests a second, this some hundreds to a thousand on two cores).
"""

from __future__ import annotations

import hashlib
import http.client
import socket
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from pylvs.io import netcfg
from pylvs.lab.servers import data_path, data_sha256

__all__ = ["Download", "LoadResult", "http_load", "start_download", "udp_echo"]


@dataclass
class LoadResult:
    """What a load run saw: answers per real server name, failures, duration."""

    servers: Counter[str] = field(default_factory=Counter)
    per_client: dict[str, Counter[str]] = field(default_factory=dict)
    errors: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0

    @property
    def ok(self) -> int:
        return sum(self.servers.values())

    @property
    def rate(self) -> float:
        return self.ok / self.seconds if self.seconds > 0 else 0.0


def _family(host: str) -> socket.AddressFamily:
    """AF_INET6 for an IPv6 address (the VIP of an IPv6 scenario), AF_INET otherwise."""
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def _get(host: str, port: int, timeout: float) -> str:
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("GET", "/", headers={"Connection": "close"})
        response = conn.getresponse()
        body = response.read()
        if response.status != 200:
            raise http.client.HTTPException(f"HTTP {response.status}")
        return response.getheader("X-Real-Server") or body.decode().strip()
    finally:
        conn.close()


def http_load(
    clients: Sequence[str],
    host: str,
    port: int = 80,
    count: int = 1000,
    threads_per_client: int = 4,
    timeout: float = 5.0,
) -> LoadResult:
    """``count`` HTTP GETs to ``host:port``, shared out over ``clients`` (namespace names).

    Each request is a new TCP connection (HTTP/1.0, ``Connection: close``).
    """
    result = LoadResult(per_client={ns: Counter() for ns in clients})
    lock = threading.Lock()
    workers = [(ns, k) for ns in clients for k in range(threads_per_client)]
    shares = [
        count // len(workers) + (1 if i < count % len(workers) else 0) for i in range(len(workers))
    ]

    def work(ns: str, n: int) -> None:
        seen: Counter[str] = Counter()
        errors: Counter[str] = Counter()
        with netcfg.in_netns(ns):
            for _ in range(n):
                try:
                    seen[_get(host, port, timeout)] += 1
                except (OSError, http.client.HTTPException) as exc:
                    errors[type(exc).__name__] += 1
        with lock:
            result.servers.update(seen)
            result.per_client[ns].update(seen)
            result.errors.update(errors)

    start = time.monotonic()
    threads = [
        threading.Thread(target=work, args=(ns, n), daemon=True)
        for (ns, _k), n in zip(workers, shares, strict=True)
        if n
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    result.seconds = time.monotonic() - start
    return result


def udp_echo(
    ns: str, host: str, port: int = 7, count: int = 1, timeout: float = 2.0
) -> Counter[str]:
    """``count`` echo exchanges, each from a new socket (a new UDP flow); answers per server."""
    seen: Counter[str] = Counter()
    with netcfg.in_netns(ns):
        for i in range(count):
            with socket.socket(_family(host), socket.SOCK_DGRAM) as sock:
                sock.settimeout(timeout)
                payload = f"ping {i}".encode()
                for _attempt in range(3):
                    sock.sendto(payload, (host, port))
                    try:
                        data = sock.recv(65535)
                    except TimeoutError:
                        continue
                    name, _, echoed = data.partition(b" ")
                    if echoed == payload:
                        seen[name.decode()] += 1
                    break
                else:
                    seen["(no answer)"] += 1
    return seen


@dataclass
class Download:
    """One ``GET /data/<size>`` from a client, running in a thread; the fields fill in as it
    goes (``received`` grows, ``cport`` is the client's port once connected)."""

    ns: str
    host: str
    port: int
    size: int
    rate: int | None
    cport: int = 0
    server: str = ""  # the real server that answers (X-Real-Server)
    received: int = 0
    sha256: str = ""
    expected_sha256: str = ""
    error: str = ""
    started: float = 0.0  # time.monotonic()
    finished: float = 0.0
    longest_stall: float = 0.0  # the longest wait for the next bytes, seconds
    stall_end: float = 0.0  # when that wait ended (time.monotonic())
    connected: threading.Event = field(default_factory=threading.Event)
    done: threading.Event = field(default_factory=threading.Event)

    @property
    def ok(self) -> bool:
        """Complete and byte-exact."""
        return (
            self.done.is_set()
            and not self.error
            and self.received == self.size
            and self.sha256 == self.expected_sha256
        )

    @property
    def seconds(self) -> float:
        return (self.finished or time.monotonic()) - self.started

    def wait(self, timeout: float) -> bool:
        return self.done.wait(timeout)


def _download(d: Download, timeout: float) -> None:
    digest = hashlib.sha256()
    try:
        with netcfg.in_netns(d.ns):
            conn = http.client.HTTPConnection(d.host, d.port, timeout=timeout)
            conn.connect()
        try:
            assert conn.sock is not None
            d.cport = conn.sock.getsockname()[1]
            d.connected.set()
            conn.request("GET", data_path(d.size, d.rate), headers={"Connection": "close"})
            response = conn.getresponse()
            d.server = response.getheader("X-Real-Server") or ""
            if response.status != 200:
                raise http.client.HTTPException(f"HTTP {response.status}")
            last = time.monotonic()
            while True:
                chunk = response.read1(65536)
                now = time.monotonic()
                if not chunk:
                    break
                if now - last > d.longest_stall:
                    d.longest_stall, d.stall_end = now - last, now
                last = now
                digest.update(chunk)
                d.received += len(chunk)
        finally:
            conn.close()
    except (OSError, http.client.HTTPException) as exc:
        d.error = f"{type(exc).__name__}: {exc}"
    finally:
        d.sha256 = digest.hexdigest()
        d.finished = time.monotonic()
        d.connected.set()
        d.done.set()


def start_download(
    ns: str, host: str, port: int, size: int, rate: int | None = None, timeout: float = 20.0
) -> Download:
    """Start downloading ``size`` bytes (at ``rate`` bytes a second) from the real servers'
    ``/data/`` through ``host:port``, from client namespace ``ns``; returns at once, the
    connection made (``cport`` known) or failed. ``timeout`` is how long a read may wait."""
    d = Download(ns, host, port, size, rate, expected_sha256=data_sha256(size))
    d.started = time.monotonic()
    threading.Thread(target=_download, args=(d, timeout), daemon=True).start()
    d.connected.wait(timeout)
    return d
