"""Negotiate checks ``ftp`` and ``dns`` against real servers.

The director namespace ``d`` runs the checks; the real server namespace ``r1`` runs Debian's vsftpd
(anonymous only, one file to fetch) and dnsmasq (an A record, a PTR record, and a local domain that
answers NXDOMAIN for every other name, over UDP and TCP). vsftpd logs each login with the password
given, and dnsmasq each query with its type, so the tests see what the check sent. ``r2`` runs a
second vsftpd and dnsmasq that a test stops, to see the checks fail once the server is gone. Sockets
that never answer stand for a hung server.

vsftpd's files live in a directory under /tmp that its unprivileged ``ftp`` user can reach; pytest's
own temporary directories are private to root.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pylvs.health.check import CheckFailed, CheckTarget
from pylvs.health.services import negotiate
from pylvs.testing.netns import Lab, wait_until

RIP = "198.51.100.11"
RIP2 = "192.0.2.12"  # r2: the servers a test stops
FTP, DNS, HUNG = 21, 53, 2600
WWW, WWW_ADDR = "www.pylvs.test", "198.51.100.80"
CONTENT = b"pylvs health: ftp ok\n"
TIMEOUT = 3.0
HUNG_TIMEOUT = 2.0

VSFTPD_CONF = """\
listen=YES
listen_ipv6=NO
listen_address={addr}
listen_port={port}
background=NO
anonymous_enable=YES
anon_root={d}/root
local_enable=NO
write_enable=NO
pasv_enable=YES
pasv_min_port=30000
pasv_max_port=30100
secure_chroot_dir={d}/empty
xferlog_enable=YES
vsftpd_log_file={d}/vsftpd.log
seccomp_sandbox=NO
"""


def make_dir(root: Path, name: str) -> Path:
    d = root / name
    d.mkdir()
    d.chmod(0o755)
    return d


def start_vsftpd(lab: Lab, short: str, root: Path, addr: str) -> subprocess.Popen[Any]:
    d = make_dir(root, f"vsftpd-{short}")
    make_dir(d, "empty")
    make_dir(make_dir(d, "root"), "pub")
    (d / "root" / "health.txt").write_bytes(CONTENT)
    (d / "root" / "pub" / "status.html").write_bytes(b"<p>status: fine</p>\n")
    conf = d / "vsftpd.conf"
    conf.write_text(VSFTPD_CONF.format(d=d, addr=addr, port=FTP))
    proc = lab.popen(short, ["vsftpd", str(conf)], stderr=subprocess.DEVNULL)
    wait_listening(lab, short, "t", [f"{addr}:{FTP}"], proc)
    return proc


def start_dnsmasq(lab: Lab, short: str, root: Path, addr: str) -> subprocess.Popen[Any]:
    log = root / f"dnsmasq-{short}.log"
    argv = [
        "/usr/sbin/dnsmasq",
        "--no-daemon",
        "--conf-file=/dev/null",
        f"--port={DNS}",
        f"--listen-address={addr}",
        "--bind-interfaces",
        "--no-resolv",
        "--no-hosts",
        "--pid-file=",
        "--log-facility=-",
        "--log-queries",
        # Answered here for every name under it: NXDOMAIN unless a record below says otherwise.
        "--local=/pylvs.test/",
        f"--address=/{WWW}/{WWW_ADDR}",
        f"--ptr-record=80.100.51.198.in-addr.arpa,{WWW}",
    ]
    with open(log, "wb") as out:
        proc = lab.popen(short, argv, stdout=out, stderr=subprocess.STDOUT)
    wait_listening(lab, short, "t", [f"{addr}:{DNS}"], proc)
    wait_listening(lab, short, "u", [f"{addr}:{DNS}"], proc)
    return proc


def wait_listening(
    lab: Lab, short: str, kind: str, sockets: list[str], proc: subprocess.Popen[Any]
) -> None:
    def ready() -> bool:
        assert proc.poll() is None, f"server exited with {proc.returncode}"
        out = lab.run(short, ["ss", "-Hln" + kind], text=True).stdout
        bound = {line.split()[3] for line in out.splitlines()}
        return all(s in bound for s in sockets)

    wait_until(ready, timeout=15, what=f"servers on {sockets}")


class Env:
    def __init__(self, lab: Lab, root: Path) -> None:
        self.lab = lab
        self.root = root


@pytest.fixture(scope="module")
def env() -> Iterator[Env]:
    root = Path(tempfile.mkdtemp(prefix="pylvs-ftpdns-"))
    root.chmod(0o755)
    try:
        with Lab() as lab:
            lab.add_netns("d")
            lab.add_netns("r1")
            lab.add_netns("r2")
            lab.veth("d", "d0", "r1", "r0", "198.51.100.1/24", f"{RIP}/24")
            lab.veth("d", "d1", "r2", "r0", "192.0.2.1/24", f"{RIP2}/24")
            start_vsftpd(lab, "r1", root, RIP)
            start_dnsmasq(lab, "r1", root, RIP)
            # Never answer: a TCP listener nobody accepts from, a UDP socket nobody reads.
            with lab.inside("r1"):
                hung_tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                hung_tcp.bind((RIP, HUNG))
                hung_tcp.listen(16)
                hung_udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                hung_udp.bind((RIP, HUNG))
            try:
                yield Env(lab, root)
            finally:
                hung_tcp.close()
                hung_udp.close()
    finally:
        shutil.rmtree(root, ignore_errors=True)


def target(service: str, port: int, rip: str = RIP, **kwargs: Any) -> CheckTarget:
    kwargs.setdefault("protocol", "tcp")
    return CheckTarget(
        checktype="negotiate",
        service=service,
        vip="203.0.113.10",
        vport=port,
        rip=rip,
        rport=port,
        checkport=port,
        **kwargs,
    )


def check(env: Env, t: CheckTarget, timeout: float = TIMEOUT) -> str:
    with env.lab.inside("d"):
        return negotiate(t, timeout)


def vsftpd_log(env: Env) -> str:
    return (env.root / "vsftpd-r1" / "vsftpd.log").read_text()


def dnsmasq_log(env: Env) -> str:
    return (env.root / "dnsmasq-r1.log").read_text()


# --- ftp --------------------------------------------------------------------------------------


def test_ftp_up_with_ldirectord_default_login(env: Env) -> None:
    seen = check(env, target("ftp", FTP, request="health.txt", receive="ftp ok$"))
    assert seen == f"RETR health.txt: {len(CONTENT)} bytes match /ftp ok$/"
    # No login/passwd configured: anonymous with ldirectord@<hostname>, as read_config sets.
    hostname = os.environ.get("HOSTNAME") or socket.gethostname()
    log = vsftpd_log(env)
    assert f'OK LOGIN: Client "198.51.100.1", anon password "ldirectord@{hostname}"' in log
    assert 'OK DOWNLOAD: Client "198.51.100.1", "/health.txt"' in log


def test_ftp_up_with_path_and_login(env: Env) -> None:
    t = target(
        "ftp", FTP, request="/pub/status.html", receive=r"status: \w+", login="ftp", passwd="me@x"
    )
    assert "match" in check(env, t)
    assert 'anon password "me@x"' in vsftpd_log(env)


def test_ftp_wrong_content_is_down(env: Env) -> None:
    with pytest.raises(CheckFailed, match="bytes do not match /ftp broken/"):
        check(env, target("ftp", FTP, request="health.txt", receive="ftp broken"))


def test_ftp_missing_file_is_down(env: Env) -> None:
    with pytest.raises(CheckFailed, match=r"^RETR missing\.txt: 550 Failed to open file"):
        check(env, target("ftp", FTP, request="missing.txt", receive=""))


def test_ftp_wrong_login_is_down(env: Env) -> None:
    # vsftpd is anonymous only; the failed login shows as a refused RETR, as in check_ftp.
    t = target("ftp", FTP, request="health.txt", receive="ok", login="alice", passwd="secret")
    with pytest.raises(CheckFailed, match="530 This FTP server is anonymous only"):
        check(env, t)


def test_ftp_hung_server_fails_in_timeout(env: Env) -> None:
    t = target("ftp", HUNG, request="health.txt", receive="ok")
    start = time.monotonic()
    with pytest.raises((OSError, CheckFailed)):
        check(env, t, timeout=HUNG_TIMEOUT)
    assert HUNG_TIMEOUT - 0.5 < time.monotonic() - start < HUNG_TIMEOUT + 1.5


# --- dns --------------------------------------------------------------------------------------


@pytest.mark.parametrize("protocol", ["udp", "tcp"])
def test_dns_a_up(env: Env, protocol: str) -> None:
    t = target("dns", DNS, protocol=protocol, request=WWW, receive=r"^198\.51\.100\.80$")
    assert check(env, t) == rf"{WWW}. A {WWW_ADDR} matches /^198\.51\.100\.80$/"
    assert f"query[A] {WWW} from 198.51.100.1" in dnsmasq_log(env)


def test_dns_ptr_up_for_an_address(env: Env) -> None:
    # An address as request becomes a PTR question for its reverse name (Net::DNS::Question).
    t = target("dns", DNS, protocol="udp", request=f"/{WWW_ADDR}", receive=r"^www\.pylvs\.test$")
    assert check(env, t) == rf"80.100.51.198.in-addr.arpa. PTR {WWW} matches /^www\.pylvs\.test$/"
    assert "query[PTR] 80.100.51.198.in-addr.arpa from 198.51.100.1" in dnsmasq_log(env)


def test_dns_tcp_virtual_asks_over_tcp(env: Env) -> None:
    # With UDP to the server dropped, only a check that really uses TCP can succeed.
    rule = ["INPUT", "-p", "udp", "--dport", str(DNS), "-j", "DROP"]
    env.lab.run("r1", ["iptables", "-A", *rule])
    try:
        assert "matches" in check(env, target("dns", DNS, protocol="tcp", request=WWW, receive="."))
        with pytest.raises(CheckFailed, match="timed out"):
            check(env, target("dns", DNS, protocol="udp", request=WWW, receive="."), timeout=1.0)
    finally:
        env.lab.run("r1", ["iptables", "-D", *rule])


@pytest.mark.parametrize("protocol", ["udp", "tcp"])
def test_dns_wrong_address_is_down(env: Env, protocol: str) -> None:
    t = target("dns", DNS, protocol=protocol, request=WWW, receive=r"^198\.51\.100\.99$")
    with pytest.raises(CheckFailed, match=rf"^response mismatch: {WWW}. answered {WWW_ADDR}$"):
        check(env, t)


def test_dns_wrong_ptr_name_is_down(env: Env) -> None:
    t = target("dns", DNS, protocol="udp", request=WWW_ADDR, receive=r"^mail\.")
    with pytest.raises(CheckFailed, match=f"answered {WWW}$"):
        check(env, t)


def test_dns_empty_receive_is_down(env: Env) -> None:
    # check_dns requires length($recstr): an answer alone is not enough.
    with pytest.raises(CheckFailed, match=r"^response mismatch"):
        check(env, target("dns", DNS, protocol="udp", request=WWW, receive=""))


@pytest.mark.parametrize("protocol", ["udp", "tcp"])
def test_dns_nxdomain_is_down(env: Env, protocol: str) -> None:
    t = target("dns", DNS, protocol=protocol, request="nx.pylvs.test", receive=".")
    with pytest.raises(CheckFailed, match=r"^no answer: nx\.pylvs\.test\. NXDOMAIN$"):
        check(env, t)


@pytest.mark.parametrize("protocol", ["udp", "tcp"])
def test_dns_hung_server_fails_in_timeout(env: Env, protocol: str) -> None:
    t = target("dns", HUNG, protocol=protocol, request=WWW, receive=".")
    start = time.monotonic()
    with pytest.raises((OSError, CheckFailed)):
        check(env, t, timeout=HUNG_TIMEOUT)
    assert HUNG_TIMEOUT - 0.5 < time.monotonic() - start < HUNG_TIMEOUT + 1.5


# --- both -------------------------------------------------------------------------------------


def test_refused_after_servers_stop(env: Env) -> None:
    lab = env.lab
    vsftpd = start_vsftpd(lab, "r2", env.root, RIP2)
    dnsmasq = start_dnsmasq(lab, "r2", env.root, RIP2)
    targets = [
        target("ftp", FTP, rip=RIP2, request="health.txt", receive="ftp ok"),
        target("dns", DNS, rip=RIP2, protocol="udp", request=WWW, receive=WWW_ADDR),
        target("dns", DNS, rip=RIP2, protocol="tcp", request=WWW, receive=WWW_ADDR),
    ]
    for t in targets:
        assert "match" in check(env, t)
    lab.stop(vsftpd)
    lab.stop(dnsmasq)
    for t in targets:
        # UDP too: the check's socket is connected, so the ICMP port unreachable reaches it.
        with pytest.raises(ConnectionRefusedError):
            check(env, t)
