"""``service=mysql``, ``service=pgsql`` and ``service=oracle``: ldirectord's ``check_sql``.

Connect to the real server's check port as ``login`` with ``passwd`` to ``database`` (for Oracle,
the SID), run ``request`` (less its leading ``/``) as the SQL query and call the server up iff the
query gave at least one row. ldirectord refuses to check without a login and a query. MySQL and
MariaDB are spoken with PyMySQL, PostgreSQL with psycopg 3 and Oracle with python-oracledb when it
is installed.

ldirectord's ``check_sql`` runs without an alarm, so a hung database server stalls its whole loop;
here the client libraries get their timeouts from the check's deadline and the check itself
returns when the deadline passes, whatever a driver does.
"""

from __future__ import annotations

import importlib
import math
import threading
import time
from collections.abc import Callable
from typing import Any

from pylvs.health.check import CheckFailed, CheckTarget, Deadline

__all__ = ["check"]

# The PyPI distribution each service's driver comes from, for the reason when it is missing.
LIBRARIES = {"mysql": "PyMySQL", "pgsql": "psycopg", "oracle": "oracledb"}


def _query(target: CheckTarget) -> str:
    # check_sql: $query =~ s#^/##
    return target.request[1:] if target.request.startswith("/") else target.request


def _rows(cursor: Any, query: str) -> int:
    """Run the query; its row count (DBI's $sth->rows: rows returned or affected)."""
    cursor.execute(query)
    return int(cursor.rowcount)


def _mysql(target: CheckTarget, query: str, deadline: Deadline) -> int:
    try:
        import pymysql  # type: ignore[import-untyped]
    except ImportError:
        raise CheckFailed("service mysql needs the PyMySQL library") from None
    left = deadline.left()
    # DBD::mysql's dbi:mysql:database=...;host=...;port=...; the read timeout also bounds the
    # server's greeting, which a server that accepts and says nothing never sends.
    conn = pymysql.connect(
        host=target.rip,
        port=target.checkport,
        user=target.login,
        password=target.passwd,
        database=target.database or None,
        connect_timeout=left,
        read_timeout=left,
        write_timeout=left,
    )
    try:
        with conn.cursor() as cursor:
            return _rows(cursor, query)
    finally:
        conn.close()


def _pgsql(target: CheckTarget, query: str, deadline: Deadline) -> int:
    try:
        import psycopg
    except ImportError:
        raise CheckFailed("service pgsql needs the psycopg library") from None
    left = deadline.left()
    params: dict[str, Any] = {
        "host": target.rip,
        "port": target.checkport,
        "user": target.login,
        "password": target.passwd,
        # libpq counts whole seconds, at least 2; the caller's deadline covers the rest.
        "connect_timeout": max(2, math.ceil(left)),
        # Let the server cancel a query that outlives the check.
        "options": f"-c statement_timeout={max(1, int(left * 1000))}",
    }
    # DBD::Pg's dbname=: with none given libpq connects to the database named like the user.
    if target.database:
        params["dbname"] = target.database
    with psycopg.connect(**params) as conn, conn.cursor() as cursor:
        return _rows(cursor, query)


def _oracle(target: CheckTarget, query: str, deadline: Deadline) -> int:
    try:
        oracledb = importlib.import_module("oracledb")
    except ImportError:
        raise CheckFailed(
            "service oracle not supported: the oracledb driver not installed (pip install oracledb)"
        ) from None
    conn = oracledb.connect(
        user=target.login,
        password=target.passwd,
        host=target.rip,
        port=target.checkport,
        sid=target.database,  # DBD::Oracle's dbi:Oracle:sid=...
        tcp_connect_timeout=deadline.left(),
    )
    try:
        conn.call_timeout = max(1, int(deadline.left() * 1000))
        cursor = conn.cursor()
        try:
            cursor.execute(query)
            # check_sql fetches a row first for Oracle: DBD::Oracle counts rows as fetched.
            cursor.fetchone()
            return int(cursor.rowcount)
        finally:
            cursor.close()
    finally:
        conn.close()


DRIVERS: dict[str, Callable[[CheckTarget, str, Deadline], int]] = {
    "mysql": _mysql,
    "pgsql": _pgsql,
    "oracle": _oracle,
}


def _bounded(work: Callable[[], int], deadline: Deadline) -> int:
    """Run ``work`` on a helper thread and wait for it until the deadline.

    The drivers' own timeouts are per step (libpq's connect timeout is whole seconds, PyMySQL's
    read timeout is per read), so a slow server could make them add up past the deadline. On a
    timeout the helper thread is left to end on those timeouts and closes its connection itself.
    """
    outcome: list[int] = []
    failure: list[BaseException] = []

    def run() -> None:
        try:
            outcome.append(work())
        except BaseException as exc:
            failure.append(exc)

    thread = threading.Thread(target=run, name="pylvs-sql-check", daemon=True)
    thread.start()
    thread.join(max(0.0, deadline.end - time.monotonic()))
    if thread.is_alive():
        raise CheckFailed("timed out")
    if failure:
        raise failure[0]
    return outcome[0]


def check(target: CheckTarget, timeout: float) -> str:
    driver = DRIVERS.get(target.service)
    if driver is None:
        raise CheckFailed(f"service {target.service!r} is not an SQL service")
    query = _query(target)
    if not (target.login and query):
        # check_sql: "Must specify a login and request string for MySQL, Oracle and PostgreSQL".
        raise CheckFailed(f"service {target.service} needs a login and a request (the SQL query)")
    deadline = Deadline(timeout)
    rows = _bounded(lambda: driver(target, query, deadline), deadline)
    if rows <= 0:
        raise CheckFailed(f"query {query!r} returned no rows")
    return f"{target.service}: query {query!r} returned {rows} row{'s' if rows != 1 else ''}"
