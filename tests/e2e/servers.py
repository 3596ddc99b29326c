"""Small real-server programs for the end-to-end tests, run inside a real server namespace.

``tcp NAME PORT``: for every connection, send NAME padded to 8 bytes, then echo everything until
the client half-closes, then close. ``udp NAME PORT``: answer each datagram with NAME padded to 8
bytes followed by the datagram. Both listen on all addresses (the VIP in DR/TUN, the RIP in NAT)
and print ``ready`` once listening. ``source NAME PORT``: for every connection, read an 8-byte
big-endian length N and send N bytes of :func:`pattern`, paced (64 KiB every 10 ms) so that a
transfer lasts long enough to live through a director failover, then close.
"""

from __future__ import annotations

import socket
import struct
import sys
import threading
import time

ID_LEN = 8
CHUNK = 65536
PACE = 0.01  # seconds between chunks: about 6 MB/s


def pattern(n: int) -> bytes:
    """N deterministic bytes (a counter pattern the client can rebuild to compare)."""
    block = bytes((i * 7 + i // 256) % 251 for i in range(CHUNK))
    return (block * (n // CHUNK + 1))[:n]


def _source_conn(conn: socket.socket) -> None:
    with conn:
        head = b""
        while len(head) < 8:
            part = conn.recv(8 - len(head))
            if not part:
                return
            head += part
        (n,) = struct.unpack("!Q", head)
        data = pattern(n)
        for off in range(0, n, CHUNK):
            conn.sendall(data[off : off + CHUNK])
            time.sleep(PACE)


def serve_source(port: int) -> None:
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("0.0.0.0", port))
    srv.listen(128)
    print("ready", flush=True)
    while True:
        conn, _ = srv.accept()
        threading.Thread(target=_source_conn, args=(conn,), daemon=True).start()


def _tcp_conn(conn: socket.socket, ident: bytes) -> None:
    with conn:
        conn.sendall(ident)
        while True:
            data = conn.recv(65536)
            if not data:
                break
            conn.sendall(data)


def serve_tcp(ident: bytes, port: int) -> None:
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("0.0.0.0", port))
    srv.listen(128)
    print("ready", flush=True)
    while True:
        conn, _ = srv.accept()
        threading.Thread(target=_tcp_conn, args=(conn, ident), daemon=True).start()


def serve_udp(ident: bytes, port: int) -> None:
    srv = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    srv.bind(("0.0.0.0", port))
    print("ready", flush=True)
    while True:
        data, peer = srv.recvfrom(65536)
        srv.sendto(ident + data, peer)


def main() -> None:
    kind, name, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    ident = name.encode().ljust(ID_LEN)[:ID_LEN]
    if kind == "tcp":
        serve_tcp(ident, port)
    elif kind == "source":
        serve_source(port)
    else:
        serve_udp(ident, port)


if __name__ == "__main__":
    main()
