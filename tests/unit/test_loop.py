"""The daemon's loop of components, stepped with a fake clock."""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Sequence
from typing import Any

from pylvs.loop import Loop, Timer


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Reader:
    """A component reading one end of a socket pair."""

    name = "reader"

    def __init__(self) -> None:
        self.a, self.b = socket.socketpair()
        self.got: list[bytes] = []
        self.closed = False

    def watch(self) -> Sequence[tuple[Any, int]]:
        return ((self.a, 1),)

    def deadline(self) -> float | None:
        return None

    def ready(self, fd: int, events: int, now: float) -> None:
        self.got.append(self.a.recv(100))

    def due(self, now: float) -> None:
        pass

    def status(self) -> dict[str, Any]:
        return {"got": len(self.got)}

    def close(self) -> None:
        self.closed = True
        self.a.close()
        self.b.close()


class Broken(Reader):
    name = "broken"

    def ready(self, fd: int, events: int, now: float) -> None:
        self.a.recv(100)
        raise RuntimeError("a bug")

    def status(self) -> dict[str, Any]:
        raise RuntimeError("no status")


def test_timers_run_at_their_deadline() -> None:
    clock = Clock()
    loop = Loop(clock)
    ticks: list[float] = []
    loop.add(Timer("engine", 1.0, ticks.append))
    loop.run_once(max_wait=0)
    assert ticks == [100.0]
    clock.now = 100.5
    loop.run_once(max_wait=0)
    assert ticks == [100.0]
    clock.now = 101.0
    loop.run_once(max_wait=0)
    assert ticks == [100.0, 101.0]
    assert loop.status() == {"engine": {"interval": 1.0, "runs": 2}}
    loop.close()


def test_descriptors_and_a_broken_component_do_not_stop_the_others() -> None:
    loop = Loop()
    reader, broken = Reader(), Broken()
    loop.add(broken)
    loop.add(reader)
    broken.b.send(b"boom")
    reader.b.send(b"hello")
    loop.run_once(max_wait=1)
    assert reader.got == [b"hello"]
    assert loop.status()["broken"] == {"error": "no status"}
    loop.close()
    assert reader.closed and broken.closed


def test_call_soon_from_a_thread_wakes_the_loop() -> None:
    loop = Loop()
    done: list[str] = []
    thread = threading.Thread(target=loop.call_soon, args=(done.append, "checked"))
    thread.start()
    thread.join()
    loop.run_once(max_wait=5)  # returns at once: the call woke it
    assert done == ["checked"]
    loop.close()


def test_a_socket_replaced_in_one_turn_is_watched_again() -> None:
    """A client closed and a new one accepted in the same turn can get the same descriptor
    number; epoll forgot the old one when it closed, so the loop must register the new one."""
    loop = Loop()
    reader = Reader()
    loop.add(reader)
    loop.run_once(max_wait=0)
    number = reader.a.fileno()
    reader.a.close()
    reader.b.close()
    reader.a, reader.b = socket.socketpair()
    if reader.a.fileno() != number:  # make it so: the situation this test is about
        os.dup2(reader.a.fileno(), number)
        reader.a.close()
        reader.a = socket.socket(fileno=number)
    assert reader.a.fileno() == number
    reader.b.send(b"again")
    loop.run_once(max_wait=1)
    assert reader.got == [b"again"]
    loop.close()
