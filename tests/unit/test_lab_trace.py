"""The trace reader and formatter of `pylvs lab trace`, on frames built with scapy."""

from __future__ import annotations

from pathlib import Path

import dpkt
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.l2 import Ether

from pylvs.lab.trace import (
    Capture,
    Stage,
    TraceResult,
    changes,
    decode_frame,
    format_trace,
    pick_stages,
    read_capture,
)

CLIENT, VIP, RIP, DIP = "198.51.100.10", "192.0.2.100", "192.0.2.11", "192.0.2.2"
MAC = {
    "client1.eth0": "02:00:00:00:00:0a",
    "router.eth0": "02:00:00:00:01:00",
    "router.eth1": "02:00:00:00:01:01",
    "director1.eth0": "02:00:00:00:00:02",
    "rs1.eth0": "02:00:00:00:00:11",
}
NAMES = {mac: name for name, mac in MAC.items()}


def _syn(
    src: str, dst: str, ttl: int, eth_src: str, eth_dst: str, outer: tuple[str, str] | None = None
) -> bytes:
    pkt = IP(src=CLIENT, dst=dst, ttl=ttl) / TCP(sport=40000, dport=80, flags="S")
    if outer is not None:
        pkt = IP(src=outer[0], dst=outer[1], ttl=ttl, proto=4) / pkt
    del src
    return bytes(Ether(src=MAC[eth_src], dst=MAC[eth_dst]) / pkt)


def _seen(frame: bytes, node: str, iface: str, t: float) -> object:
    seen = decode_frame(frame, node, iface, MAC[f"{node}.{iface}"], t)
    assert seen is not None
    return seen


def test_decode_frame_reads_ethernet_ip_tcp_and_direction() -> None:
    frame = _syn(CLIENT, VIP, 64, "client1.eth0", "router.eth0")
    sent = decode_frame(frame, "client1", "eth0", MAC["client1.eth0"], 1.0)
    recv = decode_frame(frame, "router", "eth0", MAC["router.eth0"], 1.1)
    assert sent is not None and recv is not None
    assert (sent.direction, recv.direction) == ("sent", "recv")
    assert (sent.src, sent.dst, sent.sport, sent.dport, sent.ttl) == (CLIENT, VIP, 40000, 80, 64)
    assert sent.flags == "S" and sent.outer is None and sent.proto == "TCP"


def test_decode_frame_unwraps_ipip_and_ignores_other_traffic() -> None:
    frame = _syn(CLIENT, VIP, 63, "director1.eth0", "router.eth1", outer=(DIP, "203.0.113.11"))
    seen = decode_frame(frame, "director1", "eth0", MAC["director1.eth0"], 1.0)
    assert seen is not None
    assert seen.outer == (DIP, "203.0.113.11", 63)
    assert (seen.src, seen.dst, seen.dport) == (CLIENT, VIP, 80)
    arp_like = bytes(
        Ether(src=MAC["rs1.eth0"], dst="ff:ff:ff:ff:ff:ff", type=0x0806) / (b"\0" * 28)
    )
    assert decode_frame(arp_like, "rs1", "eth0", MAC["rs1.eth0"], 1.0) is None
    assert decode_frame(b"\x01\x02", "rs1", "eth0", MAC["rs1.eth0"], 1.0) is None
    raw = bytes(IP(src=CLIENT, dst=VIP, ttl=62) / UDP(sport=5000, dport=7) / b"x")
    tun = decode_frame(raw, "rs1", "pylvs-tun0", None, 1.0, raw=True)
    assert tun is not None and tun.eth_src is None and tun.direction == "recv" and tun.length == 1


def test_changes_names_what_each_method_rewrites() -> None:
    at_director = _seen(
        _syn(CLIENT, VIP, 63, "router.eth1", "director1.eth0"), "director1", "eth0", 1
    )
    dr = _seen(_syn(CLIENT, VIP, 63, "director1.eth0", "rs1.eth0"), "director1", "eth0", 2)
    assert changes(at_director, dr, NAMES, "dr") == ["new Ethernet header: to rs1.eth0"]  # type: ignore[arg-type]
    nat = _seen(_syn(CLIENT, RIP, 62, "director1.eth0", "rs1.eth0"), "director1", "eth0", 2)
    assert changes(at_director, nat, NAMES, "nat") == [  # type: ignore[arg-type]
        f"IP dst {VIP} -> {RIP} (DNAT)",
        "TTL 63 -> 62",
    ]
    tun = _seen(
        _syn(CLIENT, VIP, 63, "director1.eth0", "router.eth1", outer=(DIP, "203.0.113.11")),
        "director1",
        "eth0",
        2,
    )
    assert changes(at_director, tun, NAMES, "tun") == [  # type: ignore[arg-type]
        "IPIP header added: 192.0.2.2 > 203.0.113.11, packet inside unchanged"
    ]
    assert changes(None, dr, NAMES) == []  # type: ignore[arg-type]


def _dr_capture(tmp_path: Path) -> list[Capture]:
    """pcap files of one DR SYN along client -> router -> director -> rs1, and the SYN-ACK back."""
    hops = [
        ("client1", "eth0", [(1.0, _syn(CLIENT, VIP, 64, "client1.eth0", "router.eth0"))]),
        ("router", "eth0", [(1.1, _syn(CLIENT, VIP, 64, "client1.eth0", "router.eth0"))]),
        ("router", "eth1", [(1.2, _syn(CLIENT, VIP, 63, "router.eth1", "director1.eth0"))]),
        (
            "director1",
            "eth0",
            [
                (1.3, _syn(CLIENT, VIP, 63, "router.eth1", "director1.eth0")),
                (1.4, _syn(CLIENT, VIP, 63, "director1.eth0", "rs1.eth0")),
            ],
        ),
        ("rs1", "eth0", [(1.5, _syn(CLIENT, VIP, 63, "director1.eth0", "rs1.eth0"))]),
    ]
    synack = (
        Ether(src=MAC["rs1.eth0"], dst=MAC["router.eth1"])
        / IP(src=VIP, dst=CLIENT)
        / TCP(sport=80, dport=40000, flags="SA")
    )
    hops[4][2].append((1.6, bytes(synack)))
    captures = []
    for node, iface, frames in hops:
        path = tmp_path / f"{node}-{iface}.pcap"
        with path.open("wb") as f:
            writer = dpkt.pcap.Writer(f, nano=True)
            for ts, frame in frames:
                writer.writepkt(frame, ts)
        captures.append(Capture(node, iface, MAC[f"{node}.{iface}"], str(path)))
    return captures


def test_pick_stages_follows_the_packet_in_time_order(tmp_path: Path) -> None:
    captures = _dr_capture(tmp_path)
    seen = [s for c in captures for s in read_capture(c)]
    syn, synack = pick_stages(seen, CLIENT, 40000, "TCP")
    assert [(s.node, s.direction) for s in syn.seen] == [
        ("client1", "sent"),
        ("router", "recv"),
        ("router", "sent"),
        ("director1", "recv"),
        ("director1", "sent"),
        ("rs1", "recv"),
    ]
    assert [(s.node, s.direction, s.flags) for s in synack.seen] == [("rs1", "sent", "SA")]


def test_format_trace(tmp_path: Path) -> None:
    captures = _dr_capture(tmp_path)
    seen = [s for c in captures for s in read_capture(c)]
    result = TraceResult(
        scenario="dr",
        method="dr",
        vip=VIP,
        client=f"client1 {CLIENT}:40000",
        server="rs1",
        stages=pick_stages(seen, CLIENT, 40000, "TCP"),
        mac_names=NAMES,
        hop_counts=[("director1/eth0", 2, 0)],
        pcaps=[c.pcap for c in captures],
    )
    text = format_trace(result)
    lines = text.splitlines()
    assert lines[0] == f"trace: client1 {CLIENT}:40000 -> {VIP} (dr, method dr); answered by rs1"
    assert any(
        "director1/eth0" in line
        and "sent" in line
        and "director1.eth0 > rs1.eth0" in line
        and f"{CLIENT}:40000 > {VIP}:80 [S] ttl 63" in line
        for line in lines
    )
    assert "^ new Ethernet header: to rs1.eth0" in text
    assert "^ TTL 64 -> 63" in text
    assert "router/eth0        recv  (the same frame)" in text
    assert "director1/eth0         2 / 0" in text
    assert f"pcap files: {tmp_path}/*.pcap" in text


def test_format_trace_with_nothing_captured() -> None:
    result = TraceResult("dr", "dr", VIP, "client1", "rs1", [Stage("SYN", [])], {})
    assert "(not captured)" in format_trace(result)
