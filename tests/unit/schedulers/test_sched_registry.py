"""The registry names every IPVS scheduler."""

from __future__ import annotations

import pytest
from sched_util import make_service

from pylvs.core.schedulers import Scheduler, SchedulerError, available, create


def test_all_ipvs_schedulers_are_registered() -> None:
    # ipvsadm's SCHEDULERS file plus twos (kernel >= 6.5).
    assert available() == sorted(
        [
            "rr",
            "wrr",
            "lc",
            "wlc",
            "lblc",
            "lblcr",
            "dh",
            "sh",
            "sed",
            "nq",
            "fo",
            "ovf",
            "mh",
            "twos",
        ]
    )


@pytest.mark.parametrize("name", available())
def test_create_by_name(name: str) -> None:
    svc = make_service([1, 2])
    sched = create(name, svc)
    assert isinstance(sched, Scheduler)
    assert sched.name == name
    assert sched.schedule(svc, 1, 2, 3, 0.0) in svc.dests


def test_unknown_scheduler() -> None:
    with pytest.raises(SchedulerError):
        create("nope", make_service([1]))
