"""Hundreds of real servers checked every second by a bounded pool of check threads.

One nginx in namespace ``r1`` answers on 500 addresses; pylvsd checks each with ldirectord's
HTTP negotiate check at ``checkinterval=1``. The test waits until every real server has been
checked several times and is up, checks that pylvsd's threads stayed within its pool, and prints
the check throughput it measured (``-s`` shows it).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import nginx as nginx_server
from lvslab import start_daemon

from pylvs.testing.netns import Lab, wait_until

N = 500
WORKERS = 16


def _threads(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/task"))


def test_500_real_servers_at_a_one_second_interval(tmp_path: Path) -> None:
    os.chmod(tmp_path, 0o755)
    with Lab() as lab:
        lab.add_netns("d")
        lab.add_netns("r1")
        lab.veth("d", "d0", "r1", "r0", "10.20.0.1/16", "10.20.0.2/16")
        reals = [f"10.20.{1 + i // 250}.{1 + i % 250}" for i in range(N)]
        with lab.inside("r1"):
            from pylvs.io import netcfg

            for addr in reals:
                netcfg.add_address("r0", f"{addr}/16")
        (tmp_path / "www").mkdir()
        (tmp_path / "www" / "check.html").write_text("OK\n")
        servers = f"    server {{ listen 80; root {tmp_path}/www; }}\n"
        nginx_server.start(lab, "r1", tmp_path / "nginx", servers, connections=1024)
        lines = "".join(f"    real={addr}:80 masq\n" for addr in reals)
        config = tmp_path / "ldirectord.cf"
        config.write_text(
            "checkinterval=1\nnegotiatetimeout=2\n"
            f'virtual=203.0.113.10:80\n{lines}    service=http\n    request="check.html"\n'
            '    receive="OK"\n    protocol=tcp\n    checktype=negotiate\n'
        )
        daemon = start_daemon(
            lab, tmp_path / "pylvsd.log", "nfqueue", "--config", str(config),
            "--check-workers", str(WORKERS),
        )  # fmt: skip

        def health() -> dict[str, object]:
            status: dict[str, object] = daemon.ctl.status()["components"]["health"]
            return status

        wait_until(lambda: health().get("up") == N, 30, what=f"{N} real servers up")
        first = health()
        t0 = time.monotonic()
        wait_until(lambda: int(health()["checks"]) >= int(first["checks"]) + 3 * N, 30,
                   what="three more cycles")  # fmt: skip
        elapsed = time.monotonic() - t0
        done = int(health()["checks"]) - int(first["checks"])
        rows = daemon.ctl.request("health")
        assert len(rows) == N and all(r["state"] == "up" for r in rows)
        assert min(r["checks"] for r in rows) >= 3
        assert len(daemon.ctl.services()[0].dests) == N
        # The pool's threads, the loop's and a few of the interpreter's: not one per server.
        assert _threads(daemon.proc.pid) <= WORKERS + 8
        latency = sum(float(r["latency"]) for r in rows) / N
        print(
            f"\n{N} real servers, checkinterval=1, {WORKERS} check threads: {done} HTTP checks in "
            f"{elapsed:.2f}s = {done / elapsed:.0f} checks/s, mean latency {latency * 1000:.1f} ms"
        )
