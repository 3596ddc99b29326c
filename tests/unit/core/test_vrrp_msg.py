"""VRRP advertisement codec: keepalived 2.2.7's bytes, round trips, every refusal, fuzzing."""

from __future__ import annotations

import ipaddress
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pylvs.core import vrrpmsg
from pylvs.core.checksum import checksum
from pylvs.core.vrrpmsg import (
    AUTH_NONE,
    AUTH_PASS,
    CHECKSUM_OLD_UNICAST,
    REFUSALS,
    Accepted,
    Advert,
    Expect,
    Refused,
    UnicastPeer,
    VRRPError,
)

# IPv4 datagrams from captures/keepalived-2.2.7-vrrpv3.pcap (10.78.0.1 prio 150, 10.78.0.2 prio
# 100, VRID 51, VIP 10.78.0.100): (source, priority, interval cs, IP id, bytes)
CAPTURED = [
    ("10.78.0.1", 150, 100, 1, "45c0002000010000ff70d04b0a4e0001e000001231339601006442d70a4e0064"),
    ("10.78.0.2", 100, 100, 1, "45c0002000010000ff70d04a0a4e0002e000001231336401006474d60a4e0064"),
    ("10.78.0.1", 0, 100, 9, "45c0002000090000ff70d0430a4e0001e0000012313300010064d8d70a4e0064"),
    ("10.78.0.2", 100, 10, 1, "45c0002000010000ff70d04a0a4e0002e000001231336401000a75300a4e0064"),
    ("10.78.0.1", 150, 10, 1, "45c0002000010000ff70d04b0a4e0001e000001231339601000a43310a4e0064"),
    ("10.78.0.1", 0, 10, 32, "45c0002000200000ff70d02c0a4e0001e000001231330001000ad9310a4e0064"),
]
# The first gratuitous ARP of 10.78.0.1's burst, as captured (42 bytes).
CAPTURED_GARP = (
    "ffffffffffff5e8cab487b73080600010800060400015e8cab487b730a4e0064ffffffffffff0a4e0064"
)
VIP = "10.78.0.100"
V3 = Expect("VI_1", 51, version=3, vips=(VIP,))
V2 = Expect("VI_1", 51, version=2, vips=(VIP,))


def v2_packet(
    priority: int = 100,
    src: str = "10.78.0.1",
    dst: str = "224.0.0.18",
    auth: int = AUTH_NONE,
    password: str = "",
    interval: int = 100,
    vips: tuple[str, ...] = (VIP,),
) -> bytes:
    advert = Advert(2, 51, priority, interval, vips, auth_type=auth)
    return vrrpmsg.build_ipv4(vrrpmsg.encode(advert, password=password), src, dst, 7)


def v3_packet(
    priority: int = 100,
    src: str = "10.78.0.1",
    dst: str = "224.0.0.18",
    interval: int = 100,
    vips: tuple[str, ...] = (VIP,),
    ttl: int = 255,
    mode: str = vrrpmsg.CHECKSUM_NEW,
) -> bytes:
    message = vrrpmsg.encode(Advert(3, 51, priority, interval, vips), src, dst, checksum_mode=mode)
    return vrrpmsg.build_ipv4(message, src, dst, 7, ttl)


# -- keepalived's own bytes ----------------------------------------------------------------


@pytest.mark.parametrize("src,prio,interval,ip_id,hexdata", CAPTURED)
def test_captured_adverts_parse_to_their_fields(
    src: str, prio: int, interval: int, ip_id: int, hexdata: str
) -> None:
    data = bytes.fromhex(hexdata)
    verdict = vrrpmsg.check(data, Expect("VI_1", 51, version=3, adver_int=interval, vips=(VIP,)))
    assert isinstance(verdict, Accepted), verdict
    a = verdict.advert
    assert (a.version, a.type, a.vrid, a.priority, a.naddr, a.adver_int) == (
        3,
        1,
        51,
        prio,
        1,
        interval,
    )
    assert a.addresses == (VIP,)
    assert (verdict.src, verdict.dst, verdict.warnings) == (src, "224.0.0.18", ())
    # The IP header keepalived sends: TOS 0xc0, no DF, TTL 255, protocol 112.
    assert data[1] == 0xC0 and data[6:8] == b"\x00\x00" and data[8] == 255 and data[9] == 112


@pytest.mark.parametrize("src,prio,interval,ip_id,hexdata", CAPTURED)
def test_built_adverts_are_keepalived_bytes(
    src: str, prio: int, interval: int, ip_id: int, hexdata: str
) -> None:
    message = vrrpmsg.encode(Advert(3, 51, prio, interval, (VIP,)), src, "224.0.0.18")
    assert vrrpmsg.build_ipv4(message, src, "224.0.0.18", ip_id).hex() == hexdata


def test_gratuitous_arp_is_keepalived_frame() -> None:
    frame = vrrpmsg.gratuitous_arp(bytes.fromhex("5e8cab487b73"), VIP)
    assert frame.hex() == CAPTURED_GARP


def test_virtual_mac() -> None:
    assert vrrpmsg.virtual_mac(51) == bytes.fromhex("00005e000133")
    assert vrrpmsg.virtual_mac(51, 6) == bytes.fromhex("00005e000233")


# -- building and round trips ----------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(
    version=st.sampled_from([2, 3]),
    vrid=st.integers(1, 255),
    priority=st.integers(0, 255),
    seconds=st.integers(1, 40),
    centis=st.integers(1, 0xFFF),
    vips=st.lists(st.ip_addresses(v=4).map(str), min_size=0, max_size=20, unique=True),
    password=st.text(alphabet="abcdefghij0123456789", min_size=1, max_size=12),
)
def test_round_trip(
    version: int,
    vrid: int,
    priority: int,
    seconds: int,
    centis: int,
    vips: list[str],
    password: str,
) -> None:
    interval = seconds * 100 if version == 2 else centis
    auth = AUTH_PASS if version == 2 else AUTH_NONE
    advert = Advert(version, vrid, priority, interval, tuple(vips), auth_type=auth)
    message = vrrpmsg.encode(advert, "192.0.2.1", "224.0.0.18", password)
    back = vrrpmsg.decode(message)
    assert (back.version, back.vrid, back.priority, back.adver_int, back.addresses) == (
        version,
        vrid,
        priority,
        interval,
        tuple(vips),
    )
    if version == 2:
        assert back.auth_data == password.encode()[:8].ljust(8, b"\x00")
        assert checksum(message) == 0
    expect = Expect(
        "VI_1",
        vrid,
        version,
        adver_int=interval,
        vips=tuple(vips),
        auth_type=auth,
        password=password.encode(),
    )
    verdict = vrrpmsg.check(vrrpmsg.build_ipv4(message, "192.0.2.1", "224.0.0.18", 1), expect)
    assert isinstance(verdict, Accepted) and verdict.warnings == ()


def test_v3_checksum_covers_pseudo_header() -> None:
    m1 = vrrpmsg.encode(Advert(3, 51, 100, 100, (VIP,)), "10.0.0.1", "224.0.0.18")
    m2 = vrrpmsg.encode(Advert(3, 51, 100, 100, (VIP,)), "10.0.0.2", "224.0.0.18")
    assert m1[6:8] != m2[6:8] and m1[:6] == m2[:6]
    # v2 has no pseudo header: the same message whatever the addresses
    a2 = Advert(2, 51, 100, 100, (VIP,))
    assert vrrpmsg.encode(a2, "10.0.0.1", "x") == vrrpmsg.encode(a2, "10.0.0.2", "y")


def test_v2_pass_password_is_padded_to_8() -> None:
    message = vrrpmsg.encode(Advert(2, 51, 100, 100, (VIP,), auth_type=AUTH_PASS), password="abc")
    assert message[-8:] == b"abc\x00\x00\x00\x00\x00"
    long = vrrpmsg.encode(
        Advert(2, 51, 100, 100, (VIP,), auth_type=AUTH_PASS), password="0123456789"
    )
    assert long[-8:] == b"01234567"
    assert message[4:6] == bytes([AUTH_PASS, 1])


def test_v3_ipv6_message_shape() -> None:
    advert = Advert(3, 7, 200, 50, ("2001:db8::1", "2001:db8::2"), family=6)
    message = vrrpmsg.encode(advert, "fe80::1", "ff02::12")
    assert len(message) == 8 + 32
    assert vrrpmsg.decode(message, 6).addresses == ("2001:db8::1", "2001:db8::2")
    # the checksum covers the IPv6 pseudo header (addresses, length, next header 112)
    init = int(ipaddress.ip_address("fe80::1")) + int(ipaddress.ip_address("ff02::12"))
    assert checksum(message, init + 112 + len(message)) == 0
    # (check() leaves the IPv6 checksum to the kernel, as keepalived does)
    v = vrrpmsg.check(
        message, Expect("VI_6", 7, 3, 6, 50, advert.addresses), "fe80::2", "ff02::12", 255
    )
    assert isinstance(v, Accepted)


@pytest.mark.parametrize(
    "advert",
    [
        Advert(2, 51, 100, 50, (VIP,)),  # v2 is whole seconds
        Advert(2, 51, 100, 100, ("2001:db8::1",), family=6),  # v2 is IPv4 only
        Advert(3, 51, 100, 0x1000, (VIP,)),  # 12 bits
        Advert(3, 0, 100, 100, (VIP,)),  # VRID 1..255
        Advert(4, 51, 100, 100, (VIP,)),
        Advert(3, 51, 100, 100, ("2001:db8::1",)),  # family mismatch
    ],
)
def test_encode_refuses_what_cannot_be_sent(advert: Advert) -> None:
    with pytest.raises(ValueError):
        vrrpmsg.encode(advert, "10.0.0.1", "224.0.0.18")


def test_v3_reserved_bits_are_ignored() -> None:
    message = bytearray(vrrpmsg.encode(Advert(3, 51, 100, 100, (VIP,)), "10.0.0.1", "224.0.0.18"))
    message[4] |= 0xF0
    assert vrrpmsg.decode(bytes(message)).adver_int == 100


# -- receive checks: every refusal ------------------------------------------------------------


def _ipv4_with(data: bytes, **fields: int) -> bytes:
    """Change IP header fields and fix the header checksum."""
    head = bytearray(data[:20])
    if "ttl" in fields:
        head[8] = fields["ttl"]
    if "proto" in fields:
        head[9] = fields["proto"]
    if "version" in fields:
        head[0] = (fields["version"] << 4) | 5
    if "total" in fields:
        struct.pack_into("!H", head, 2, fields["total"])
    head[10:12] = b"\x00\x00"
    struct.pack_into("!H", head, 10, checksum(head))
    return bytes(head) + data[20:]


def _vrrp_with(data: bytes, offset: int, value: int, fix: str = "v3") -> bytes:
    """Change one byte of the VRRP message and (fix="v3"/"v2") recompute its checksum."""
    raw = bytearray(data)
    raw[20 + offset] = value
    if fix:
        raw[26:28] = b"\x00\x00"
        length = len(raw) - 20
        if fix == "v3":
            src, dst = int.from_bytes(raw[12:16], "big"), int.from_bytes(raw[16:20], "big")
            init = src + dst + 112 + length
        else:
            init = 0
        struct.pack_into("!H", raw, 26, checksum(bytes(raw[20:]), init))
    return bytes(raw)


GOOD3 = v3_packet()
GOOD2 = v2_packet()
UNICAST = Expect(
    "VI_1",
    51,
    version=3,
    vips=(VIP,),
    unicast_peers=(UnicastPeer("10.78.0.1", 0, 64),),
    check_unicast_src=True,
)

REFUSAL_CASES: list[tuple[str, bytes, Expect, str]] = [
    ("too_short", GOOD3[:27], V3, "IPv4 VRRP packet too short - 27 bytes"),
    ("ip_version", _ipv4_with(GOOD3, version=6), V3, "not IPv4"),
    ("not_vrrp", _ipv4_with(GOOD3, proto=17), V3, "IP protocol 17"),
    ("auth_ah", _ipv4_with(GOOD3, proto=51), V3, "Received AH header but auth type not AH"),
    ("vrid", _vrrp_with(GOOD3, 1, 52), V3, "Unknown VRID(52)"),
    ("length", GOOD3 + b"\x00", V3, "too long, length 33 and expect 32"),
    ("length", _vrrp_with(GOOD3, 3, 2), V3, "too short, length 32 and expect 36"),
    ("ttl", _ipv4_with(GOOD3, ttl=64), V3, "invalid TTL/HL from 10.78.0.1. Received 64 and"),
    ("version", GOOD3, V2, "wrong VRRP version from 10.78.0.1. Received 3 and expect 2"),
    ("auth_type", _vrrp_with(GOOD2, 4, 7, "v2"), V2, "Invalid auth type from 10.78.0.1: 7"),
    ("auth_mismatch", v2_packet(auth=AUTH_PASS, password="x"), V2, "received a 1 auth from"),
    (
        "password",
        v2_packet(auth=AUTH_PASS, password="wrong"),
        Expect("VI_1", 51, 2, vips=(VIP,), auth_type=AUTH_PASS, password=b"secret"),
        "received an invalid passwd from 10.78.0.1!",
    ),
    ("interval", v2_packet(interval=200), V2, "mine=1 sec rcv'd=2 sec"),
    ("type", _vrrp_with(GOOD3, 0, 0x32), V3, "Invalid packet type from 10.78.0.1. 2 and expect 1"),
    ("ip_length", _ipv4_with(GOOD3, total=40), V3, "ip_tot_len mismatch"),
    ("checksum", _vrrp_with(GOOD3, 2, 99, fix=""), V3, "Invalid VRRPv3 checksum from 10.78.0.1"),
    ("checksum", _vrrp_with(GOOD2, 2, 99, fix=""), V2, "Invalid VRRPv2 checksum"),
    (
        "unicast_multicast",
        GOOD3,
        UNICAST,
        "Expected unicast packet but received multicast packet",
    ),
    (
        "unicast_multicast",
        v3_packet(dst="10.78.0.2"),
        V3,
        "Expected multicast packet but received unicast packet",
    ),
    (
        "unknown_source",
        v3_packet(src="10.78.0.9", dst="10.78.0.2"),
        UNICAST,
        "unicast source address 10.78.0.9 not a unicast peer",
    ),
    (
        "ttl_range",
        v3_packet(dst="10.78.0.2", ttl=255),
        UNICAST,
        "TTL/HL 255 from 10.78.0.1 not in range [0, 64]",
    ),
]


@pytest.mark.parametrize("reason,data,expect,text", REFUSAL_CASES)
def test_every_refusal_has_its_reason_and_text(
    reason: str, data: bytes, expect: Expect, text: str
) -> None:
    verdict = vrrpmsg.check(data, expect)
    assert isinstance(verdict, Refused), verdict
    assert verdict.reason == reason
    assert text in verdict.text


def test_every_refusal_reason_is_tested() -> None:
    assert {case[0] for case in REFUSAL_CASES} == set(REFUSALS)


def test_v2_pass_auth_accepted_with_the_right_password() -> None:
    expect = Expect("VI_1", 51, 2, vips=(VIP,), auth_type=AUTH_PASS, password=b"secret")
    assert isinstance(vrrpmsg.check(v2_packet(auth=AUTH_PASS, password="secret"), expect), Accepted)


def test_ethernet_padding_is_accepted() -> None:
    # 32 bytes of IP datagram padded by the sender's NIC to the 46-byte Ethernet minimum
    verdict = vrrpmsg.check(GOOD3 + bytes(14), V3)
    assert isinstance(verdict, Accepted)
    # but not an arbitrary tail
    assert isinstance(vrrpmsg.check(GOOD3 + bytes(13), V3), Refused)


def test_warnings_are_accepted_as_keepalived_does() -> None:
    # address count differs: logged, accepted
    v = vrrpmsg.check(v3_packet(vips=(VIP, "10.78.0.101")), V3)
    assert isinstance(v, Accepted)
    assert [w[0] for w in v.warnings] == ["address_count"]
    assert "expected 1 VIPs but received 2" in v.warnings[0][1]
    # same count, other address
    v = vrrpmsg.check(v3_packet(vips=("10.78.0.200",)), V3)
    assert isinstance(v, Accepted) and [w[0] for w in v.warnings] == ["address_list"]
    assert "not present in advert from 10.78.0.1: 10.78.0.100" in v.warnings[0][1]
    # v3 interval differs: logged, accepted (a backup adopts it)
    v = vrrpmsg.check(v3_packet(interval=10), V3)
    assert isinstance(v, Accepted) and [w[0] for w in v.warnings] == ["interval"]
    assert "ours = 100 centi-sec rcv'd=10 centi-sec" in v.warnings[0][1]


def test_ttl_unknown_is_not_checked() -> None:
    message = vrrpmsg.encode(
        Advert(3, 7, 100, 100, ("2001:db8::1",), family=6), "fe80::1", "ff02::12"
    )
    e6 = Expect("VI_6", 7, 3, 6, 100, ("2001:db8::1",))
    assert isinstance(vrrpmsg.check(message, e6, "fe80::1", "ff02::12", None), Accepted)
    assert vrrpmsg.check(message, e6, "fe80::1", "ff02::12", 1).reason == "ttl"  # type: ignore[union-attr]


def test_old_unicast_checksum() -> None:
    unicast = Expect("VI_1", 51, 3, vips=(VIP,), unicast_peers=(UnicastPeer("10.78.0.1"),))
    new = v3_packet(dst="10.78.0.2")
    old = v3_packet(dst="10.78.0.2", mode=CHECKSUM_OLD_UNICAST)
    assert new != old
    v = vrrpmsg.check(new, unicast)
    assert isinstance(v, Accepted) and not v.old_checksum
    # a keepalived <= 1.3.6 peer: learnt ...
    v = vrrpmsg.check(old, unicast)
    assert isinstance(v, Accepted) and v.old_checksum
    # ... unless old_unicast_checksum never
    never = Expect(
        "VI_1",
        51,
        3,
        vips=(VIP,),
        unicast_peers=(UnicastPeer("10.78.0.1"),),
        auto_old_checksum=False,
    )
    assert vrrpmsg.check(old, never).reason == "checksum"  # type: ignore[union-attr]
    # configured old: what we send, what we accept
    configured = Expect(
        "VI_1",
        51,
        3,
        vips=(VIP,),
        unicast_peers=(UnicastPeer("10.78.0.1"),),
        checksum_mode=CHECKSUM_OLD_UNICAST,
    )
    assert isinstance(vrrpmsg.check(old, configured), Accepted)


def test_decode_raises_only_vrrp_error() -> None:
    with pytest.raises(VRRPError) as err:
        vrrpmsg.decode(b"\x31\x33")
    assert err.value.reason == "too_short"
    with pytest.raises(VRRPError) as err:
        vrrpmsg.decode(b"\x31\x33\x96\x05\x00\x64\x00\x00\x0a\x4e\x00\x64")
    assert err.value.reason == "length"


# -- fuzzing: no bytes make check() raise ----------------------------------------------------


@settings(max_examples=2000, deadline=None)
@given(st.binary(max_size=120))
def test_random_bytes_never_raise(data: bytes) -> None:
    for expect in (V3, V2, UNICAST):
        verdict = vrrpmsg.check(data, expect)
        assert isinstance(verdict, (Accepted, Refused))
        if isinstance(verdict, Refused):
            assert verdict.reason in REFUSALS
    try:
        vrrpmsg.decode(data)
    except VRRPError as exc:
        assert exc.reason in REFUSALS


@settings(max_examples=1000, deadline=None)
@given(st.integers(0, len(GOOD3) - 1), st.integers(0, 255))
def test_mutated_adverts_never_raise(offset: int, value: int) -> None:
    data = bytearray(GOOD3)
    data[offset] = value
    verdict = vrrpmsg.check(bytes(data), V3)
    assert isinstance(verdict, (Accepted, Refused))
    v6 = vrrpmsg.check(bytes(data[20:]), Expect("VI_6", 51, 3, 6, 100), "fe80::1", "ff02::12", 255)
    assert isinstance(v6, (Accepted, Refused))
