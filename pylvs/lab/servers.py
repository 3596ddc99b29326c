"""The programs a lab real server runs: an HTTP server and a UDP echo server that name their host.

``python -m pylvs.lab.servers --name rs1 --http 80 --udp-echo 7`` serves HTTP on every ``--http``
port and UDP echo on every ``--udp-echo`` port, on all addresses (the VIP in DR and TUN, the real
server's own address in NAT), until SIGTERM; with ``--ipv6`` on all IPv6 addresses instead (an
IPv6 scenario). Every HTTP answer is ``<name>\\n`` with an ``X-Real-Server: <name>`` header, so
a client sees which real server the director picked; a UDP reply is ``<name> `` followed by the
datagram. It prints ``ready`` once all sockets listen.

``GET /data/N`` answers N bytes of deterministic data (:func:`data_chunks`, the same on every
real server, so a client can check what it got with :func:`data_sha256`), and
``GET /data/N?rate=R`` sends them at R bytes a second: a long transfer, to see a connection
survive a director's failover.
"""

from __future__ import annotations

import argparse
import hashlib
import signal
import socket
import struct
import sys
import threading
import time
import urllib.parse
from collections.abc import Iterator, Sequence
from functools import cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType

__all__ = ["DATA_BLOCK", "data_chunks", "data_path", "data_sha256", "main", "make_http_server"]

DATA_BLOCK = 65536
_MAX_DATA = 1 << 32


@cache
def _block_body() -> bytes:
    # 64 KiB of SHA-256 output: incompressible, fixed.
    return b"".join(hashlib.sha256(b"pylvs-lab %d" % i).digest() for i in range(DATA_BLOCK // 32))


def data_chunks(size: int) -> Iterator[bytes]:
    """The ``size`` bytes ``GET /data/<size>`` answers, block by block: block k is its number
    (8 bytes, big-endian) followed by a fixed 64 KiB pattern, so that a lost, repeated or
    reordered block changes the checksum."""
    body = _block_body()
    sent, k = 0, 0
    while sent < size:
        block = k.to_bytes(8, "big") + body[8:]
        part = block[: size - sent]
        sent += len(part)
        k += 1
        yield part


def data_sha256(size: int) -> str:
    """The SHA-256 (hex) of the data of ``GET /data/<size>``."""
    digest = hashlib.sha256()
    for chunk in data_chunks(size):
        digest.update(chunk)
    return digest.hexdigest()


def data_path(size: int, rate: int | None = None) -> str:
    """The path that asks for ``size`` bytes, at ``rate`` bytes a second if given."""
    return f"/data/{size}" + (f"?rate={rate}" if rate else "")


def make_http_server(name: str, port: int, ipv6: bool = False) -> ThreadingHTTPServer:
    body = f"{name}\n".encode()

    class Handler(BaseHTTPRequestHandler):
        server_version = f"pylvs-lab/{name}"
        # HTTP/1.0: one request per connection, so every request is a new LVS connection and the
        # spread over the real servers shows the scheduler's decisions one by one.
        protocol_version = "HTTP/1.0"

        def do_GET(self) -> None:
            if self.path.startswith("/data/"):
                self._data()
                return
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("X-Real-Server", name)
            self.end_headers()
            self.wfile.write(body)

        def _data(self) -> None:
            url = urllib.parse.urlsplit(self.path)
            query = urllib.parse.parse_qs(url.query)
            try:
                size = int(url.path.removeprefix("/data/"))
                rate = float(query.get("rate", ["0"])[0])
                if not 0 <= size <= _MAX_DATA or rate < 0:
                    raise ValueError
            except ValueError:
                self.send_error(400, "use /data/<bytes>[?rate=<bytes per second>]")
                return
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(size))
            self.send_header("X-Real-Server", name)
            self.end_headers()
            start, sent = time.monotonic(), 0
            for chunk in data_chunks(size):
                if rate:
                    # Paced: each block leaves when the rate says it is due.
                    delay = start + sent / rate - time.monotonic()
                    if delay > 0:
                        time.sleep(delay)
                try:
                    self.wfile.write(chunk)
                except OSError:
                    return  # the client went away
                sent += len(chunk)

        def do_HEAD(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("X-Real-Server", name)
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            return  # thousands of requests per demo: no access log

    class Server(ThreadingHTTPServer):
        daemon_threads = True
        request_queue_size = 256  # bursts of parallel clients must not overflow the backlog
        address_family = socket.AF_INET6 if ipv6 else socket.AF_INET

    return Server(("::" if ipv6 else "0.0.0.0", port), Handler)


# IP_PKTINFO (include/uapi/linux/in.h); struct in_pktinfo {int ifindex; in_addr spec_dst, addr}.
_IP_PKTINFO = 8
_PKTINFO = struct.Struct("i4s4s")


def _udp_echo(sock: socket.socket, prefix: bytes) -> None:
    """Answer from the address the datagram was sent to.

    A socket bound to 0.0.0.0 would otherwise answer from the real server's own address (the
    source of the route back), and in DR and TUN the client, which sent to the VIP, would not
    take that for an answer. IP_PKTINFO gives the destination of each datagram and sets the
    source of the reply.
    """
    sock.setsockopt(socket.IPPROTO_IP, _IP_PKTINFO, 1)
    while True:
        data, ancdata, _flags, peer = sock.recvmsg(65535, socket.CMSG_SPACE(_PKTINFO.size))
        local = b"\0\0\0\0"
        for level, kind, value in ancdata:
            if level == socket.IPPROTO_IP and kind == _IP_PKTINFO:
                local = _PKTINFO.unpack(value[: _PKTINFO.size])[2]
        cmsg = [(socket.IPPROTO_IP, _IP_PKTINFO, _PKTINFO.pack(0, local, b"\0\0\0\0"))]
        sock.sendmsg([prefix + data], cmsg, 0, peer)


# IPV6_RECVPKTINFO / IPV6_PKTINFO (RFC 3542 6.1): struct in6_pktinfo {in6_addr addr; int ifindex}.
_PKTINFO6 = struct.Struct("16si")


def _udp_echo6(sock: socket.socket, prefix: bytes) -> None:
    """:func:`_udp_echo` for IPv6: IPV6_PKTINFO gives the datagram's destination (the VIP in DR
    and TUN) and sets it as the reply's source."""
    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_RECVPKTINFO, 1)
    while True:
        data, ancdata, _flags, peer = sock.recvmsg(65535, socket.CMSG_SPACE(_PKTINFO6.size))
        local = bytes(16)
        for level, kind, value in ancdata:
            if level == socket.IPPROTO_IPV6 and kind == socket.IPV6_PKTINFO:
                local = _PKTINFO6.unpack(value[: _PKTINFO6.size])[0]
        cmsg = [(socket.IPPROTO_IPV6, socket.IPV6_PKTINFO, _PKTINFO6.pack(local, 0))]
        sock.sendmsg([prefix + data], cmsg, 0, peer)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="lab real server: HTTP and UDP echo naming this host")
    p.add_argument("--name", required=True)
    p.add_argument("--http", type=int, action="append", default=[], metavar="PORT")
    p.add_argument("--udp-echo", type=int, action="append", default=[], metavar="PORT")
    p.add_argument("--ipv6", action="store_true", help="serve on IPv6 (::) instead of IPv4")
    args = p.parse_args(argv)
    servers = [make_http_server(args.name, port, args.ipv6) for port in args.http]
    for server in servers:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    for port in args.udp_echo:
        prefix = f"{args.name} ".encode()
        if args.ipv6:
            sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(("::", port))
            threading.Thread(target=_udp_echo6, args=(sock, prefix), daemon=True).start()
            continue
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("0.0.0.0", port))
        threading.Thread(target=_udp_echo, args=(sock, prefix), daemon=True).start()
    stop = threading.Event()

    def _stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    print("ready", flush=True)
    while not stop.is_set():
        stop.wait(1.0)
    for server in servers:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
