"""``pylvs health`` and the health column of ``pylvs top``, from the rows pylvsd sends."""

from __future__ import annotations

import io
from typing import Any

from rich.console import Console

from pylvs.cli.health import build_table
from pylvs.cli.top import build_view
from pylvs.core.control import DestInfo, ServiceInfo

ROWS: list[dict[str, Any]] = [
    {"real": "192.0.2.11:80", "virtuals": ["tcp:192.0.2.100:80"], "check": "negotiate:http",
     "state": "up", "for": 75.0, "ok": True, "reason": "HTTP 200", "latency": 0.0031,
     "checks": 12, "failures": 0, "failcount": 0},
    {"real": "192.0.2.12:80", "virtuals": ["tcp:192.0.2.100:80"], "check": "negotiate:http",
     "state": "down", "for": 3.0, "ok": False, "reason": "Connection refused", "latency": 0.0004,
     "checks": 12, "failures": 2, "failcount": 1},
]  # fmt: skip


def _render(renderable: Any) -> str:
    out = io.StringIO()
    Console(file=out, width=200).print(renderable)
    return out.getvalue()


def test_health_table_lists_state_reason_and_latency() -> None:
    text = _render(build_table(ROWS))
    line11 = next(x for x in text.splitlines() if "192.0.2.11:80" in x)
    line12 = next(x for x in text.splitlines() if "192.0.2.12:80" in x)
    assert "up" in line11 and "1m15s" in line11 and "3.1 ms" in line11 and "ok: HTTP 200" in line11
    assert "down" in line12 and "failed: Connection refused" in line12


def test_top_shows_each_real_servers_health() -> None:
    dests = [
        DestInfo(af=2, addr=f"192.0.2.{n}", port=80, fwd=3, weight=1, u_threshold=0,
                 l_threshold=0, activeconns=0, inactconns=0, persistconns=0)
        for n in (11, 12, 13)
    ]  # fmt: skip
    svc = ServiceInfo(
        af=2, protocol=6, addr="192.0.2.100", port=80, fwmark=0, scheduler="wrr", flags=0,
        timeout=0, netmask="255.255.255.255", dests=dests,
    )  # fmt: skip
    text = _render(build_view([svc], [], "t", ROWS))
    lines = {n: next(x for x in text.splitlines() if f"192.0.2.{n}:80" in x) for n in (11, 12, 13)}
    assert "up 3ms" in lines[11]
    assert "down 0ms" in lines[12]
    assert "up" not in lines[13] and "down" not in lines[13]  # not checked
