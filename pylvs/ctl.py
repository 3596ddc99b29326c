"""The pylvsd control socket: protocol, server side, and a client implementing ControlAPI.

Transport: a stream socket in the abstract unix namespace (``"\\0pylvsd"`` by default). Abstract
names belong to the network namespace, so each namespace has its own pylvsd and ``pylvsadm`` talks
to the one of the namespace it runs in. Only root may use it: the server checks the peer's
credentials (``SO_PEERCRED``) on accept.

Protocol: one JSON object per line in each direction, one response per request, in order.

Request::

    {"op": "add_service", "args": {"spec": {"protocol": 6, "addr": "192.0.2.1", "port": 80, ...}}}

``op`` is a :class:`pylvs.core.control.ControlAPI` method name, ``args`` its keyword arguments:
``spec`` (ServiceSpec fields) for ``add_service``/``edit_service``/``del_service``/``get_service``;
``svc`` and ``dest`` (ServiceSpec, DestSpec fields) for ``add_dest``/``edit_dest``/``del_dest``;
``svc`` (or null for all) for ``zero``; ``timeouts`` (Timeouts fields) for ``set_timeouts``;
``spec`` (DaemonSpec fields) for ``start_daemon``; ``state`` (``"master"``/``"backup"``) for
``stop_daemon``; none for ``flush``, ``get_timeouts``, ``services``, ``conns``, ``total_stats``,
``daemons``, ``ping`` and ``status`` (pylvsd's pid, backend and counters).

Response::

    {"ok": true, "result": ...}
    {"ok": false, "errno": 17, "op": "add_service", "error": "File exists"}

``result`` is null for changes, a list of ServiceInfo/ConnInfo dicts for ``services``/``conns``,
a ServiceInfo dict for ``get_service``, a Timeouts dict for ``get_timeouts``, a list of
DaemonInfo dicts for ``daemons``, and
``[[conns, inpkts, outpkts, inbytes, outbytes], [cps, inpps, outpps, inbps, outbps]]`` for
``total_stats``. ``errno`` is the value IPVS would have returned (so pylvsadm prints ipvsadm's
message for it); ``op`` names the operation as libipvs does.
"""

from __future__ import annotations

import contextlib
import errno
import json
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, fields
from typing import Any

from pylvs.core.control import (
    ConnInfo,
    ControlAPI,
    DaemonInfo,
    DaemonSpec,
    DestSpec,
    IPVSError,
    ServiceInfo,
    ServiceSpec,
    Timeouts,
)

__all__ = [
    "DEFAULT_SOCKET",
    "ControlClient",
    "ControlServer",
    "DaemonStartError",
    "connect_or_start",
    "dispatch",
]

DEFAULT_SOCKET = "pylvsd"
_MAX_LINE = 1 << 20


def _address(name: str) -> str:
    return "\0" + name


def _spec(cls: type[Any], data: Any) -> Any:
    if not isinstance(data, dict):
        raise TypeError(f"expected an object for {cls.__name__}")
    known = {f.name for f in fields(cls)}
    unknown = set(data) - known
    if unknown:
        raise TypeError(f"unknown {cls.__name__} fields: {', '.join(sorted(unknown))}")
    return cls(**data)


def _call(api: ControlAPI, op: str, args: dict[str, Any]) -> Any:
    """Run one request against ``api``; returns the JSON-ready result."""
    if op == "ping":
        return "pong"
    if op in ("add_service", "edit_service", "del_service"):
        getattr(api, op)(_spec(ServiceSpec, args["spec"]))
        return None
    if op == "get_service":
        return api.get_service(_spec(ServiceSpec, args["spec"])).to_dict()
    if op in ("add_dest", "edit_dest", "del_dest"):
        getattr(api, op)(_spec(ServiceSpec, args["svc"]), _spec(DestSpec, args["dest"]))
        return None
    if op == "flush":
        api.flush()
        return None
    if op == "zero":
        svc = args.get("svc")
        api.zero(None if svc is None else _spec(ServiceSpec, svc))
        return None
    if op == "set_timeouts":
        api.set_timeouts(_spec(Timeouts, args["timeouts"]))
        return None
    if op == "get_timeouts":
        return asdict(api.get_timeouts())
    if op == "services":
        return [info.to_dict() for info in api.services()]
    if op == "conns":
        return [conn.to_dict() for conn in api.conns()]
    if op == "total_stats":
        stats, rates = api.total_stats()
        return [list(stats), list(rates)]
    if op == "start_daemon":
        api.start_daemon(_spec(DaemonSpec, args["spec"]))
        return None
    if op == "stop_daemon":
        state = args["state"]
        if not isinstance(state, str):
            raise TypeError("state must be a string")
        api.stop_daemon(state)
        return None
    if op == "daemons":
        return [asdict(info) for info in api.daemons()]
    raise KeyError(op)


def dispatch(
    api: ControlAPI, request: Any, extra: dict[str, Callable[[], Any]] | None = None
) -> dict[str, Any]:
    """One request object -> one response object (see the module docstring).

    ``extra`` maps further argument-less ops (``status``) to the functions that answer them.
    """
    op = request.get("op", "") if isinstance(request, dict) else ""
    try:
        if not isinstance(request, dict) or not isinstance(op, str):
            raise TypeError("a request is an object with an op")
        args = request.get("args") or {}
        if not isinstance(args, dict):
            raise TypeError("args must be an object")
        if extra is not None and op in extra:
            return {"ok": True, "result": extra[op]()}
        return {"ok": True, "result": _call(api, op, args)}
    except IPVSError as exc:
        return {"ok": False, "errno": exc.errno, "op": exc.op or op, "error": str(exc)}
    except KeyError as exc:
        return {"ok": False, "errno": errno.EINVAL, "op": op, "error": f"missing or unknown {exc}"}
    except (TypeError, ValueError) as exc:
        return {"ok": False, "errno": errno.EINVAL, "op": op, "error": str(exc)}


class ControlServer:
    """The listening side. The owner polls :attr:`listener` and the sockets :meth:`accept` returns,
    and calls :meth:`serve` when one is readable; requests run in the caller's thread, so a
    single-threaded daemon serialises them with its packet processing for free."""

    def __init__(
        self,
        api: ControlAPI,
        name: str = DEFAULT_SOCKET,
        extra: dict[str, Callable[[], Any]] | None = None,
    ) -> None:
        self.api = api
        self.name = name
        self.extra = extra
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self.listener.bind(_address(name))
        except OSError as exc:
            self.listener.close()
            if exc.errno == errno.EADDRINUSE:
                raise OSError(
                    exc.errno, f"control socket @{name} is in use: pylvsd already runs here"
                ) from None
            raise
        self.listener.listen(16)
        self.listener.setblocking(False)
        self._buffers: dict[int, bytearray] = {}

    def accept(self) -> socket.socket | None:
        """Accept one client; None if it is not root (it gets an EPERM response) or none waits."""
        try:
            conn, _ = self.listener.accept()
        except BlockingIOError:
            return None
        creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        _pid, uid, _gid = struct.unpack("3i", creds)
        conn.settimeout(2.0)
        if uid != 0:
            reply = {"ok": False, "errno": errno.EPERM, "op": "", "error": "Permission denied"}
            with contextlib.suppress(OSError):
                conn.sendall(json.dumps(reply).encode() + b"\n")
            conn.close()
            return None
        self._buffers[conn.fileno()] = bytearray()
        return conn

    def serve(self, conn: socket.socket) -> bool:
        """Read what ``conn`` sent and answer every complete request; False once it closed."""
        buf = self._buffers.setdefault(conn.fileno(), bytearray())
        try:
            data = conn.recv(65536)
        except (BlockingIOError, TimeoutError):
            return True
        except OSError:
            data = b""
        if not data:
            self.drop(conn)
            return False
        buf += data
        if len(buf) > _MAX_LINE:
            self.drop(conn)
            return False
        replies = bytearray()
        while True:
            end = buf.find(b"\n")
            if end < 0:
                break
            line = bytes(buf[:end])
            del buf[: end + 1]
            if not line.strip():
                continue
            try:
                request = json.loads(line)
            except ValueError as exc:
                response: dict[str, Any] = {
                    "ok": False,
                    "errno": errno.EINVAL,
                    "op": "",
                    "error": f"bad JSON: {exc}",
                }
            else:
                response = dispatch(self.api, request, self.extra)
            replies += json.dumps(response).encode() + b"\n"
        if replies:
            try:
                conn.sendall(replies)
            except OSError:
                self.drop(conn)
                return False
        return True

    def drop(self, conn: socket.socket) -> None:
        self._buffers.pop(conn.fileno(), None)
        conn.close()

    def close(self) -> None:
        self.listener.close()


class ControlClient:
    """:class:`ControlAPI` over the control socket of the pylvsd in this network namespace."""

    def __init__(self, name: str = DEFAULT_SOCKET, timeout: float = 30.0) -> None:
        self.name = name
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock.settimeout(timeout)
        try:
            self._sock.connect(_address(name))
        except OSError:
            self._sock.close()
            raise
        self._file = self._sock.makefile("rb")
        self._lock = threading.Lock()

    def close(self) -> None:
        self._file.close()
        self._sock.close()

    def __enter__(self) -> ControlClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def request(self, op: str, **args: Any) -> Any:
        """Send one request and return its result; raises IPVSError for a refusal."""
        line = json.dumps({"op": op, "args": args}).encode() + b"\n"
        with self._lock:
            self._sock.sendall(line)
            reply = self._file.readline()
        if not reply:
            raise ConnectionError(f"pylvsd closed the control socket @{self.name}")
        response = json.loads(reply)
        if not response.get("ok"):
            raise IPVSError(
                int(response.get("errno", errno.EIO)),
                str(response.get("op", op)),
                str(response.get("error", "")),
            )
        return response.get("result")

    def ping(self) -> bool:
        return bool(self.request("ping") == "pong")

    def status(self) -> dict[str, Any]:
        """pylvsd's own facts: ``pid``, ``backend``, ``queue_num``, packet counters."""
        result: dict[str, Any] = self.request("status")
        return result

    def add_service(self, spec: ServiceSpec) -> None:
        self.request("add_service", spec=asdict(spec))

    def edit_service(self, spec: ServiceSpec) -> None:
        self.request("edit_service", spec=asdict(spec))

    def del_service(self, spec: ServiceSpec) -> None:
        self.request("del_service", spec=asdict(spec))

    def add_dest(self, svc: ServiceSpec, dest: DestSpec) -> None:
        self.request("add_dest", svc=asdict(svc), dest=asdict(dest))

    def edit_dest(self, svc: ServiceSpec, dest: DestSpec) -> None:
        self.request("edit_dest", svc=asdict(svc), dest=asdict(dest))

    def del_dest(self, svc: ServiceSpec, dest: DestSpec) -> None:
        self.request("del_dest", svc=asdict(svc), dest=asdict(dest))

    def flush(self) -> None:
        self.request("flush")

    def zero(self, svc: ServiceSpec | None = None) -> None:
        self.request("zero", svc=None if svc is None else asdict(svc))

    def set_timeouts(self, timeouts: Timeouts) -> None:
        self.request("set_timeouts", timeouts=asdict(timeouts))

    def get_timeouts(self) -> Timeouts:
        return Timeouts(**self.request("get_timeouts"))

    def services(self) -> list[ServiceInfo]:
        return [ServiceInfo.from_dict(d) for d in self.request("services")]

    def get_service(self, spec: ServiceSpec) -> ServiceInfo:
        return ServiceInfo.from_dict(self.request("get_service", spec=asdict(spec)))

    def conns(self) -> list[ConnInfo]:
        return [ConnInfo(**d) for d in self.request("conns")]

    def total_stats(self) -> tuple[tuple[int, ...], tuple[int, ...]]:
        stats, rates = self.request("total_stats")
        return tuple(stats), tuple(rates)

    def start_daemon(self, spec: DaemonSpec) -> None:
        self.request("start_daemon", spec=asdict(spec))

    def stop_daemon(self, state: str) -> None:
        self.request("stop_daemon", state=state)

    def daemons(self) -> list[DaemonInfo]:
        return [DaemonInfo(**d) for d in self.request("daemons")]


class DaemonStartError(RuntimeError):
    """pylvsd could not be started; the message is its own error output."""


def connect_or_start(
    name: str = DEFAULT_SOCKET, daemon_args: tuple[str, ...] = (), timeout: float = 30.0
) -> ControlClient:
    """Connect to this namespace's pylvsd; start one in the background first if none runs.

    This is the "first ipvsadm command loads IPVS" behaviour. The daemon detaches itself once it is
    ready (its control socket listens), so when the start command returns, connecting succeeds.
    """
    try:
        return ControlClient(name, timeout=timeout)
    except (ConnectionRefusedError, FileNotFoundError):
        pass
    argv = [sys.executable, "-m", "pylvs.daemon", "--socket", name, *daemon_args]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    if proc.returncode != 0:
        message = proc.stderr.strip() or f"pylvsd exited with status {proc.returncode}"
        raise DaemonStartError(message)
    deadline = time.monotonic() + timeout
    while True:
        try:
            return ControlClient(name, timeout=timeout)
        except (ConnectionRefusedError, FileNotFoundError):
            # A concurrent caller may have won the race and its daemon is still starting.
            if time.monotonic() > deadline:
                raise DaemonStartError(f"pylvsd did not open @{name} in {timeout}s") from None
            time.sleep(0.05)
