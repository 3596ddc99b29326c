"""HTTP connections per second through the VIP: wrk -> director -> nginx, one request per
connection (``Connection: close``), for pylvs (DR, NAT) and for HAProxy in TCP mode."""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path
from typing import Any

from pylvs.bench.lab import BenchLab
from pylvs.testing.netns import wait_until

__all__ = ["start_haproxy", "start_nginx", "wrk"]


def _listening(lab: BenchLab, short: str, port: int) -> bool:
    table = lab.run(short, ["cat", "/proc/net/tcp"]).stdout.decode()
    return any(
        line.split()[1].endswith(f":{port:04X}") and line.split()[3] == "0A"
        for line in table.splitlines()[1:]
    )


def start_nginx(lab: BenchLab, workdir: Path) -> subprocess.Popen[Any]:
    """nginx on every address of the receiver (the real servers' RIPs and the VIP), port 80."""
    workdir.mkdir(parents=True, exist_ok=True)
    conf = workdir / "nginx.conf"
    conf.write_text(
        f"worker_processes 1;\npid {workdir}/nginx.pid;\nerror_log {workdir}/error.log;\n"
        "events { worker_connections 4096; }\n"
        "http {\n  access_log off;\n"
        f"  client_body_temp_path {workdir}; proxy_temp_path {workdir};\n"
        f"  fastcgi_temp_path {workdir}; uwsgi_temp_path {workdir}; scgi_temp_path {workdir};\n"
        f"  server {{ listen {lab.topo.http_port} backlog=4096 reuseport;\n"
        "    location / { return 200 'ok\\n'; } }\n}\n"
    )
    proc = lab.popen("r", ["nginx", "-c", str(conf), "-g", "daemon off;"])
    wait_until(lambda: _listening(lab, "r", lab.topo.http_port), timeout=10, what="nginx")
    return proc


def start_haproxy(lab: BenchLab, workdir: Path) -> subprocess.Popen[Any]:
    """HAProxy on the director's front address, TCP mode, round robin over the real servers."""
    t = lab.topo
    conf = workdir / "haproxy.cfg"
    servers = "".join(
        f"  server r{i} {rip}:{t.http_port}\n" for i, rip in enumerate(t.reals, start=1)
    )
    conf.write_text(
        "global\n  maxconn 4000\n"
        "defaults\n  mode tcp\n  timeout connect 5s\n  timeout client 30s\n  timeout server 30s\n"
        f"frontend fe\n  bind {t.director_front}:{t.http_port}\n  default_backend be\n"
        f"backend be\n  balance roundrobin\n{servers}"
    )
    proc = lab.popen("d", ["haproxy", "-db", "-f", str(conf)], stdout=subprocess.DEVNULL)
    wait_until(lambda: _listening(lab, "d", t.http_port), timeout=10, what="haproxy")
    return proc


def wrk(lab: BenchLab, addr: str, seconds: float, connections: int = 32) -> dict[str, Any]:
    """Run wrk in the sender; returns requests (= connections) per second and error counts."""
    argv = [
        "wrk",
        "-t2",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        "-H",
        "Connection: close",
        f"http://{addr}:{lab.topo.http_port}/",
    ]
    start = time.monotonic()
    out = lab.run("s", argv, check=False, timeout=seconds + 30).stdout.decode()
    rate = re.search(r"Requests/sec:\s+([\d.]+)", out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "conn_per_s": round(float(rate.group(1))) if rate else 0,
        "socket_errors": sum(int(x) for x in errors.groups()) if errors else 0,
        "non_2xx": int(non2xx.group(1)) if non2xx else 0,
        "seconds": round(time.monotonic() - start, 1),
    }
