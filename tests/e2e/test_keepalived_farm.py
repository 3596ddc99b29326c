"""pylvsd serves the virtual servers of an unchanged keepalived.conf (its IPVS part; the
checkers and VRRP of the file are in Config.keepalived for the components that run them)."""

from __future__ import annotations

import os
import signal
from pathlib import Path

from lvslab import (
    PORT,
    random_bytes,
    setup_realservers,
    start_daemon,
    start_server,
    tcp_exchange,
    tcp_open,
    undo_realservers,
)

from pylvs.core.service import IPPROTO_TCP, FwdMethod
from pylvs.testing.netns import Lab, build_lvs_lab, wait_until


def test_a_keepalived_conf_farm_is_served(tmp_path: Path) -> None:
    with Lab() as lab:
        topo = build_lvs_lab(lab, 2, nat=True)
        shorts = ["r1", "r2"]
        config = tmp_path / "keepalived.conf"

        def write(weight2: int) -> None:
            reals = "".join(
                f"    real_server {rip} {PORT} {{\n        weight {w}\n"
                f"        TCP_CHECK {{\n            connect_timeout 2\n        }}\n    }}\n"
                for rip, w in zip(topo.reals, (1, weight2), strict=True)
            )
            config.write_text(
                "! Configuration File for keepalived\n"
                "global_defs {\n    router_id LVS_TEST\n}\n"
                f"virtual_server {topo.vip} {PORT} {{\n    delay_loop 6\n    lb_algo rr\n"
                f"    lb_kind NAT\n    protocol TCP\n{reals}}}\n"
                "vrrp_instance VI_1 {\n    state MASTER\n    interface d-front\n"
                "    virtual_router_id 51\n    priority 150\n"
                f"    virtual_ipaddress {{\n        {topo.vip}/32 dev lo\n    }}\n}}\n"
            )

        try:
            setup_realservers(lab, topo, "nat", shorts)
            for short in shorts:
                start_server(lab, short, "tcp")
            write(1)
            daemon = start_daemon(lab, tmp_path / "pylvsd.log", "nfqueue", "--config", str(config))
            (info,) = daemon.ctl.services()
            assert (info.addr, info.port, info.protocol, info.scheduler) == (
                topo.vip, PORT, IPPROTO_TCP, "rr",
            )  # fmt: skip
            assert [(d.addr, d.port, d.fwd, d.weight) for d in info.dests] == [
                (rip, PORT, int(FwdMethod.MASQ), 1) for rip in topo.reals
            ]
            payload = random_bytes(2000)
            seen = set()
            for _ in range(4):
                ident, echoed = tcp_exchange(tcp_open(lab, topo.vip), payload)
                assert echoed == payload
                seen.add(ident)
            assert seen == {"r1", "r2"}
            # SIGHUP re-reads the keepalived.conf like the other formats.
            write(0)
            os.kill(daemon.proc.pid, signal.SIGHUP)
            wait_until(
                lambda: [d.weight for d in daemon.ctl.services()[0].dests] == [1, 0],
                what="reloaded weights",
            )
        finally:
            undo_realservers(lab, shorts)
