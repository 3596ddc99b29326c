"""``service=none``: ldirectord's negotiate check of an unknown service always succeeds."""

from __future__ import annotations

from pylvs.health.check import CheckTarget


def check(target: CheckTarget, timeout: float) -> str:
    return "service none: no negotiation"
