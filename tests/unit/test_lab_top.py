"""`pylvs top`: the change log between two polls and the rendered frame."""

from __future__ import annotations

import io

from rich.console import Console

from pylvs.cli.top import build_view, diff, snapshot
from pylvs.core.control import DestInfo, ServiceInfo


def _dest(addr: str, weight: int, active: int = 0) -> DestInfo:
    return DestInfo(
        af=2, addr=addr, port=80, fwd=3, weight=weight, u_threshold=0, l_threshold=0,
        activeconns=active, inactconns=5, persistconns=0,
        stats=(7, 30, 0, 2000, 0), rates=(3, 12, 0, 2_500_000, 0),
    )  # fmt: skip


def _service(*dests: DestInfo, scheduler: str = "wrr") -> ServiceInfo:
    return ServiceInfo(
        af=2, protocol=6, addr="192.0.2.100", port=80, fwmark=0, scheduler=scheduler, flags=0,
        timeout=0, netmask=0xFFFFFFFF, dests=list(dests),
    )  # fmt: skip


def test_diff_reports_weights_quiescing_and_membership() -> None:
    before = snapshot([_service(_dest("192.0.2.11", 3), _dest("192.0.2.12", 1))])
    after = snapshot([_service(_dest("192.0.2.11", 0), _dest("192.0.2.13", 1), scheduler="wlc")])
    assert diff(None, after) == []
    assert diff(before, after) == [
        "TCP 192.0.2.100:80: scheduler wrr -> wlc",
        "TCP 192.0.2.100:80: real server 192.0.2.12:80 removed",
        "TCP 192.0.2.100:80: 192.0.2.11:80 weight 3 -> 0 (quiesced: no new connections)",
        "TCP 192.0.2.100:80: real server 192.0.2.13:80 added, weight 1",
    ]
    assert (
        diff(after, before)[2]
        == "TCP 192.0.2.100:80: 192.0.2.11:80 weight 0 -> 3 (back in service)"
    )
    assert diff(before, snapshot([])) == ["service TCP 192.0.2.100:80 removed"]


def test_build_view_shows_counters_and_rates() -> None:
    out = io.StringIO()
    view = build_view([_service(_dest("192.0.2.11", 3, active=2))], ["12:00:00 something"], "t")
    Console(file=out, width=140).print(view)
    text = out.getvalue()
    assert "TCP 192.0.2.100:80 wrr" in text
    assert "-> 192.0.2.11:80" in text and "Route" in text
    assert "2.5MB" in text  # InBPS from the rate estimator
    assert "12:00:00 something" in text
