"""Real servers failing the ways real servers fail, under a steady client load through pylvsd.

Three nginx real servers behind a NAT service that pylvsd checks with ldirectord's HTTP
negotiate check (``request="check.html"``, ``receive="OK"``, one-second interval). A client in
namespace ``c`` opens a new connection for every request, all the time. For each way ``r2``
fails -- nginx killed (connection refused), wrong content, HTTP 500, hung (the process stopped:
the kernel still accepts, nothing answers), its link down -- the test waits for pylvsd to take
it out, checks that no request started after that failed, brings ``r2`` back and waits until it
serves again. The figures (detection time, failed requests before and after detection) are
printed; ``-s`` shows them.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nginx as nginx_server
import pytest
from lvslab import Daemon, setup_realservers, start_daemon, undo_realservers

from pylvs.testing.netns import Lab, LvsTopology, build_lvs_lab, wait_until

PORT = 80

NGINX_SERVERS = """\
    server {{
        listen {port} reuseport;
        root {d}/www;
        location = /check.html {{
            if (-f {d}/fail500) {{ return 500; }}
        }}
    }}
"""


@dataclass
class Request:
    start: float
    ok: bool
    real: str = ""


@dataclass
class Client:
    """New connections to the VIP, one after another, until stopped."""

    lab: Lab
    vip: str
    done: list[Request] = field(default_factory=list)
    running: bool = True

    def one(self) -> Request:
        start = time.monotonic()
        try:
            with self.lab.inside("c"):
                sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            with sock:
                sock.settimeout(2.0)
                sock.connect((self.vip, PORT))
                sock.sendall(b"GET / HTTP/1.0\r\n\r\n")
                data = b""
                while chunk := sock.recv(4096):
                    data += chunk
            ok = data.startswith(b"HTTP/1.1 200")
            return Request(start, ok, data.rsplit(b"\r\n\r\n", 1)[-1].decode().strip())
        except OSError:
            return Request(start, False)

    def run(self) -> None:
        while self.running:
            self.done.append(self.one())

    def failed(self, since: float, until: float = float("inf")) -> int:
        return sum(1 for r in self.done if since <= r.start < until and not r.ok)

    def served_by(self, real: str, since: float) -> int:
        return sum(1 for r in self.done if r.start >= since and r.ok and r.real == real)


def _nginx(lab: Lab, short: str, root: Path) -> subprocess.Popen[Any]:
    (root / "www").mkdir(parents=True, exist_ok=True)
    (root / "www" / "index.html").write_text(f"{short}\n")
    (root / "www" / "check.html").write_text("OK\n")
    return nginx_server.start(lab, short, root, NGINX_SERVERS.format(d=root, port=PORT))


def _listening(lab: Lab, short: str) -> bool:
    out = lab.run(short, ["ss", "-Htln", f"sport = :{PORT}"], check=False).stdout
    return bool(out.strip())


CONFIG = """\
checkinterval=1
checktimeout=1
negotiatetimeout=1
quiescent=no
virtual={vip}:{port}
    real={r1}:{port} masq
    real={r2}:{port} masq
    real={r3}:{port} masq
    service=http
    request="check.html"
    receive="OK"
    scheduler=rr
    protocol=tcp
    checktype=negotiate
"""


@dataclass
class Farm:
    lab: Lab
    topo: LvsTopology
    daemon: Daemon
    roots: dict[str, Path]
    nginx: dict[str, subprocess.Popen[Any]]

    def dests(self) -> list[str]:
        return [d.addr for s in self.daemon.ctl.services() for d in s.dests]

    def count(self, text: str) -> int:
        return self.daemon.output().count(text)


@pytest.fixture(scope="module")
def farm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Farm]:
    tmp = tmp_path_factory.mktemp("health")
    os.chmod(tmp, 0o755)  # nginx's own user reads the document roots
    with Lab() as lab:
        topo = build_lvs_lab(lab, 3, nat=True)
        shorts = ["r1", "r2", "r3"]
        try:
            setup_realservers(lab, topo, "nat", shorts)
            roots = {s: tmp / s for s in shorts}
            procs = {s: _nginx(lab, s, roots[s]) for s in shorts}
            for s in shorts:
                wait_until(lambda s=s: _listening(lab, s), 10, what=f"nginx in {s}")
            config = tmp / "ldirectord.cf"
            r1, r2, r3 = topo.reals
            config.write_text(CONFIG.format(vip=topo.vip, port=PORT, r1=r1, r2=r2, r3=r3))
            daemon = start_daemon(lab, tmp / "pylvsd.log", "nfqueue", "--config", str(config))
            f = Farm(lab, topo, daemon, roots, procs)
            wait_until(lambda: len(f.dests()) == 3, 10, what="three real servers up")
            yield f
        finally:
            undo_realservers(lab, shorts)


def _kill(f: Farm) -> Callable[[], None]:
    proc = f.nginx["r2"]
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()

    def recover() -> None:
        f.nginx["r2"] = _nginx(f.lab, "r2", f.roots["r2"])
        wait_until(lambda: _listening(f.lab, "r2"), 10, what="nginx back in r2")

    return recover


def _wrong_content(f: Farm) -> Callable[[], None]:
    page = f.roots["r2"] / "www" / "check.html"
    page.write_text("maintenance\n")
    return lambda: page.write_text("OK\n")


def _http_500(f: Farm) -> Callable[[], None]:
    flag = f.roots["r2"] / "fail500"
    flag.write_text("")
    return flag.unlink


def _hung(f: Farm) -> Callable[[], None]:
    pid = f.nginx["r2"].pid
    os.kill(pid, signal.SIGSTOP)
    return lambda: os.kill(pid, signal.SIGCONT)


def _link_down(f: Farm) -> Callable[[], None]:
    f.lab.run("r2", ["ip", "link", "set", "eth0", "down"])

    def recover() -> None:
        f.lab.run("r2", ["ip", "link", "set", "eth0", "up"])
        f.lab.run("r2", ["ip", "route", "replace", "default", "via", f.topo.director_back])

    return recover


FAILURES: dict[str, Callable[[Farm], Callable[[], None]]] = {
    "killed": _kill,
    "wrong content": _wrong_content,
    "http 500": _http_500,
    "hung": _hung,
    "link down": _link_down,
}


@pytest.mark.parametrize("failure", list(FAILURES))
def test_a_failing_real_server_is_taken_out_and_comes_back(farm: Farm, failure: str) -> None:
    f = farm
    r2 = f.topo.reals[1]
    wait_until(lambda: r2 in f.dests(), 10, what="r2 in the table")
    deleted = f"Deleted real server: {r2}:{PORT} ({f.topo.vip}:{PORT})"
    added = f"Added real server: {r2}:{PORT} ({f.topo.vip}:{PORT})"
    deletions, additions = f.count(deleted), f.count(added)
    client = Client(f.lab, f.topo.vip)
    thread = threading.Thread(target=client.run, daemon=True)
    thread.start()
    try:
        wait_until(lambda: client.served_by("r2", 0) > 0, 10, what="r2 serving")
        t_fail = time.monotonic()
        recover = FAILURES[failure](f)
        wait_until(lambda: f.count(deleted) > deletions, 15, what=f"r2 taken out ({failure})")
        t_detect = time.monotonic()
        assert r2 not in f.dests()
        # Load after the detection: 30 more requests, and none may fail.
        wait_until(
            lambda: sum(1 for r in client.done if r.start >= t_detect) >= 30,
            20,
            what="requests after the detection",
        )
        after = client.failed(t_detect)
        assert after == 0, f"{after} requests failed after r2 was taken out"
        before = client.failed(t_fail, t_detect)
        recover()
        t_back = time.monotonic()
        wait_until(lambda: f.count(added) > additions, 15, what="r2 back in the table")
        wait_until(lambda: client.served_by("r2", t_back) > 0, 10, what="r2 serving again")
        total = sum(1 for r in client.done if r.start >= t_fail)
        print(
            f"\n{failure:>13}: detected in {t_detect - t_fail:.2f}s, failed requests "
            f"{before} before detection, {after} after, of {total}; "
            f"back {time.monotonic() - t_back:.2f}s after recovery"
        )
    finally:
        client.running = False
        thread.join(5)
