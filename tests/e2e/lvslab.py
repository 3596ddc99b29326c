"""Helpers for the end-to-end tests: start pylvsd, real servers and clients inside a Lab."""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pylvs.core.control import DestSpec, ServiceSpec
from pylvs.core.service import IPPROTO_TCP, IPPROTO_UDP, FwdMethod
from pylvs.ctl import ControlClient
from pylvs.testing.netns import Lab, LvsTopology, build_lvs_lab, wait_until

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
SERVERS = HERE / "servers.py"
PORT = 8080
ID_LEN = 8

FWD = {"nat": FwdMethod.MASQ, "dr": FwdMethod.ROUTE, "tun": FwdMethod.TUNNEL}
PROTO = {"tcp": IPPROTO_TCP, "udp": IPPROTO_UDP}


def pylvs_argv(module: str, *args: str) -> list[str]:
    return [sys.executable, "-m", module, *args]


def read_line(proc: subprocess.Popen[Any], timeout: float = 10.0) -> str:
    """One line of a process's stdout, waiting at most ``timeout`` seconds."""
    box: list[str] = []
    reader = threading.Thread(target=lambda: box.append(proc.stdout.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    if not box:
        raise AssertionError(f"no output from {proc.args} within {timeout}s")
    return box[0]


def control(lab: Lab, short: str = "d", name: str = "pylvsd") -> ControlClient:
    """A control client for the pylvsd of lab namespace ``short`` (abstract sockets: per netns)."""
    with lab.inside(short):
        return ControlClient(name, timeout=10.0)


def try_control(lab: Lab, short: str = "d") -> ControlClient | None:
    try:
        return control(lab, short)
    except OSError:
        return None


@dataclass
class Daemon:
    proc: subprocess.Popen[Any]
    log: Path
    ctl: ControlClient

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def start_daemon(
    lab: Lab, log: Path, backend: str = "nfqueue", *extra: str, short: str = "d"
) -> Daemon:
    """pylvsd in the foreground in namespace ``short``, ready when its control socket answers.

    ``backend`` is a ``--backend`` name, or NAME-RUNTIME for ``--data-plane RUNTIME`` too
    (``afpacket-cpython``: the suite's parameter, see conftest.py)."""
    name, _, data_plane = backend.partition("-")
    argv = ["--foreground", "--backend", name]
    if data_plane:
        argv += ["--data-plane", data_plane]
    out = log.open("w")
    proc = lab.popen(
        short,
        pylvs_argv("pylvs.cli.pylvsd", *argv, *extra),
        stdout=out,
        stderr=subprocess.STDOUT,
        cwd=REPO,
    )
    out.close()

    def ready() -> ControlClient | None:
        if proc.poll() is not None:
            raise AssertionError(f"pylvsd exited with {proc.returncode}: {log.read_text()}")
        return try_control(lab, short)

    ctl = wait_until(ready, timeout=15, what="pylvsd control socket")
    # The socket listens before the backend is open (it is pylvsd's lock on the namespace); the
    # first answer comes from the main loop, so once ping returns the start-up is complete.
    assert ctl.ping()
    return Daemon(proc, log, ctl)


def start_server(lab: Lab, short: str, kind: str, port: int = PORT) -> subprocess.Popen[Any]:
    proc = lab.popen(
        short,
        [sys.executable, str(SERVERS), kind, short, str(port)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert read_line(proc).strip() == "ready"
    return proc


@dataclass
class Farm:
    """A running LVS: lab topology, pylvsd with one service, real servers."""

    lab: Lab
    topo: LvsTopology
    daemon: Daemon
    mode: str
    proto: str
    svc: ServiceSpec
    reals: list[str] = field(default_factory=list)

    @property
    def ctl(self) -> ControlClient:
        return self.daemon.ctl


def setup_realservers(lab: Lab, topo: LvsTopology, mode: str, shorts: list[str]) -> None:
    for short in shorts:
        if mode == "tun":
            proc = lab.popen(
                short,
                pylvs_argv("pylvs.cli.pylvs", "realserver", "--vip", topo.vip, "--mode", "tun"),
                stdout=subprocess.PIPE,
                text=True,
                cwd=REPO,
            )
            assert "decapsulating" in read_line(proc)
        elif mode == "dr":
            args = ["realserver", "--vip", topo.vip, "--mode", "dr"]
            lab.run(short, pylvs_argv("pylvs.cli.pylvs", *args), cwd=REPO)
        else:
            args = ["realserver", "--vip", topo.vip, "--mode", "nat"]
            args += ["--director", topo.director_back]
            lab.run(short, pylvs_argv("pylvs.cli.pylvs", *args), cwd=REPO)


def undo_realservers(lab: Lab, shorts: list[str]) -> None:
    for short in shorts:
        lab.run(short, pylvs_argv("pylvs.cli.pylvs", "realserver", "--undo"), cwd=REPO, check=False)


@contextmanager
def farm(
    tmp_path: Path,
    backend: str,
    mode: str,
    proto: str,
    scheduler: str = "rr",
    weights: tuple[int, ...] = (1, 1, 1),
    persistent: bool = False,
) -> Iterator[Farm]:
    """Build the lab, start real servers and pylvsd, configure one service; tear all down."""
    with Lab() as lab:
        topo = build_lvs_lab(lab, len(weights))
        shorts = [f"r{i + 1}" for i in range(len(weights))]
        try:
            setup_realservers(lab, topo, mode, shorts)
            for short in shorts:
                start_server(lab, short, proto)
            daemon = start_daemon(lab, tmp_path / "pylvsd.log", backend)
            svc = ServiceSpec(
                protocol=PROTO[proto],
                addr=topo.vip,
                port=PORT,
                scheduler=scheduler,
                persistent=persistent,
                timeout=60,
            )
            daemon.ctl.add_service(svc)
            for rip, weight in zip(topo.reals, weights, strict=True):
                dest = DestSpec(addr=rip, port=PORT, weight=weight, fwd=int(FWD[mode]))
                daemon.ctl.add_dest(svc, dest)
            yield Farm(lab, topo, daemon, mode, proto, svc, list(shorts))
        finally:
            undo_realservers(lab, shorts)


# -- clients -----------------------------------------------------------------------------------


def recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError(f"EOF after {len(buf)} of {n} bytes")
        buf += chunk
    return bytes(buf)


def tcp_open(lab: Lab, addr: str, port: int = PORT, timeout: float = 10.0) -> socket.socket:
    with lab.inside("c"):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    sock.connect((addr, port))
    return sock


def tcp_exchange(sock: socket.socket, payload: bytes) -> tuple[str, bytes]:
    """Read the server's name, send ``payload``, half-close, read the echo to EOF."""
    ident = recv_exact(sock, ID_LEN).decode().strip()

    def send() -> None:
        sock.sendall(payload)
        sock.shutdown(socket.SHUT_WR)

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    echoed = bytearray()
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            break
        echoed += chunk
    sender.join(10)
    sock.close()
    return ident, bytes(echoed)


def udp_exchange(
    lab: Lab, addr: str, payloads: list[bytes], port: int = PORT
) -> tuple[str, list[bytes]]:
    """Send datagrams from one socket (one connection), collect the replies in order."""
    with lab.inside("c"):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.settimeout(3.0)
    idents: set[str] = set()
    replies: list[bytes] = []
    with sock:
        for payload in payloads:
            for _attempt in range(3):
                sock.sendto(payload, (addr, port))
                try:
                    data = sock.recv(65536)
                except TimeoutError:
                    continue
                idents.add(data[:ID_LEN].decode().strip())
                replies.append(data[ID_LEN:])
                break
            else:
                raise AssertionError(f"no UDP reply from {addr}:{port}")
    assert len(idents) == 1, f"one UDP flow answered by several servers: {idents}"
    return idents.pop(), replies


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def random_bytes(n: int) -> bytes:
    return os.urandom(n)
