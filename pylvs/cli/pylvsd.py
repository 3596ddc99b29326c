"""``pylvsd``: the command line of the director daemon (parsing, detaching, logging).

The daemon itself is :class:`pylvs.daemon.Daemon`; this module turns the command line into its
:class:`~pylvs.daemon.DaemonOptions`, detaches (the parent exits only once the child reports that
it is ready, or why it is not), sets up logging and runs it.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import logging.handlers
import os
import socket
import sys
from collections.abc import Sequence

from pylvs import __version__, hoststate
from pylvs.ctl import DEFAULT_SOCKET
from pylvs.daemon import DEFAULT_HA_STATE, Daemon, DaemonError, DaemonOptions, data_plane_runtime
from pylvs.health.monitor import DEFAULT_WORKERS
from pylvs.io import afpacket, netcfg, nfqueue

__all__ = ["build_parser", "main"]


class _SyslogFormatter(logging.Formatter):
    """``Mon DD HH:MM:SS host pylvsd[pid]: message``, as syslogd writes it."""

    def __init__(self) -> None:
        super().__init__(
            f"%(asctime)s {socket.gethostname()} pylvsd[%(process)d]: %(message)s",
            datefmt="%b %d %H:%M:%S",
        )


def log_path(socket_name: str) -> str:
    """Where a detached pylvsd logs when there is no syslog: one file per namespace, named after
    its cookie (inode numbers are reused, cookies are not)."""
    return f"/run/pylvs/{socket_name}-{netcfg.netns_cookie()}.log"


def _setup_logging(args: argparse.Namespace, detached: bool) -> None:
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    handler: logging.Handler
    if not detached:
        handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    elif os.path.exists("/dev/log"):
        handler = logging.handlers.SysLogHandler(
            "/dev/log", logging.handlers.SysLogHandler.LOG_DAEMON
        )
        handler.setFormatter(logging.Formatter("pylvsd[%(process)d]: %(message)s"))
    else:
        os.makedirs("/run/pylvs", exist_ok=True)
        handler = logging.FileHandler(log_path(args.socket))
        handler.setFormatter(_SyslogFormatter())
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if args.debug else logging.INFO)


def _positive(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be a positive number, not {text!r}")
    return n


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="pylvsd",
        description="pylvs director daemon: serves the virtual services of this network namespace",
    )
    p.add_argument("--version", action="version", version=f"pylvsd (pylvs) {__version__}")
    p.add_argument(
        "--config",
        metavar="FILE",
        help="ldirectord.cf, pylvs.toml or keepalived.conf (SIGHUP reloads)",
    )
    p.add_argument(
        "--check",
        action="store_true",
        help=(
            "only validate --config FILE: print its problems and a summary, exit 0 if pylvsd "
            "would start with it, 1 if not (starts nothing, needs no root)"
        ),
    )
    p.add_argument("--socket", default=DEFAULT_SOCKET, help="abstract control socket name")
    p.add_argument(
        "--backend",
        default="nfqueue",
        choices=["nfqueue", "afpacket"],
        help="data plane: NFQUEUE (the kernel forwards) or AF_PACKET rings (pylvs forwards)",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=1,
        metavar="N",
        help="afpacket: N data-plane processes sharing the traffic by client (default 1)",
    )
    p.add_argument(
        "--data-plane",
        choices=["auto", "cpython", "pypy"],
        default="auto",
        help=(
            "the interpreter the packet loop (afpacket, nfqueue) runs on: worker processes on "
            "the PyPy environment scripts/setup builds (pypy), or pylvsd's own interpreter "
            "(cpython); "
            "auto (the default): pypy where that environment is installed"
        ),
    )
    p.add_argument("--queue-num", type=int, default=0, help="NFQUEUE number (default 0)")
    p.add_argument(
        "--queue-bypass",
        action=argparse.BooleanOptionalAction,
        default=None,
        help=(
            "fail open: the kernel accepts queued packets when pylvsd is not running (the "
            "default without --ha or a keepalived.conf's vrrp_instance; with them the default is "
            "to fail closed, so that a dead node's kernel does not reset the connections its "
            "peer takes over)"
        ),
    )
    p.add_argument(
        "--iface",
        action="append",
        default=[],
        metavar="IF",
        help=(
            "only queue (nfqueue) or tap (afpacket) traffic arriving on IF (repeat; list client "
            "and real-server sides); afpacket default: every interface but lo"
        ),
    )
    p.add_argument(
        "--strict-routes",
        action="store_true",
        help="refuse VIPs and real servers the kernel has no route to (IPVS accepts them)",
    )
    p.add_argument(
        "--check-workers",
        type=_positive,
        default=DEFAULT_WORKERS,
        metavar="N",
        help=f"threads that run health checks at once (default {DEFAULT_WORKERS})",
    )
    p.add_argument(
        "--ha",
        metavar="DIR",
        nargs="?",
        const="/etc/ha.d",
        help="be a heartbeat node with DIR's ha.cf, authkeys and haresources (default /etc/ha.d)",
    )
    p.add_argument(
        "--ha-state",
        metavar="DIR",
        default=DEFAULT_HA_STATE,
        help=f"where this node's hb_uuid and hb_generation live (default {DEFAULT_HA_STATE})",
    )
    p.add_argument(
        "--ha-node", metavar="NAME", help="this node's name in ha.cf (default: uname -n)"
    )
    p.add_argument("--foreground", action="store_true", help="do not detach; log to stdout")
    p.add_argument("--debug", action="store_true", help="log every scheduling decision")
    p.add_argument(
        "--cleanup",
        action="store_true",
        help="remove rules and restore sysctls a killed pylvsd left, and exit",
    )
    return p


def _fail(message: str) -> int:
    print(f"pylvsd: {message}", file=sys.stderr)
    return 1


_ready_fd: int | None = None


def _detach() -> int | None:
    """Fork; the parent waits for the child's readiness report and returns the exit status, the
    child returns None and reports through :func:`_report`."""
    global _ready_fd
    r, w = os.pipe()
    pid = os.fork()
    if pid > 0:
        os.close(w)
        with os.fdopen(r, "rb") as pipe:
            report = pipe.read().decode(errors="replace")
        if report == "OK":
            return 0
        return _fail(report or "exited during start-up")
    os.close(r)
    os.setsid()
    _ready_fd = w
    return None


def _report(message: str) -> None:
    global _ready_fd
    if _ready_fd is not None:
        with contextlib.suppress(OSError):
            os.write(_ready_fd, message.encode())
            os.close(_ready_fd)
        _ready_fd = None


def _redirect_stdio() -> None:
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    os.close(devnull)


def _cleanup(socket_name: str) -> int:
    removed = nfqueue.remove_rules()
    removed = afpacket.remove_rules() or removed
    restored = hoststate.restore(socket_name)
    print("pylvsd: removed leftover rules" if removed else "pylvsd: no rules to remove")
    if restored:
        print("pylvsd: restored " + ", ".join(f"{k}={v}" for k, v in restored.items()))
    return 0


def check_config(path: str | None) -> int:
    """``--check``: load the file as the daemon would (any of the three formats), print what is
    wrong with it and a summary; 0 if pylvsd would start with it, 1 if it would refuse it."""
    if not path:
        return _fail("--check needs --config FILE")
    # Imported here, as the daemon does: the config modules are not needed to run without one.
    from pylvs.config import ConfigError, file_format, load

    kind = file_format(path)
    try:
        config = load(path)
    except ConfigError as exc:
        print(f"pylvsd: {exc}", file=sys.stderr)
        print(f"{path}: {kind}: not usable")
        return 1
    for warning in config.warnings:
        print(f"warning: {warning}")
    for missing in config.not_run:
        print(f"warning: {missing}")
    ka = config.keepalived
    if ka is not None:
        for note in ka.notes:
            print(f"note: {note}")
        for keyword in ka.unused:
            print(f"not used by pylvs: {keyword}")
        summary = (
            f"{len(ka.virtual_servers)} virtual servers ({len(config.virtuals)} IPVS services), "
            f"{ka.real_server_count()} real servers, {len(ka.vrrp_instances)} vrrp instances"
        )
    else:
        reals = sum(len(v.reals) for v in config.virtuals)
        summary = f"{len(config.virtuals)} virtual servers, {reals} real servers, 0 vrrp instances"
    print(f"{path}: {kind}: {summary}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.check:
        return check_config(args.config)
    if os.geteuid() != 0:
        return _fail("must be run as root (it installs iptables rules and binds NFQUEUE)")
    if args.cleanup:
        return _cleanup(args.socket)
    if args.workers < 1:
        return _fail("--workers must be at least 1")
    if args.workers > 1 and args.backend != "afpacket":
        return _fail("--workers needs --backend afpacket")
    try:
        data_runtime = data_plane_runtime(args.backend, args.data_plane)
    except ValueError as exc:
        return _fail(str(exc))
    options = DaemonOptions(
        config=args.config,
        socket=args.socket,
        backend=args.backend,
        workers=args.workers,
        queue_num=args.queue_num,
        queue_bypass=args.queue_bypass,  # None: the daemon decides (Daemon._queue_bypass)
        ifaces=tuple(args.iface),
        strict_routes=args.strict_routes,
        check_workers=args.check_workers,
        ha=args.ha,
        ha_state=args.ha_state,
        ha_node=args.ha_node,
        data_runtime=data_runtime,
    )
    foreground = args.foreground or "JOURNAL_STREAM" in os.environ
    if not foreground:
        status = _detach()
        if status is not None:
            return status
    _setup_logging(args, detached=not foreground)
    daemon = Daemon(options)
    try:
        daemon.start()
    except DaemonError as exc:
        daemon.stop()
        if foreground:
            return _fail(str(exc))
        _report(str(exc))
        return 1
    if not foreground:
        _report("OK")
        _redirect_stdio()
    try:
        daemon.run()
    finally:
        daemon.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
