"""nginx as a real server in the end-to-end tests: one process in the foreground (no master, no
daemon), its pid, logs and temporary files in one directory, the ``server`` blocks given."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

from pylvs.testing.netns import Lab

_HEADER = """\
worker_processes 1;
master_process off;
daemon off;
pid {d}/nginx.pid;
error_log {d}/error.log;
events {{ worker_connections {connections}; }}
http {{
    {access_log}
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    default_type text/plain;
"""


def config(
    directory: Path, servers: str, access_log: str = "access_log off;", connections: int = 256
) -> str:
    """A whole nginx.conf around ``servers`` (the ``server { ... }`` blocks of ``http``)."""
    head = _HEADER.format(d=directory, access_log=access_log, connections=connections)
    return head + servers + "}\n"


def start(
    lab: Lab,
    short: str,
    directory: Path,
    servers: str,
    access_log: str = "access_log off;",
    connections: int = 256,
) -> subprocess.Popen[Any]:
    """nginx in lab namespace ``short`` serving ``servers``; the lab stops it."""
    directory.mkdir(parents=True, exist_ok=True)
    conf = directory / "nginx.conf"
    conf.write_text(config(directory, servers, access_log, connections))
    argv = ["nginx", "-p", str(directory), "-c", str(conf), "-e", str(directory / "error.log")]
    return lab.popen(short, argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
