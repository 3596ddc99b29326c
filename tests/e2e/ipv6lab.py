"""An IPv6 LVS lab for the end-to-end tests: the IPv4 lab's shape (pylvs.testing.netns
build_lvs_lab) with documentation addresses (2001:db8::/32), and socat real servers.

    c (client) --- brf [sw: router] brb --- r1..rN (real servers)
                   |                    |
                   +--- d (director) ---+

Every namespace has duplicate address detection off (``accept_dad=0`` on ``all`` and
``default``, before its interfaces exist), so addresses are usable at once.
"""

from __future__ import annotations

import socket
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lvslab import FWD, PORT, PROTO, REPO, Daemon, pylvs_argv, read_line, start_daemon

from pylvs.core.control import DestSpec, ServiceSpec
from pylvs.core.service import AF_INET6
from pylvs.ctl import ControlClient
from pylvs.io import netcfg
from pylvs.testing.netns import Lab, wait_until

ID_LEN = 8


@dataclass(frozen=True)
class Lab6:
    vip: str = "2001:db8:10::10"
    client: str = "2001:db8:1::2"
    router_front: str = "2001:db8:1::1"
    router_back: str = "2001:db8:2::1"
    director_front: str = "2001:db8:1::3"
    director_back: str = "2001:db8:2::3"
    front_if: str = "eth0"
    back_if: str = "eth1"
    reals: tuple[str, ...] = field(default_factory=tuple)


def _no_dad(lab: Lab, short: str) -> None:
    with lab.inside(short):
        for conf in ("all", "default"):
            netcfg.write_sysctl(f"net.ipv6.conf.{conf}.accept_dad", 0)


def build_lab6(lab: Lab, n_real: int = 3) -> Lab6:
    topo = Lab6(reals=tuple(f"2001:db8:2::{11 + i}" for i in range(n_real)))
    shorts = ("sw", "c", "d", *(f"r{i + 1}" for i in range(n_real)))
    for short in shorts:
        lab.add_netns(short)
        _no_dad(lab, short)
    with lab.inside("sw"):
        for bridge in ("brf", "brb"):
            netcfg.add_bridge(bridge)
            netcfg.set_link_up(bridge)
        netcfg.add_address("brf", f"{topo.router_front}/64")
        netcfg.add_address("brb", f"{topo.router_back}/64")
        netcfg.write_sysctl("net.ipv6.conf.all.forwarding", 1)
    ports = [
        ("c", "c0", "brf", f"{topo.client}/64"),
        ("d", topo.front_if, "brf", f"{topo.director_front}/64"),
        ("d", topo.back_if, "brb", f"{topo.director_back}/64"),
    ]
    ports += [(f"r{i + 1}", "eth0", "brb", f"{rip}/64") for i, rip in enumerate(topo.reals)]
    for n, (short, ifname, bridge, addr) in enumerate(ports):
        lab.veth("sw", f"sw{n}", short, ifname, addr_b=addr)
        with lab.inside("sw"):
            netcfg.set_link_master(f"sw{n}", bridge)
    with lab.inside("c"):
        netcfg.add_route(f"{topo.vip}/128", topo.director_front)
        netcfg.add_route("::/0", topo.router_front)
    with lab.inside("d"):
        netcfg.add_address("lo", f"{topo.vip}/128")
    for i in range(n_real):
        with lab.inside(f"r{i + 1}"):
            netcfg.add_route("::/0", topo.router_back)
    return topo


def _listening(lab: Lab, short: str, proto: str, port: int, v6: bool = True) -> bool:
    table = lab.run(short, ["cat", f"/proc/net/{proto}{'6' if v6 else ''}"]).stdout.decode()
    want = "0A" if proto == "tcp" else "07"
    return any(
        line.split()[1].endswith(f":{port:04X}") and line.split()[3] == want
        for line in table.splitlines()[1:]
    )


def start_socat(
    lab: Lab, short: str, proto: str, bind: str, port: int = PORT
) -> subprocess.Popen[Any]:
    """A socat echo server on [bind]:port that first sends its name (8 bytes).

    TCP: one child per connection (``fork``). UDP: ``UDP6-LISTEN`` serves the first client's
    flow only, which is one flow per real server in these tests; it is bound to the address
    the clients use (the VIP for DR/TUN, the RIP for NAT), so replies leave from it. An IPv4
    ``bind`` gives the IPv4 server (``TCP4-LISTEN``/``UDP4-LISTEN``), for dual-stack labs."""
    name = f"printf '%-{ID_LEN}s' {short}; exec cat"
    v6 = ":" in bind
    family, host = ("6", f"[{bind}]") if v6 else ("4", bind)
    if proto == "tcp":
        listen = f"TCP{family}-LISTEN:{port},bind={host},reuseaddr,fork"
    else:
        listen = f"UDP{family}-LISTEN:{port},bind={host},reuseaddr"
    proc = lab.popen(short, ["socat", "-T", "30", listen, f"SYSTEM:{name}"])
    wait_until(lambda: _listening(lab, short, proto, port, v6), what=f"socat in {short}")
    return proc


def setup_realservers6(lab: Lab, topo: Lab6, mode: str, shorts: list[str]) -> None:
    for short in shorts:
        args = ["realserver", "--vip", topo.vip, "--mode", mode]
        if mode == "tun":
            proc = lab.popen(
                short, pylvs_argv("pylvs.cli.pylvs", *args), stdout=subprocess.PIPE, text=True,
                cwd=REPO,
            )  # fmt: skip
            assert "decapsulating" in read_line(proc)
        else:
            if mode == "nat":
                args += ["--director", topo.director_back]
            lab.run(short, pylvs_argv("pylvs.cli.pylvs", *args), cwd=REPO)


def undo_realservers6(lab: Lab, shorts: list[str]) -> None:
    for short in shorts:
        lab.run(short, pylvs_argv("pylvs.cli.pylvs", "realserver", "--undo"), cwd=REPO, check=False)


@dataclass
class Farm6:
    lab: Lab
    topo: Lab6
    daemon: Daemon
    mode: str
    proto: str
    svc: ServiceSpec

    @property
    def ctl(self) -> ControlClient:
        return self.daemon.ctl


@contextmanager
def farm6(tmp_path: Path, backend: str, mode: str, proto: str) -> Iterator[Farm6]:
    """The IPv6 lab, socat real servers, pylvsd with one IPv6 rr service over three of them."""
    with Lab() as lab:
        topo = build_lab6(lab)
        shorts = [f"r{i + 1}" for i in range(len(topo.reals))]
        try:
            setup_realservers6(lab, topo, mode, shorts)
            for short, rip in zip(shorts, topo.reals, strict=True):
                start_socat(lab, short, proto, rip if mode == "nat" else topo.vip)
            daemon = start_daemon(lab, tmp_path / "pylvsd.log", backend)
            svc = ServiceSpec(af=AF_INET6, protocol=PROTO[proto], addr=topo.vip, port=PORT)
            daemon.ctl.add_service(svc)
            for rip in topo.reals:
                daemon.ctl.add_dest(
                    svc, DestSpec(af=AF_INET6, addr=rip, port=PORT, fwd=int(FWD[mode]))
                )
            yield Farm6(lab, topo, daemon, mode, proto, svc)
        finally:
            undo_realservers6(lab, shorts)


# -- clients -----------------------------------------------------------------------------------


def tcp6_exchange(lab: Lab, addr: str, payload: bytes, port: int = PORT) -> tuple[str, bytes]:
    """Connect from the client, read the server's name, send ``payload``, half-close, read the
    echo to EOF. An IPv4 ``addr`` connects over IPv4 (dual-stack labs)."""
    family = socket.AF_INET6 if ":" in addr else socket.AF_INET
    with lab.inside("c"):
        sock = socket.socket(family, socket.SOCK_STREAM)
    sock.settimeout(10.0)
    with sock:
        sock.connect((addr, port))
        head = b""
        while len(head) < ID_LEN:
            chunk = sock.recv(ID_LEN - len(head))
            if not chunk:
                raise ConnectionError("EOF before the server's name")
            head += chunk

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
    return head.decode().strip(), bytes(echoed)


def udp6_exchange(
    lab: Lab, addr: str, payloads: list[bytes], port: int = PORT
) -> tuple[str, list[bytes]]:
    """One flow (one client socket) of datagrams; each echo is read until it is complete (the
    server's name, sent by its own command, may come as a datagram of its own)."""
    with lab.inside("c"):
        sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    sock.settimeout(2.0)
    sock.connect((addr, port))  # replies must come from the VIP itself
    ident = ""
    replies: list[bytes] = []
    with sock:
        for n, payload in enumerate(payloads):
            want = len(payload) + (ID_LEN if n == 0 else 0)
            got = b""
            # A datagram sent while the director resolves a neighbour is dropped, as by the
            # kernel: resend it (as the IPv4 tests do), at most three times.
            for _attempt in range(3):
                sock.send(payload)
                try:
                    while len(got) < want:
                        got += sock.recv(65536)
                    break
                except TimeoutError:
                    continue
            else:
                raise AssertionError(f"no complete UDP echo from [{addr}]:{port}")
            if n == 0:
                ident, got = got[:ID_LEN].decode().strip(), got[ID_LEN:]
            replies.append(got)
    return ident, replies
