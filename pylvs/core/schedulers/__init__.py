"""IPVS schedulers, one module per algorithm; importing this package registers them all."""

# Each algorithm module registers its class on import.
from pylvs.core.schedulers import (  # noqa: F401
    dh,
    fo,
    lblc,
    lblcr,
    lc,
    mh,
    nq,
    ovf,
    rr,
    sed,
    sh,
    twos,
    wlc,
    wrr,
)
from pylvs.core.schedulers.base import Scheduler, SchedulerError, available, create, register

__all__ = ["Scheduler", "SchedulerError", "available", "create", "register"]
