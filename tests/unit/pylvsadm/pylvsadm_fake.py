"""A recording ControlAPI for pylvsadm tests: every row of the operation table
(:data:`pylvs.core.control.OPERATIONS`) is recorded in ``calls`` and carried out by an in-process
:class:`~pylvs.core.ipvs.IPVS`, which refuses with the errnos ip_vs_ctl.c returns, so command lines
are checked end to end and a new operation needs no edit here."""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

from pylvs.cli.pylvsadm import main
from pylvs.core.control import OPERATION_BY_NAME, ConnInfo, ServiceInfo
from pylvs.core.ipvs import IPVS


class FakeControl:
    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.ipvs = IPVS()
        self.conn_list: list[ConnInfo] = []

    @property
    def table(self) -> list[ServiceInfo]:
        return self.ipvs.services()

    def conns(self) -> list[ConnInfo]:
        return [*self.ipvs.conns(), *self.conn_list]

    def __getattr__(self, name: str) -> Callable[..., Any]:
        if name not in OPERATION_BY_NAME:
            raise AttributeError(name)
        target = getattr(self.ipvs, name)

        def call(*args: Any) -> Any:
            # Recorded as (op, None | its one argument | its arguments).
            self.calls.append((name, args[0] if len(args) == 1 else (args or None)))
            return target(*args)

        return call


def run(control: Any, *args: str, stdin: str = "") -> tuple[int, str, str]:
    """pylvsadm with ``args``; (exit code, stdout, stderr). The program name is ``ipvsadm``."""
    out, err = io.StringIO(), io.StringIO()
    rc = main(
        list(args),
        control=control,
        stdin=io.StringIO(stdin),
        stdout=out,
        stderr=err,
        prog="ipvsadm",
    )
    return rc, out.getvalue(), err.getvalue()


def run_line(control: Any, line: str, stdin: str = "") -> tuple[int, str, str]:
    return run(control, *line.split(), stdin=stdin)
