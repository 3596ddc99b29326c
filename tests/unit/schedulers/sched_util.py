"""Small builders shared by the scheduler tests."""

from __future__ import annotations

from pylvs.core.service import AF_INET, IPPROTO_TCP, Dest, Service, ServiceFlags

VIP = 0xC0A80001  # 192.168.0.1
NO_FLAGS = ServiceFlags(0)


def make_service(
    weights: list[int], flags: ServiceFlags = NO_FLAGS, sched_name: str = "wlc"
) -> Service:
    """A TCP service on VIP:80 with one dest 10.0.1.<i>:80 per weight, in order."""
    svc = Service(AF_INET, IPPROTO_TCP, VIP, 80, sched_name=sched_name, flags=flags)
    svc.dests = [Dest(AF_INET, 0x0A000101 + i, 80, weight=w) for i, w in enumerate(weights)]
    return svc


def label(svc: Service, dest: Dest | None) -> str:
    """'A', 'B', ... for the dest's position in the service, '-' for None."""
    if dest is None:
        return "-"
    for i, d in enumerate(svc.dests):
        if d is dest:
            return chr(ord("A") + i)
    return "?"
