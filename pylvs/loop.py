"""pylvsd's one loop, and the small interface every part of the daemon plugs into it with.

A :class:`Component` is anything that needs I/O or time: the data-plane backend, the control
socket, connection synchronisation, route tracking, the engine's timers, and (in threads of their
own) health checks and heartbeats. Each tells the loop

* :meth:`~Component.watch`: the descriptors it waits on (a number, or an object with
  ``fileno()`` such as a socket), each with the events it wants (``selectors.EVENT_READ`` /
  ``EVENT_WRITE``), asked again at every turn, so a component may start or stop watching one
  whenever its state changes. A socket closed and replaced by another with the same number in
  one turn is told apart by the object, so components hand sockets, not numbers, for what they
  open and close while running;
* :meth:`~Component.deadline`: when it next has something to do (a monotonic time, or None);

and the loop calls :meth:`~Component.ready` when a descriptor is ready and :meth:`~Component.due`
once the deadline has passed. :meth:`~Component.status` is what listings and ``status`` show;
:meth:`~Component.close` releases everything.

Threads never touch engine state: they hand work to the loop with :meth:`Loop.call_soon`, which
is safe from any thread and wakes the loop through a socket pair. The same wake-up socket takes
the signal wake-up bytes (``signal.set_wakeup_fd``), so a signal ends the wait at once.

A component that raises is logged (at most ten times in five seconds) and the loop goes on: one
broken part must not take the data plane down.

Models: Google Seesaw's engine (components, ``runOnce``), aioquic's ``get_timer``/``handle_timer``.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import selectors
import socket
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from pylvs.core.ratelimit import RateLimit

__all__ = ["Component", "Loop", "OwnThreads", "Timer"]

log = logging.getLogger("pylvs.loop")

# The longest wait when no component has a deadline: a safety net, not a timer anybody needs.
_MAX_WAIT = 1.0


class Component(Protocol):
    """A part of the daemon driven by :class:`Loop` (see the module docstring)."""

    name: str

    def watch(self) -> Sequence[tuple[Any, int]]: ...
    def deadline(self) -> float | None: ...
    def ready(self, fd: int, events: int, now: float) -> None: ...
    def due(self, now: float) -> None: ...
    def status(self) -> dict[str, Any]: ...
    def close(self) -> None: ...


class OwnThreads:
    """The loop side of a component that does its work in threads of its own (heartbeat,
    VRRP): nothing to watch and no deadline, so a busy loop never delays it; subclasses give
    :meth:`status` and :meth:`close`."""

    def watch(self) -> Sequence[tuple[Any, int]]:
        return ()

    def deadline(self) -> float | None:
        return None

    def ready(self, fd: int, events: int, now: float) -> None:
        pass

    def due(self, now: float) -> None:
        pass


class Timer:
    """A component that only runs ``action(now)`` every ``interval`` seconds (engine.tick)."""

    def __init__(self, name: str, interval: float, action: Callable[[float], None]) -> None:
        self.name = name
        self.interval = interval
        self.action = action
        self.next_run = 0.0
        self.runs = 0

    def watch(self) -> Sequence[tuple[int, int]]:
        return ()

    def deadline(self) -> float | None:
        return self.next_run

    def ready(self, fd: int, events: int, now: float) -> None:
        return None

    def due(self, now: float) -> None:
        self.next_run = now + self.interval
        self.runs += 1
        self.action(now)

    def status(self) -> dict[str, Any]:
        return {"interval": self.interval, "runs": self.runs}

    def close(self) -> None:
        return None


class Loop:
    """Waits on every component's descriptors and deadlines, and runs what is ready."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.components: list[Component] = []
        self._selector = selectors.DefaultSelector()
        # fd -> (component, events, the object watch() named) as registered with the selector
        self._registered: dict[int, tuple[Component, int, Any]] = {}
        self._calls: collections.deque[tuple[Callable[..., Any], tuple[Any, ...]]] = (
            collections.deque()
        )
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._selector.register(self._wake_r, selectors.EVENT_READ, None)
        self._errors = RateLimit()
        self.turns = 0

    # -- components -----------------------------------------------------------------------------

    def add(self, component: Component) -> None:
        self.components.append(component)

    def remove(self, component: Component) -> None:
        """Stop driving ``component`` (it is not closed)."""
        if component in self.components:
            self.components.remove(component)
        self._sync_watches()

    def status(self) -> dict[str, dict[str, Any]]:
        """Each component's status, by name (a failing status reads as its error)."""
        out: dict[str, dict[str, Any]] = {}
        for component in self.components:
            try:
                out[component.name] = component.status()
            except Exception as exc:
                out[component.name] = {"error": str(exc)}
        return out

    def close(self) -> None:
        """Close every component, the last added first."""
        for component in reversed(self.components):
            try:
                component.close()
            except Exception:
                log.exception("closing %s failed", component.name)
        self.components.clear()
        self._registered.clear()
        self._selector.close()
        self._wake_r.close()
        self._wake_w.close()

    # -- threads and signals ------------------------------------------------------------------

    def call_soon(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run ``fn(*args)`` in the loop's thread at its next turn; safe from any thread."""
        self._calls.append((fn, args))  # deque.append is atomic
        self.wake()

    def wake(self) -> None:
        with contextlib.suppress(BlockingIOError, OSError):
            self._wake_w.send(b"\0")

    def wakeup_fd(self) -> int:
        """The descriptor to hand to ``signal.set_wakeup_fd``."""
        return self._wake_w.fileno()

    def own_fds(self) -> list[int]:
        """The loop's own descriptors (a forked worker process closes them)."""
        return [self._wake_r.fileno(), self._wake_w.fileno()]

    # -- running --------------------------------------------------------------------------------

    def _sync_watches(self) -> None:
        wanted: dict[int, tuple[Component, int, Any]] = {}
        for component in self.components:
            for obj, events in component.watch():
                fd = obj if isinstance(obj, int) else obj.fileno()
                if fd < 0:
                    continue
                old = wanted.get(fd)
                wanted[fd] = (component, events | (old[1] if old is not None else 0), obj)
        registered = self._registered
        for fd in [fd for fd in registered if fd not in wanted]:
            self._unregister(fd)
        for fd, entry in wanted.items():
            old = registered.get(fd)
            if old is not None and old[0] is entry[0] and old[1] == entry[1]:
                if old[2] is entry[2] or isinstance(entry[2], int):
                    continue
                # The same number, another socket: the old one was closed and its number reused
                # within one turn (epoll forgot it when it was closed).
                self._unregister(fd)
                old = None
            component, events, _obj = entry
            try:
                if old is None:
                    self._selector.register(fd, events, component)
                else:
                    self._selector.modify(fd, events, component)
            except (KeyError, ValueError, OSError):
                self._failed(component, f"cannot watch descriptor {fd}")
                continue
            registered[fd] = entry

    def _unregister(self, fd: int) -> None:
        with contextlib.suppress(KeyError, ValueError, OSError):
            self._selector.unregister(fd)
        self._registered.pop(fd, None)

    def _failed(self, component: Component, what: str) -> None:
        if self._errors.allow(self.clock()):
            log.exception("%s: %s", component.name, what)

    def run_once(self, max_wait: float = _MAX_WAIT) -> None:
        """One turn: wait for the first descriptor or deadline, then run what is ready and due,
        then the calls handed over by other threads."""
        self.turns += 1
        self._sync_watches()
        now = self.clock()
        wake_at = now + max_wait
        for component in self.components:
            deadline = component.deadline()
            if deadline is not None and deadline < wake_at:
                wake_at = deadline
        timeout = 0.0 if self._calls else max(0.0, wake_at - now)
        events = self._selector.select(timeout)
        now = self.clock()
        for key, mask in events:
            component = key.data
            if component is None:
                with contextlib.suppress(BlockingIOError, OSError):
                    while self._wake_r.recv(4096):
                        pass
                continue
            try:
                component.ready(key.fd, mask, now)
            except Exception:
                self._failed(component, "failed on a ready descriptor")
        now = self.clock()
        for component in self.components:
            deadline = component.deadline()
            if deadline is not None and deadline <= now:
                try:
                    component.due(now)
                except Exception:
                    self._failed(component, "failed at its deadline")
        while self._calls:
            fn, args = self._calls.popleft()
            try:
                fn(*args)
            except Exception:
                if self._errors.allow(self.clock()):
                    log.exception("a call handed to the loop failed")

    def run(self, keep_going: Callable[[], bool]) -> None:
        while keep_going():
            self.run_once()
