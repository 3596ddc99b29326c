"""A recording ControlAPI for pylvsadm tests: every row of the operation table
(:data:`pylvs.core.control.OPERATIONS`) is recorded in ``calls`` and carried out by an in-process
:class:`~pylvs.core.ipvs.IPVS`, which refuses with the errnos ip_vs_ctl.c returns, so command lines
are checked end to end and a new operation needs no edit here."""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

from pylvs.cli.pylvsadm import main
from pylvs.core.control import OPERATION_BY_NAME, ConnInfo, ServiceInfo, addr_to_text
from pylvs.core.ipvs import IPVS
from pylvs.core.service import FwdMethod, TunType


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


_FOREIGN_TUNNELS = {" --tun-type gue": "GUE", " --tun-type gre": "GRE"}


def _foreign_tunnel(line: str) -> str | None:
    return next((k for k in _FOREIGN_TUNNELS if k in line), None)


def load_rules(control: Any, text: str) -> None:
    """Run each line as a pylvsadm command; every one must succeed.

    pylvs encapsulates in IPIP only and refuses GUE/GRE real servers, but the golden listings
    (taken from ipvsadm) have them: such a line is added as IPIP and its tunnel fields are then
    set on the engine's real server, so the listing format is still checked.
    """
    for line in text.splitlines():
        marker = _foreign_tunnel(line)
        if marker is None:
            assert run_line(control, line) == (0, "", ""), line
            continue
        head, tail = line.split(marker, 1)
        assert run_line(control, head) == (0, "", ""), line
        words = tail.split()
        port = int(words[words.index("--tun-port") + 1]) if "--tun-port" in words else 0
        flags = 1 if "--tun-csum" in words else 2 if "--tun-remcsum" in words else 0
        head_words = head.split()
        rip = head_words[head_words.index("-r") + 1].rsplit(":", 1)[0]
        ipvs = getattr(control, "ipvs", control)
        for svc in ipvs.services_list:
            for dest in svc.dests:
                if addr_to_text(dest.af, dest.addr) == rip and dest.fwd == FwdMethod.TUNNEL:
                    dest.tun_type = TunType[_FOREIGN_TUNNELS[marker]]
                    dest.tun_port, dest.tun_flags = port, flags


def without_gue(text: str) -> str:
    """``text`` without its GUE and GRE real servers (pylvs refuses them)."""
    return "".join(line + "\n" for line in text.splitlines() if _foreign_tunnel(line) is None)
