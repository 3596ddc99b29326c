"""More of keepalived's checkers under ``pylvsd --config keepalived.conf``, against real servers
in namespaces: UDP_CHECK with ``require_reply`` against dnsmasq (a DNS query as the payload), a
``fwmark`` virtual server with checkers, MISC_CHECK ``misc_dynamic`` weights and FILE_CHECK
(inotify on a track file), all as ``pylvsadm -L -n`` shows them.

(DNS_CHECK ``type A`` against dnsmasq is in test_keepalived_checkers.py.)
"""

from __future__ import annotations

import re
import struct
from pathlib import Path

import nginx as nginx_server
from lvslab import pylvs_argv, start_daemon
from test_keepalived_checkers import DNS_NAME, _dnsmasq, _nginx_servers, nat_reals

from pylvs.testing.netns import Lab, wait_until

REPO = Path(__file__).resolve().parents[2]
CHECK = "      connect_timeout 1\n      retry 0\n      warmup 0\n      delay_loop 1\n"


def _query_hex(ident: int) -> str:
    """A DNS query (A of DNS_NAME, recursion desired) as UDP_CHECK's hex ``payload``."""
    qname = b"".join(bytes([len(p)]) + p.encode() for p in DNS_NAME.split(".")) + b"\0"
    return (struct.pack("!HHHHHH", ident, 0x0100, 1, 0, 0, 0) + qname + b"\0\1\0\1").hex()


def _udp_conf(vip: str, r1: str, r2: str) -> str:
    return f"""virtual_server {vip} 53 {{
    lb_algo rr
    lb_kind NAT
    protocol UDP
    real_server {r1} 53 {{
        UDP_CHECK {{
            payload {_query_hex(0x1234)}
            require_reply 1234
            min_reply_length 12
{CHECK}        }}
    }}
    real_server {r2} 53 {{
        UDP_CHECK {{
            payload {_query_hex(0x1234)}
            require_reply 9999
            log_all_failures
{CHECK}        }}
    }}
}}
"""


def test_udp_check_require_reply(tmp_path: Path) -> None:
    with Lab() as lab, nat_reals(lab) as topo:
        r1, r2 = topo.reals
        dns1 = _dnsmasq(lab, "r1", r1, tmp_path / "dnsmasq-r1.log")
        _dnsmasq(lab, "r2", r2, tmp_path / "dnsmasq-r2.log")
        config = tmp_path / "keepalived.conf"
        config.write_text(_udp_conf(topo.vip, r1, r2))
        daemon = start_daemon(lab, tmp_path / "pylvsd.log", "nfqueue", "--config", str(config))

        def reals() -> list[str]:
            return sorted(d.addr for s in daemon.ctl.services() for d in s.dests)

        # r1 answers with the query's id (the reply starts with 1234): up; r2's answer
        # does not start with 9999: down from its first check.
        wait_until(lambda: reals() == [r1], timeout=20, what=f"r1 only: {reals()}")
        lab.stop(dns1)  # no answer any more (ICMP port unreachable): r1 goes
        wait_until(lambda: reals() == [], timeout=20, what=f"no real: {reals()}")
        _dnsmasq(lab, "r1", r1, tmp_path / "dnsmasq-r1.log")
        wait_until(lambda: reals() == [r1], timeout=20, what=f"r1 back: {reals()}")
        log = daemon.output()
        for line in (
            f"UDP check to [{r2}]:udp:53 reply data mismatch.",
            f"UDP_CHECK on service [{r2}]:udp:53 failed.",
            f"UDP_CHECK on service [{r1}]:udp:53 failed.",
            f"Removing service [{r1}]:udp:53 from VS [{topo.vip}]:udp:53",
            f"UDP connection to [{r1}]:udp:53 success.",
        ):
            assert line in log, line


def _conf(vip: str, r1: str, r2: str, d: Path) -> str:
    return f"""global_defs {{
    enable_script_security
    script_user root
}}
track_file weighted {{
    file {d}/weighted
    weight 2
    init_file 0
}}
track_file gate {{
    file {d}/gate
}}
virtual_server fwmark 1 {{
    lb_algo rr
    lb_kind NAT
    real_server {r1} 80 {{
        weight 1
        TCP_CHECK {{
            connect_port 80
{CHECK}        }}
    }}
    real_server {r2} 80 {{
        weight 1
        MISC_CHECK {{
            misc_path "/bin/sh -c 'exit $(cat {d}/dynamic)'"
            misc_dynamic
            misc_timeout 2
            delay_loop 1
            warmup 0
        }}
    }}
}}
virtual_server {vip} 80 {{
    lb_algo rr
    lb_kind NAT
    protocol TCP
    real_server {r1} 80 {{
        weight 5
        FILE_CHECK {{
            track_file weighted
        }}
    }}
    real_server {r2} 80 {{
        weight 1
        FILE_CHECK {{
            track_file gate
            weight 0
        }}
    }}
}}
"""


def _weight(listing: str, header: str, real: str, port: int) -> int | None:
    """The weight of ``real``:``port`` under the service line starting with ``header`` in
    ``ipvsadm -L -n`` output, None when it is not listed there."""
    section = listing.split(header, 1)[1]
    section = re.split(r"\n(?:TCP|UDP|FWM|SCTP) ", section, maxsplit=1)[0]
    m = re.search(rf"-> {re.escape(real)}:{port}\s+\w+\s+(\d+)\s", section)
    return int(m.group(1)) if m else None


def test_fwmark_misc_dynamic_and_file_check(tmp_path: Path) -> None:
    with Lab() as lab, nat_reals(lab) as topo:
        r1, r2 = topo.reals
        web1 = nginx_server.start(lab, "r1", tmp_path / "nginx-r1", _nginx_servers(r1))
        state = tmp_path / "state"
        state.mkdir()
        (state / "dynamic").write_text("12\n")  # exit 12: up with weight 10
        config = tmp_path / "keepalived.conf"
        config.write_text(_conf(topo.vip, r1, r2, state))
        daemon = start_daemon(lab, tmp_path / "pylvsd.log", "nfqueue", "--config", str(config))
        vs80 = f"TCP  {topo.vip}:80 rr"

        def listing() -> str:
            argv = pylvs_argv("pylvs.cli.pylvsadm", "-L", "-n")
            return str(lab.run("d", argv, cwd=REPO, text=True).stdout)

        def weights() -> tuple[int | None, ...]:
            text = listing()
            return (
                # keepalived clears the port of a fwmark service's real servers.
                _weight(text, "FWM  1 rr", r1, 0),
                _weight(text, "FWM  1 rr", r2, 0),
                _weight(text, vs80, r1, 80),
                _weight(text, vs80, r2, 80),
            )

        def wait(want: tuple[int | None, ...], what: str) -> None:
            wait_until(lambda: weights() == want, timeout=20, what=f"{what}: {weights()}")

        assert (state / "weighted").read_text() == "0\n"  # init_file
        wait((1, 10, 5, 1), "misc_dynamic weight 10")
        (state / "dynamic").write_text("5\n")
        wait((1, 3, 5, 1), "misc_dynamic weight 3")
        (state / "dynamic").write_text("1\n")  # exit 1: down
        wait((1, None, 5, 1), "misc check failed")
        (state / "dynamic").write_text("2\n")  # exit 2: up with weight 0
        wait((1, 0, 5, 1), "misc_dynamic weight 0")
        lab.stop(web1)  # TCP_CHECK of the fwmark service fails
        wait((None, 0, 5, 1), "fwmark real gone")
        nginx_server.start(lab, "r1", tmp_path / "nginx-r1", _nginx_servers(r1))
        wait((1, 0, 5, 1), "fwmark real back")
        # FILE_CHECK: the value times the weight (2) is added; a change is seen at once.
        (state / "weighted").write_text("3\n")
        wait((1, 0, 11, 1), "track file weight")
        (state / "gate").write_text("1\n")  # weight 0: non-zero is down
        wait((1, 0, 11, None), "track file gate closed")
        (state / "gate").unlink()  # deleted: 0
        wait((1, 0, 11, 1), "track file gate open")
        rows = daemon.ctl.request("health")
        assert {row["check"] for row in rows} == {"TCP_CHECK", "MISC_CHECK", "FILE_CHECK"}
        log = daemon.output()
        for line in (
            f"Changing weight from 10 to 3 for active service [{r2}]:none:0 of VS FWM 1",
            f"Removing service [{r2}]:tcp:80 from VS [{topo.vip}]:tcp:80",
            f"Changing weight from 5 to 11 for active service [{r1}]:tcp:80",
        ):
            assert line in log, line
        assert "FILE_CHECK is not supported" not in log
