"""Gratuitous ARP on a real link: what a neighbour receives, and its neighbour entry moving.

Namespace ``a`` announces 10.9.0.100 on its veth as heartbeat's IPaddr2 does; namespace ``c``
captures every ARP frame on the other end and had an entry for that address pointing at another
MAC (the director that held it before).
"""

from __future__ import annotations

import socket
import threading
import time

from pylvs.core.garp import arp_frames, send_arp_schedule
from pylvs.io import garp, netcfg
from pylvs.testing.netns import Lab

VIP = "10.9.0.100"
OLD_MAC = "02:00:00:00:00:99"


def _capture(lab: Lab, want: int, out: list[tuple[float, bytes]]) -> threading.Thread:
    with lab.inside("c"):
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0806))
    sock.bind(("c0", 0x0806))
    sock.settimeout(5.0)

    def run() -> None:
        with sock:
            while len(out) < want:
                try:
                    frame = sock.recv(2048)
                except TimeoutError:
                    return
                out.append((time.monotonic(), frame))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_announce_sends_send_arps_frames_and_moves_the_neighbour() -> None:
    with Lab() as lab:
        lab.add_netns("a")
        lab.add_netns("c")
        lab.veth("a", "a0", "c", "c0", "10.9.0.1/24", "10.9.0.2/24")
        lab.run("c", ["ip", "neigh", "replace", VIP, "lladdr", OLD_MAC, "dev", "c0", "nud",
                      "stale"])  # fmt: skip
        with lab.inside("a"):
            mac = netcfg.link_info("a0").mac
        frames: list[tuple[float, bytes]] = []
        thread = _capture(lab, 10, frames)
        with lab.inside("a"):
            assert garp.announce("a0", VIP) == 10
        thread.join(5)
        request, reply = arp_frames(mac, socket.inet_aton(VIP))
        assert [f for _t, f in frames] == [request, reply] * 5
        start = frames[0][0]
        for (t, _f), (offset, _kind) in zip(frames, send_arp_schedule(), strict=True):
            assert abs((t - start) - offset) < 0.05
        out = lab.run("c", ["ip", "neigh", "show", VIP, "dev", "c0"], text=True).stdout
        assert mac.hex(":") in out and OLD_MAC not in out, out
