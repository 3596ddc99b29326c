"""``pylvsd --config keepalived.conf`` runs the file's checkers against real servers.

Namespaces: ``d`` runs pylvsd (its keepalived checker component); ``r1`` and ``r2`` run nginx
(HTTP_GET with genhash's digest, status_code and regex; TCP_CHECK; the sorry server on r2:8080)
and ``r1`` runs dnsmasq (DNS_CHECK, UDP_CHECK). A MISC_CHECK tests a flag file, a PING_CHECK
pings r2. Servers are stopped and started again, and the table (``pylvsadm -L -n`` and the
control API) follows as keepalived's would: removed, or weight 0 with inhibit_on_failure; the
quorum lost brings in the sorry server, the quorum regained takes it out.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nginx as nginx_server
from lvslab import pylvs_argv, setup_realservers, start_daemon, undo_realservers

from pylvs.testing.netns import Lab, LvsTopology, build_lvs_lab, wait_until

REPO = Path(__file__).resolve().parents[2]
PAGE = "health: OK\n"
DNS_NAME = "www.pylvs.test"


@contextlib.contextmanager
def nat_reals(lab: Lab) -> Iterator[LvsTopology]:
    """The standard lab with two real servers ``r1``, ``r2`` behind the director by NAT
    (``lb_kind NAT``: their default route is the director), their setup undone after."""
    topo = build_lvs_lab(lab, 2, nat=True)
    shorts = ["r1", "r2"]
    try:
        setup_realservers(lab, topo, "nat", shorts)
        yield topo
    finally:
        undo_realservers(lab, shorts)


def _nginx_servers(rip: str) -> str:
    return (
        f"    server {{\n        listen {rip}:80;\n"
        f'        location = /ok.html {{ return 200 "{PAGE.strip()}\\n"; }}\n'
        f"        location = /missing {{ return 404; }}\n    }}\n"
        f"    server {{\n        listen {rip}:8080;\n"
        f'        location / {{ return 200 "sorry\\n"; }}\n    }}\n'
    )


def _dnsmasq(lab: Lab, short: str, addr: str, log: Path) -> subprocess.Popen[Any]:
    argv = [
        "/usr/sbin/dnsmasq", "--no-daemon", "--conf-file=/dev/null", "--port=53",
        f"--listen-address={addr}", "--bind-interfaces", "--no-resolv", "--no-hosts",
        "--pid-file=", "--log-facility=-", "--log-queries", "--local=/pylvs.test/",
        f"--address=/{DNS_NAME}/192.0.2.80",
    ]  # fmt: skip
    with open(log, "wb") as out:
        return lab.popen(short, argv, stdout=out, stderr=subprocess.STDOUT)


def _conf(vip: str, r1: str, r2: str, flag: Path, digest: str) -> str:
    check = "      connect_timeout 1\n      retry 0\n      warmup 0\n      delay_loop 1\n"
    return f"""! keepalived checkers end to end
global_defs {{
    router_id PYLVS_E2E
    enable_script_security
    script_user root
}}
virtual_server {vip} 80 {{
    lb_algo rr
    lb_kind NAT
    protocol TCP
    quorum 2
    sorry_server {r2} 8080
    real_server {r1} 80 {{
        weight 1
        HTTP_GET {{
            url {{
                path /ok.html
                digest {digest}
                status_code 200
                regex "health: OK"
            }}
            url {{
                path /missing
                status_code 404
            }}
{check}        }}
    }}
    real_server {r2} 80 {{
        weight 1
        TCP_CHECK {{
{check}        }}
    }}
}}
virtual_server {vip} 53 {{
    lb_algo rr
    lb_kind NAT
    protocol UDP
    real_server {r1} 53 {{
        DNS_CHECK {{
            type A
            name {DNS_NAME}
{check}        }}
        UDP_CHECK {{
            payload 00
{check}        }}
    }}
    real_server {r2} 53 {{
        inhibit_on_failure
        MISC_CHECK {{
            misc_path "/bin/sh -c 'test ! -e {flag}'"
            misc_timeout 2
            delay_loop 1
            warmup 0
        }}
        PING_CHECK {{
{check}        }}
    }}
}}
"""


def test_checkers_drive_the_table(tmp_path: Path) -> None:
    with Lab() as lab, nat_reals(lab) as topo:
        r1, r2 = topo.reals
        web = {
            s: nginx_server.start(lab, s, tmp_path / f"nginx-{s}", _nginx_servers(rip))
            for s, rip in zip(["r1", "r2"], topo.reals, strict=True)
        }
        dnsmasq = _dnsmasq(lab, "r1", r1, tmp_path / "dnsmasq.log")
        flag = tmp_path / "r2-down"
        config = tmp_path / "keepalived.conf"
        digest = hashlib.md5(PAGE.encode()).hexdigest()
        config.write_text(_conf(topo.vip, r1, r2, flag, digest))
        daemon = start_daemon(lab, tmp_path / "pylvsd.log", "nfqueue", "--config", str(config))

        def table() -> dict[tuple[int, str, int], int]:
            """(vport, real, rport) -> weight, from the control API."""
            return {
                (s.port, d.addr, d.port): d.weight for s in daemon.ctl.services() for d in s.dests
            }

        def wait(want: dict[tuple[int, str, int], int], what: str) -> None:
            wait_until(lambda: table() == want, timeout=20, what=f"{what}: {table()}")

        all_up = {(80, r1, 80): 1, (80, r2, 80): 1, (53, r1, 53): 1, (53, r2, 53): 1}
        wait(all_up, "every real server up")
        # genhash (keepalived's own tool) agrees with the digest the check compares.
        out = lab.run("d", ["genhash", "-s", r1, "-p", "80", "-u", "/ok.html"], text=True)
        assert out.stdout.split()[-1] == digest
        # pylvsadm -L -n shows the same table.
        argv = pylvs_argv("pylvs.cli.pylvsadm", "-L", "-n")
        listing = lab.run("d", argv, cwd=REPO, text=True).stdout
        assert f"TCP  {topo.vip}:80 rr" in listing
        assert f"UDP  {topo.vip}:53 rr" in listing
        assert f"  -> {r1}:80" in listing and f"  -> {r2}:53" in listing
        rows = daemon.ctl.request("health")
        assert {row["check"] for row in rows} == {
            "HTTP_GET", "TCP_CHECK", "DNS_CHECK", "UDP_CHECK", "MISC_CHECK", "PING_CHECK",
        }  # fmt: skip
        # pylvs health lists them in the same table as ldirectord's checks.
        shown = lab.run("d", pylvs_argv("pylvs.cli.pylvs", "health"), cwd=REPO, text=True)
        assert "HTTP_GET" in shown.stdout and f"[{r2}]:udp:53" in shown.stdout

        # nginx on r1 stops: HTTP_GET fails, r1 goes; 1 < quorum 2: the sorry server comes
        # in and the alive r2 leaves the pool (perform_quorum_state).
        lab.stop(web["r1"])
        wait(
            {(80, r2, 8080): 1, (53, r1, 53): 1, (53, r2, 53): 1},
            "quorum lost, sorry server",
        )
        web["r1"] = nginx_server.start(lab, "r1", tmp_path / "nginx-r1", _nginx_servers(r1))
        wait(all_up, "quorum regained")

        # dnsmasq stops: DNS_CHECK fails (and UDP_CHECK gets ICMP port unreachable).
        lab.stop(dnsmasq)
        wait({k: v for k, v in all_up.items() if k != (53, r1, 53)}, "DNS server gone")
        dnsmasq = _dnsmasq(lab, "r1", r1, tmp_path / "dnsmasq.log")
        wait(all_up, "DNS server back")

        # MISC_CHECK fails: r2 stays with weight 0 (inhibit_on_failure).
        flag.write_text("down\n")
        wait({**all_up, (53, r2, 53): 0}, "misc check failed, inhibited")
        flag.unlink()
        wait(all_up, "misc check passes again")

        # SIGHUP with a changed weight keeps every real alive and edits the weight.
        config.write_text(
            _conf(topo.vip, r1, r2, flag, digest).replace(
                f"real_server {r2} 80 {{\n        weight 1",
                f"real_server {r2} 80 {{\n        weight 3",
            )
        )
        os.kill(daemon.proc.pid, signal.SIGHUP)
        wait({**all_up, (80, r2, 80): 3}, "reloaded weight")
        log = daemon.output()
        for line in (
            f"Removing service [{r1}]:tcp:80 from VS [{topo.vip}]:tcp:80",
            f"Lost quorum 2-0=2 > 1 for VS [{topo.vip}]:tcp:80",
            f"Adding sorry server [{r2}]:tcp:8080 to VS [{topo.vip}]:tcp:80",
            f"Gained quorum 2+0=2 <= 2 for VS [{topo.vip}]:tcp:80",
            f"Removing sorry server [{r2}]:tcp:8080 from VS [{topo.vip}]:tcp:80",
            f"Disabling service [{r2}]:udp:53 of VS [{topo.vip}]:udp:53",
            f"Changing weight from 1 to 3 for active service [{r2}]:tcp:80",
        ):
            assert line in log, line


def _ssl_servers(rip: str, d: Path) -> str:
    return (
        f"    server {{\n        listen {rip}:443 ssl;\n"
        f"        ssl_certificate {d}/cert.pem;\n        ssl_certificate_key {d}/key.pem;\n"
        f'        location = /ok.html {{ return 200 "{PAGE.strip()}\\n"; }}\n    }}\n'
    )


def _conf2(vip: str, r1: str, notify: Path, digest: str) -> str:
    check = "        connect_timeout 2\n        retry 0\n        warmup 0\n        delay_loop 1\n"
    return f"""global_defs {{
    enable_script_security
    script_user root
}}
virtual_server {vip} 25 {{
    protocol TCP
    lb_algo rr
    lb_kind NAT
    alpha
    omega
    quorum_up "{notify} quorum-up"
    quorum_down "{notify} quorum-down"
    real_server {r1} 25 {{
        notify_up "{notify} rs-up"
        notify_down "{notify} rs-down"
        SMTP_CHECK {{
            helo_name lb.pylvs.test
{check}        }}
    }}
}}
virtual_server {vip} 443 {{
    protocol TCP
    lb_algo rr
    lb_kind NAT
    real_server {r1} 443 {{
        SSL_GET {{
            url {{
                path /ok.html
                digest {digest}
            }}
{check}        }}
    }}
}}
"""


def test_smtp_ssl_alpha_notify_and_omega(tmp_path: Path) -> None:
    from test_health_mail import start_exim

    # exim's files must be reachable by its own user: pytest's directories are private.
    root = Path(tempfile.mkdtemp(prefix="pylvs-ka-mail-"))
    root.chmod(0o755)
    try:
        with Lab() as lab:
            topo = build_lvs_lab(lab, 1, nat=True)
            (r1,) = topo.reals
            try:
                setup_realservers(lab, topo, "nat", ["r1"])
                exim = start_exim(lab, "r1", root, r1)
                d = tmp_path / "nginx-ssl"
                d.mkdir()
                subprocess.run(
                    ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                     "-subj", "/CN=not-the-real-server", "-keyout", str(d / "key.pem"),
                     "-out", str(d / "cert.pem")],
                    check=True, capture_output=True, timeout=60,
                )  # fmt: skip
                nginx_server.start(lab, "r1", d, _ssl_servers(r1, d))
                events = tmp_path / "events"
                notify = tmp_path / "notify.sh"
                notify.write_text(f'#!/bin/sh\necho "$1" >> {events}\n')
                notify.chmod(0o755)
                config = tmp_path / "keepalived.conf"
                digest = hashlib.md5(PAGE.encode()).hexdigest()
                config.write_text(_conf2(topo.vip, r1, notify, digest))
                daemon = start_daemon(
                    lab, tmp_path / "pylvsd.log", "nfqueue", "--config", str(config)
                )

                def dests(port: int) -> list[str]:
                    return [
                        x.addr for s in daemon.ctl.services() if s.port == port for x in s.dests
                    ]

                def seen() -> list[str]:
                    # Each script is a process of its own (notify_exec): those started by one
                    # event may finish in any order.
                    return sorted(events.read_text().split()) if events.exists() else []

                # alpha: r1 enters the pool only after its first SMTP success.
                wait_until(lambda: dests(25) == [r1], timeout=20, what="SMTP_CHECK success")
                wait_until(lambda: dests(443) == [r1], timeout=20, what="SSL_GET success")
                up = ["quorum-up", "rs-up"]
                wait_until(lambda: seen() == up, timeout=10, what=f"up notifies: {seen()}")
                lab.stop(exim)
                wait_until(lambda: dests(25) == [], timeout=20, what="SMTP server gone")
                wait_until(
                    lambda: seen() == sorted([*up, "rs-down", "quorum-down"]),
                    timeout=10,
                    what=f"down notifies: {seen()}",
                )
                # omega: the quorum_down script runs again on the way out (clear_services).
                assert lab.stop(daemon.proc, timeout=15) == 0
                assert seen() == sorted([*up, "rs-down", "quorum-down", "quorum-down"])
                log = daemon.output()
                assert f"Remote SMTP server [{r1}]:tcp:25 succeed on service." in log
                assert f"Remote Web server [{r1}]:tcp:443 succeed on service." in log
                # check_smtp.c smtp_final: the error itself is the line.
                assert f"SMTP_CHECK Could not connect to server [{r1}]:25" in log
                assert f"Shutting down service [{r1}]:tcp:443 from VS [{topo.vip}]:tcp:443" in log
            finally:
                undo_realservers(lab, ["r1"])
    finally:
        shutil.rmtree(root, ignore_errors=True)
