"""IPaddr2 / IPv6addr with an IPv6 address: the argument, the placement, nodad and send_ua's
advertisements (netcfg and the sender faked), and heartbeat's "::" splitting refused clearly."""

from __future__ import annotations

from typing import Any

import pytest

from pylvs.config.heartbeat import IPAddrSpec, Resource, parse_ipaddr_arg
from pylvs.ha.ipaddr import IPaddr2, IPaddrError
from pylvs.ha.resources import ResourceError, make_agent
from pylvs.io import garp, netcfg


def test_ipv6_argument() -> None:
    assert parse_ipaddr_arg("2001:db8:0:0:0:0:0:100/64/eth0") == IPAddrSpec(
        "2001:db8::100", 64, "eth0"
    )
    with pytest.raises(ValueError, match="netmask"):
        parse_ipaddr_arg("2001:db8::1/129")
    with pytest.raises(ValueError, match="broadcast"):
        parse_ipaddr_arg("2001:db8::1/64/eth0/2001:db8::ff")


def test_heartbeat_split_ipv6_is_refused_clearly() -> None:
    # haresources "IPaddr2::2001:db8::100/64/eth0" reaches the agent as two arguments
    split = Resource("IPaddr2", ("2001:db8", "100/64/eth0"))
    with pytest.raises(ResourceError, match="write it in full"):
        make_agent(split, "/nonexistent", None, announce=lambda i, a: 0)
    with pytest.raises(ResourceError, match="invalid IP address"):
        make_agent(Resource("IPv6addr", ("zz::1/64",)), "/nonexistent", None, lambda i, a: 0)


class FakeNet:
    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.addrs: set[str] = set()

    def add_address(self, iface: str, ip: str, plen: int, **kw: Any) -> bool:
        self.calls.append(("add", iface, ip, plen, kw))
        self.addrs.add(ip)
        return True

    def del_address(self, iface: str, ip: str, plen: int) -> bool:
        self.calls.append(("del", iface, ip, plen))
        self.addrs.discard(ip)
        return True

    def has_address(self, iface: str, ip: str) -> bool:
        return ip in self.addrs

    def connected_network(self, ip: str) -> tuple[str, int] | None:
        return ("eth1", 64)

    def link_exists(self, name: str) -> bool:
        return True


@pytest.fixture
def net(monkeypatch: pytest.MonkeyPatch) -> FakeNet:
    fake = FakeNet()
    for name in ("add_address", "del_address", "has_address", "connected_network", "link_exists"):
        monkeypatch.setattr(netcfg, name, getattr(fake, name))
    return fake


def test_start_adds_with_nodad_and_sends_na_stop_removes(
    net: FakeNet, monkeypatch: pytest.MonkeyPatch
) -> None:
    sent: list[tuple[str, str]] = []

    def announce_na(iface: str, ip: str) -> int:
        sent.append((iface, ip))
        return 5

    monkeypatch.setattr(garp, "announce_na", announce_na)
    ip = IPaddr2(parse_ipaddr_arg("2001:db8::100/64/eth0"))
    ip.start()
    assert net.calls == [("add", "eth0", "2001:db8::100", 64, {"nodad": True})]
    assert sent == [("eth0", "2001:db8::100")]
    assert ip.status() == "running"
    ip.stop()
    assert net.calls[-1] == ("del", "eth0", "2001:db8::100", 64)
    assert ip.status() == "stopped"
    assert len(sent) == 1  # nothing sent on release


def test_findif_for_ipv6_and_lvs_support_refused(net: FakeNet) -> None:
    assert IPaddr2(parse_ipaddr_arg("2001:db8::100")).placement() == ("eth1", 64)
    with pytest.raises(IPaddrError, match="lvs_support"):
        IPaddr2(parse_ipaddr_arg("2001:db8::100/64/eth0"), lvs_support=True).start()
