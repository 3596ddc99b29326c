"""Negotiate checks ``smtp``, ``submission``, ``pop``, ``pops``, ``imap`` and ``imaps`` against real
servers.

The director namespace ``d`` runs the checks; the real server namespace ``r1`` runs Debian's exim4
(SMTP on 25 and 587, plus two ports whose ACLs refuse the connection or the EHLO/HELO) and dovecot
(POP3 and IMAP, in clear and over TLS with a self-signed certificate, one user in a passwd-file).
``r2`` runs a second exim and dovecot that a test stops, to see the checks fail once the server is
gone. A listening socket that never accepts stands for a hung server.

The servers' files live in a directory under /tmp that their unprivileged users (Debian-exim,
dovecot, dovenull) can reach; pytest's own temporary directories are private to root.
"""

from __future__ import annotations

import shutil
import socket
import ssl
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
SMTP, SUBMISSION, SMTP_NO_SERVICE, SMTP_NO_HELLO = 25, 587, 2526, 2527
POP, POPS, IMAP, IMAPS = 110, 995, 143, 993
HUNG = 2600
USER, PASSWD = "alice", "s3cret pass"
TIMEOUT = 3.0
HUNG_TIMEOUT = 2.0

MAIL_SERVICES = [("pop", POP), ("pops", POPS), ("imap", IMAP), ("imaps", IMAPS)]

EXIM_CONF = """\
primary_hostname = mx.pylvs.test
local_interfaces = {addr}
daemon_smtp_ports = {ports}
spool_directory = {d}/spool
log_file_path = {d}/log/%slog
pid_file_path = {d}/exim.pid
exim_user = Debian-exim
exim_group = Debian-exim
keep_environment =
tls_advertise_hosts =
host_lookup =
acl_smtp_connect = acl_connect
acl_smtp_helo = acl_helo
acl_smtp_rcpt = acl_rcpt

begin acl
acl_connect:
  deny condition = ${{if eq{{$received_port}}{{{no_service}}}}}
       message = no service for health checks
  accept
acl_helo:
  deny condition = ${{if eq{{$received_port}}{{{no_hello}}}}}
       message = no greetings on this port
  accept
acl_rcpt:
  deny

begin routers
begin transports
"""

DOVECOT_CONF = """\
protocols = imap pop3
listen = {addr}
base_dir = {d}/run
state_dir = {d}/state
instance_name = pylvs-test-{name}
log_path = {d}/dovecot.log
ssl = yes
ssl_cert = <{d}/cert.pem
ssl_key = <{d}/key.pem
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_failure_delay = 0
first_valid_uid = 1
mail_location = maildir:{d}/mail/%u
passdb {{
  driver = passwd-file
  args = scheme=PLAIN {d}/passwd
}}
userdb {{
  driver = static
  args = uid=dovecot gid=dovecot home={d}/mail/%u
}}
service imap-login {{
  inet_listener imap {{
    port = {imap}
  }}
  inet_listener imaps {{
    port = {imaps}
    ssl = yes
  }}
}}
service pop3-login {{
  inet_listener pop3 {{
    port = {pop}
  }}
  inet_listener pop3s {{
    port = {pops}
    ssl = yes
  }}
}}
# No growing delay after failed logins from the director: each test stands on its own.
service anvil {{
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
"""


def make_dir(root: Path, name: str) -> Path:
    d = root / name
    d.mkdir()
    d.chmod(0o755)
    return d


def start_exim(lab: Lab, short: str, root: Path, addr: str) -> subprocess.Popen[Any]:
    d = make_dir(root, f"exim-{short}")
    for sub in ("spool", "log"):
        (d / sub).mkdir()
        shutil.chown(d / sub, "Debian-exim", "Debian-exim")
    ports = [SMTP, SUBMISSION, SMTP_NO_SERVICE, SMTP_NO_HELLO]
    conf = d / "exim.conf"
    conf.write_text(
        EXIM_CONF.format(
            d=d,
            addr=addr,
            ports=" : ".join(map(str, ports)),
            no_service=SMTP_NO_SERVICE,
            no_hello=SMTP_NO_HELLO,
        )
    )
    # -bdf: the listening daemon, in the foreground; -C: this configuration only.
    proc = lab.popen(short, ["exim4", "-bdf", "-C", str(conf)], stderr=subprocess.DEVNULL)
    wait_listening(lab, short, addr, ports, proc)
    return proc


def start_dovecot(lab: Lab, short: str, root: Path, addr: str) -> subprocess.Popen[Any]:
    d = make_dir(root, f"dovecot-{short}")
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2"),
            *("-subj", "/CN=mail.pylvs.test", "-keyout", str(d / "key.pem")),
            *("-out", str(d / "cert.pem")),
        ],
        check=True,
        capture_output=True,
    )
    (d / "passwd").write_text(f"{USER}:{{PLAIN}}{PASSWD}::::::\n")
    (d / "mail").mkdir()
    shutil.chown(d / "mail", "dovecot", "dovecot")
    conf = d / "dovecot.conf"
    conf.write_text(
        DOVECOT_CONF.format(d=d, addr=addr, name=short, pop=POP, pops=POPS, imap=IMAP, imaps=IMAPS)
    )
    proc = lab.popen(short, ["dovecot", "-F", "-c", str(conf)], stderr=subprocess.DEVNULL)
    wait_listening(lab, short, addr, [POP, POPS, IMAP, IMAPS], proc)
    return proc


def wait_listening(
    lab: Lab, short: str, addr: str, ports: list[int], proc: subprocess.Popen[Any]
) -> None:
    def ready() -> bool:
        assert proc.poll() is None, f"server exited with {proc.returncode}"
        out = lab.run(short, ["ss", "-Hltn"], text=True).stdout
        listening = {line.split()[3] for line in out.splitlines()}
        return all(f"{addr}:{port}" in listening for port in ports)

    wait_until(ready, timeout=15, what=f"servers on {addr}:{ports}")


class Env:
    def __init__(self, lab: Lab, root: Path) -> None:
        self.lab = lab
        self.root = root


@pytest.fixture(scope="module")
def env() -> Iterator[Env]:
    root = Path(tempfile.mkdtemp(prefix="pylvs-mail-"))
    root.chmod(0o755)
    try:
        with Lab() as lab:
            lab.add_netns("d")
            lab.add_netns("r1")
            lab.add_netns("r2")
            lab.veth("d", "d0", "r1", "r0", "198.51.100.1/24", f"{RIP}/24")
            lab.veth("d", "d1", "r2", "r0", "192.0.2.1/24", f"{RIP2}/24")
            start_exim(lab, "r1", root, RIP)
            start_dovecot(lab, "r1", root, RIP)
            # Listens but never accepts: the kernel completes the handshake, nothing answers.
            with lab.inside("r1"):
                hung = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                hung.bind((RIP, HUNG))
                hung.listen(16)
            try:
                yield Env(lab, root)
            finally:
                hung.close()
    finally:
        shutil.rmtree(root, ignore_errors=True)


def target(service: str, port: int, rip: str = RIP, **kwargs: Any) -> CheckTarget:
    return CheckTarget(
        checktype="negotiate",
        service=service,
        protocol="tcp",
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


def exim_log(env: Env) -> str:
    return (env.root / "exim-r1" / "log" / "mainlog").read_text()


def dovecot_log(env: Env) -> str:
    return (env.root / "dovecot-r1" / "dovecot.log").read_text()


# --- smtp / submission ------------------------------------------------------------------------


@pytest.mark.parametrize(("service", "port"), [("smtp", SMTP), ("submission", SUBMISSION)])
def test_smtp_up(env: Env, service: str, port: int) -> None:
    seen = check(env, target(service, port))
    assert seen.startswith("EHLO accepted: mx.pylvs.test ESMTP Exim 4.96")


def test_smtp_greeting_refused_is_down(env: Env) -> None:
    # exim's connect ACL answers 550 instead of 220: Net::SMTP->new fails.
    with pytest.raises(CheckFailed, match=r"^greeting 550 no service for health checks$"):
        check(env, target("smtp", SMTP_NO_SERVICE))


def test_smtp_hello_refused_is_down_after_helo(env: Env) -> None:
    # EHLO is refused with a 5xx, so the check falls back on HELO, which is refused too.
    with pytest.raises(CheckFailed, match=r"^HELO refused: 550 "):
        check(env, target("smtp", SMTP_NO_HELLO))
    # exim logs each refusal alike ("EHLO or HELO"); two lines mean both were tried.
    rejected = (
        "[198.51.100.1] rejected EHLO or HELO localhost.localdomain: no greetings on this port"
    )
    assert exim_log(env).count(rejected) == 2


# --- pop / pops / imap / imaps ----------------------------------------------------------------


@pytest.mark.parametrize(("service", "port"), MAIL_SERVICES)
def test_mail_up_without_login(env: Env, service: str, port: int) -> None:
    seen = check(env, target(service, port))
    assert "Dovecot (Debian) ready." in seen


@pytest.mark.parametrize(("service", "port"), MAIL_SERVICES)
def test_mail_login_up(env: Env, service: str, port: int) -> None:
    seen = check(env, target(service, port, login=USER, passwd=PASSWD))
    assert seen.startswith(f"logged in as {USER}")
    if service.startswith("pop"):
        assert seen.endswith("(USER/PASS)")
    # dovecot saw the login, over TLS for the "s" services.
    lines = [line for line in dovecot_log(env).splitlines() if f"Login: user=<{USER}>" in line]
    protocol = "pop3" if service.startswith("pop") else "imap"
    tls = service.endswith("s")
    assert any(f"{protocol}-login:" in line and (", TLS," in line) == tls for line in lines)


@pytest.mark.parametrize(("service", "port"), MAIL_SERVICES)
@pytest.mark.parametrize(("login", "passwd"), [(USER, "wrong"), ("mallory", PASSWD)])
def test_mail_bad_login_is_down(env: Env, service: str, port: int, login: str, passwd: str) -> None:
    with pytest.raises(CheckFailed, match=r"^login refused: .*Authentication failed"):
        check(env, target(service, port, login=login, passwd=passwd))


@pytest.mark.parametrize(("service", "port"), [("pops", POP), ("imaps", IMAP)])
def test_tls_service_on_clear_port_is_down(env: Env, service: str, port: int) -> None:
    # pops/imaps speak TLS from the first byte; the clear port answers with a text greeting.
    with pytest.raises(ssl.SSLError):
        check(env, target(service, port))


# --- every service ----------------------------------------------------------------------------


@pytest.mark.parametrize("service", ["smtp", "submission", "pop", "pops", "imap", "imaps"], ids=str)
def test_hung_server_fails_in_timeout(env: Env, service: str) -> None:
    t = target(service, HUNG, login=USER, passwd=PASSWD)
    start = time.monotonic()
    with pytest.raises((OSError, CheckFailed)):
        check(env, t, timeout=HUNG_TIMEOUT)
    elapsed = time.monotonic() - start
    assert HUNG_TIMEOUT - 0.5 < elapsed < HUNG_TIMEOUT + 1.5


def test_refused_after_servers_stop(env: Env) -> None:
    lab = env.lab
    exim = start_exim(lab, "r2", env.root, RIP2)
    dovecot = start_dovecot(lab, "r2", env.root, RIP2)
    services = [("smtp", SMTP), ("submission", SUBMISSION), *MAIL_SERVICES]
    for service, port in services:
        assert check(env, target(service, port, rip=RIP2, login=USER, passwd=PASSWD))
    lab.stop(exim)
    lab.stop(dovecot)
    for service, port in services:
        with pytest.raises(ConnectionRefusedError):
            check(env, target(service, port, rip=RIP2, login=USER, passwd=PASSWD))
