"""Small real-server programs for the end-to-end tests, run inside a real server namespace.

``tcp NAME PORT``: for every connection, send NAME padded to 8 bytes, then echo everything until
the client half-closes, then close. ``udp NAME PORT``: answer each datagram with NAME padded to 8
bytes followed by the datagram. Both listen on all addresses (the VIP in DR/TUN, the RIP in NAT)
and print ``ready`` once listening.
"""

from __future__ import annotations

import socket
import sys
import threading

ID_LEN = 8


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
    else:
        serve_udp(ident, port)


if __name__ == "__main__":
    main()
