"""Negotiate checks ``mysql``, ``pgsql`` and ``oracle`` against real servers.

The director namespace ``d`` runs the checks; the real server namespace ``r1`` runs MariaDB and
PostgreSQL 15, each with a fresh data directory, a ``lvs`` database holding a table with one row
(``up``) and an empty one (``empty``), and a password-authenticated user allowed to read them over
TCP from the director (PostgreSQL with scram-sha-256). Oracle has no server here: without the
oracledb driver the check must refuse clearly. A socket that accepts and never answers stands for
a hung server.
"""

from __future__ import annotations

import importlib.util
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
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
MYSQL, PGSQL, ORACLE, HUNG = 3306, 5432, 1521, 8306
TIMEOUT = 2.0
LOGIN, PASSWD, DATABASE = "checker", "checkpw", "lvs"
PG_BIN = Path("/usr/lib/postgresql/15/bin")
AS_POSTGRES = ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups"]

MYSQL_SETUP = f"""\
CREATE DATABASE {DATABASE};
CREATE TABLE {DATABASE}.up (id INT);
INSERT INTO {DATABASE}.up VALUES (1);
CREATE TABLE {DATABASE}.empty (id INT);
CREATE USER '{LOGIN}'@'{DIRECTOR}' IDENTIFIED BY '{PASSWD}';
GRANT SELECT ON {DATABASE}.* TO '{LOGIN}'@'{DIRECTOR}';
"""

PGSQL_SETUP = f"""\
CREATE TABLE up (id int);
INSERT INTO up VALUES (1);
CREATE TABLE empty (id int);
GRANT SELECT ON up, empty TO {LOGIN};
"""


@dataclass
class Daemon:
    """A server in ``r1`` that the tests may stop and start again."""

    lab: Lab
    argv: list[str]
    ready: Callable[[], bool]
    log: Path
    proc: subprocess.Popen[Any] | None = None

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = self.lab.popen("r1", self.argv, stdout=out, stderr=subprocess.STDOUT)
        wait_until(self.ready, timeout=30, what=f"{self.argv[-1]} ready")

    def stop(self) -> None:
        assert self.proc is not None
        self.lab.stop(self.proc, timeout=15.0)
        self.proc = None

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


@dataclass
class Servers:
    lab: Lab
    mysql: Daemon
    pgsql: Daemon

    def check(self, target: CheckTarget, timeout: float = TIMEOUT) -> str:
        with self.lab.inside("d"):
            return negotiate(target, timeout)


def target(service: str, port: int, **kwargs: Any) -> CheckTarget:
    kwargs.setdefault("login", LOGIN)
    kwargs.setdefault("passwd", PASSWD)
    kwargs.setdefault("database", DATABASE)
    kwargs.setdefault("request", "/SELECT id FROM up")
    return CheckTarget(
        checktype="negotiate",
        service=service,
        protocol="tcp",
        vip="203.0.113.10",
        vport=port,
        rip=RIP,
        rport=port,
        checkport=port,
        **kwargs,
    )


def port_open(lab: Lab, port: int) -> bool:
    with lab.inside("d"), socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((RIP, port)) == 0


def start_mariadb(lab: Lab, directory: Path) -> Daemon:
    directory.mkdir()
    install = ["mariadb-install-db", "--no-defaults", f"--datadir={directory}/data", "--user=root"]
    install += ["--auth-root-authentication-method=socket", "--skip-test-db"]
    subprocess.run(install, check=True, capture_output=True, timeout=60)
    sock = f"{directory}/mysqld.sock"
    argv = ["mariadbd", "--no-defaults", "--user=root", f"--datadir={directory}/data"]
    argv += [f"--socket={sock}", f"--pid-file={directory}/mysqld.pid", f"--port={MYSQL}"]
    argv += [f"--bind-address={RIP}", "--skip-name-resolve", f"--log-error={directory}/error.log"]
    daemon = Daemon(lab, argv, lambda: port_open(lab, MYSQL), directory / "mariadbd.log")
    daemon.start()
    # root logs in over the socket by unix_socket authentication; the checker by password.
    lab.run("r1", ["mariadb", "--no-defaults", "-S", sock, "-u", "root", "-e", MYSQL_SETUP])
    return daemon


def start_postgres(lab: Lab, directory: Path) -> Daemon:
    """initdb and postgres run as the postgres user, so ``directory`` must be open to it."""
    owner = pwd.getpwnam("postgres")
    os.chown(directory, owner.pw_uid, owner.pw_gid)
    superpw = directory / "superpw"
    superpw.write_text("superpw\n")
    os.chown(superpw, owner.pw_uid, owner.pw_gid)
    data = directory / "data"
    initdb = [*AS_POSTGRES, str(PG_BIN / "initdb"), "-D", str(data), "-U", "postgres"]
    initdb += ["-E", "UTF8", "--auth=scram-sha-256", f"--pwfile={superpw}", "--no-sync"]
    subprocess.run(initdb, check=True, capture_output=True, timeout=60)
    with (data / "pg_hba.conf").open("a") as hba:
        hba.write(f"host all all {DIRECTOR}/32 scram-sha-256\n")
    argv = [*AS_POSTGRES, str(PG_BIN / "postgres"), "-D", str(data), "-k", str(directory)]
    argv += ["-c", f"listen_addresses={RIP}", "-c", f"port={PGSQL}", "-c", "fsync=off"]
    isready = [str(PG_BIN / "pg_isready"), "-q", "-h", RIP, "-p", str(PGSQL)]

    def ready() -> bool:
        # Accepting connections, not only listening (it refuses them while it starts up).
        return lab.run("r1", isready, check=False).returncode == 0

    daemon = Daemon(lab, argv, ready, directory / "postgres.log")
    daemon.start()
    psql = [*AS_POSTGRES, str(PG_BIN / "psql"), "-h", str(directory), "-p", str(PGSQL)]
    psql += ["-U", "postgres", "-v", "ON_ERROR_STOP=1", "-q"]
    env = {**os.environ, "PGPASSWORD": "superpw"}
    lab.run("r1", [*psql, "-c", f"CREATE USER {LOGIN} PASSWORD '{PASSWD}'"], env=env)
    lab.run("r1", [*psql, "-c", f"CREATE DATABASE {DATABASE}"], env=env)
    lab.run("r1", [*psql, "-d", DATABASE, "-c", PGSQL_SETUP], env=env)
    return daemon


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    base = tmp_path_factory.mktemp("sql")
    # pytest's temporary directories are root's alone; PostgreSQL refuses to run as root.
    pgdir = Path(tempfile.mkdtemp(prefix="pylvs-pgsql-"))
    try:
        with Lab() as lab:
            lab.add_netns("d")
            lab.add_netns("r1")
            lab.veth("d", "d0", "r1", "r0", f"{DIRECTOR}/24", f"{RIP}/24")
            mysql = start_mariadb(lab, base / "mariadb")
            pgsql = start_postgres(lab, pgdir)
            yield Servers(lab, mysql, pgsql)
            assert mysql.running() and pgsql.running()
    finally:
        shutil.rmtree(pgdir, ignore_errors=True)


@pytest.fixture
def hung(servers: Servers) -> Iterator[int]:
    """A port on the real server that accepts connections and then never says anything."""
    with servers.lab.inside("r1"):
        listener = socket.socket()
    accepted: list[socket.socket] = []

    def accept() -> None:
        while True:
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
            listener.shutdown(socket.SHUT_RDWR)
            thread.join(2)
            for conn in accepted:
                conn.close()


SERVICES = [("mysql", MYSQL), ("pgsql", PGSQL)]
# What each driver says when the password is wrong.
BAD_PASSWORD = {"mysql": "Access denied for user", "pgsql": "password authentication failed"}


@pytest.mark.parametrize(("service", "port"), SERVICES)
def test_sql_query_with_a_row_up(servers: Servers, service: str, port: int) -> None:
    assert (
        servers.check(target(service, port))
        == f"{service}: query 'SELECT id FROM up' returned 1 row"
    )


@pytest.mark.parametrize(("service", "port"), SERVICES)
def test_sql_rows_counted(servers: Servers, service: str, port: int) -> None:
    tgt = target(service, port, request="/SELECT 1 UNION ALL SELECT 2 UNION ALL SELECT 3")
    assert servers.check(tgt).endswith("returned 3 rows")


@pytest.mark.parametrize(("service", "port"), SERVICES)
def test_sql_wrong_password_down(servers: Servers, service: str, port: int) -> None:
    with pytest.raises(Exception, match=BAD_PASSWORD[service]) as info:
        servers.check(target(service, port, passwd="not-the-password"))
    assert not isinstance(info.value, CheckFailed)  # the driver's own error is the reason


@pytest.mark.parametrize(("service", "port"), SERVICES)
def test_sql_query_without_rows_down(servers: Servers, service: str, port: int) -> None:
    with pytest.raises(CheckFailed, match=r"^query 'SELECT id FROM empty' returned no rows$"):
        servers.check(target(service, port, request="/SELECT id FROM empty"))


@pytest.mark.parametrize(("service", "port"), SERVICES)
def test_sql_bad_query_down(servers: Servers, service: str, port: int) -> None:
    with pytest.raises(Exception, match=r"(?i)no_such_table|doesn't exist|does not exist"):
        servers.check(target(service, port, request="/SELECT id FROM missing"))


@pytest.mark.parametrize(("service", "port"), SERVICES)
def test_sql_needs_login_and_request(servers: Servers, service: str, port: int) -> None:
    # check_sql: "Must specify a login and request string", and the server is down.
    needs = f"service {service} needs a login and a request"
    with pytest.raises(CheckFailed, match=needs):
        servers.check(target(service, port, login=""))
    with pytest.raises(CheckFailed, match=needs):
        servers.check(target(service, port, request="/"))


def test_pgsql_without_database_uses_the_login(servers: Servers) -> None:
    # DBD::Pg with an empty dbname: libpq's default, the database named like the user.
    with pytest.raises(Exception, match=f'database "{LOGIN}" does not exist'):
        servers.check(target("pgsql", PGSQL, database=""))


def test_mysql_without_database(servers: Servers) -> None:
    tgt = target("mysql", MYSQL, database="", request=f"/SELECT id FROM {DATABASE}.up")
    assert servers.check(tgt).endswith("returned 1 row")


@pytest.mark.parametrize("service", ["mysql", "pgsql"])
def test_sql_hung_server_times_out(servers: Servers, hung: int, service: str) -> None:
    start = time.monotonic()
    with pytest.raises(Exception, match=r"(?i)time"):
        servers.check(target(service, hung))
    elapsed = time.monotonic() - start
    assert TIMEOUT - 0.2 < elapsed < TIMEOUT + 1.5


@pytest.mark.parametrize(
    ("service", "port", "module", "library"),
    [("mysql", MYSQL, "pymysql", "PyMySQL"), ("pgsql", PGSQL, "psycopg", "psycopg")],
)
def test_sql_missing_library(
    servers: Servers,
    monkeypatch: pytest.MonkeyPatch,
    service: str,
    port: int,
    module: str,
    library: str,
) -> None:
    monkeypatch.setitem(sys.modules, module, None)
    with pytest.raises(CheckFailed, match=f"^service {service} needs the {library} library$"):
        servers.check(target(service, port))


def test_oracle_refused_without_driver(servers: Servers) -> None:
    if importlib.util.find_spec("oracledb") is not None:
        pytest.skip("oracledb is installed: the check would try the (absent) server")
    start = time.monotonic()
    with pytest.raises(CheckFailed, match=r"not supported: .*oracledb driver not installed"):
        servers.check(target("oracle", ORACLE, request="/SELECT 1 FROM DUAL"))
    assert time.monotonic() - start < 0.5  # refused before any connection is tried


def _up(servers: Servers, tgt: CheckTarget) -> bool:
    try:
        servers.check(tgt)
    except Exception:
        return False
    return True


@pytest.mark.parametrize(("service", "port"), SERVICES)
def test_sql_stopped_refused(servers: Servers, service: str, port: int) -> None:
    daemon = servers.mysql if service == "mysql" else servers.pgsql
    daemon.stop()
    try:
        with pytest.raises(Exception, match=r"(?i)refused") as info:
            servers.check(target(service, port))
        assert not isinstance(info.value, CheckFailed)
    finally:
        daemon.start()
    wait_until(lambda: _up(servers, target(service, port)), timeout=10, what=f"{service} back")
