"""Negotiate checks ``nntp`` and ``sip`` against real servers.

The director namespace ``d`` runs the checks; the real server namespace ``r1`` runs INN's ``innd``
(which hands readers to ``nnrpd``, whose greeting ``readers.conf`` decides) and Kamailio, whose
routing answers ``OPTIONS sip:health@...`` with ``200 OK``, any other user with ``404`` and logs
each request it gets. A socket that never answers stands for a hung server.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest

from pylvs.health.check import CheckFailed, CheckTarget
from pylvs.health.services import negotiate
from pylvs.testing.netns import Lab, wait_until

DIRECTOR = "198.51.100.1"
RIP = "198.51.100.11"
NNTP, SIP, SIP_SPARE, HUNG = 119, 5060, 5062, 5070
TIMEOUT = 2.0
INND = "/usr/lib/news/bin/innd"
CTLINND = "/usr/lib/news/bin/ctlinnd"
KAMAILIO_MODULES = "/usr/lib/x86_64-linux-gnu/kamailio/modules/"

READERS_ALLOW = """\
auth "director" {{
    hosts: "{director}"
    default: "<director>"
}}
access "director" {{
    users: "<director>"
    newsgroups: "*"
    access: {access}
}}
"""
READERS_DENY = """\
auth "nobody" {
    hosts: "192.0.2.99"
    default: "<nobody>"
}
access "nobody" {
    users: "<nobody>"
    newsgroups: "*"
}
"""

KAMAILIO_CFG = """\
#!KAMAILIO
debug=2
log_stderror=yes
children=1
tcp_children=1
listen=udp:{rip}:{port}
listen=tcp:{rip}:{port}
mpath="{modules}"
loadmodule "sl.so"
loadmodule "pv.so"
loadmodule "textops.so"
loadmodule "xlog.so"
request_route {{
    xlog("L_NOTICE", "HEALTH $proto $rm $ru via=$hdr(Via) cseq=$hdr(CSeq)\\n");
    if (is_method("OPTIONS") && $rU == "health") {{
        sl_send_reply("200", "OK");
        exit;
    }}
    sl_send_reply("404", "Not Here");
    exit;
}}
"""


def target(service: str, protocol: str, port: int, **kwargs: Any) -> CheckTarget:
    return CheckTarget(
        checktype="negotiate",
        service=service,
        protocol=protocol,
        vip="203.0.113.10",
        vport=port,
        rip=RIP,
        rport=port,
        checkport=port,
        **kwargs,
    )


def tcp_open(lab: Lab, port: int) -> bool:
    with lab.inside("d"), socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((RIP, port)) == 0


@dataclass
class Servers:
    lab: Lab
    dir: Path
    news: Path  # innd's files: readable and writable by the news user, which innd runs as
    innd: subprocess.Popen[Any] | None = None
    kamailio: list[subprocess.Popen[Any]] = field(default_factory=list)

    def check(self, tgt: CheckTarget) -> str:
        with self.lab.inside("d"):
            return negotiate(tgt, TIMEOUT)

    # --- INN ---

    def innconf(self) -> dict[str, str]:
        return dict(os.environ, INNCONF=str(self.news / "etc" / "inn.conf"))

    def start_innd(self) -> None:
        self.innd = self.lab.popen(
            "r1",
            [INND, "-f"],
            env=self.innconf(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_until(lambda: tcp_open(self.lab, NNTP), timeout=15, what="innd")

    def ctlinnd(self, *args: str) -> None:
        # ctlinnd talks to innd over its control socket in pathrun (a file, not the network).
        subprocess.run([CTLINND, "-t", "5", *args], env=self.innconf(), check=True, timeout=10)

    def stop_innd(self) -> None:
        # innd acts on SIGTERM only at its next periodic wakeup; "ctlinnd shutdown" is how it is
        # stopped at once.
        if self.innd is not None and self.innd.poll() is None:
            subprocess.run([CTLINND, "-t", "5", "shutdown", "test done"], env=self.innconf())
            try:
                self.innd.wait(10)
            except subprocess.TimeoutExpired:
                self.lab.stop(self.innd)
        self.innd = None

    def readers(self, text: str) -> None:
        """Rewrite readers.conf: nnrpd reads it for every new reader connection."""
        path = self.news / "etc" / "readers.conf"
        path.write_text(text)
        shutil.chown(path, "news", "news")

    # --- Kamailio ---

    def start_kamailio(self, port: int) -> Path:
        run = self.dir / f"kamailio-{port}"
        run.mkdir()
        cfg = run / "kamailio.cfg"
        cfg.write_text(KAMAILIO_CFG.format(rip=RIP, port=port, modules=KAMAILIO_MODULES))
        log = run / "log"
        with log.open("wb") as out:
            proc = self.lab.popen(
                "r1",
                ["kamailio", "-f", str(cfg), "-DD", "-E", "-Y", str(run)],
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        self.kamailio.append(proc)
        wait_until(lambda: tcp_open(self.lab, port), timeout=15, what="kamailio")
        return log


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    directory = tmp_path_factory.mktemp("news-sip")
    # pytest's temporary directories are private to root; innd and nnrpd run as news.
    news = Path(tempfile.mkdtemp(prefix="pylvs-inn-"))
    try:
        shutil.copytree("/etc/news", news / "etc")
        (news / "run").mkdir()
        (news / "log").mkdir()
        conf = []
        for line in Path("/etc/news/inn.conf").read_text().splitlines():
            key = line.split(":", 1)[0]
            if key in ("pathetc", "pathrun", "pathlog", "port", "domain", "bindaddress"):
                continue
            conf.append(line)
        conf += [
            f"pathetc: {news / 'etc'}",
            f"pathrun: {news / 'run'}",
            f"pathlog: {news / 'log'}",
            f"port: {NNTP}",
            f"bindaddress: {RIP}",
            "domain: example.net",  # the test host's name has none, and innd needs one
        ]
        (news / "etc" / "inn.conf").write_text("\n".join(conf) + "\n")
        news.chmod(0o755)
        subprocess.run(["chown", "-R", "news:news", str(news)], check=True)
        with Lab() as lab:
            lab.add_netns("d")
            lab.add_netns("r1")
            lab.veth("d", "d0", "r1", "r0", f"{DIRECTOR}/24", f"{RIP}/24")
            srv = Servers(lab, directory, news)
            srv.readers(READERS_ALLOW.format(director=DIRECTOR, access="R"))
            srv.start_innd()
            srv.start_kamailio(SIP)
            try:
                yield srv
            finally:
                srv.stop_innd()
    finally:
        shutil.rmtree(news, ignore_errors=True)


@pytest.fixture
def hung_tcp(servers: Servers) -> Iterator[int]:
    """A port that completes TCP handshakes (the kernel's accept queue) and never says anything."""
    with servers.lab.inside("r1"):
        sock = socket.socket()
    with sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((RIP, HUNG))
        sock.listen(8)
        yield HUNG


@pytest.fixture
def hung_udp(servers: Servers) -> Iterator[int]:
    """A UDP port that takes datagrams and never answers."""
    with servers.lab.inside("r1"):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with sock:
        sock.bind((RIP, HUNG))
        yield HUNG


def assert_times_out(servers: Servers, tgt: CheckTarget) -> None:
    start = time.monotonic()
    with pytest.raises((CheckFailed, TimeoutError)):
        servers.check(tgt)
    elapsed = time.monotonic() - start
    assert TIMEOUT - 0.2 < elapsed < TIMEOUT + 1.5


# --- nntp ---------------------------------------------------------------------------------------


def test_nntp_up(servers: Servers) -> None:
    result = servers.check(target("nntp", "tcp", NNTP))
    assert result.startswith("greeting '201 ") and "NNRP server INN" in result  # no posting
    servers.readers(READERS_ALLOW.format(director=DIRECTOR, access="RP"))
    try:
        assert servers.check(target("nntp", "tcp", NNTP)).startswith("greeting '200 ")
    finally:
        servers.readers(READERS_ALLOW.format(director=DIRECTOR, access="R"))


def test_nntp_no_permission_is_down(servers: Servers) -> None:
    servers.readers(READERS_DENY)
    try:
        with pytest.raises(CheckFailed, match="'502 You have no permission"):
            servers.check(target("nntp", "tcp", NNTP))
    finally:
        servers.readers(READERS_ALLOW.format(director=DIRECTOR, access="R"))
    assert servers.check(target("nntp", "tcp", NNTP))


def test_nntp_throttled_is_down(servers: Servers) -> None:
    servers.ctlinnd("throttle", "health check test")
    try:
        with pytest.raises(CheckFailed, match="'400 "):
            servers.check(target("nntp", "tcp", NNTP))
    finally:
        servers.ctlinnd("go", "health check test")
    wait_until(lambda: servers.check(target("nntp", "tcp", NNTP)), what="innd back")


def test_nntp_hung(servers: Servers, hung_tcp: int) -> None:
    assert_times_out(servers, target("nntp", "tcp", hung_tcp))


def test_nntp_refused_after_stop(servers: Servers) -> None:
    servers.stop_innd()
    try:
        with pytest.raises(ConnectionRefusedError):
            servers.check(target("nntp", "tcp", NNTP))
    finally:
        servers.start_innd()
    assert servers.check(target("nntp", "tcp", NNTP))


# --- sip ----------------------------------------------------------------------------------------


def kamailio_saw(servers: Servers, proto: str) -> str:
    """What Kamailio logged of the last request it got, waiting for one over ``proto``."""
    log = servers.dir / f"kamailio-{SIP}" / "log"

    def seen() -> str:
        lines = [ln for ln in log.read_text(errors="replace").splitlines() if "HEALTH " in ln]
        last = lines[-1].split("HEALTH ", 1)[1] if lines else ""
        return last if last.startswith(f"{proto} ") else ""

    return wait_until(seen, what=f"kamailio log of a {proto} request")


@pytest.mark.parametrize("proto", ["udp", "tcp"])
def test_sip_up(servers: Servers, proto: str) -> None:
    tgt = target("sip", proto, SIP, login=f"health@{RIP}")
    assert servers.check(tgt) == "answer 'SIP/2.0 200 OK'"
    saw = kamailio_saw(servers, proto)
    # check_sip's request: the user from login, a Via naming UDP and the socket's own address.
    assert saw.startswith(f"{proto} OPTIONS sip:health@{RIP} via=SIP/2.0/UDP {DIRECTOR}:")
    assert saw.endswith("cseq=63104 OPTIONS")


@pytest.mark.parametrize("proto", ["udp", "tcp"])
def test_sip_wrong_answer(servers: Servers, proto: str) -> None:
    tgt = target("sip", proto, SIP, login=f"nobody@{RIP}")
    with pytest.raises(CheckFailed, match=r"'SIP/2\.0 404 Not Here'"):
        servers.check(tgt)
    assert servers.check(replace(tgt, login=f"health@{RIP}"))


def test_sip_hung_udp(servers: Servers, hung_udp: int) -> None:
    assert_times_out(servers, target("sip", "udp", hung_udp, login=f"health@{RIP}"))


def test_sip_hung_tcp(servers: Servers, hung_tcp: int) -> None:
    assert_times_out(servers, target("sip", "tcp", hung_tcp, login=f"health@{RIP}"))


def test_sip_refused_after_stop(servers: Servers) -> None:
    servers.start_kamailio(SIP_SPARE)
    proc = servers.kamailio[-1]
    udp = target("sip", "udp", SIP_SPARE, login=f"health@{RIP}")
    tcp = replace(udp, protocol="tcp")
    assert servers.check(udp) and servers.check(tcp)
    servers.lab.stop(proc)
    with pytest.raises(ConnectionRefusedError):  # ICMP port unreachable
        servers.check(udp)
    with pytest.raises(ConnectionRefusedError):
        servers.check(tcp)
