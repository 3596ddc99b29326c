"""The AF_PACKET data plane with segmentation offloads on (PACKET_VNET_HDR): GSO frames cross.

``all``: every veth of the lab has TSO, GSO, GRO and checksum offload on (the rest of the suite
turns them off), so the client's and the real server's TCP hand 64 KiB segments with partial
checksums to their veths, and the director's taps see them whole. ``director-gro``: only the
director's veths have GRO on (everything else off): the director's GRO merges MTU-sized
segments, and its own veths cannot segment, so the kernel must cut the frames pylvs sends in
software. pylvsd runs with ``PYLVS_AFPACKET_VNET=1``: the frames must cross DR (MAC rewrite) and
NAT (addresses and ports rewritten, the partial checksum updated as such) byte-exact, and leave
as GSO frames the kernel segments.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from lvslab import (
    FWD,
    PORT,
    random_bytes,
    setup_realservers,
    sha,
    start_daemon,
    start_server,
    tcp_exchange,
    tcp_open,
    undo_realservers,
)

from pylvs.core.control import DestSpec, ServiceSpec
from pylvs.core.service import IPPROTO_TCP
from pylvs.daemon import pypy_runtime
from pylvs.testing.netns import Lab, LvsTopology, build_lvs_lab

_OFFLOADS = ["tso", "on", "gso", "on", "gro", "on", "tx", "on", "rx", "on"]


def _offloads_on(lab: Lab, n_real: int, which: str) -> None:
    """Undo Lab.veth's ``ethtool -K ... off`` on both ends of every veth of build_lvs_lab
    (``all``), or turn GRO on on the director's veths only (``director-gro``)."""
    if which == "director-gro":
        for ifname in ("d-front", "d-back"):
            lab.run("d", ["ethtool", "-K", ifname, "gro", "on"])
        return
    ends = [("c", "c0"), ("d", "d-front"), ("d", "d-back")]
    ends += [(f"r{i + 1}", "eth0") for i in range(n_real)]
    ends += [("sw", f"sw{n}") for n in range(len(ends))]
    for short, ifname in ends:
        lab.run(short, ["ethtool", "-K", ifname, *_OFFLOADS])


@pytest.fixture
def vnet_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("PYLVS_AFPACKET_VNET", "1")  # inherited by pylvsd and its workers
    yield


@pytest.mark.parametrize("offloads", ["all", "director-gro"])
@pytest.mark.parametrize("data_plane", ["cpython", "pypy"])
@pytest.mark.parametrize("mode", ["dr", "nat"])
def test_bulk_tcp_with_offloads_is_byte_exact(
    tmp_path: Path, mode: str, data_plane: str, offloads: str, vnet_env: None
) -> None:
    if data_plane == "pypy" and pypy_runtime() is None:
        pytest.skip("no PyPy environment (.venv-pypy): scripts/setup builds it")
    with Lab() as lab:
        topo: LvsTopology = build_lvs_lab(lab, 1)
        assert (topo.front_if, topo.back_if) == ("d-front", "d-back")
        shorts = ["r1"]
        try:
            setup_realservers(lab, topo, mode, shorts)
            _offloads_on(lab, 1, offloads)
            start_server(lab, "r1", "tcp")
            args = ["--data-plane", data_plane]
            daemon = start_daemon(lab, tmp_path / "pylvsd.log", "afpacket", *args)
            svc = ServiceSpec(protocol=IPPROTO_TCP, addr=topo.vip, port=PORT, scheduler="rr")
            daemon.ctl.add_service(svc)
            dest = DestSpec(addr=topo.reals[0], port=PORT, fwd=int(FWD[mode]))
            daemon.ctl.add_dest(svc, dest)
            payload = random_bytes(20 << 20)
            ident, echoed = tcp_exchange(tcp_open(lab, topo.vip, timeout=60), payload)
            assert ident == "r1"
            assert len(echoed) == len(payload) and sha(echoed) == sha(payload)
            status = daemon.ctl.status()
            details = status["details"]
            assert status["failures"] == 0, status
            # The transfer crossed as GSO frames, which left whole (the kernel segments them).
            assert details["gso_frames"] > 0 and details["tx_big_frames"] > 0, status
            assert details["gso_dropped"] == 0 and details["rx_truncated"] == 0, status
        finally:
            undo_realservers(lab, shorts)
