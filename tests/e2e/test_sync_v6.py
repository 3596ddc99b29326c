"""Connection synchronisation over an IPv6 multicast group (``--mcast-group ff02::...``): a master
director's engine syncs a NAT66 connection, the backup's sync socket receives the kernel-delivered
datagram on its interface and its engine then forwards the client's next packet.

The two directors are namespaces ``d`` and ``b`` on one veth link with global addresses (no DAD,
so a source exists at once); the sockets are made by :class:`pylvs.io.sync.SyncManager` inside
each namespace. The packets the engines handle are built in the test: the IPv6 data path of the
I/O backends is another task, the sync sockets are what this checks.
"""

from __future__ import annotations

import ipaddress
import random
import selectors
import time

from scapy.layers.inet import TCP
from scapy.layers.inet6 import IPv6

from pylvs.core.control import DaemonSpec, DestSpec, ServiceSpec
from pylvs.core.engine import Engine, Verdict
from pylvs.core.service import AF_INET6, IPPROTO_TCP, FwdMethod
from pylvs.io import netcfg
from pylvs.io.sync import SyncManager
from pylvs.testing.netns import Lab, wait_until

VIP = "2001:db8::10"
CLIENT = "2001:db8:1::7"
RIP = "2001:db8:2::1"
GROUP = "ff02::1:81"


def _engine() -> Engine:
    engine = Engine(random.Random(1))
    vs = ServiceSpec(af=AF_INET6, protocol=IPPROTO_TCP, addr=VIP, port=80, scheduler="rr")
    engine.add_service(vs)
    engine.add_dest(vs, DestSpec(af=AF_INET6, addr=RIP, port=80, fwd=int(FwdMethod.MASQ)))
    engine.set_path(AF_INET6, int(ipaddress.IPv6Address(RIP)), 1, 1500)
    return engine


def _tcp(flags: str) -> bytes:
    return bytes(IPv6(src=CLIENT, dst=VIP) / TCP(sport=40000, dport=80, flags=flags))


def test_ipv6_sync_group_carries_a_nat66_connection() -> None:
    with Lab() as lab:
        lab.add_netns("d")
        lab.add_netns("b")
        lab.veth("d", "eth0", "b", "eth0")
        for short, addr in (("d", "2001:db8:ff::1/64"), ("b", "2001:db8:ff::2/64")):
            with lab.inside(short):
                netcfg.add_address("eth0", addr, nodad=True)
        master, backup = _engine(), _engine()
        master_sync, backup_sync = SyncManager(master), SyncManager(backup)
        spec = {"mcast_ifn": "eth0", "mcast_group": GROUP, "syncid": 3}
        try:
            with lab.inside("b"):
                backup_sync.start(DaemonSpec(state="backup", **spec), quiet=True)  # type: ignore[arg-type]
            with lab.inside("d"):
                master_sync.start(DaemonSpec(state="master", **spec), quiet=True)  # type: ignore[arg-type]
            # IPv6 header 40 + UDP 8 off the link's MTU (default_maxlen for an IPv6 group)
            assert master.daemons()[0].sync_maxlen == 1500 - 48
            assert master.daemons()[0].mcast_group == GROUP

            for t, flags in enumerate(("S", "A", "PA")):
                assert master.handle(_tcp(flags), float(t)).verdict == Verdict.REWRITE
            sent_at = time.monotonic()
            master_sync.flush(10.0)  # the buffer is 2 s old: it goes out
            assert master_sync.status()["master"]["sent"] >= 1

            assert backup_sync.receiver is not None
            sel = selectors.DefaultSelector()
            sel.register(backup_sync.receiver.sock, selectors.EVENT_READ)

            def synced() -> bool:
                if sel.select(timeout=0.05):
                    backup_sync.ready(backup_sync.receiver.sock.fileno(), 0, 10.0)  # type: ignore[union-attr]
                return any(c.caddr == CLIENT for c in backup.conns())

            wait_until(synced, timeout=5, what="the synced IPv6 connection on the backup")
            print(f"synced after {time.monotonic() - sent_at:.3f}s")
            sel.close()
            backup.now = 10.0
            (conn,) = [c for c in backup.conns() if not c.template]
            assert (conn.af, conn.caddr, conn.cport, conn.vaddr, conn.daddr, conn.state) == (
                AF_INET6,
                CLIENT,
                40000,
                VIP,
                RIP,
                "ESTABLISHED",
            )
            assert backup_sync.status()["backup"]["applied"] >= 1
            action = backup.handle(_tcp("PA"), 11.0)
            assert action.verdict == Verdict.REWRITE and action.packet is not None
            assert IPv6(bytes(action.packet)).dst == RIP
        finally:
            master_sync.close()
            backup_sync.close()
