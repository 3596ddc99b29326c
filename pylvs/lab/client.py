"""Lab clients: many HTTP requests and UDP echo exchanges from inside client namespaces.

Sockets belong to the network namespace of the thread that creates them (``setns(2)`` is per
thread), so every worker thread enters its client's namespace once and then makes all its
connections from there; no process is started per request (curl in a loop manages about a hundred
requests a second, this some hundreds to a thousand on two cores).
"""

from __future__ import annotations

import http.client
import socket
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from pylvs.io import netcfg

__all__ = ["LoadResult", "http_load", "udp_echo"]


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
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
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
