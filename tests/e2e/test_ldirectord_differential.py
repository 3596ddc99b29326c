"""ldirectord and pylvsd's own health checks, side by side: the same file, the same failures,
the same table.

Run (A) is Debian's ldirectord in the foreground (``-d``) driving a pylvsd that has no
configuration of its own: with ``-d`` ldirectord runs ``./ipvsadm`` when its working directory
has one, and there that is pylvsadm against the namespace's pylvsd (a shim that never starts a
daemon, so ldirectord cannot reach anything else). Run (B) is ``pylvsd --config`` with the same
file. Both runs go through the same steps (real servers killed and restarted, a SIGHUP reload with
a changed weight and a removed real server); after every step the table, as sorted
``pylvsadm -S -n`` lines, and the multiset of ldirectord's table log lines must be the same.

Each run has its own lab (``build_lvs_lab`` with four real server namespaces): ``r1..r3`` run
nginx on their own address, ports 80 and 8080, as masq real servers of two virtual services on
the VIP: port 80 with ``checktype=connect``, port 8080 with ``checktype=negotiate`` and
``service=http``; ``198.51.100.14`` is both services' ``fallback=``. nginx runs as a single
process, so a killed server refuses connections at once. (A) decides when a step is over: its
debug output shows each check starting, and a step is over when a whole check cycle has run after
it. (B) must then reach (A)'s table and log lines within a few check intervals.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nginx as nginx_server
import pytest
from lvslab import REPO, Daemon, control, pylvs_argv, start_daemon

from pylvs.cli import pylvsadm
from pylvs.testing.netns import Lab, TimeoutExpired, build_lvs_lab, wait_until

LDIRECTORD = "/usr/sbin/ldirectord"
VIP = "203.0.113.10"
CONNECT_PORT, HTTP_PORT = 80, 8080
FALLBACK = "198.51.100.14"
N_REALS = 3
CHECKINTERVAL = 1
# How long (B) may take to reach (A)'s state: a reload or a start is a check cycle or two.
SETTLE = 8.0 * CHECKINTERVAL + 4.0

VARIANTS = {
    "quiescent": "quiescent=yes\n",
    "deleting": "quiescent=no\n",
    "readdquiescent": "quiescent=yes\nreaddquiescent=yes\n",
}

NGINX_SERVERS = """\
    server {{
        listen {rip}:{connect};
        listen {rip}:{http};
        location = /health.html {{ return 200 "health: OK\\n"; }}
        location / {{ return 200 "{name}\\n"; }}
    }}
"""

# ldirectord's ld_log lines that tell what was done to the table (and _service_up's and
# _service_down's failure count lines, which go with them).
TABLE_LINE = re.compile(
    r"^(Added|Changed|Deleted|Quiescent|Restored|Readd Quiescent|Purged"
    r"|Resetting soft failure count|Soft failure) "
)


def rip(i: int) -> str:
    return f"198.51.100.{11 + i}"


def ldirectord_cf(variant: str, weights: dict[int, int]) -> str:
    """The file both runs use: two virtual services on the VIP with the reals of ``weights``."""
    lines = [
        f"checkinterval={CHECKINTERVAL}",
        # Failed checks are refused connections, over at once; the timeouts only bound how long a
        # loaded machine may take to answer a live server.
        "checktimeout=3",
        "negotiatetimeout=3",
        VARIANTS[variant].rstrip("\n"),
    ]
    checks = {
        CONNECT_PORT: ["checktype=connect"],
        HTTP_PORT: [
            "checktype=negotiate",
            "service=http",
            'request="health.html"',
            'receive="health: OK"',
        ],
    }
    for port, check in checks.items():
        lines.append(f"virtual={VIP}:{port}")
        lines += [f"\treal={rip(i)}:{port} masq {w}" for i, w in sorted(weights.items())]
        lines += [f"\tfallback={FALLBACK}:{port} masq", "\tscheduler=wrr", "\tprotocol=tcp"]
        lines += [f"\t{option}" for option in check]
    return "\n".join(lines) + "\n"


FIRST_FILE = dict.fromkeys(range(N_REALS), 1) | {2: 2}
# The reload: r1's weight changes, r3 leaves the file.
SECOND_FILE = {0: 3, 1: 1}


def table(lab: Lab) -> list[str]:
    """The director's table as sorted ``pylvsadm -S -n`` lines."""
    out = lab.run("d", pylvs_argv("pylvs.cli.pylvsadm", "-S", "-n"), cwd=REPO, text=True)
    return sorted(out.stdout.splitlines())


def table_lines(lines: list[str]) -> Counter[str]:
    return Counter(line for line in lines if TABLE_LINE.match(line))


@dataclass
class Servers:
    """nginx on ``r1..r3``, each started and killed on demand."""

    lab: Lab
    directory: Path
    procs: dict[int, subprocess.Popen[Any]] = field(default_factory=dict)

    def start(self, i: int) -> None:
        d = self.directory / f"r{i + 1}"
        servers = NGINX_SERVERS.format(rip=rip(i), connect=CONNECT_PORT, http=HTTP_PORT, name=i + 1)
        self.procs[i] = nginx_server.start(self.lab, f"r{i + 1}", d, servers, connections=64)
        wait_until(lambda: self._listening(i), timeout=10, what=f"nginx on {rip(i)}")

    def kill(self, i: int) -> None:
        proc = self.procs.pop(i)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(5)

    def _listening(self, i: int) -> bool:
        if self.procs[i].poll() is not None:
            raise AssertionError(f"nginx on r{i + 1} exited: {self.procs[i].returncode}")
        for port in (CONNECT_PORT, HTTP_PORT):
            with self.lab.inside("d"):
                sock = socket.socket()
            with sock:
                sock.settimeout(1.0)
                if sock.connect_ex((rip(i), port)) != 0:
                    return False
        return True


@dataclass
class Step:
    name: str
    action: Callable[[Servers], None] | None
    reload: bool = False


def _kill(*reals: int) -> Callable[[Servers], None]:
    def action(servers: Servers) -> None:
        for i in reals:
            servers.kill(i)

    return action


def _start(*reals: int) -> Callable[[Servers], None]:
    def action(servers: Servers) -> None:
        for i in reals:
            servers.start(i)

    return action


STEPS = [
    Step("start, all reals up", None),
    Step("r1 fails", _kill(0)),
    Step("r1 comes back", _start(0)),
    Step("all reals fail: fallback", _kill(0, 1, 2)),
    Step("r2 comes back: no fallback", _start(1)),
    Step("r3 comes back, r1 still down", _start(2)),
    Step("SIGHUP: r1 weight 3, r3 gone", None, reload=True),
    Step("r1 comes back with weight 3", _start(0)),
    Step("r1 and r2 fail: fallback again", _kill(0, 1)),
]


@dataclass
class Seen:
    """What (A) left after a step."""

    table: list[str]
    lines: Counter[str]


@contextmanager
def lab_with_servers(tmp_path: Path) -> Iterator[tuple[Lab, Servers]]:
    with Lab() as lab:
        build_lvs_lab(lab, N_REALS + 1)
        servers = Servers(lab, tmp_path)
        for i in range(N_REALS):
            servers.start(i)
        yield lab, servers


def write_config(path: Path, variant: str, weights: dict[int, int]) -> None:
    path.write_text(ldirectord_cf(variant, weights))


# -- (A): ldirectord through the ipvsadm shim ----------------------------------------------------

SHIM = """\
#!{python} -S
import json, socket, sys

sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
sock.connect("\\0{name}")
sock.sendall(json.dumps(sys.argv[1:]).encode())
sock.shutdown(socket.SHUT_WR)
reply = json.loads(b"".join(iter(lambda: sock.recv(65536), b"")))
sys.stdout.write(reply["stdout"])
sys.stderr.write(reply["stderr"])
sys.exit(reply["status"])
"""


def recv_all(sock: socket.socket) -> bytes:
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


class Ipvsadm:
    """ldirectord's ``./ipvsadm``: a shim that hands its command line to pylvsadm's ``main``,
    run here against the director's pylvsd (a python start-up with the shim's few imports costs a
    tenth of pylvsadm's, and ldirectord runs a few hundred command lines). The control client is
    the namespace's running pylvsd, so nothing is ever started and no other table is touched."""

    def __init__(self, lab: Lab, directory: Path) -> None:
        name = f"pylvs-ipvsadm-shim-{os.getpid()}"
        with lab.inside("d"):
            self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind("\0" + name)
        self.listener.listen(8)
        self.control = control(lab)
        self.commands: list[list[str]] = []
        self.shim = directory / "ipvsadm"
        self.shim.write_text(SHIM.format(python=sys.executable, name=name))
        self.shim.chmod(0o755)
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            with conn:
                argv = json.loads(recv_all(conn))
                self.commands.append(argv)
                out, err = io.StringIO(), io.StringIO()
                try:
                    status = pylvsadm.main(
                        argv, control=self.control, stdin=io.StringIO(), stdout=out,
                        stderr=err, prog="ipvsadm",
                    )  # fmt: skip
                except Exception as exc:  # reported to ldirectord as a failed command
                    err.write(f"{type(exc).__name__}: {exc}\n")
                    status = 1
                reply = {"status": status, "stdout": out.getvalue(), "stderr": err.getvalue()}
                conn.sendall(json.dumps(reply).encode())

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)
        self.listener.close()
        self.thread.join(5)
        self.control.close()


class Ldirectord:
    """ldirectord -d in the director namespace, its output in a file."""

    # _check_real's debug line for the first real of the first virtual: one per check cycle.
    CYCLE = f"DEBUG2: Checking connect: real server=connect:tcp:{rip(0)}:{CONNECT_PORT}:"

    def __init__(self, lab: Lab, directory: Path, config: Path) -> None:
        self.log = directory / "ldirectord.out"
        with self.log.open("w") as out:
            self.proc = lab.popen(
                "d",
                [LDIRECTORD, "-d", str(config), "start"],
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=directory,
            )
        self.lab = lab

    def lines(self) -> list[str]:
        return self.log.read_text(errors="replace").splitlines()

    def settle(self, offset: int, last: int, marker: str | None = None) -> None:
        """Wait until a whole check cycle has run after line ``offset`` (after ``marker``):
        one that began after it (the first real's check) and has checked real ``last`` (the
        last real in the file: its http check's verdict line comes after its ``service_set``)."""
        end = re.compile(
            rf"check_http: http://{re.escape(rip(last))}:{HTTP_PORT}/health\.html is (up|down)$"
        )

        def done() -> bool:
            if self.proc.poll() is not None:
                raise AssertionError(f"ldirectord exited: {self.log.read_text()}")
            lines = self.lines()[offset:]
            if marker is not None:
                starts = [n for n, line in enumerate(lines) if marker in line]
                if not starts:
                    return False
                lines = lines[starts[0] + 1 :]
            begun = [n for n, line in enumerate(lines) if self.CYCLE in line]
            return bool(begun) and any(end.search(line) for line in lines[begun[0] :])

        wait_until(done, timeout=60, interval=0.05, what="an ldirectord check cycle")

    def stop(self) -> None:
        self.lab.stop(self.proc, timeout=30)


def run_ldirectord(tmp_path: Path, variant: str) -> list[Seen]:
    """(A): every step's table and table log lines under ldirectord."""
    config = tmp_path / f"pylvs-differential-{variant}-{os.getpid()}.cf"
    write_config(config, variant, FIRST_FILE)
    seen: list[Seen] = []
    with lab_with_servers(tmp_path / "servers-a") as (lab, servers):
        daemon = start_daemon(lab, tmp_path / "pylvsd-a.log", "nfqueue")
        ipvsadm = Ipvsadm(lab, tmp_path)
        ld = Ldirectord(lab, tmp_path, config)
        weights = FIRST_FILE
        try:
            for step in STEPS:
                offset = len(ld.lines())
                marker = None
                if step.action is not None:
                    step.action(servers)
                if step.reload:
                    weights = SECOND_FILE
                    write_config(config, variant, weights)
                    os.kill(ld.proc.pid, signal.SIGHUP)
                    marker = "Reloading Linux Director Daemon config on signal"
                ld.settle(offset, max(weights), marker)
                seen.append(Seen(table(lab), table_lines(ld.lines()[offset:])))
        finally:
            ld.stop()
            ipvsadm.close()
            lab.stop(daemon.proc)
        out = ld.lines()
    # ldirectord ran our shim, never a real ipvsadm.
    runs = [line for line in out if "Running system(" in line]
    assert runs and all("system(./ipvsadm " in line for line in runs), runs[:3]
    assert not any("failed" in line and "system(" in line for line in out), out
    assert len(ipvsadm.commands) >= len(runs)
    return seen


# -- (B): pylvsd --config --------------------------------------------------------------------------


def pylvsd_lines(text: str) -> list[str]:
    marker = " pylvs.ldirectord: "
    return [line.split(marker, 1)[1] for line in text.splitlines() if marker in line]


def health(daemon: Daemon) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = daemon.ctl.request("health")
    return rows


def reach(lab: Lab, daemon: Daemon, want: Seen, since: int, what: str) -> None:
    """Wait until pylvsd's table and its table log lines since line ``since`` are (A)'s."""
    got: list[Seen] = []

    def same() -> bool:
        # The log first: it is cheap to read, and the table changes come with their lines.
        lines = table_lines(pylvsd_lines(daemon.output())[since:])
        got[:] = [Seen(table(lab) if lines == want.lines or not got else got[0].table, lines)]
        return got[0].table == want.table and got[0].lines == want.lines

    with contextlib.suppress(TimeoutExpired):
        wait_until(same, timeout=SETTLE, interval=0.1, what=what)
    got[0].table = table(lab)
    why = what
    if got[0].table != want.table or got[0].lines != want.lines:
        # pylvsd's last check of each real says why it holds that server down.
        why += "; pylvsd's checks: " + "; ".join(
            f"{row['real']} {row['check']} {row['state']}: {row['reason']}"
            for row in health(daemon)
        )
    assert got[0].table == want.table, why
    assert sorted(got[0].lines.elements()) == sorted(want.lines.elements()), why
    assert daemon.proc.poll() is None


def run_pylvsd(tmp_path: Path, variant: str, expected: list[Seen]) -> None:
    """(B): the same steps under ``pylvsd --config``; each step must end where (A)'s did."""
    config = tmp_path / f"pylvs-differential-{variant}-b.cf"
    write_config(config, variant, FIRST_FILE)
    with lab_with_servers(tmp_path / "servers-b") as (lab, servers):
        daemon = start_daemon(lab, tmp_path / "pylvsd-b.log", "nfqueue", "--config", str(config))
        for step, want in zip(STEPS, expected, strict=True):
            since = len(pylvsd_lines(daemon.output())) if step.action or step.reload else 0
            if step.action is not None:
                step.action(servers)
            if step.reload:
                write_config(config, variant, SECOND_FILE)
                os.kill(daemon.proc.pid, signal.SIGHUP)
            reach(lab, daemon, want, since, f"{variant}: {step.name}")


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_same_table_as_ldirectord(tmp_path: Path, variant: str) -> None:
    """After every step, pylvsd's checks leave the table ldirectord leaves, with its log lines."""
    expected = run_ldirectord(tmp_path, variant)
    # The steps do what they say (a wrong step would make both runs agree on nothing much).
    fallback = f"-a -t {VIP}:{CONNECT_PORT} -r {FALLBACK}:{CONNECT_PORT} -m -w 1"
    assert [fallback in s.table for s in expected] == [
        False, False, False, True, False, False, False, False, True
    ]  # fmt: skip
    run_pylvsd(tmp_path, variant, expected)
