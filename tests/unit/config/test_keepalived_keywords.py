"""Every keepalived.conf keyword pylvs models, keepalived's defaults, and the mapping of the IPVS
part onto Config."""

from __future__ import annotations

import pytest

from pylvs.config import parse
from pylvs.config.kamodel import (
    BfdCheck,
    DnsCheck,
    FileCheck,
    HttpCheck,
    KeepalivedConfig,
    MiscCheck,
    PingCheck,
    SmtpCheck,
    TcpCheck,
    UdpCheck,
)
from pylvs.config.keepalived import parse_keepalived, parse_keepalived_model
from pylvs.core.control import Timeouts
from pylvs.core.service import AF_INET6, IPPROTO_TCP, IPPROTO_UDP, FwdMethod, ServiceFlags


def ka(text: str) -> KeepalivedConfig:
    return parse_keepalived_model(text, "keepalived.conf")


def vs_text(inner: str = "", real: str = "", head: str = "192.0.2.1 80") -> str:
    return (
        f"virtual_server {head} {{\n    lb_algo rr\n    lb_kind NAT\n    protocol TCP\n{inner}\n"
        f"    real_server 10.0.0.1 80 {{\n{real}\n    }}\n}}\n"
    )


VRRP = """vrrp_instance VI_1 {{
    interface eth0
    virtual_router_id 51
{0}
    virtual_ipaddress {{
        192.0.2.10
    }}
}}
"""


def test_global_defs() -> None:
    g = ka(
        """global_defs {
    router_id LB1
    notification_email {
        ops@example.org
        noc@example.org
    }
    notification_email_from lb@example.org
    smtp_server 192.0.2.25 2525
    smtp_helo_name lb1.example.org
    smtp_connect_timeout 10
    smtp_alert
    smtp_alert_vrrp off
    smtp_alert_checker yes
    enable_script_security
    script_user keepalived_script nogroup
    default_interface eth1
    dynamic_interfaces
    vrrp_version 3
    vrrp_strict
    vrrp_mcast_group4 224.0.0.19
    vrrp_mcast_group6 ff02::13
    vrrp_garp_master_delay 2
    vrrp_garp_master_repeat 3
    vrrp_garp_master_refresh 30
    vrrp_garp_master_refresh_repeat 2
    vrrp_garp_lower_prio_delay 1
    vrrp_garp_lower_prio_repeat 4
    vrrp_garp_interval 0.001
    vrrp_gna_interval 0.002
    vrrp_min_garp
    vrrp_lower_prio_no_advert
    vrrp_higher_prio_send_advert
    vrrp_skip_check_adv_addr
    vrrp_check_unicast_src
    vrrp_down_timer_adverts 4
    lvs_sync_daemon eth1 VI_1 id 7 maxlen 1400 port 8848 ttl 2 group 224.0.0.81
    lvs_timeouts tcp 7200 tcpfin 60 udp 120
    lvs_flush
    lvs_flush_onstop
    enable_snmp_vrrp
}
"""
        + VRRP.format("")
    ).global_defs
    assert g.router_id == "LB1"
    assert g.notification_email == ["ops@example.org", "noc@example.org"]
    assert (g.smtp_server, g.smtp_server_port, g.smtp_helo_name) == (
        "192.0.2.25",
        2525,
        "lb1.example.org",
    )
    assert g.smtp_connect_timeout == 10 and g.smtp_alert and g.smtp_alert_vrrp is False
    assert g.smtp_alert_checker is True
    assert g.enable_script_security and (g.script_user, g.script_group) == (
        "keepalived_script",
        "nogroup",
    )
    assert g.default_interface == "eth1" and g.dynamic_interfaces
    assert g.vrrp_version == 3 and g.vrrp_strict
    assert (g.vrrp_mcast_group4, g.vrrp_mcast_group6) == ("224.0.0.19", "ff02::13")
    assert (g.vrrp_garp_master_delay, g.vrrp_garp_master_repeat) == (2, 3)
    assert (g.vrrp_garp_master_refresh, g.vrrp_garp_master_refresh_repeat) == (30, 2)
    assert (g.vrrp_garp_lower_prio_delay, g.vrrp_garp_lower_prio_repeat) == (1, 4)
    assert (g.vrrp_garp_interval, g.vrrp_gna_interval) == (0.001, 0.002)
    assert g.vrrp_min_garp and g.vrrp_lower_prio_no_advert and g.vrrp_higher_prio_send_advert
    assert (
        g.vrrp_skip_check_adv_addr and g.vrrp_check_unicast_src and g.vrrp_down_timer_adverts == 4
    )
    sd = g.lvs_sync_daemon
    assert sd is not None
    assert (sd.interface, sd.instance, sd.syncid, sd.maxlen, sd.port, sd.ttl, sd.group) == (
        "eth1", "VI_1", 7, 1400, 8848, 2, "224.0.0.81",
    )  # fmt: skip
    assert g.lvs_timeouts == {"tcp": 7200, "tcpfin": 60, "udp": 120}
    assert g.lvs_flush and g.lvs_flush_onstop
    assert g.extra == {"enable_snmp_vrrp": []}


def test_global_defaults() -> None:
    g = ka("global_defs {\n}\n").global_defs
    assert g.router_id is None and g.vrrp_version == 2 and not g.vrrp_strict
    assert (g.vrrp_garp_master_delay, g.vrrp_garp_master_repeat) == (5, 5)
    assert (g.vrrp_garp_master_refresh, g.vrrp_garp_master_refresh_repeat) == (0, 1)
    assert g.smtp_connect_timeout == 30 and g.vrrp_mcast_group4 == "224.0.0.18"
    assert not g.enable_script_security and g.lvs_sync_daemon is None


def test_lvs_timeouts_become_the_ipvsadm_set() -> None:
    config = parse_keepalived("global_defs {\n    lvs_timeouts tcp 7200 udp 60\n}\n" + vs_text())
    assert config.timeouts == Timeouts(tcp=7200, tcpfin=0, udp=60)


def test_virtual_server_keywords() -> None:
    cfg = ka(
        vs_text(
            """    delay_loop 10
    connect_timeout 3
    retry 4
    delay_before_retry 2
    warmup 1
    inhibit_on_failure
    lvs_sched sh
    sh-port
    sh-fallback
    flag-3
    persistence_timeout 600
    persistence_granularity 255.255.255.0
    ha_suspend
    smtp_alert
    virtualhost www.example.org
    alpha
    omega
    quorum 1
    hysteresis 0
    quorum_up "/usr/local/bin/up arg"
    quorum_down /usr/local/bin/down
    weight 5
    sorry_server 10.0.0.99 8080
    sorry_server_inhibit
    sorry_server_lvs_method NAT
    snmp_name web""",
            real="        TCP_CHECK {\n        }",
        )
    )
    vs = cfg.virtual_servers[0]
    assert (vs.addr, vs.port, vs.protocol, vs.ip_family) == ("192.0.2.1", 80, "TCP", "inet")
    assert (vs.delay_loop, vs.connect_timeout, vs.retry, vs.delay_before_retry, vs.warmup) == (
        10, 3, 4, 2, 1,
    )  # fmt: skip
    assert vs.inhibit_on_failure and vs.lvs_sched == "sh"
    assert vs.sched_flags == ["sh-port", "sh-fallback", "flag-3"]
    assert vs.persistence_timeout == 600 and vs.persistence_granularity == "255.255.255.0"
    assert vs.ha_suspend and vs.smtp_alert and vs.virtualhost == "www.example.org"
    assert vs.alpha and vs.omega and vs.quorum == 1 and vs.hysteresis == 0
    assert vs.quorum_up == "/usr/local/bin/up arg" and vs.quorum_down == "/usr/local/bin/down"
    assert vs.weight == 5
    assert vs.sorry_server is not None
    assert (vs.sorry_server.addr, vs.sorry_server.port, vs.sorry_server.inhibit) == (
        "10.0.0.99",
        8080,
        True,
    )
    assert vs.extra == {"snmp_name": ["web"]}
    rs = vs.real_servers[0]
    assert rs.weight == 5 and rs.inhibit_on_failure and rs.alpha  # inherited
    c = rs.checkers[0]
    assert isinstance(c, TcpCheck)
    assert (c.delay_loop, c.connect_timeout, c.retry, c.delay_before_retry, c.warmup, c.alpha) == (
        10, 3, 4, 2, 1, True,
    )  # fmt: skip
    config = parse_keepalived(vs_text("    lvs_sched sh\n    sh-port\n    persistence_timeout 600\n"
                                      "    persistence_granularity 255.255.255.0"))  # fmt: skip
    spec = config.virtuals[0].spec
    assert spec.persistent and spec.timeout == 600 and spec.netmask == 24
    assert spec.sched_flags == int(ServiceFlags.SCHED2)


@pytest.mark.parametrize(
    ("head", "key"),
    [
        ("192.0.2.1 80", ("192.0.2.1", 80, 0, IPPROTO_TCP)),
        ("2001:db8::1 443", ("2001:db8::1", 443, 0, IPPROTO_TCP)),
        ("fwmark 9", ("", 0, 9, 0)),
    ],
)
def test_virtual_server_heads(head: str, key: tuple[str, int, int, int]) -> None:
    text = vs_text(head=head).replace("10.0.0.1", "2001:db8::10" if ":" in head else "10.0.0.1")
    v = parse_keepalived(text).virtuals[0]
    assert (v.spec.addr, v.spec.port, v.spec.fwmark, v.spec.protocol) == key
    if ":" in head:
        assert v.spec.af == AF_INET6 and v.spec.netmask == 128


def test_defaults_of_a_bare_virtual_server() -> None:
    cfg = ka("virtual_server 192.0.2.1 80 {\n    real_server 10.0.0.1 80 {\n    }\n}\n")
    vs = cfg.virtual_servers[0]
    assert vs.lvs_sched == "wlc" and vs.lvs_method == "NAT" and vs.protocol == "UDP"
    assert (vs.delay_loop, vs.connect_timeout, vs.quorum, vs.hysteresis, vs.weight) == (
        60,
        5,
        1,
        0,
        1,
    )
    assert vs.persistence_timeout is None and vs.sorry_server is None
    assert vs.real_servers[0].weight == 1 and vs.real_servers[0].lvs_method == "NAT"
    assert cfg.warnings == [
        "keepalived.conf:1: Virtual server [192.0.2.1]:none:80: no protocol set - defaulting to "
        "UDP",
        "keepalived.conf:1: Virtual server [192.0.2.1]:udp:80: no scheduler set, setting default "
        "'wlc'",
        "keepalived.conf:1: Virtual server [192.0.2.1]:udp:80: no forwarding method set, setting "
        "default NAT",
    ]


def test_persistence_timeout_without_a_value_is_360() -> None:
    vs = ka(vs_text("    persistence_timeout")).virtual_servers[0]
    assert vs.persistence_timeout == 360


@pytest.mark.parametrize(
    ("method", "fwd", "port"),
    [("NAT", FwdMethod.MASQ, 8080), ("DR", FwdMethod.ROUTE, 80), ("TUN", FwdMethod.TUNNEL, 80)],
)
def test_forwarding_methods(method: str, fwd: FwdMethod, port: int) -> None:
    text = vs_text(real=f"        lvs_method {method}").replace("10.0.0.1 80", "10.0.0.1 8080")
    config = parse_keepalived(text)
    dest = config.virtuals[0].reals[0].dest
    assert dest.fwd == int(fwd) and dest.port == port


def test_lb_kind_and_lb_algo_are_the_old_names() -> None:
    for text in (
        vs_text(),
        vs_text().replace("lb_algo", "lvs_sched").replace("lb_kind", "lvs_method"),
    ):
        v = parse_keepalived(text).virtuals[0]
        assert v.spec.scheduler == "rr" and v.reals[0].dest.fwd == int(FwdMethod.MASQ)


@pytest.mark.parametrize(
    "sched",
    ["rr", "wrr", "lc", "wlc", "lblc", "sh", "mh", "dh", "fo", "ovf", "lblcr", "sed", "nq", "twos"],
)
def test_every_scheduler(sched: str) -> None:
    assert (
        parse_keepalived(vs_text().replace("lb_algo rr", f"lb_algo {sched}"))
        .virtuals[0]
        .spec.scheduler
        == sched
    )


def test_ops_and_udp() -> None:
    v = parse_keepalived(vs_text("    ops").replace("protocol TCP", "protocol UDP")).virtuals[0]
    assert v.spec.ops and v.spec.protocol == IPPROTO_UDP and v.protocol == "udp"


def test_real_server_keywords() -> None:
    rs = (
        ka(
            vs_text(
                real="""        weight 7
        uthreshold 100
        lthreshold 10
        inhibit_on_failure
        notify_up "/bin/echo up"
        notify_down /bin/echo
        alpha
        smtp_alert
        virtualhost rs.example.org
        connect_timeout 2
        delay_loop 4
        retry 2
        delay_before_retry 0.5
        warmup 3
        MISC_CHECK {
            misc_path "/usr/local/bin/check --fast"
        }"""
            )
        )
        .virtual_servers[0]
        .real_servers[0]
    )
    assert (rs.weight, rs.uthreshold, rs.lthreshold) == (7, 100, 10)
    assert rs.inhibit_on_failure and rs.alpha and rs.smtp_alert
    assert (rs.notify_up, rs.notify_down, rs.virtualhost) == (
        "/bin/echo up",
        "/bin/echo",
        "rs.example.org",
    )
    c = rs.checkers[0]
    assert isinstance(c, MiscCheck)
    assert c.misc_path == "/usr/local/bin/check --fast"
    assert (c.connect_timeout, c.delay_loop, c.retry, c.delay_before_retry, c.warmup) == (
        2,
        4,
        2,
        0.5,
        3,
    )
    dest = (
        parse_keepalived(vs_text(real="        uthreshold 100\n        lthreshold 10"))
        .virtuals[0]
        .reals[0]
        .dest
    )
    assert (dest.u_threshold, dest.l_threshold) == (100, 10)


def test_inhibit_on_failure_is_quiescent_and_sorry_server_is_the_fallback() -> None:
    v = parse_keepalived(
        vs_text("    inhibit_on_failure\n    sorry_server 10.0.0.99 8080")
    ).virtuals[0]
    assert v.quiescent and v.checktype == "on"
    assert v.fallback is not None and (v.fallback.addr, v.fallback.port) == ("10.0.0.99", 8080)
    assert v.fallback.fwd == int(FwdMethod.MASQ)


def test_checker_defaults() -> None:
    """keepalived's per-checker defaults (check_*.c) when nothing is written."""
    kinds = {
        "TCP_CHECK": "",
        "HTTP_GET": "url {\n path /\n }",
        "SSL_GET": "url {\n path /\n }",
        "SMTP_CHECK": "",
        "DNS_CHECK": "",
        "MISC_CHECK": "misc_path /bin/true",
        "UDP_CHECK": "",
        "PING_CHECK": "",
        "FILE_CHECK": "track_file f",
        "BFD_CHECK": "name b",
    }
    real = "\n".join(f"        {k} {{\n {v}\n }}" for k, v in kinds.items())
    checks = ka(vs_text(real=real)).virtual_servers[0].real_servers[0].checkers
    got = {
        c.kind: (c.connect_timeout, c.retry, c.delay_before_retry, c.delay_loop, c.warmup)
        for c in checks
    }
    assert got == {
        "TCP_CHECK": (5, 1, 1, 60, 60),
        "HTTP_GET": (5, 1, 3, 60, 60),
        "SSL_GET": (5, 1, 3, 60, 60),
        "SMTP_CHECK": (5, 1, 1, 60, 60),
        "DNS_CHECK": (5, 3, 60, 60, 60),
        "MISC_CHECK": (5, 0, 1, 60, 60),
        "UDP_CHECK": (5, 1, 1, 60, 60),
        "PING_CHECK": (5, 1, 1, 60, 60),
        "FILE_CHECK": (5, 1, 1, 60, 60),
        "BFD_CHECK": (5, 1, 1, 60, 60),
    }
    types = [type(c) for c in checks]
    assert types == [
        TcpCheck,
        HttpCheck,
        HttpCheck,
        SmtpCheck,
        DnsCheck,
        MiscCheck,
        UdpCheck,
        PingCheck,
        FileCheck,
        BfdCheck,
    ]
    http = checks[1]
    assert (
        isinstance(http, HttpCheck)
        and http.urls[0].status_code == [(200, 299)]
        and http.http_protocol == "1.0"
    )
    assert isinstance(checks[2], HttpCheck) and checks[2].ssl
    dns = checks[4]
    assert isinstance(dns, DnsCheck) and (dns.type, dns.name) == ("SOA", ".")
    udp = checks[6]
    assert isinstance(udp, UdpCheck) and (udp.min_reply_length, udp.max_reply_length) == (0, 255)


def test_http_get_keywords() -> None:
    c = (
        ka(
            vs_text(
                real="""        SSL_GET {
            url {
                path /a
                digest 0123456789ABCDEF0123456789abcdef
                status_code 200 204 300-399
                virtualhost a.example.org
                regex "ok|good"
                regex_no_match
                regex_options caseless multiline
                regex_min_offset 2
                regex_max_offset 40
            }
            url {
                path /b
            }
            virtualhost www.example.org
            http_protocol 1.1
            enable_sni
            fast_recovery
            connect_ip 10.0.0.2
            connect_port 8443
            bindto 10.0.0.250
            bind_port 4000
            bind_if eth1
            fwmark 3
            log_all_failures
        }"""
            )
        )
        .virtual_servers[0]
        .real_servers[0]
        .checkers[0]
    )
    assert isinstance(c, HttpCheck) and c.ssl
    a, b = c.urls
    assert a.path == "/a" and a.digest == "0123456789abcdef0123456789abcdef"
    assert (
        a.status_code == [(200, 200), (204, 204), (300, 399)] and a.virtualhost == "a.example.org"
    )
    assert (
        a.regex == "ok|good" and a.regex_no_match and a.regex_options == ["caseless", "multiline"]
    )
    assert (a.regex_min_offset, a.regex_max_offset) == (2, 40)
    assert b.path == "/b" and b.status_code == [(200, 299)]
    assert (c.virtualhost, c.http_protocol, c.enable_sni, c.fast_recovery) == (
        "www.example.org",
        "1.1",
        True,
        True,
    )
    assert (c.connect_ip, c.connect_port, c.bindto, c.bind_port, c.bind_if, c.fwmark) == (
        "10.0.0.2", 8443, "10.0.0.250", 4000, "eth1", 3,
    )  # fmt: skip
    assert c.log_all_failures


def test_other_checker_keywords() -> None:
    checks = (
        ka(
            vs_text(
                real="""        SMTP_CHECK {
            helo_name lb.example.org
            host {
                connect_ip 10.0.0.5
                connect_port 25
                connect_timeout 9
            }
            host {
                connect_ip 10.0.0.6
            }
            connect_timeout 4
        }
        DNS_CHECK {
            type aaaa
            name example.org
        }
        MISC_CHECK {
            misc_path /bin/check
            misc_timeout 7
            misc_dynamic
            user nobody nogroup
        }
        UDP_CHECK {
            payload 48656c6c6f
            require_reply
            min_reply_length 2
            max_reply_length 100
        }
        FILE_CHECK {
            track_file state
            weight -10 reverse
        }"""
            )
        )
        .virtual_servers[0]
        .real_servers[0]
        .checkers
    )
    smtp, dns, misc, udp, fc = checks
    assert isinstance(smtp, SmtpCheck) and smtp.helo_name == "lb.example.org"
    assert [(h.connect_ip, h.connect_port, h.connect_timeout) for h in smtp.hosts] == [
        ("10.0.0.5", 25, 9), ("10.0.0.6", None, 4),
    ]  # fmt: skip
    assert isinstance(dns, DnsCheck) and (dns.type, dns.name) == ("AAAA", "example.org")
    assert isinstance(misc, MiscCheck) and misc.misc_timeout == 7 and misc.misc_dynamic
    assert (misc.user, misc.group) == ("nobody", "nogroup")
    assert isinstance(udp, UdpCheck) and udp.payload == b"Hello" and udp.require_reply == b""
    assert (udp.min_reply_length, udp.max_reply_length) == (2, 100)
    assert isinstance(fc, FileCheck) and (fc.track_file, fc.weight, fc.reverse) == (
        "state",
        -10,
        True,
    )


def test_virtual_server_group_ranges() -> None:
    text = """virtual_server_group G {
    192.0.2.1-3 80
    2001:db8::a-c 443
    fwmark 5 inet6
}
virtual_server group G {
    lb_algo rr
    lb_kind DR
    protocol TCP
    real_server 10.0.0.1 80 {
    }
}
"""
    cfg = ka(text)
    entries = cfg.virtual_server_groups["G"].entries
    assert [(e.addr, e.last, e.port) for e in entries[:2]] == [
        ("192.0.2.1", "192.0.2.3", 80), ("2001:db8::a", "2001:db8::c", 443),
    ]  # fmt: skip
    assert (entries[2].fwmark, entries[2].family) == (5, "inet6")
    config = parse_keepalived(text)
    assert [(v.spec.addr, v.spec.port, v.spec.fwmark) for v in config.virtuals] == [
        ("192.0.2.1", 80, 0), ("192.0.2.2", 80, 0), ("192.0.2.3", 80, 0),
        ("2001:db8::a", 443, 0), ("2001:db8::b", 443, 0), ("2001:db8::c", 443, 0),
        ("", 0, 5),
    ]  # fmt: skip


def test_vrrp_instance_keywords() -> None:
    cfg = ka(
        """vrrp_script chk {
    script "/usr/local/bin/chk arg"
    interval 2
    timeout 3
    weight -20 reverse
    rise 3
    fall 4
    user nobody
    init_fail
}
vrrp_instance VI_1 {
    state MASTER
    interface eth0
    virtual_router_id 51
    priority 150
    advert_int 2
    nopreempt
    preempt_delay 10
    authentication {
        auth_type PASS
        auth_pass 1234abcd
    }
    mcast_src_ip 192.0.2.2
    unicast_src_ip 192.0.2.2
    unicast_peer {
        192.0.2.3
        192.0.2.4 min_ttl 250 max_ttl 255
    }
    unicast_ttl 10
    track_interface {
        eth1
        eth2 weight -30
    }
    track_script {
        chk
        chk weight 10
    }
    dont_track_primary
    notify_master "/bin/echo master"
    notify_backup /bin/backup
    notify_fault /bin/fault
    notify_stop /bin/stop
    notify /bin/notify
    smtp_alert
    use_vmac vrrp51
    vmac_xmit_base
    garp_master_delay 1
    garp_master_repeat 2
    garp_master_refresh 30
    garp_master_refresh_repeat 3
    garp_lower_prio_delay 4
    garp_lower_prio_repeat 6
    no_accept
    virtual_ipaddress {
        192.0.2.10/24 brd 192.0.2.255 dev eth0 scope global label eth0:vip
        192.0.2.11
    }
    virtual_ipaddress_excluded {
        192.0.2.20 dev eth1
    }
    virtual_routes {
        192.0.2.128/25 via 192.0.2.1 dev eth0
    }
    debug 1
}
vrrp_sync_group SG {
    group {
        VI_1
    }
    notify_master /bin/sg
    sync_group_tracking_weight
    track_script {
        chk
    }
}
"""
    )
    v = cfg.vrrp_instances[0]
    assert (v.state, v.interface, v.virtual_router_id, v.priority, v.advert_int) == (
        "MASTER",
        "eth0",
        51,
        150,
        2,
    )
    # keepalived: nopreempt and preempt_delay do not work with state MASTER: cleared, warned.
    assert not v.nopreempt and any("nopreempt will not work" in w for w in cfg.warnings)
    assert v.preempt_delay == 0 and any("preempt delay will not work" in w for w in cfg.warnings)
    assert v.authentication is not None
    assert (v.authentication.auth_type, v.authentication.auth_pass) == ("PASS", "1234abcd")
    assert (v.mcast_src_ip, v.unicast_src_ip, v.unicast_ttl) == ("192.0.2.2", "192.0.2.2", 10)
    assert [(p.addr, p.min_ttl, p.max_ttl) for p in v.unicast_peer] == [
        ("192.0.2.3", None, None), ("192.0.2.4", 250, 255),
    ]  # fmt: skip
    assert [(t.name, t.weight) for t in v.track_interface] == [("eth1", 0), ("eth2", -30)]
    assert [(t.name, t.weight) for t in v.track_script] == [("chk", None), ("chk", 10)]
    assert v.dont_track_primary and v.smtp_alert
    assert (v.notify_master, v.notify_backup, v.notify_fault, v.notify_stop, v.notify) == (
        "/bin/echo master", "/bin/backup", "/bin/fault", "/bin/stop", "/bin/notify",
    )  # fmt: skip
    assert v.use_vmac and v.vmac_name == "vrrp51" and v.vmac_xmit_base
    assert (v.garp_master_delay, v.garp_master_repeat, v.garp_master_refresh) == (1, 2, 30)
    assert (v.garp_master_refresh_repeat, v.garp_lower_prio_delay, v.garp_lower_prio_repeat) == (
        3,
        4,
        6,
    )
    assert v.accept is False
    a, b = v.virtual_ipaddress
    assert (a.addr, a.prefix, a.brd, a.dev, a.scope, a.label) == (
        "192.0.2.10", 24, "192.0.2.255", "eth0", "global", "eth0:vip",
    )  # fmt: skip
    assert (b.addr, b.prefix, b.dev) == ("192.0.2.11", None, None)
    assert [(e.addr, e.dev) for e in v.virtual_ipaddress_excluded] == [("192.0.2.20", "eth1")]
    assert v.virtual_routes == [["192.0.2.128/25", "via", "192.0.2.1", "dev", "eth0"]]
    assert v.extra == {"debug": ["1"]} and v.sync_group == "SG"
    s = cfg.vrrp_scripts["chk"]
    assert (s.script, s.interval, s.timeout, s.weight, s.reverse, s.rise, s.fall) == (
        "/usr/local/bin/chk arg", 2, 3, -20, True, 3, 4,
    )  # fmt: skip
    assert s.user == "nobody" and s.init_fail
    sg = cfg.vrrp_sync_groups[0]
    assert (
        sg.group == ["VI_1"] and sg.notify_master == "/bin/sg" and sg.track_script[0].name == "chk"
    )
    assert sg.extra == {"sync_group_tracking_weight": []}
    assert "keepalived.conf:64: debug" in cfg.unused


def test_vrrp_defaults() -> None:
    cfg = ka(VRRP.format(""))
    v = cfg.vrrp_instances[0]
    assert (v.state, v.priority, v.advert_int, v.version) == ("BACKUP", 100, 1, 2)
    assert (
        v.garp_master_delay,
        v.garp_master_repeat,
        v.garp_master_refresh,
        v.garp_master_refresh_repeat,
    ) == (5, 5, 0, 1)
    assert (v.garp_lower_prio_delay, v.garp_lower_prio_repeat) == (5, 5)
    assert not v.nopreempt and v.preempt_delay == 0 and v.accept is True and v.unicast_ttl == 255
    assert cfg.warnings == []
    master = ka(VRRP.format("    state MASTER")).vrrp_instances[0]
    assert master.priority == 255
    owner = ka(VRRP.format("    priority 255")).vrrp_instances[0]
    assert owner.state == "MASTER"
    script = ka(
        "vrrp_script s {\n    script /x\n}\n" + VRRP.format("    track_script {\n        s\n    }")
    ).vrrp_scripts["s"]
    assert (script.interval, script.weight, script.rise, script.fall, script.timeout) == (
        1,
        0,
        1,
        1,
        None,
    )


def test_vrrp_globals_apply() -> None:
    v = ka(
        "global_defs {\n    vrrp_version 3\n    vrrp_garp_master_delay 1\n    "
        "vrrp_garp_master_repeat 2\n}\n" + VRRP.format("    advert_int 0.25")
    ).vrrp_instances[0]
    assert (v.version, v.advert_int, v.garp_master_delay, v.garp_master_repeat) == (3, 0.25, 1, 2)
    assert (v.garp_lower_prio_delay, v.garp_lower_prio_repeat) == (1, 2)


def test_ipv6_vips_make_version_3() -> None:
    v = ka(VRRP.format("").replace("192.0.2.10", "fe80::10")).vrrp_instances[0]
    assert v.version == 3


def test_keepalived_config_is_reachable_from_config() -> None:
    config = parse(vs_text() + VRRP.format(""), "keepalived.conf")
    assert config.keepalived is not None
    assert len(config.keepalived.vrrp_instances) == 1 and len(config.virtuals) == 1
    assert config.virtuals[0].checktype == "on"


def test_sync_groups_and_owners_ignore_tracking_weights() -> None:
    """vrrp.c: weights are ignored in a sync group (without sync_group_tracking_weight) and
    for the address owner, with keepalived's messages."""
    text = (
        "vrrp_script s {\n    script /x\n    weight 5\n}\n"
        + VRRP.format(
            "    track_script {\n        s\n    }\n    track_interface {\n        eth1 weight 9\n "
            "   }"
        )
        + VRRP.format("").replace("VI_1", "VI_2").replace("51", "52")
        + "vrrp_sync_group G {\n    group {\n        VI_1\n        VI_2\n    }\n}\n"
    )
    cfg = ka(text)
    v = cfg.vrrp_instances[0]
    assert v.track_script == [] and [(t.name, t.weight) for t in v.track_interface] == [("eth1", 0)]
    assert (
        "keepalived.conf:5: (VI_1) ignoring tracked script s with weights due to SYNC group"
        in cfg.warnings
    )
    assert (
        "keepalived.conf:5: (VI_1) ignoring eth1 tracked interface weight due to SYNC group"
        in cfg.warnings
    )
