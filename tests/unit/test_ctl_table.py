"""The operation table: it agrees with ControlAPI, and it alone drives the control socket's
dispatch and client (a request round-trips through both to a real IPVS)."""

from __future__ import annotations

import inspect
import json
from typing import Any

import pytest

from pylvs.core.control import (
    OPERATION_BY_NAME,
    OPERATIONS,
    ControlAPI,
    DaemonSpec,
    DestSpec,
    ServiceSpec,
    Timeouts,
)
from pylvs.core.ipvs import IPVS
from pylvs.ctl import ControlClient, dispatch


def test_the_table_and_the_protocol_name_the_same_operations_and_arguments() -> None:
    protocol = {
        name: [p for p in inspect.signature(fn).parameters if p != "self"]
        for name, fn in inspect.getmembers(ControlAPI, inspect.isfunction)
        if not name.startswith("_")
    }
    table = {op.name: [name for name, _codec in op.params] for op in OPERATIONS}
    assert protocol == table


class _Loopback(ControlClient):
    """A ControlClient whose requests go through dispatch() in-process, as JSON text."""

    def __init__(self, api: Any) -> None:
        self.api = api
        self.name = "loopback"

    def request(self, op: str, **args: Any) -> Any:
        line = json.dumps({"op": op, "args": args})
        response = json.loads(json.dumps(dispatch(self.api, json.loads(line))))
        if not response["ok"]:
            from pylvs.core.control import IPVSError

            raise IPVSError(response["errno"], response["op"], response["error"])
        return response["result"]


def test_every_operation_round_trips_through_client_and_dispatch() -> None:
    ipvs = IPVS()
    client = _Loopback(ipvs)
    svc = ServiceSpec(protocol=6, addr="203.0.113.10", port=80, scheduler="rr", persistent=True)
    client.add_service(svc)
    client.edit_service(svc)
    client.add_dest(svc, DestSpec(addr="198.51.100.11", port=80, weight=3))
    client.edit_dest(svc, DestSpec(addr="198.51.100.11", port=80, weight=4))
    client.set_timeouts(Timeouts(10, 20, 30))
    client.zero()
    client.zero(svc)
    assert client.get_timeouts() == Timeouts(10, 20, 30)
    assert client.services() == ipvs.services()
    assert client.get_service(svc) == ipvs.get_service(svc)
    assert client.conns() == [] and client.daemons() == []
    assert client.total_stats() == ((0, 0, 0, 0, 0), (0, 0, 0, 0, 0))
    client.start_daemon(DaemonSpec(state="backup", mcast_ifn="lo"))
    assert [d.state for d in client.daemons()] == ["backup"]
    client.stop_daemon("backup")
    client.del_dest(svc, DestSpec(addr="198.51.100.11", port=80))
    client.del_service(svc)
    client.flush()
    assert ipvs.services() == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"spec": {"protocol": 6, "addr": "10.0.0.1", "port": 81.5}}, "spec.port: expected int"),
        ({"spec": {"protocol": 6, "addr": "10.0.0.1", "port": 80, "netmask": 24.5}}, "netmask"),
        ({"spec": {"protocol": True, "addr": "10.0.0.1", "port": 80}}, "spec.protocol"),
        ({"spec": {"protocol": 6, "addr": 7, "port": 80}}, "spec.addr: expected str"),
        ({"spec": {"protocol": 6, "addr": "10.0.0.1\x00", "port": 80}}, "spec.addr"),
        ({"spec": {"persistent": 1}}, "spec.persistent: expected bool"),
        ({"spec": {"bogus": 1}}, "unknown ServiceSpec fields: bogus"),
        ({"spec": []}, "expected an object"),
        ({}, "missing argument 'spec'"),
        ({"spec": {}, "extra": 1}, "unknown arguments: extra"),
    ],
)
def test_wrong_types_are_refused_at_the_boundary_and_leave_no_trace(
    args: dict[str, Any], message: str
) -> None:
    """Before, port 81.5 passed the checks, left the service in the engine, and broke every later
    change (iptables-restore: invalid port); netmask 24.5 broke every listing."""
    ipvs = IPVS()
    response = dispatch(ipvs, {"op": "add_service", "args": args})
    assert response["ok"] is False and response["errno"] == 22
    assert message in response["error"]
    assert ipvs.services() == []


def test_unknown_and_malformed_requests_get_an_error_response() -> None:
    ipvs = IPVS()
    bad = ({"op": "no_such"}, {"op": 5}, {"args": {}}, [], "x", {"op": "flush", "args": 3})
    for request in bad:
        response = dispatch(ipvs, request)
        assert response["ok"] is False and response["errno"] == 22, request
    assert dispatch(ipvs, {"op": "flush"}) == {"ok": True, "result": None}
    assert OPERATION_BY_NAME["flush"].replicated and OPERATION_BY_NAME["flush"].rules
