"""VRRPv3 over IPv6 (RFC 5798 as keepalived 2.2.7 runs it): the advert codec against scapy, the
receive checks with the hop limit and destination from ancillary data, and an IPv6 instance's
actions (the VRRP message alone: the kernel builds the IPv6 header)."""

from __future__ import annotations

from typing import Any

import pytest
from scapy.layers.inet6 import IPv6
from scapy.layers.vrrp import VRRPv3

from pylvs.core import vrrpmsg
from pylvs.core.vrrp import (
    BACKUP,
    MASTER,
    AddAddresses,
    InstanceConfig,
    Send,
    SendGarp,
    VRRPInstance,
)
from pylvs.core.vrrpmsg import Accepted, Advert, Expect, Refused

SRC = "fe80::a8bb:ccff:fe00:1"
PEER = "fe80::a8bb:ccff:fe00:2"
VIPS = ("fe80::51", "2001:db8::100")


def _scapy(priority: int, vips: tuple[str, ...], src: str = SRC, dst: str = "ff02::12") -> bytes:
    pkt = IPv6(src=src, dst=dst, hlim=255) / VRRPv3(
        vrid=51, priority=priority, ipcount=len(vips), adv=100, addrlist=list(vips)
    )
    return bytes(pkt)[40:]


@pytest.mark.parametrize("priority", [0, 100, 150, 255])
def test_encode_is_scapys_with_the_ipv6_pseudo_header(priority: int) -> None:
    advert = Advert(3, 51, priority, 100, VIPS, family=6)
    assert vrrpmsg.encode(advert, SRC, "ff02::12") == _scapy(priority, VIPS)


def test_unicast_checksum_uses_the_peer() -> None:
    advert = Advert(3, 51, 100, 100, VIPS[1:], family=6)
    assert vrrpmsg.encode(advert, SRC, "2001:db8::2") == _scapy(100, VIPS[1:], dst="2001:db8::2")


def test_decode_reads_16_byte_addresses() -> None:
    got = vrrpmsg.decode(_scapy(150, VIPS), family=6)
    assert (got.version, got.vrid, got.priority, got.adver_int, got.addresses, got.naddr) == (
        3, 51, 150, 100, VIPS, 2)  # fmt: skip


def test_v2_over_ipv6_is_refused_by_the_codec() -> None:
    with pytest.raises(ValueError, match="IPv4 only"):
        vrrpmsg.encode(Advert(2, 51, 100, 100, VIPS, family=6))


EXPECT = Expect("VI_6", 51, version=3, family=6, adver_int=100, vips=VIPS)


def test_check_accepts_hop_limit_255_multicast() -> None:
    got = vrrpmsg.check(_scapy(150, VIPS), EXPECT, PEER, "ff02::12", 255)
    assert isinstance(got, Accepted) and got.warnings == ()
    assert (got.src, got.advert.priority) == (PEER, 150)


def test_check_refuses_another_hop_limit_and_unicast_on_a_multicast_instance() -> None:
    got = vrrpmsg.check(_scapy(150, VIPS), EXPECT, PEER, "ff02::12", 64)
    assert isinstance(got, Refused) and got.reason == "ttl"
    got = vrrpmsg.check(_scapy(150, VIPS), EXPECT, PEER, "2001:db8::1", 255)
    assert isinstance(got, Refused) and got.reason == "unicast_multicast"


def test_check_refuses_a_wrong_length_and_warns_on_other_addresses() -> None:
    data = _scapy(150, VIPS)
    got = vrrpmsg.check(data[:-4], EXPECT, PEER, "ff02::12", 255)
    assert isinstance(got, Refused) and got.reason == "length"
    got = vrrpmsg.check(_scapy(150, ("fe80::51", "2001:db8::99")), EXPECT, PEER, "ff02::12", 255)
    assert isinstance(got, Accepted) and [w for w, _ in got.warnings] == ["address_list"]


def _instance(priority: int, src: str = SRC, **kw: Any) -> VRRPInstance:
    return VRRPInstance(InstanceConfig("VI_6", 51, src, VIPS, priority=priority, family=6, **kw))


def test_ipv6_instance_is_v3_and_sends_the_message_alone() -> None:
    inst = _instance(150, version=2)
    assert inst.cfg.version == 3  # keepalived: IPv6 is always VRRPv3
    inst.start(0.0)
    assert inst.state == BACKUP
    out = inst.tick(inst.deadline() or 0.0)
    assert inst.state == MASTER
    sends = [a for a in out if isinstance(a, Send)]
    assert [(s.dest, s.src, s.ttl, s.packet) for s in sends] == [("ff02::12", SRC, 255, b"")]
    assert sends[0].message == _scapy(150, VIPS)
    kinds = [type(a).__name__ for a in out if isinstance(a, (Send, AddAddresses, SendGarp))]
    assert kinds == ["Send", "AddAddresses", "SendGarp"]  # advert first, then addresses, NAs
    garp = next(a for a in out if isinstance(a, SendGarp))
    assert (garp.addresses, garp.count) == (VIPS, 5)


def test_ipv6_backup_follows_a_higher_master_and_takes_over_on_priority_zero() -> None:
    inst = _instance(100)
    inst.start(0.0)
    inst.receive(_scapy(150, VIPS, src=PEER), 0.5, PEER, "ff02::12", 255)
    assert (inst.state, inst.master_saddr) == (BACKUP, PEER)
    inst.receive(_scapy(0, VIPS, src=PEER), 1.0, PEER, "ff02::12", 255)
    due = inst.deadline()
    assert due is not None and due - 1.0 == pytest.approx(inst.skew())
    inst.tick(due)
    assert inst.state == MASTER


def test_ipv6_unicast_peers_get_unicast_ttl() -> None:
    peer = vrrpmsg.UnicastPeer("2001:db8::2")
    inst = _instance(255, state=MASTER, unicast_peers=(peer,), unicast_ttl=64, src="2001:db8::1")
    out = inst.start(0.0) + inst.tick(inst.deadline() or 0.0)
    sends = [a for a in out if isinstance(a, Send)]
    assert sends and {(s.dest, s.ttl) for s in sends} == {("2001:db8::2", 64)}
