"""``pylvs ha status`` and the heartbeat line of ``pylvs top``, from a pylvsd answer."""

from __future__ import annotations

from typing import Any

from pylvs.cli.ha import format_status, summary
from pylvs.cli.pylvs import build_parser

STATUS: dict[str, Any] = {
    "node": "nodea",
    "status": "active",
    "generation": 12,
    "auto_failback": "on",
    "nodes": {
        "nodea": {"status": "active", "links": {}, "deadtime_ms": 500},
        "nodeb": {"status": "dead", "links": {"eth0": "dead", "eth1": "dead"}, "deadtime_ms": 500},
    },
    "ping_nodes": {"10.0.0.1": "ping"},
    "resources": {
        "state": "all",
        "groups": [
            {
                "key": "IPaddr2::10.0.0.100",
                "node": "nodea",
                "resources": ["IPaddr2::10.0.0.100", "LVSSyncDaemonSwap::master"],
                "running": True,
            }
        ],
    },
    "media": [{"name": "eth0", "kind": "ucast", "sent": 5, "received": 3, "errors": 0}],
    "counters": {"bad message": 2},
}


def test_status_text() -> None:
    text = format_status(STATUS)
    assert text.splitlines()[:3] == [
        "heartbeat node nodea: active (generation 12, auto_failback on)",
        "resources held here: all",
        "nodes:",
    ]
    assert "  nodeb: dead\n    link eth0: dead\n    link eth1: dead\n" in text
    assert "  IPaddr2::10.0.0.100  preferred node nodea: held here\n" in text
    assert "ping nodes: 10.0.0.1 ping\n" in text
    assert "refused: bad message 2\n" in text


def test_top_summary() -> None:
    assert summary(STATUS) == "heartbeat nodea active, holds all; nodeb dead"
    assert summary({}) == ""


def test_command_line() -> None:
    args = build_parser().parse_args(["ha", "--netns", "x", "standby", "failback"])
    assert (args.ha_command, args.what, args.netns) == ("standby", "failback", "x")
    assert build_parser().parse_args(["ha", "takeover"]).what == "all"
