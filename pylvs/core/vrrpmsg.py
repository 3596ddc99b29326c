"""VRRP advertisements, version 2 (RFC 3768) and 3 (RFC 5798), as keepalived 2.2.7 builds and checks
them: pure code, bytes in and bytes out.

The message (``vrrp.h`` ``struct _vrrphdr``)::

    0       4       8              16              24             32
    | ver   | type  | VRID         | priority      | count IPvX    |
    v2: | auth type    | adver int (s) |  v3: | rsvd | max adver int (cs)  |   | checksum |
    IPvX address(es) ...
    v2 only: 8 bytes of authentication data (PASS: the password, zero padded)

Rules kept here, each from the RFC or keepalived's ``vrrp.c``:

* The IP header is protocol 112 with TTL 255 (RFC 5798 5.1.1.3: a receiver drops anything else
  on multicast), TOS 0xc0 (internetwork control) and no DF bit, an IP id counted per instance
  from 1, exactly as ``vrrp_build_ip4`` / ``vrrp_update_pkt`` send it (checked against
  ``captures/keepalived-2.2.7-vrrpv3.pcap``).
* The v2 checksum covers the VRRP message alone; the v3 one adds the IPv4 or IPv6 pseudo
  header (RFC 5798 5.2.8). keepalived 1.3.6 and older used the multicast group instead of the
  unicast peer as the pseudo header's destination for unicast v3: the ``old_unicast_checksum``
  knob, kept as :data:`CHECKSUM_OLD_UNICAST` (``vrrp_check_packet``, ``vrrp_csum_mcast``).
  For IPv6 the kernel checks and fills the checksum (``IPV6_CHECKSUM``); the codec still
  computes it so a message can be checked sans I/O.
* v2 Adver Int is in whole seconds, v3 Max Adver Int a 12-bit count of centiseconds whose 4
  reserved bits are ignored on receipt. :class:`Advert` holds the interval in centiseconds for
  both.
* :func:`check` runs the receive checks of RFC 5798 7.1 (RFC 3768 7.1) in keepalived's order and
  with its outcome: a refusal is a :class:`Refused` with one of :data:`REFUSALS` and
  keepalived's log line; the checks keepalived only logs (address count or list, a v3
  interval mismatch) are warnings of an :class:`Accepted`. Nothing raises: :func:`decode`
  raises only :class:`VRRPError`, which :func:`check` turns into a refusal.
* AH authentication (v2 type 2) is refused: keepalived supports it, RFC 3768 removed it, and
  pylvs does not implement it.
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass

from pylvs.core.checksum import checksum, pseudo_header_sum
from pylvs.core.compat import slotted_dataclass

__all__ = [
    "AUTH_AH",
    "AUTH_NONE",
    "AUTH_PASS",
    "CHECKSUM_NEW",
    "CHECKSUM_OLD_UNICAST",
    "IPPROTO_AH",
    "IPPROTO_VRRP",
    "MCAST_GROUP4",
    "MCAST_GROUP6",
    "PRIO_DEFAULT",
    "PRIO_OWNER",
    "PRIO_STOP",
    "REFUSALS",
    "VRRP_TOS",
    "VRRP_TTL",
    "WARNINGS",
    "Accepted",
    "Advert",
    "Expect",
    "Refused",
    "UnicastPeer",
    "VRRPError",
    "build_ipv4",
    "check",
    "decode",
    "encode",
    "gratuitous_arp",
    "pad_password",
    "virtual_mac",
]

IPPROTO_VRRP = 112  # rfc3768 5.2.4
IPPROTO_AH = 51
VRRP_TTL = 255  # rfc3768 5.2.3: sent with, and (multicast) only accepted with, TTL 255
VRRP_TOS = 0xC0  # vrrp_build_ip4: "internet network control"
MCAST_GROUP4 = "224.0.0.18"
MCAST_GROUP6 = "ff02::12"
ADVERTISEMENT = 1  # the only VRRP packet type
AUTH_NONE = 0
AUTH_PASS = 1
AUTH_AH = 2
AUTH_LEN = 8  # v2 authentication data
PRIO_STOP = 0  # "stop": the master is leaving (rfc3768 5.3.4)
PRIO_DEFAULT = 100
PRIO_OWNER = 255  # the address owner
HEADER_LEN = 8
MAX_V3_INTERVAL_CS = 0xFFF  # 12 bits of centiseconds: 40.95 s
CHECKSUM_NEW = "new"  # RFC 5798: the pseudo header holds the packet's own destination
CHECKSUM_OLD_UNICAST = "old"  # keepalived <= 1.3.6: unicast v3 summed with the multicast group
_ETH_ZLEN_PAYLOAD = 60 - 14  # ETH_ZLEN - ETH_HLEN: the smallest Ethernet payload
_VLAN_TAG = 4

# Why a packet is not used, as keepalived's rate-limited log flags (vrrp.h ``vrrp_rlflags``) name
# them. "vrid" (another router's VRID) is not an error: keepalived drops it silently.
REFUSALS = (
    "too_short",  # not even an IP and a VRRP header
    "ip_version",  # not IPv4 where IPv4 was expected
    "not_vrrp",  # IP protocol other than 112
    "auth_ah",  # IPsec AH: not implemented by pylvs
    "vrid",  # another virtual router's advertisement
    "length",  # the VRRP message's length does not match its address count
    "ttl",  # multicast TTL / hop limit other than 255
    "version",  # VRRP version other than the instance's
    "auth_type",  # v2 authentication type not 0, 1 or 2
    "auth_mismatch",  # v2 authentication type other than ours
    "password",  # v2 PASS password differs
    "interval",  # v2 advertisement interval differs (dropped: "prevent concurrent VRID")
    "type",  # not an advertisement
    "ip_length",  # IP total length differs from what was received
    "checksum",
    "unicast_multicast",  # multicast on a unicast instance, or the reverse
    "unknown_source",  # unicast source not among the unicast peers (check_unicast_src)
    "ttl_range",  # unicast peer's TTL outside its min_ttl..max_ttl
)
# What keepalived logs but accepts anyway.
WARNINGS = ("address_count", "address_list", "interval")

_HEADER = struct.Struct("!BBBBBBH")
_IPV4 = struct.Struct("!BBHHHBBH4s4s")


class VRRPError(ValueError):
    """A message that cannot be a VRRP advertisement; ``reason`` is one of :data:`REFUSALS`."""

    def __init__(self, reason: str, text: str) -> None:
        super().__init__(text)
        self.reason = reason
        self.text = text


@slotted_dataclass(frozen=True)
class Advert:
    """One VRRP message's fields. ``adver_int`` is in centiseconds for both versions (a v2
    message carries whole seconds: 1 s is 100 here)."""

    version: int
    vrid: int
    priority: int
    adver_int: int
    addresses: tuple[str, ...] = ()
    family: int = 4
    type: int = ADVERTISEMENT
    auth_type: int = AUTH_NONE  # v2 only
    auth_data: bytes = b""  # v2 only: the 8 bytes after the addresses
    checksum: int = 0  # as received; encode() computes its own
    count: int = -1  # the "Count IPvX Addr" field as received (-1: len(addresses))

    @property
    def naddr(self) -> int:
        return len(self.addresses) if self.count < 0 else self.count


@dataclass(frozen=True)
class UnicastPeer:
    """``unicast_peer { ADDR [min_ttl N] [max_ttl N] }``."""

    address: str
    min_ttl: int = 0
    max_ttl: int = 255


@dataclass(frozen=True)
class Expect:
    """What one vrrp_instance accepts: the configuration :func:`check` compares against."""

    name: str  # the instance name, for log lines ("VI_1")
    vrid: int
    version: int = 2
    family: int = 4
    adver_int: int = 100  # centiseconds
    vips: tuple[str, ...] = ()
    auth_type: int = AUTH_NONE
    password: bytes = b""  # v2 PASS, as configured (cut/padded to 8 bytes by check)
    unicast_peers: tuple[UnicastPeer, ...] = ()
    check_unicast_src: bool = False
    mcast_group: str = ""  # "" = the family's VRRP group
    checksum_mode: str = CHECKSUM_NEW  # CHECKSUM_OLD_UNICAST: summed as keepalived <= 1.3.6
    auto_old_checksum: bool = True  # old_unicast_checksum not "never": learn it from a peer
    check_vips: bool = True  # keepalived skips it for an unchanged master with skip_check_adv_addr


@slotted_dataclass(frozen=True)
class Accepted:
    """An advertisement to act on, with where it came from and what keepalived would log."""

    advert: Advert
    src: str
    dst: str
    warnings: tuple[tuple[str, str], ...] = ()  # (reason from WARNINGS, log text)
    old_checksum: bool = False  # it verified only as a keepalived <= 1.3.6 unicast checksum


@slotted_dataclass(frozen=True)
class Refused:
    """A packet not to act on: ``reason`` from :data:`REFUSALS` and keepalived's log line."""

    reason: str
    text: str
    src: str = ""


# -- helpers ------------------------------------------------------------------------------


def _packed(address: str, family: int) -> bytes:
    ip = ipaddress.ip_address(address)
    if ip.version != family:
        raise ValueError(f"{address} is not an IPv{family} address")
    return ip.packed


def _addr_int(address: str) -> int:
    return int(ipaddress.ip_address(address))


def _group(family: int, configured: str = "") -> str:
    return configured or (MCAST_GROUP4 if family == 4 else MCAST_GROUP6)


def _is_multicast(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_multicast
    except ValueError:
        return False


def pad_password(password: bytes | str) -> bytes:
    """keepalived's ``auth_pass``: the first 8 bytes, zero padded."""
    raw = password.encode() if isinstance(password, str) else password
    return raw[:AUTH_LEN].ljust(AUTH_LEN, b"\x00")


def _pseudo_sum(src: str, dst: str, length: int) -> int:
    """RFC 5798 5.2.8: the IPv4 / IPv6 pseudo header (addresses, protocol 112, length)."""
    return pseudo_header_sum(_addr_int(src), _addr_int(dst), IPPROTO_VRRP, length)


# -- building -------------------------------------------------------------------------------


def encode(
    advert: Advert,
    src: str = "",
    dst: str = "",
    password: bytes | str = b"",
    checksum_mode: str = CHECKSUM_NEW,
) -> bytes:
    """The VRRP message of ``advert``, checksum computed.

    v3 needs the IP source and destination for its pseudo header (``src``, ``dst``); with
    :data:`CHECKSUM_OLD_UNICAST` the destination summed is the multicast group whatever ``dst``
    is. v2 with ``auth_type`` PASS carries ``password`` (first 8 bytes, zero padded)."""
    family = advert.family
    width = 4 if family == 4 else 16
    addrs = b"".join(_packed(a, family) for a in advert.addresses)
    if len(addrs) != width * len(advert.addresses) or len(advert.addresses) > 255:
        raise ValueError("too many addresses")
    if not 1 <= advert.vrid <= 255 or not 0 <= advert.priority <= 255:
        raise ValueError("VRID is 1..255 and priority 0..255")
    if advert.version == 2:
        if family != 4:
            raise ValueError("VRRPv2 is IPv4 only (keepalived: IPv6 is always v3)")
        seconds, rest = divmod(advert.adver_int, 100)
        if rest or not 1 <= seconds <= 255:
            raise ValueError("a VRRPv2 advertisement interval is 1..255 whole seconds")
        word = (advert.auth_type << 8) | seconds
        auth = pad_password(password) if advert.auth_type == AUTH_PASS else b"\x00" * AUTH_LEN
        body = addrs + auth
    elif advert.version == 3:
        if not 1 <= advert.adver_int <= MAX_V3_INTERVAL_CS:
            raise ValueError("a VRRPv3 advertisement interval is 1..4095 centiseconds")
        word = advert.adver_int
        body = addrs
    else:
        raise ValueError("VRRP version is 2 or 3")
    vers_type = (advert.version << 4) | advert.type
    head = _HEADER.pack(vers_type, advert.vrid, advert.priority, len(advert.addresses), 0, 0, 0)
    message = bytearray(head[:4] + struct.pack("!HH", word, 0) + body)
    initial = 0
    if advert.version == 3:
        if checksum_mode == CHECKSUM_OLD_UNICAST and family == 4:
            dst = MCAST_GROUP4
        initial = _pseudo_sum(src, dst or _group(family), len(message))
    struct.pack_into("!H", message, 6, checksum(message, initial))
    return bytes(message)


def build_ipv4(message: bytes, src: str, dst: str, ip_id: int, ttl: int = VRRP_TTL) -> bytes:
    """The IPv4 datagram keepalived sends (``vrrp_build_ip4``): header of 20 bytes, TOS 0xc0,
    no fragment flags, protocol 112, the header checksum filled (the kernel does it too for
    IP_HDRINCL sockets)."""
    total = 20 + len(message)
    head = bytearray(
        _IPV4.pack(
            0x45,
            VRRP_TOS,
            total,
            ip_id & 0xFFFF,
            0,
            ttl,
            IPPROTO_VRRP,
            0,
            _packed(src, 4),
            _packed(dst, 4),
        )
    )
    struct.pack_into("!H", head, 10, checksum(head))
    return bytes(head) + message


def virtual_mac(vrid: int, family: int = 4) -> bytes:
    """RFC 5798 7.3: 00-00-5E-00-01-{VRID} (IPv4), 00-00-5E-00-02-{VRID} (IPv6) (``use_vmac``)."""
    return bytes((0, 0, 0x5E, 0, 1 if family == 4 else 2, vrid))


def gratuitous_arp(mac: bytes, ip: str) -> bytes:
    """One gratuitous ARP as keepalived sends it (``send_gratuitous_arp``, seen in the capture):
    a broadcast ARP request, sender and target protocol address the VIP, target hardware
    address ff:ff:ff:ff:ff:ff; 42 bytes, the kernel pads. (heartbeat's IPaddr2 differs:
    :mod:`pylvs.core.garp`.)"""
    if len(mac) != 6:
        raise ValueError("a MAC address has 6 bytes")
    vip = _packed(ip, 4)
    bcast = b"\xff" * 6
    return (
        bcast
        + mac
        + b"\x08\x06"
        + struct.pack("!HHBBH", 1, 0x0800, 6, 4, 1)
        + mac
        + vip
        + bcast
        + vip
    )


# -- parsing --------------------------------------------------------------------------------


def _expected_len(version: int, naddr: int, family: int) -> int:
    """``expected_vrrp_pkt_len``: header, addresses and (v2) authentication data."""
    length = HEADER_LEN + naddr * (4 if family == 4 else 16)
    if family == 4 and version == 2:
        length += AUTH_LEN
    return length


def decode(message: bytes, family: int = 4) -> Advert:
    """The fields of one VRRP message (no IP header). Trailing bytes beyond the message (Ethernet
    padding) are ignored; anything shorter than the message its count announces raises
    :class:`VRRPError`, as does nothing else."""
    data = bytes(message)
    if len(data) < HEADER_LEN:
        raise VRRPError("too_short", f"VRRP packet too short - {len(data)} bytes")
    vers_type, vrid, priority, naddr, b4, b5, csum = _HEADER.unpack_from(data)
    version = vers_type >> 4
    need = _expected_len(version, naddr, family)
    if len(data) < need:
        raise VRRPError("length", f"vrrp packet too short, length {len(data)} and expect {need}")
    width = 4 if family == 4 else 16
    raw = data[HEADER_LEN : HEADER_LEN + naddr * width]
    if family == 4:
        addresses = tuple(str(ipaddress.IPv4Address(raw[i : i + 4])) for i in range(0, len(raw), 4))
    else:
        addresses = tuple(
            str(ipaddress.IPv6Address(raw[i : i + 16])) for i in range(0, len(raw), 16)
        )
    if version == 3:
        interval = ((b4 << 8) | b5) & MAX_V3_INTERVAL_CS
        auth_type, auth_data = AUTH_NONE, b""
    else:
        interval = b5 * 100
        auth_type = b4
        end = HEADER_LEN + naddr * width
        auth_data = data[end : end + AUTH_LEN] if family == 4 and version == 2 else b""
    return Advert(
        version,
        vrid,
        priority,
        interval,
        addresses,
        family,
        vers_type & 0x0F,
        auth_type,
        auth_data,
        csum,
        naddr,
    )


def _padding_ok(expected: int, received: int) -> bool:
    """keepalived allows Ethernet padding to ETH_ZLEN, counted modulo a VLAN tag."""
    return (
        expected < _ETH_ZLEN_PAYLOAD
        and expected < received
        and (received - expected) % _VLAN_TAG
        == (_VLAN_TAG - _ETH_ZLEN_PAYLOAD % _VLAN_TAG) % _VLAN_TAG
    )


def check(
    data: bytes,
    expect: Expect,
    src: str = "",
    dst: str = "",
    ttl: int | None = None,
) -> Accepted | Refused:
    """Everything keepalived checks before an advertisement reaches its state machine
    (``vrrp_dispatcher_read``, ``vrrp_check_packet``), in its order. Never raises.

    IPv4: ``data`` is the datagram as a raw IPPROTO_VRRP socket returns it, IP header included;
    source, destination and TTL come from that header. IPv6: ``data`` is the VRRP message,
    and ``src``, ``dst`` and ``ttl`` (the hop limit) come from the socket's ancillary data
    (``ttl`` None: unknown, not checked, as keepalived's ``rx_ttl_hl == -1``)."""
    try:
        return _check(bytes(data), expect, src, dst, ttl)
    except VRRPError as exc:
        return Refused(exc.reason, f"({expect.name}) {exc.text}", src)
    except ValueError as exc:  # an address keepalived could not have received
        return Refused("too_short", f"({expect.name}) unusable packet: {exc}", src)


def _check(data: bytes, e: Expect, src: str, dst: str, ttl: int | None) -> Accepted | Refused:
    name = e.name
    family = e.family
    total_len: int | None = None
    if family == 4:
        # vrrp_get_header: the IP header and the fixed VRRP header must be there.
        ihl = (data[0] & 0x0F) * 4 if data else 0
        if len(data) < 20 or len(data) < ihl + HEADER_LEN or ihl < 20:
            return Refused("too_short", f"IPv4 VRRP packet too short - {len(data)} bytes", src)
        if data[0] >> 4 != 4:
            return Refused("ip_version", f"({name}) received a packet that is not IPv4", src)
        total_len, ttl, protocol = struct.unpack_from("!H", data, 2)[0], data[8], data[9]
        src = str(ipaddress.IPv4Address(data[12:16]))
        dst = str(ipaddress.IPv4Address(data[16:20]))
        if protocol == IPPROTO_AH:
            text = f"({name}) Received AH header but auth type not AH from {src}"
            return Refused("auth_ah", text, src)
        if protocol != IPPROTO_VRRP:
            return Refused("not_vrrp", f"({name}) IP protocol {protocol} from {src}", src)
        message = data[ihl:]
    else:
        if len(data) < HEADER_LEN:
            return Refused("too_short", f"IPv6 VRRP packet too short - {len(data)} bytes", src)
        ihl = 0
        message = data
    vers_type, vrid, naddr = message[0], message[1], message[3]
    version = vers_type >> 4
    if vrid != e.vrid:
        # vrrp_dispatcher_read: no instance for it ("Unknown VRID(%d) received on interface(%s)")
        return Refused("vrid", f"Unknown VRID({vrid}) received from {src}. ignoring...", src)

    expected = ihl + _expected_len(version, naddr, family)
    if len(data) != expected and not _padding_ok(expected, len(data)):
        size = "long" if len(data) > expected else "short"
        text = (
            f"({name}) vrrp packet from {src} too {size}, length {len(data)} and expect {expected}"
        )
        return Refused("length", text, src)

    unicast = bool(e.unicast_peers)
    if not unicast and ttl is not None and ttl != VRRP_TTL:
        text = f"({name}) invalid TTL/HL from {src}. Received {ttl} and expect {VRRP_TTL}"
        return Refused("ttl", text, src)
    if version != e.version:
        text = f"({name}) wrong VRRP version from {src}. Received {version} and expect {e.version}"
        return Refused("version", text, src)

    advert = decode(message, family)
    warnings: list[tuple[str, str]] = []
    if version == 2:
        if advert.auth_type not in (AUTH_NONE, AUTH_PASS, AUTH_AH):
            text = f"({name}) Invalid auth type from {src}: {advert.auth_type}"
            return Refused("auth_type", text, src)
        if advert.auth_type != e.auth_type:
            text = (
                f"({name}) received a {advert.auth_type} auth from {src}, expecting {e.auth_type}!"
            )
            return Refused("auth_mismatch", text, src)
        if e.auth_type == AUTH_PASS and advert.auth_data != pad_password(e.password):
            return Refused("password", f"({name}) received an invalid passwd from {src}!", src)
        if e.auth_type == AUTH_AH:
            return Refused("auth_ah", f"({name}) IPSEC-AH is not supported", src)
        if advert.adver_int != e.adver_int:
            text = (
                f"({name}) advertisement interval mismatch with {src}"
                f" mine={e.adver_int // 100} sec rcv'd={advert.adver_int // 100} sec"
            )
            return Refused("interval", text, src)

    if advert.type != ADVERTISEMENT:
        text = f"({name}) Invalid packet type from {src}. {advert.type} and expect {ADVERTISEMENT}"
        return Refused("type", text, src)

    if (
        total_len is not None
        and total_len != len(data)
        and not (
            len(data) <= _ETH_ZLEN_PAYLOAD
            and total_len < len(data)
            and (len(data) - total_len) % _VLAN_TAG
            == (_VLAN_TAG - _ETH_ZLEN_PAYLOAD % _VLAN_TAG) % _VLAN_TAG
        )
    ):
        text = (
            f"({name}) ip_tot_len mismatch against received length from {src}."
            f" {total_len} and received {len(data)}"
        )
        return Refused("ip_length", text, src)

    if version == 3 and advert.adver_int != e.adver_int:
        text = (
            f"({name}) advertisement interval mismatch ours = {e.adver_int} centi-sec"
            f" rcv'd={advert.adver_int} centi-sec"
        )
        warnings.append(("interval", text))

    old_checksum = False
    if family == 4:
        length = _expected_len(version, naddr, family)
        body = message[:length]
        if version == 3:
            pseudo_dst = MCAST_GROUP4 if e.checksum_mode == CHECKSUM_OLD_UNICAST else dst
            ok = checksum(body, _pseudo_sum(src, pseudo_dst, length)) == 0
            if not ok and unicast and e.auto_old_checksum and pseudo_dst != MCAST_GROUP4:
                # A keepalived <= 1.3.6 peer: its unicast checksum used the multicast group.
                ok = checksum(body, _pseudo_sum(src, MCAST_GROUP4, length)) == 0
                old_checksum = ok
        else:
            ok = checksum(body) == 0
        if not ok:
            return Refused("checksum", f"({name}) Invalid VRRPv{version} checksum from {src}", src)

    if _is_multicast(dst) == unicast:
        want, got = ("un", "mult") if unicast else ("mult", "un")
        text = f"({name}) Expected {want}icast packet but received {got}icast packet from {src}"
        return Refused("unicast_multicast", text, src)

    if naddr != len(e.vips):
        text = f"({name}) expected {len(e.vips)} VIPs but received {naddr}"
        warnings.append(("address_count", text))
    elif e.check_vips:
        carried = {ipaddress.ip_address(a) for a in advert.addresses}
        for vip in e.vips:
            if ipaddress.ip_address(vip) not in carried:
                text = (
                    f"({name}) ip address associated with VRID {e.vrid}"
                    f" not present in advert from {src}: {vip}"
                )
                warnings.append(("address_list", text))
                break

    if unicast and e.check_unicast_src:
        peer = next(
            (
                p
                for p in e.unicast_peers
                if ipaddress.ip_address(p.address) == ipaddress.ip_address(src)
            ),
            None,
        )
        if peer is None:
            text = f"({name}) unicast source address {src} not a unicast peer"
            return Refused("unknown_source", text, src)
        if ttl is not None and not peer.min_ttl <= ttl <= peer.max_ttl:
            text = f"({name}) TTL/HL {ttl} from {src} not in range [{peer.min_ttl}, {peer.max_ttl}]"
            return Refused("ttl_range", text, src)

    return Accepted(advert, src, dst, tuple(warnings), old_checksum)
