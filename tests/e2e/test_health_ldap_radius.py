"""Negotiate checks ``ldap``, ``ldaps`` and ``radius`` against real servers.

The director namespace ``d`` runs the checks; the real server namespace ``r1`` runs OpenLDAP's
slapd (an mdb database with a base entry and one user, on ``ldap://`` and on ``ldaps://`` with a
self-signed certificate) and FreeRADIUS (a copy of Debian's configuration with the director as its
one client and one user in ``users``). Where ldirectord's own client library is installed
(Authen::Radius), the test asks it too, so "down on Access-Reject" is ldirectord's verdict and
not only ours. A socket that accepts and never answers stands for a hung server.
"""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from pylvs.health.check import CheckFailed, CheckTarget
from pylvs.health.services import negotiate
from pylvs.testing.netns import Lab, wait_until

DIRECTOR = "198.51.100.1"
RIP = "198.51.100.11"
LDAP, LDAPS, RADIUS, HUNG = 389, 636, 1812, 8389
TIMEOUT = 2.0

OPENSSL_REQ = [
    "openssl",
    "req",
    "-x509",
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:prime256v1",
]
OPENSSL_REQ += ["-nodes", "-days", "2", "-subj", "/CN=not-the-real-server"]

SUFFIX = "dc=example,dc=com"
MONITOR = f"cn=monitor,{SUFFIX}"
MONITOR_PW = "monpass"
SECRET = "s3cret-shared"
RADIUS_USER, RADIUS_PW = "monitor", "radpass"

SLAPD_CONF = """\
include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
pidfile {d}/slapd.pid
argsfile {d}/slapd.args
modulepath /usr/lib/ldap
moduleload back_mdb
TLSCertificateFile {d}/cert.pem
TLSCertificateKeyFile {d}/key.pem
database mdb
maxsize 10485760
suffix "{suffix}"
rootdn "cn=admin,{suffix}"
rootpw adminpw
directory {d}/db
"""

LDIF = f"""\
dn: {SUFFIX}
objectClass: dcObject
objectClass: organization
dc: example
o: Example

dn: {MONITOR}
objectClass: person
cn: monitor
sn: monitor
userPassword: {MONITOR_PW}
"""

# The one virtual server FreeRADIUS runs: PAP against the users file.
RADIUS_SITE = f"""\
server default {{
	listen {{
		type = auth
		ipaddr = {RIP}
		port = {RADIUS}
	}}
	authorize {{
		files
		pap
	}}
	authenticate {{
		Auth-Type PAP {{
			pap
		}}
	}}
	post-auth {{
		Post-Auth-Type REJECT {{
			attr_filter.access_reject
		}}
	}}
}}
"""

RADIUS_CLIENTS = f"""\
client director {{
	ipaddr = {DIRECTOR}
	secret = {SECRET}
}}
"""

RADIUS_USERS = f"""\
{RADIUS_USER} Cleartext-Password := "{RADIUS_PW}"
	Reply-Message := "hello %{{User-Name}}"
"""

# ldirectord's check_radius, as a program: Authen::Radius check_pwd, "" is down.
PERL_CHECK_RADIUS = """\
use Authen::Radius;
my ($host, $secret, $login, $passwd) = @ARGV;
my $result = "";
eval {
    my $radius = Authen::Radius->new(Host => $host, Secret => $secret, TimeOut => 2,
                                     Errmode => 'die');
    $result = $radius->check_pwd($login, $passwd);
};
print($result eq "" ? "down\\n" : "up\\n");
"""


@dataclass
class Daemon:
    """A server in ``r1`` that the tests may stop and start again."""

    lab: Lab
    argv: list[str]
    ready: Callable[[str], bool]  # given what the server logged since this start
    log: Path
    proc: subprocess.Popen[Any] | None = None

    def start(self) -> None:
        before = self.log.stat().st_size if self.log.exists() else 0

        def ready() -> bool:
            with self.log.open("rb") as log:
                log.seek(before)
                return self.ready(log.read().decode(errors="replace"))

        with self.log.open("ab") as out:
            self.proc = self.lab.popen("r1", self.argv, stdout=out, stderr=subprocess.STDOUT)
        wait_until(ready, timeout=20, what=f"{self.argv[0]} ready")

    def stop(self) -> None:
        assert self.proc is not None
        self.lab.stop(self.proc)
        self.proc = None

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


@dataclass
class Servers:
    lab: Lab
    slapd: Daemon
    radiusd: Daemon
    dir: Path

    def check(self, target: CheckTarget, timeout: float = TIMEOUT) -> str:
        with self.lab.inside("d"):
            return negotiate(target, timeout)


def target(service: str, port: int, **kwargs: Any) -> CheckTarget:
    return CheckTarget(
        checktype="negotiate",
        service=service,
        protocol="udp" if service == "radius" else "tcp",
        vip="203.0.113.10",
        vport=port,
        rip=RIP,
        rport=port,
        checkport=port,
        **kwargs,
    )


def ldap_target(service: str = "ldap", **kwargs: Any) -> CheckTarget:
    kwargs.setdefault("request", f"/{SUFFIX}")
    return target(service, LDAPS if service == "ldaps" else LDAP, **kwargs)


def radius_target(**kwargs: Any) -> CheckTarget:
    kwargs.setdefault("login", RADIUS_USER)
    kwargs.setdefault("passwd", RADIUS_PW)
    kwargs.setdefault("secret", SECRET)
    return target("radius", RADIUS, **kwargs)


def port_open(lab: Lab, port: int) -> bool:
    with lab.inside("d"), socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((RIP, port)) == 0


def make_slapd(lab: Lab, directory: Path) -> Daemon:
    directory.mkdir()
    (directory / "db").mkdir()
    subprocess.run(
        [*OPENSSL_REQ, "-keyout", str(directory / "key.pem"), "-out", str(directory / "cert.pem")],
        check=True,
        capture_output=True,
        timeout=30,
    )
    conf = directory / "slapd.conf"
    conf.write_text(SLAPD_CONF.format(d=directory, suffix=SUFFIX))
    (directory / "data.ldif").write_text(LDIF)
    subprocess.run(
        ["slapadd", "-f", str(conf), "-l", str(directory / "data.ldif")],
        check=True,
        capture_output=True,
        timeout=30,
    )
    urls = f"ldap://{RIP}:{LDAP}/ ldaps://{RIP}:{LDAPS}/"
    return Daemon(
        lab,
        ["slapd", "-d", "0", "-f", str(conf), "-h", urls],
        lambda _: port_open(lab, LDAP) and port_open(lab, LDAPS),
        directory / "slapd.log",
    )


def make_radiusd(lab: Lab, directory: Path) -> Daemon:
    """A copy of Debian's FreeRADIUS configuration, reduced to one site, client and user."""
    shutil.copytree("/etc/freeradius/3.0", directory, symlinks=True)
    conf = directory / "radiusd.conf"
    text = conf.read_text()
    text = re.sub(r"(?m)^raddbdir = .*$", f"raddbdir = {directory}", text)
    text = re.sub(r"(?m)^logdir = .*$", f"logdir = {directory}/log", text)
    text = re.sub(r"(?m)^run_dir = .*$", f"run_dir = {directory}/run", text)
    # Stay root: the copy lives in a directory only root may enter.
    text = re.sub(r"(?m)^(\s*)(user|group) = ", r"\1#\2 = ", text)
    conf.write_text(text)
    for sub in ("log", "run"):
        (directory / sub).mkdir(exist_ok=True)
    # Only our site (Debian enables default and inner-tunnel, which need EAP and its certificates).
    for enabled in (directory / "sites-enabled").iterdir():
        enabled.unlink()
    (directory / "sites-enabled" / "default").write_text(RADIUS_SITE)
    (directory / "mods-enabled" / "eap").unlink(missing_ok=True)
    (directory / "clients.conf").write_text(RADIUS_CLIENTS)
    users = directory / "mods-config" / "files" / "authorize"
    users.unlink()
    users.write_text(RADIUS_USERS)
    log = directory / "radiusd.log"
    return Daemon(
        lab,
        ["freeradius", "-X", "-d", str(directory)],
        lambda logged: "Ready to process requests" in logged,
        log,
    )


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    base = tmp_path_factory.mktemp("ldap-radius")
    with Lab() as lab:
        lab.add_netns("d")
        lab.add_netns("r1")
        lab.veth("d", "d0", "r1", "r0", f"{DIRECTOR}/24", f"{RIP}/24")
        slapd = make_slapd(lab, base / "slapd")
        radiusd = make_radiusd(lab, base / "raddb")
        slapd.start()
        radiusd.start()
        yield Servers(lab, slapd, radiusd, base)
        assert slapd.running() and radiusd.running()


@pytest.fixture
def hung_tcp(servers: Servers) -> Iterator[int]:
    """A port on the real server that accepts connections and then never says anything."""
    with servers.lab.inside("r1"):
        listener = socket.socket()
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            accepted.append(conn)

    with listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((RIP, HUNG))
        listener.listen(8)
        thread = threading.Thread(target=accept, daemon=True)
        thread.start()
        try:
            yield HUNG
        finally:
            stop.set()
            listener.shutdown(socket.SHUT_RDWR)
            thread.join(2)
            for conn in accepted:
                conn.close()


@pytest.fixture
def hung_udp(servers: Servers) -> Iterator[int]:
    """A UDP port on the real server that takes datagrams and never answers."""
    with servers.lab.inside("r1"):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with sock:
        sock.bind((RIP, HUNG))
        yield HUNG


def assert_hangs_up(servers: Servers, tgt: CheckTarget) -> None:
    start = time.monotonic()
    with pytest.raises((CheckFailed, OSError)):
        servers.check(tgt)
    elapsed = time.monotonic() - start
    assert TIMEOUT - 0.2 < elapsed < TIMEOUT + 1.5


# --- ldap ---------------------------------------------------------------------------------------


def test_ldap_anonymous_bind_up(servers: Servers) -> None:
    assert servers.check(ldap_target()) == f"ldap: bound as anonymous, found {SUFFIX!r}"


def test_ldaps_login_and_receive_up(servers: Servers) -> None:
    tgt = ldap_target("ldaps", login=MONITOR, passwd=MONITOR_PW, receive="dc=ex.mple,")
    assert servers.check(tgt) == f"ldaps: bound as {MONITOR}, found {SUFFIX!r}"


def test_ldaps_really_speaks_tls(servers: Servers) -> None:
    # The TLS port does not answer plain LDAP, and the plain port does not answer TLS.
    with pytest.raises(Exception, match=r"(?i)terminated|closed|reset|ssl|eof"):
        servers.check(target("ldap", LDAPS, request=f"/{SUFFIX}"))
    with pytest.raises(Exception, match=r"(?i)terminated|closed|reset|ssl|eof"):
        servers.check(target("ldaps", LDAP, request=f"/{SUFFIX}"))


def test_ldap_search_of_a_user_entry(servers: Servers) -> None:
    tgt = ldap_target(login=MONITOR, passwd=MONITOR_PW, request=f"/{MONITOR}", receive="^cn=mon")
    assert servers.check(tgt).endswith(f"found {MONITOR!r}")


def test_ldap_wrong_password_down(servers: Servers) -> None:
    with pytest.raises(CheckFailed, match=f"bind as {MONITOR} failed: invalidCredentials"):
        servers.check(ldap_target(login=MONITOR, passwd="not-the-password"))


def test_ldap_login_without_passwd_binds_anonymously(servers: Servers) -> None:
    # check_ldap binds as login only when login and passwd are both set.
    assert "bound as anonymous" in servers.check(ldap_target(login=MONITOR))


def test_ldap_dn_not_matching_receive_down(servers: Servers) -> None:
    with pytest.raises(CheckFailed, match=f"DN {SUFFIX!r} does not match receive 'dc=other'"):
        servers.check(ldap_target(receive="dc=other"))


def test_ldap_missing_base_down(servers: Servers) -> None:
    with pytest.raises(CheckFailed, match=r"found 0 entries, not 1 \(noSuchObject"):
        servers.check(ldap_target(request="/dc=nowhere,dc=com"))


@pytest.mark.parametrize("service", ["ldap", "ldaps"])
def test_ldap_hung_server_times_out(servers: Servers, hung_tcp: int, service: str) -> None:
    assert_hangs_up(servers, target(service, hung_tcp, request=f"/{SUFFIX}"))


def test_ldap_missing_library(servers: Servers, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ldap3", None)
    with pytest.raises(CheckFailed, match="service ldaps needs the ldap3 library"):
        servers.check(ldap_target("ldaps"))


def test_ldap_stopped_refused(servers: Servers) -> None:
    servers.slapd.stop()
    try:
        for service in ("ldap", "ldaps"):
            with pytest.raises(Exception, match=r"(?i)refused") as info:
                servers.check(ldap_target(service))
            assert not isinstance(info.value, CheckFailed)
    finally:
        servers.slapd.start()
    assert servers.check(ldap_target()).startswith("ldap: bound")


# --- radius -------------------------------------------------------------------------------------


def perl_check_radius(servers: Servers, tgt: CheckTarget) -> str:
    """ldirectord's verdict: Authen::Radius check_pwd from the director namespace."""
    if subprocess.run(["perl", "-MAuthen::Radius", "-e", "1"], capture_output=True).returncode:
        pytest.skip("Authen::Radius (libauthen-radius-perl) is not installed")
    argv = ["perl", "-e", PERL_CHECK_RADIUS, f"{tgt.rip}:{tgt.checkport}", tgt.secret]
    done = servers.lab.run("d", [*argv, tgt.login, tgt.passwd], text=True)
    return str(done.stdout).strip()


def test_radius_access_accept_up(servers: Servers) -> None:
    result = servers.check(radius_target())
    assert result == f"radius: Access-Accept for {RADIUS_USER!r} (hello {RADIUS_USER})"
    assert perl_check_radius(servers, radius_target()) == "up"


def test_radius_wrong_password_access_reject_down(servers: Servers) -> None:
    tgt = radius_target(passwd="not-the-password")
    with pytest.raises(CheckFailed, match=f"^Access-Reject for {RADIUS_USER!r}"):
        servers.check(tgt, timeout=3.0)  # FreeRADIUS delays rejects by reject_delay = 1 s
    # The server answered, yet ldirectord too calls it down: check_pwd is true only on Accept.
    assert perl_check_radius(servers, tgt) == "down"


def test_radius_unknown_user_access_reject_down(servers: Servers) -> None:
    with pytest.raises(CheckFailed, match=r"^Access-Reject for 'nobody'$"):
        servers.check(radius_target(login="nobody", passwd="x"), timeout=3.0)


def test_radius_wrong_secret_no_answer(servers: Servers) -> None:
    # FreeRADIUS drops a request whose Message-Authenticator does not prove the secret.
    start = time.monotonic()
    with pytest.raises(CheckFailed, match="timed out: no valid reply"):
        servers.check(radius_target(secret="not-the-secret"))
    assert time.monotonic() - start < TIMEOUT + 1.5
    assert "invalid Message-Authenticator" in servers.radiusd.log.read_text(errors="replace")


def test_radius_hung_server_times_out(servers: Servers, hung_udp: int) -> None:
    assert_hangs_up(servers, target("radius", hung_udp, login="u", passwd="p", secret="s"))


def test_radius_missing_library(servers: Servers, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pyrad", None)
    with pytest.raises(CheckFailed, match="service radius needs the pyrad library"):
        servers.check(radius_target())


def test_radius_stopped_refused(servers: Servers) -> None:
    servers.radiusd.stop()
    try:
        start = time.monotonic()
        with pytest.raises(ConnectionRefusedError):
            servers.check(radius_target())
        assert time.monotonic() - start < 1.0  # the ICMP port unreachable, not the timeout
    finally:
        servers.radiusd.start()
    assert servers.check(radius_target()).startswith("radius: Access-Accept")
