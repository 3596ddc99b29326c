"""Unsolicited neighbour advertisements (pylvs.core.ndisc) byte for byte against scapy's."""

from __future__ import annotations

import pytest
from scapy.layers.inet6 import ICMPv6ND_NA, ICMPv6NDOptDstLLAddr, IPv6
from scapy.layers.l2 import Ether

from pylvs.core.ndisc import send_ua_schedule, unsolicited_na

MAC = bytes.fromhex("7a0b54a0fce0")


def _scapy(target: str, router: bool) -> bytes:
    frame = (
        Ether(dst="33:33:00:00:00:01", src="7a:0b:54:a0:fc:e0")
        / IPv6(src=target, dst="ff02::1", hlim=255)
        / ICMPv6ND_NA(R=int(router), S=0, O=1, tgt=target)
        / ICMPv6NDOptDstLLAddr(lladdr="7a:0b:54:a0:fc:e0")
    )
    return bytes(frame)


@pytest.mark.parametrize("router", [False, True])
@pytest.mark.parametrize("target", ["2001:db8::100", "fe80::1", "2001:db8:ffff::ffff:1"])
def test_frame_is_scapys(target: str, router: bool) -> None:
    assert unsolicited_na(MAC, target, router) == _scapy(target, router)


def test_frame_reads_as_an_unsolicited_override_na() -> None:
    pkt = Ether(unsolicited_na(MAC, "2001:db8::100"))
    na = pkt[ICMPv6ND_NA]
    assert (pkt[IPv6].hlim, pkt[IPv6].dst, pkt[IPv6].src) == (255, "ff02::1", "2001:db8::100")
    assert (na.R, na.S, na.O, na.tgt) == (0, 0, 1, "2001:db8::100")
    assert pkt[ICMPv6NDOptDstLLAddr].lladdr == "7a:0b:54:a0:fc:e0"
    assert len(bytes(pkt)) == 86


def test_bad_input_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        unsolicited_na(MAC, "10.0.0.1")
    with pytest.raises(ValueError):
        unsolicited_na(b"\x00", "2001:db8::1")
    with pytest.raises(ValueError):
        unsolicited_na(MAC, "not an address")


def test_send_ua_schedule() -> None:
    assert send_ua_schedule() == pytest.approx([0.0, 0.2, 0.4, 0.6, 0.8])
    assert send_ua_schedule(0) == []
