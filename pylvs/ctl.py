"""The pylvsd control socket: protocol, server side, and a client implementing ControlAPI.

Transport: a stream socket in the abstract unix namespace (``"\\0pylvsd"`` by default). Abstract
names belong to the network namespace, so each namespace has its own pylvsd and ``pylvsadm`` talks
to the one of the namespace it runs in. Only root may use it: the server checks the peer's
credentials (``SO_PEERCRED``) on accept.

Protocol: one JSON object per line in each direction, one response per request, in order.

Request::

    {"op": "add_service", "args": {"spec": {"protocol": 6, "addr": "192.0.2.1", "port": 80, ...}}}

``op`` is the name of a row of :data:`pylvs.core.control.OPERATIONS` (a ControlAPI method), and
``args`` its arguments by name, each checked by the row's codec: ``spec`` (ServiceSpec fields) for
``add_service``/``edit_service``/``del_service``/``get_service``; ``svc`` and ``dest`` (ServiceSpec,
DestSpec fields) for ``add_dest``/``edit_dest``/``del_dest``; ``svc`` (or null for all) for
``zero``; ``timeouts`` (Timeouts fields) for ``set_timeouts``; ``spec`` (DaemonSpec fields) for
``start_daemon``; ``state`` (``"master"``/``"backup"``) for ``stop_daemon``; none for ``flush``,
``get_timeouts``, ``services``, ``conns``, ``total_stats`` and ``daemons``. The daemon adds ops of
its own without arguments: ``ping`` and ``status`` (pylvsd's pid, runtime, backend, counters and
components).

Response::

    {"ok": true, "result": ...}
    {"ok": false, "errno": 17, "op": "add_service", "error": "File exists"}

``result`` is encoded by the row's result codec. ``errno`` is the value IPVS would have returned
(so pylvsadm prints ipvsadm's message for it); ``op`` names the operation as libipvs does;
``"limit": true`` marks a refusal of pylvs's own (something IPVS would accept), whose ``error`` is
the message for the operator.

The server never lets a client hold up the daemon's loop: sockets are non-blocking, a request
line is at most :data:`MAX_LINE` bytes and :data:`MAX_BRACKETS` brackets, replies wait in a
per-client buffer (no more requests of that client are read while it is full), and a client whose
unread replies pass :data:`MAX_PENDING` bytes is dropped.
"""

from __future__ import annotations

import errno
import json
import logging
import selectors
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from pylvs.core.control import OPERATION_BY_NAME, ControlAPI, IPVSError
from pylvs.core.ratelimit import RateLimit

__all__ = [
    "DEFAULT_SOCKET",
    "MAX_BRACKETS",
    "MAX_CLIENTS",
    "MAX_LINE",
    "MAX_PENDING",
    "ControlClient",
    "ControlServer",
    "DaemonStartError",
    "connect_if_running",
    "connect_or_start",
    "dispatch",
]

log = logging.getLogger("pylvs.ctl")

DEFAULT_SOCKET = "pylvsd"
# The longest request line: a request is a few hundred bytes.
MAX_LINE = 64 * 1024
# Brackets in one request: a request nests three levels deep; a line of brackets is an attack on
# the JSON parser's recursion (and a RecursionError), not a request.
MAX_BRACKETS = 64
# Replies a client may leave unread: beyond this it is dropped. A listing of a large table is one
# reply of several megabytes, so the cap is on what piles up behind it, checked once it is queued.
MAX_PENDING = 64 * 1024 * 1024
# Replies queued before the server stops answering further requests of that client until it
# reads: a client that only writes cannot make the daemon queue without bound.
_HOLD = 256 * 1024
# Clients at once: beyond it new connections wait in the listen backlog (pylvsd raises its
# descriptor limit to make room for them, see pylvs.daemon).
MAX_CLIENTS = 1024
_READ = selectors.EVENT_READ
_WRITE = selectors.EVENT_WRITE


def _address(name: str) -> str:
    return "\0" + name


def _error(err: int, op: str, message: str, limit: bool = False) -> dict[str, Any]:
    reply: dict[str, Any] = {"ok": False, "errno": err, "op": op, "error": message}
    if limit:
        reply["limit"] = True
    return reply


_internal_errors = RateLimit()


def dispatch(
    api: ControlAPI, request: Any, extra: dict[str, Callable[..., Any]] | None = None
) -> dict[str, Any]:
    """One request object -> one response object (see the module docstring).

    ``extra`` maps further ops (``ping``, ``status``, ``ha-standby``) to the functions that
    answer them, called with the request's ``args`` as keyword arguments. Whatever the request
    holds, the answer is a response: a bug met by a request is logged and answered with EIO, and
    the daemon goes on.
    """
    op = request.get("op", "") if isinstance(request, dict) else ""
    if not isinstance(op, str):
        op = ""
    try:
        if not isinstance(request, dict) or not op:
            raise TypeError("a request is an object with an op")
        args = request.get("args")
        if args is None:
            args = {}
        if not isinstance(args, dict):
            raise TypeError("args must be an object")
        if extra is not None and op in extra:
            return {"ok": True, "result": extra[op](**args)}
        operation = OPERATION_BY_NAME.get(op)
        if operation is None:
            raise TypeError(f"unknown operation {op[:64]!r}")
        values = operation.decode_args(args)
        result = getattr(api, op)(*values)
        return {"ok": True, "result": operation.result.encode(result)}
    except IPVSError as exc:
        return _error(exc.errno, exc.op or op, str(exc), exc.limit)
    except (TypeError, ValueError, KeyError) as exc:
        return _error(errno.EINVAL, op, str(exc))
    except Exception:
        if _internal_errors.allow(time.monotonic()):
            log.exception("control operation %r failed", op[:64])
        return _error(errno.EIO, op, "internal error (logged by pylvsd)")


def _parse(line: bytes) -> tuple[Any, dict[str, Any] | None]:
    """(request, None), or (None, the error response) when the line is no JSON request."""
    if line.count(b"[") + line.count(b"{") > MAX_BRACKETS:
        return None, _error(errno.EINVAL, "", "bad request: too deeply nested")
    try:
        return json.loads(line), None
    except (ValueError, RecursionError) as exc:
        # ValueError includes UnicodeDecodeError and an integer of too many digits.
        return None, _error(errno.EINVAL, "", f"bad JSON: {str(exc)[:200]}")


class _Client:
    __slots__ = ("closing", "inbuf", "outbuf", "sock")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.inbuf = bytearray()
        self.outbuf = bytearray()
        self.closing = False  # close once outbuf is sent


class ControlServer:
    """The listening side, a component of the daemon's loop (:mod:`pylvs.loop`).

    Requests run in the loop's thread between packet batches, so they are serialised with packet
    processing without a lock.
    """

    name = "control"

    def __init__(
        self,
        api: ControlAPI,
        name: str = DEFAULT_SOCKET,
        extra: dict[str, Callable[..., Any]] | None = None,
    ) -> None:
        self.api = api
        self.socket_name = name
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
        self.listener.listen(128)
        self.listener.setblocking(False)
        self.clients: dict[int, _Client] = {}
        self.requests = 0
        self.dropped = 0

    # -- Component ------------------------------------------------------------------------------

    def watch(self) -> Sequence[tuple[Any, int]]:
        watched: list[tuple[Any, int]] = []
        if len(self.clients) < MAX_CLIENTS:
            watched.append((self.listener, _READ))
        for client in self.clients.values():
            if client.outbuf:
                watched.append((client.sock, _WRITE))
            elif not client.closing:
                watched.append((client.sock, _READ))
        return watched

    def deadline(self) -> float | None:
        return None

    def ready(self, fd: int, events: int, now: float) -> None:
        if fd == self.listener.fileno():
            self.accept_all()
            return
        client = self.clients.get(fd)
        if client is None:
            return
        if events & _WRITE:
            self._send(client)
        if events & _READ and fd in self.clients:
            self._receive(client)

    def due(self, now: float) -> None:
        return None

    def status(self) -> dict[str, Any]:
        return {"clients": len(self.clients), "requests": self.requests, "dropped": self.dropped}

    def close(self) -> None:
        for client in list(self.clients.values()):
            self._drop(client)
        self.listener.close()

    # -- clients --------------------------------------------------------------------------------

    def accept_all(self) -> None:
        """Accept every waiting client (up to MAX_CLIENTS); one that is not root gets an EPERM
        response and is closed."""
        while len(self.clients) < MAX_CLIENTS:
            try:
                conn, _ = self.listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # EMFILE and the like: try again at the next event
                log.warning("control socket: cannot accept a client: %s", exc.strerror or exc)
                return
            conn.setblocking(False)
            client = _Client(conn)
            self.clients[conn.fileno()] = client
            creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
            _pid, uid, _gid = struct.unpack("3i", creds)
            if uid != 0:
                self._reply(client, _error(errno.EPERM, "", "Permission denied"))
                client.closing = True
                self._send(client)

    def _receive(self, client: _Client) -> None:
        try:
            data = client.sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self._drop(client)
            return
        client.inbuf += data
        self._answer(client)

    def _answer(self, client: _Client) -> None:
        """Answer the complete lines waiting, until the replies queued reach _HOLD."""
        buf = client.inbuf
        while len(client.outbuf) < _HOLD:
            end = buf.find(b"\n")
            if end < 0:
                if len(buf) > MAX_LINE:
                    self._reply(client, _error(errno.EINVAL, "", "request line too long"))
                    client.closing = True
                    buf.clear()
                break
            line = bytes(buf[:end])
            del buf[: end + 1]
            if not line.strip():
                continue
            self.requests += 1
            if end > MAX_LINE:
                response = _error(errno.EINVAL, "", "request line too long")
            else:
                request, refusal = _parse(line)
                if refusal is not None:
                    response = refusal
                else:
                    response = dispatch(self.api, request, self.extra)
            if not self._reply(client, response):
                return
        if client.outbuf:
            self._send(client)

    def _reply(self, client: _Client, response: dict[str, Any]) -> bool:
        """Queue a response; False when that dropped the client (too much left unread)."""
        try:
            data = json.dumps(response).encode()
        except (TypeError, ValueError) as exc:
            data = json.dumps(_error(errno.EIO, "", f"reply not encodable: {exc}")).encode()
        client.outbuf += data + b"\n"
        if len(client.outbuf) > MAX_PENDING:
            log.warning("control socket: a client left %d bytes unread; dropped", MAX_PENDING)
            self.dropped += 1
            self._drop(client)
            return False
        return True

    def _send(self, client: _Client) -> None:
        if client.sock.fileno() < 0:
            return
        try:
            sent = client.sock.send(client.outbuf)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._drop(client)
            return
        del client.outbuf[:sent]
        if client.outbuf:
            return
        if client.closing:
            self._drop(client)
        elif client.inbuf:
            self._answer(client)  # lines held back while the replies were waiting

    def _drop(self, client: _Client) -> None:
        fd = client.sock.fileno()
        if self.clients.get(fd) is client:
            del self.clients[fd]
        client.sock.close()


class ControlClient:
    """:class:`ControlAPI` over the control socket of the pylvsd in this network namespace.

    Every row of :data:`pylvs.core.control.OPERATIONS` is a method (``client.add_service(spec)``);
    ``request`` sends any op by name, and :meth:`ping` / :meth:`status` are the daemon's own.
    """

    def __init__(self, name: str = DEFAULT_SOCKET, timeout: float = 30.0) -> None:
        self.name = name
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock.settimeout(timeout)
        deadline = time.monotonic() + timeout
        while True:
            try:
                self._sock.connect(_address(name))
                break
            except BlockingIOError:
                # The listen backlog is full (a unix socket says EAGAIN instead of waiting):
                # pylvsd is busy accepting; try again until the timeout.
                if time.monotonic() > deadline:
                    self._sock.close()
                    raise TimeoutError(f"pylvsd @{name} accepts no connection") from None
                time.sleep(0.01)
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
                bool(response.get("limit", False)),
            )
        return response.get("result")

    def __getattr__(self, name: str) -> Callable[..., Any]:
        operation = OPERATION_BY_NAME.get(name)
        if operation is None:
            raise AttributeError(name)

        def call(*args: Any) -> Any:
            result = self.request(name, **operation.encode_args(args))
            return operation.result.decode(result, name)

        call.__name__ = name
        return call

    def ping(self) -> bool:
        return bool(self.request("ping") == "pong")

    def status(self) -> dict[str, Any]:
        """pylvsd's own facts: ``pid``, ``runtime``, ``backend``, counters, ``components``."""
        result: dict[str, Any] = self.request("status")
        return result


class DaemonStartError(RuntimeError):
    """pylvsd could not be started; the message is its own error output."""


def connect_if_running(name: str = DEFAULT_SOCKET, timeout: float = 30.0) -> ControlClient | None:
    """A client of this namespace's pylvsd, or None when none runs (nothing is started)."""
    try:
        return ControlClient(name, timeout=timeout)
    except (ConnectionRefusedError, FileNotFoundError):
        return None


def connect_or_start(
    name: str = DEFAULT_SOCKET, daemon_args: tuple[str, ...] = (), timeout: float = 30.0
) -> ControlClient:
    """Connect to this namespace's pylvsd; start one in the background first if none runs.

    This is the "first ipvsadm command loads IPVS" behaviour. The daemon detaches itself once it is
    ready (its control socket listens), so when the start command returns, connecting succeeds.
    """
    client = connect_if_running(name, timeout)
    if client is not None:
        return client
    argv = [sys.executable, "-m", "pylvs.cli.pylvsd", "--socket", name, *daemon_args]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    if proc.returncode != 0:
        message = proc.stderr.strip() or f"pylvsd exited with status {proc.returncode}"
        raise DaemonStartError(message)
    deadline = time.monotonic() + timeout
    while True:
        client = connect_if_running(name, timeout)
        if client is not None:
            return client
        # A concurrent caller may have won the race and its daemon is still starting.
        if time.monotonic() > deadline:
            raise DaemonStartError(f"pylvsd did not open @{name} in {timeout}s")
        time.sleep(0.05)
