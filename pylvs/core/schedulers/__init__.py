"""IPVS schedulers, one module per algorithm; importing this package registers them all."""

from pylvs.core.schedulers.base import Scheduler, SchedulerError, available, create, register

__all__ = ["Scheduler", "SchedulerError", "available", "create", "register"]
