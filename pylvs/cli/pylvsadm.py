"""``pylvsadm``: ipvsadm 1.31's command line, output and exit codes, on pylvs.

The command line is parsed by :mod:`pylvs.cli.ipvsadm_parse` exactly as ipvsadm parses it, the
command is carried out on a :class:`~pylvs.core.control.ControlAPI` (pylvsd over its control
socket by default, or an engine in-process), and listings are printed by
:mod:`pylvs.cli.ipvsadm_format` byte for byte as ipvsadm prints them, so scripts written for
ipvsadm (keepalived checks, ldirectord, ``ipvsadm-save``/``ipvsadm-restore``) work unchanged.

Exit codes are ipvsadm's: 0 on success, 2 for a refused command line, 255 when IPVS refuses the
operation (ipvsadm returns -1 from ``main``) or for an unknown option, 1 when a listing fails.
Unlike ipvsadm, which opens IPVS before looking at its arguments, pylvsadm reaches pylvsd only
once a command needs it, so ``-h``, ``-v`` and command-line errors work without the daemon. A
command that changes the table starts pylvsd when none runs (as the kernel loads IPVS on first
use); listings and saves never do: with no pylvsd they show what a fresh kernel shows, an empty
table with the default timeouts, and leave the host as it is.
"""

from __future__ import annotations

import errno
import importlib
import os
import re
import sys
from collections.abc import Callable
from typing import TextIO

from pylvs.cli.ipvsadm_format import (
    Fmt,
    Namer,
    SystemNamer,
    format_conns,
    format_daemons,
    format_listing,
    format_timeout,
)
from pylvs.cli.ipvsadm_parse import (
    CONN_F_DROUTE,
    CONN_F_TUNNEL,
    DEF_MCAST_IFN,
    DEF_SCHED,
    IPPROTO_UDP,
    Cmd,
    CommandEntry,
    Exit,
    Opt,
    OptionError,
    fail,
    generic_opt_check,
    parse_options,
    tryhelp_text,
    tunnel_opt_check,
)
from pylvs.core.control import (
    ControlAPI,
    DestSpec,
    IPVSError,
    ServiceSpec,
    Timeouts,
)
from pylvs.core.service import AF_INET6, ServiceFlags

__all__ = [
    "ControlUnavailable",
    "default_control",
    "default_reader",
    "ipvs_strerror",
    "main",
    "restore_tokens",
]

NOT_RUNNING = "pylvsd is not running and could not be started"

# libipvs.c ipvs_strerror(): messages that depend on the call that failed, then generic ones.
_STRERROR_BY_CALL: dict[tuple[str, int], str] = {
    ("add_service", errno.EEXIST): "Service already exists",
    ("add_service", errno.ENOENT): "Scheduler or persistence engine not found",
    ("update_service", errno.ESRCH): "No such service",
    ("update_service", errno.ENOENT): "Scheduler or persistence engine not found",
    ("del_service", errno.ESRCH): "No such service",
    ("zero_service", errno.ESRCH): "No such service",
    ("add_dest", errno.ESRCH): "Service not defined",
    ("add_dest", errno.EEXIST): "Destination already exists",
    ("update_dest", errno.ESRCH): "Service not defined",
    ("update_dest", errno.ENOENT): "No such destination",
    ("del_dest", errno.ESRCH): "Service not defined",
    ("del_dest", errno.ENOENT): "No such destination",
    ("start_daemon", errno.EEXIST): "Daemon has already run",
    ("stop_daemon", errno.ESRCH): "No daemon is running",
    ("get_services", errno.ESRCH): "No such service",
    ("get_dests", errno.ESRCH): "No such service",
    ("get_service", errno.ESRCH): "No such service",
}
_STRERROR_ANY: dict[int, str] = {
    errno.EPERM: "Permission denied (you must be root)",
    errno.EINVAL: "Invalid operation.  Possibly wrong module version, address not unicast, ...",
    errno.ENOPROTOOPT: "Protocol not available",
    errno.ENOMEM: "Memory allocation problem",
    errno.EOPNOTSUPP: "Operation not supported with IPv6",
    errno.EAFNOSUPPORT: "Operation not supported with specified address family",
    errno.EMSGSIZE: "Module is wrong version",
}


def ipvs_strerror(call: str, err: int) -> str:
    """``ipvs_strerror()``: the text ipvsadm prints when libipvs ``call`` failed with ``err``."""
    message = _STRERROR_BY_CALL.get((call, err)) or _STRERROR_ANY.get(err)
    return message if message is not None else os.strerror(err)


class ControlUnavailable(Exception):
    """No control surface could be reached (pylvsd down and not startable)."""


def default_control() -> ControlAPI:
    """pylvsd's control client, starting the daemon if needed (``pylvs.ctl.connect_or_start``)."""
    connect: Callable[[], ControlAPI] | None = None
    for module_name in ("pylvs.ctl", "pylvs.ctl.client"):
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        connect = getattr(module, "connect_or_start", None)
        if connect is not None:
            break
    if connect is None:
        raise ControlUnavailable(NOT_RUNNING)
    try:
        return connect()
    except Exception as exc:  # any failure to reach or start pylvsd means the same to the user
        raise ControlUnavailable(NOT_RUNNING) from exc


def default_reader() -> ControlAPI:
    """What listings read: the running pylvsd, or, when none runs, a fresh IPVS state (an empty
    table, the default timeouts, no sync daemon), as ipvsadm shows on a kernel where IPVS was
    just loaded. Nothing is started and the host is not changed."""
    from pylvs.core.ipvs import IPVS
    from pylvs.ctl import connect_if_running

    try:
        client = connect_if_running()
    except OSError as exc:
        raise ControlUnavailable(NOT_RUNNING) from exc
    return client if client is not None else IPVS()


class _Session:
    """One pylvsadm run: streams, the (lazily reached) control surface and name lookups."""

    def __init__(
        self,
        program: str,
        control: ControlAPI | None,
        control_factory: Callable[[], ControlAPI],
        stdin: TextIO,
        stdout: TextIO,
        stderr: TextIO,
        reader_factory: Callable[[], ControlAPI] = default_reader,
    ) -> None:
        self.program = program
        self._control = control
        self._factory = control_factory
        self._reader_factory = reader_factory
        self._reader: ControlAPI | None = None
        self.stdin = stdin
        self.stdout = stdout
        self.stderr = stderr
        self.namer: Namer = SystemNamer()

    @property
    def control(self) -> ControlAPI:
        """For changes: pylvsd, started if none runs."""
        if self._control is None:
            self._control = self._factory()
        return self._control

    @property
    def reader(self) -> ControlAPI:
        """For listings: pylvsd if it runs (or once a change started it), never started here."""
        if self._control is not None:
            return self._control
        if self._reader is None:
            self._reader = self._reader_factory()
        return self._reader

    # --- listing ------------------------------------------------------------------------------

    def list_all(self, fmt: Fmt) -> None:
        try:
            services = self.reader.services()
        except IPVSError as exc:
            raise Exit(1, stderr=ipvs_strerror("get_services", exc.errno) + "\n") from None
        self.stdout.write(format_listing(services, fmt, self.namer))

    def list_service(self, spec: ServiceSpec, fmt: Fmt) -> None:
        try:
            svc = self.reader.get_service(spec)
        except IPVSError as exc:
            raise Exit(1, stderr=ipvs_strerror("get_service", exc.errno) + "\n") from None
        self.stdout.write(format_listing([svc], fmt, self.namer, header=False))

    def list_conn(self, fmt: Fmt) -> None:
        try:
            conns = self.reader.conns()
        except IPVSError:
            raise Exit(1, stderr="cannot open file /proc/net/ip_vs_conn\n") from None
        self.stdout.write(format_conns(conns, fmt, self.namer))

    def list_daemon(self) -> None:
        try:
            daemons = self.reader.daemons()
        except IPVSError:
            raise Exit(1) from None
        self.stdout.write(format_daemons(daemons))

    def list_timeout(self) -> None:
        try:
            timeouts = self.reader.get_timeouts()
        except IPVSError:
            raise Exit(1) from None
        self.stdout.write(format_timeout(timeouts))

    # --- commands ----------------------------------------------------------------------------

    def process_options(self, argv: list[str], reading_stdin: bool) -> int:
        """``process_options()``: parse one command line, check it, carry it out.

        Returns ipvsadm's result (0 or -1); raises :class:`Exit` where ipvsadm exits.
        """
        try:
            ce = parse_options(argv, self.program)
        except OptionError as exc:
            self.stderr.write(f"{exc}\n")
            return -1
        assert ce.cmd is not None
        generic_opt_check(ce.cmd, ce.options)
        _semantic_checks(ce)
        cmd = ce.cmd

        if cmd == Cmd.LIST:
            if (
                ce.options & _bits(Opt.CONNECTION, Opt.TIMEOUT, Opt.DAEMON)
                and ce.options & _bits(Opt.STATS, Opt.RATE, Opt.THRESHOLDS)
            ) or (ce.options & _bits(Opt.TIMEOUT, Opt.DAEMON) and ce.has(Opt.PERSISTENTCONN)):
                raise fail(2, "options conflicts in the list command")
            if ce.has(Opt.CONNECTION):
                self.list_conn(ce.fmt)
            elif ce.has(Opt.SERVICE):
                self.list_service(_service_spec(ce), ce.fmt)
            elif ce.has(Opt.TIMEOUT):
                self.list_timeout()
            elif ce.has(Opt.DAEMON):
                self.list_daemon()
            else:
                self.list_all(ce.fmt)
            return 0
        if cmd == Cmd.RESTORE:
            return self.restore_table(reading_stdin)
        if cmd == Cmd.SAVE:
            self.list_all(ce.fmt | Fmt.RULE)
            return 0
        return self._modify(ce)

    def _modify(self, ce: CommandEntry) -> int:
        control = self.control
        call = ""
        try:
            if ce.cmd == Cmd.FLUSH:
                call = "flush"
                control.flush()
            elif ce.cmd == Cmd.ADD:
                call = "add_service"
                control.add_service(_service_spec(ce))
            elif ce.cmd == Cmd.EDIT:
                call = "update_service"
                control.edit_service(_service_spec(ce))
            elif ce.cmd == Cmd.DEL:
                call = "del_service"
                control.del_service(_service_spec(ce))
            elif ce.cmd == Cmd.ZERO:
                call = "zero_service"
                control.zero(_service_spec(ce) if ce.has(Opt.SERVICE) else None)
            elif ce.cmd == Cmd.ADDDEST:
                call = "add_dest"
                control.add_dest(_service_spec(ce), _dest_spec(ce))
            elif ce.cmd == Cmd.EDITDEST:
                call = "update_dest"
                control.edit_dest(_service_spec(ce), _dest_spec(ce))
            elif ce.cmd == Cmd.DELDEST:
                call = "del_dest"
                control.del_dest(_service_spec(ce), _dest_spec(ce))
            elif ce.cmd == Cmd.STARTDAEMON:
                call = "start_daemon"
                control.start_daemon(ce.daemon)
            elif ce.cmd == Cmd.STOPDAEMON:
                call = "stop_daemon"
                control.stop_daemon(ce.daemon.state)
            elif ce.cmd == Cmd.TIMEOUT:
                call = "set_timeout"
                tcp, tcpfin, udp = ce.timeouts
                control.set_timeouts(Timeouts(tcp=tcp, tcpfin=tcpfin, udp=udp))
        except IPVSError as exc:
            if exc.limit:
                # Kernel IPVS would have accepted it, so ipvsadm has no message: pylvsd's own.
                self.stderr.write(f"{self.program}: {exc.detail}\n")
            else:
                self.stderr.write(ipvs_strerror(call, exc.errno) + "\n")
            return -1
        return 0

    def restore_table(self, reading_stdin: bool) -> int:
        """``restore_table()``: run each stdin line as a command; the last line's result counts
        (a refused line is reported and the next one still runs, as in ipvsadm)."""
        if reading_stdin:
            raise Exit(255, stderr=tryhelp_text(self.program))
        result = 0
        for line in self.stdin:
            tokens = restore_tokens(line)
            if tokens:
                result = self.process_options([self.program, *tokens], True)
        return result


def restore_tokens(line: str) -> list[str]:
    """One ``-R`` line as argv words: split on blanks as ``config_stream_read`` does, dropping every
    ``ipvsadm`` (and ``pylvsadm``) word and anything from a ``#`` on. A NUL byte ends the line,
    as it ends the C string ipvsadm reads it into."""
    line = line.split("\0", 1)[0].split("#", 1)[0]
    return [t for t in re.split(r"[ \t\n\r]+", line) if t and t not in ("ipvsadm", "pylvsadm")]


def _bits(*opts: Opt) -> int:
    value = 0
    for opt in opts:
        value |= 1 << opt
    return value


_TUNNEL_OPTS = _bits(Opt.TUN_TYPE, Opt.TUN_PORT, Opt.TUN_NOCSUM, Opt.TUN_CSUM, Opt.TUN_REMCSUM)


def _semantic_checks(ce: CommandEntry) -> None:
    """The checks and defaults ``process_options()`` applies after the matrix."""
    svc, dest = ce.svc, ce.dest
    if ce.cmd in (Cmd.ADD, Cmd.EDIT):
        if not svc.fwmark and not svc.port and not svc.flags & ServiceFlags.PERSISTENT:
            raise fail(2, "Zero port specified for non-persistent service")
        if svc.flags & ServiceFlags.ONEPACKET and not svc.fwmark and svc.protocol != IPPROTO_UDP:
            raise fail(2, "One-Packet Scheduling is only for UDP virtual services")
        if not svc.sched_name:
            svc.sched_name = DEF_SCHED
    if ce.cmd == Cmd.STARTDAEMON and not ce.daemon.mcast_ifn:
        ce.daemon.mcast_ifn = DEF_MCAST_IFN
    if ce.cmd in (Cmd.ADDDEST, Cmd.EDITDEST):
        fwd = dest.conn_flags
        # The dest port must be the service port for tunnelling and direct routing (they do not
        # rewrite the port); fwmark services have no port of their own.
        if not svc.fwmark and fwd in (CONN_F_TUNNEL, CONN_F_DROUTE):
            dest.port = svc.port
        if dest.af != svc.af and fwd != CONN_F_TUNNEL:
            raise fail(2, "Different address family is allowed only for tunneling servers")
        if ce.options & _TUNNEL_OPTS and fwd != CONN_F_TUNNEL:
            raise fail(2, "Tunnel options conflict with forward method")
        tunnel_opt_check(dest.tun_type, ce.options)


def _mask_prefix(mask: int) -> int:
    """A host-order IPv4 mask as a prefix length; the control API carries only contiguous masks."""
    inverted = ~mask & 0xFFFFFFFF
    if inverted & (inverted + 1):
        raise fail(2, "illegal virtual server persistent mask specified")
    return 32 - inverted.bit_length()


def _service_spec(ce: CommandEntry) -> ServiceSpec:
    svc = ce.svc
    if svc.af == AF_INET6:
        netmask = svc.netmask if svc.netmask <= 128 else 128
        zero = "::"
    else:
        netmask = _mask_prefix(svc.netmask)
        zero = "0.0.0.0"
    sched_flags = svc.flags & int(ServiceFlags.SCHED1 | ServiceFlags.SCHED2 | ServiceFlags.SCHED3)
    return ServiceSpec(
        af=svc.af,
        protocol=svc.protocol,
        addr=svc.addr or zero,
        port=svc.port,
        fwmark=svc.fwmark,
        scheduler=svc.sched_name,
        persistent=bool(svc.flags & ServiceFlags.PERSISTENT),
        timeout=svc.timeout,
        netmask=netmask,
        sched_flags=sched_flags,
        ops=bool(svc.flags & ServiceFlags.ONEPACKET),
        pe_name=svc.pe_name,
    )


def _dest_spec(ce: CommandEntry) -> DestSpec:
    dest = ce.dest  # -r is compulsory for every dest command, so the address is set
    return DestSpec(
        af=dest.af,
        addr=dest.addr,
        port=dest.port,
        weight=dest.weight,
        fwd=dest.conn_flags,
        u_threshold=dest.u_threshold,
        l_threshold=dest.l_threshold,
        tun_type=dest.tun_type,
        tun_port=dest.tun_port,
        tun_flags=dest.tun_flags,
    )


def main(
    argv: list[str] | None = None,
    *,
    control: ControlAPI | None = None,
    stdin: TextIO | None = None,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
    prog: str | None = None,
) -> int:
    """Run one ipvsadm command line (``argv`` without the program name); return the exit code."""
    if argv is None:
        argv = sys.argv[1:]
    # An argument is a C string for ipvsadm: it ends at a NUL (only a caller of main() can pass
    # one; exec cannot).
    argv = [arg.split("\0", 1)[0] for arg in argv]
    program = prog if prog is not None else os.path.basename(sys.argv[0] or "pylvsadm")
    out = stdout if stdout is not None else sys.stdout
    err = stderr if stderr is not None else sys.stderr
    session = _Session(
        program,
        control,
        default_control,
        stdin if stdin is not None else sys.stdin,
        out,
        err,
    )
    try:
        if not argv:
            session.list_all(Fmt.NONE)  # bare ipvsadm lists the table
            return 0
        result = session.process_options([program, *argv], False)
    except Exit as exc:
        out.write(exc.stdout)
        err.write(exc.stderr)
        return exc.status & 0xFF
    except ControlUnavailable as exc:
        reason = f": {exc.__cause__}" if exc.__cause__ is not None else ""
        err.write(f"{exc}{reason}\n")
        return 2
    except OSError as exc:  # the control socket failed under us
        err.write(f"lost contact with pylvsd: {exc}\n")
        return 2
    return result & 0xFF


if __name__ == "__main__":
    sys.exit(main())
