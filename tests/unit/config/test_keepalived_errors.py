"""keepalived.conf grammar (comments, quotes, blocks, include, $VAR, @ lines) and the errors,
with keepalived's messages and the line."""

from __future__ import annotations

from pathlib import Path

import pytest

from pylvs.config import ConfigError, load, parse
from pylvs.config.keepalived import looks_like_keepalived, parse_keepalived_model

VS = """virtual_server 192.0.2.1 80 {
    lb_algo rr
    lb_kind NAT
    protocol TCP
    real_server 10.0.0.1 80 {
        weight 1
    }
}
"""

VRRP = """vrrp_instance VI_1 {{
    interface eth0
    virtual_router_id 51
{0}
    virtual_ipaddress {{
        192.0.2.10
    }}
}}
"""


def error(text: str) -> str:
    with pytest.raises(ConfigError) as info:
        parse_keepalived_model(text, "k.conf")
    return str(info.value)


def test_comments_and_quotes() -> None:
    cfg = parse_keepalived_model(
        """! a comment
# another
virtual_server 192.0.2.1 80 {   ! trailing comment
    lb_algo rr # and this
    lb_kind NAT
    protocol TCP
    virtualhost "www.example.org # not a comment"
    real_server 10.0.0.1 80 {
        notify_up "/nonexistent/echo \\#up"
    }
}
""",
        "k.conf",
    )
    vs = cfg.virtual_servers[0]
    assert vs.virtualhost == "www.example.org # not a comment"
    # notify_script_init reads the line again with escapes: \# is #, as keepalived runs it
    assert vs.real_servers[0].notify_up == "/nonexistent/echo #up"
    assert cfg.warnings == []


def test_braces_anywhere_on_a_line() -> None:
    cfg = parse_keepalived_model(
        "virtual_server 192.0.2.1 80\n{\nlb_algo rr\nlb_kind NAT\nprotocol TCP\n"
        "real_server 10.0.0.1 80 { weight 4\nTCP_CHECK { connect_port 81 } } }\n",
        "k.conf",
    )
    rs = cfg.virtual_servers[0].real_servers[0]
    assert rs.weight == 4 and rs.checkers[0].connect_port == 81


def test_definitions_and_conditional_lines() -> None:
    text = "$IP=192.0.2.7\n$W=3\n@a $W=9\n" + VS.replace("192.0.2.1", "$IP").replace(
        "weight 1", "weight ${W}\n@b        weight 5\n@^b       inhibit_on_failure"
    )
    cfg = parse_keepalived_model(text, "k.conf")
    rs = cfg.virtual_servers[0].real_servers[0]
    assert cfg.virtual_servers[0].addr == "192.0.2.7" and rs.weight == 3 and rs.inhibit_on_failure
    cfg = parse_keepalived_model(text, "k.conf", config_id="a")
    assert cfg.virtual_servers[0].real_servers[0].weight == 9
    cfg = parse_keepalived_model(text, "k.conf", config_id="b")
    rs = cfg.virtual_servers[0].real_servers[0]
    assert rs.weight == 5 and not rs.inhibit_on_failure


def test_include_is_relative_to_the_including_file(tmp_path: Path) -> None:
    (tmp_path / "conf.d").mkdir()
    (tmp_path / "conf.d" / "b.conf").write_text(VS.replace("192.0.2.1", "192.0.2.2"))
    (tmp_path / "conf.d" / "a.conf").write_text("include sub/*.conf\n" + VS)
    (tmp_path / "conf.d" / "sub").mkdir()
    (tmp_path / "conf.d" / "sub" / "v.conf").write_text(VRRP.format(""))
    main = tmp_path / "keepalived.conf"
    main.write_text(
        "global_defs {\n    router_id X\n}\ninclude conf.d/*.conf\ninclude none/*.conf\n"
    )
    config = load(main)
    ka = config.keepalived
    assert ka is not None
    assert [vs.addr for vs in ka.virtual_servers] == ["192.0.2.1", "192.0.2.2"]
    assert [v.name for v in ka.vrrp_instances] == ["VI_1"]
    assert ka.files == [
        str(main),
        str(tmp_path / "conf.d" / "a.conf"),
        str(tmp_path / "conf.d" / "sub" / "v.conf"),
        str(tmp_path / "conf.d" / "b.conf"),
    ]
    assert config.warnings == []  # a pattern matching nothing is only noted, as keepalived logs it
    assert ka.notes == [f"{main}:5: Config files missing '{tmp_path}/none/*.conf'."]


def test_a_block_may_span_an_include(tmp_path: Path) -> None:
    (tmp_path / "reals.conf").write_text("    real_server 10.0.0.1 80 {\n    }\n")
    (tmp_path / "keepalived.conf").write_text(
        VS.replace(
            "    real_server 10.0.0.1 80 {\n        weight 1\n    }\n", "include reals.conf\n"
        )
    )
    config = load(tmp_path / "keepalived.conf")
    assert [r.dest.addr for r in config.virtuals[0].reals] == ["10.0.0.1"]


def test_errors_in_an_included_file_name_it(tmp_path: Path) -> None:
    (tmp_path / "bad.conf").write_text(
        "vrrp_instance X {\n    interface eth0\n    virtual_router_id 0\n}\n"
    )
    (tmp_path / "keepalived.conf").write_text("include bad.conf\n")
    with pytest.raises(ConfigError) as info:
        load(tmp_path / "keepalived.conf")
    assert (
        str(info.value)
        == f"{tmp_path}/bad.conf:3: (X): VRID '0' not valid - must be between 1 & 255"
    )


def test_a_self_include_is_bounded(tmp_path: Path) -> None:
    (tmp_path / "keepalived.conf").write_text("include keepalived.conf\n")
    with pytest.raises(ConfigError, match="include nesting deeper than 32"):
        load(tmp_path / "keepalived.conf")


def test_an_unreadable_include_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "x.conf").write_text(VS)
    (tmp_path / "keepalived.conf").write_text("include x.conf\n")
    real_read = Path.read_bytes

    def read_bytes(self: Path) -> bytes:
        if self.name == "x.conf":
            raise PermissionError(13, "Permission denied")
        return real_read(self)

    monkeypatch.setattr(Path, "read_bytes", read_bytes)
    with pytest.raises(ConfigError) as info:
        load(tmp_path / "keepalived.conf")
    assert str(info.value) == (
        f"{tmp_path}/keepalived.conf:1: Unable to read configuration file {tmp_path}/x.conf"
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            VS.replace("lb_algo rr", "lb_algo"),
            "k.conf:2: *** Configuration line starting `lb_algo` is missing a parameter after "
            "keyword `lb_algo` at word position 2",
        ),
        (
            VS.replace("lb_algo rr", "lb_algo best"),
            "k.conf:2: Invalid lvs_scheduler 'best' - ignoring",
        ),
        (
            VS.replace("lb_kind NAT", "lb_kind MASQ"),
            "k.conf:3: PARSER : unknown [MASQ] routing method for virtual server.",
        ),
        (VS.replace("protocol TCP", "protocol ICMP"), "k.conf:4: Unknown protocol ICMP - ignoring"),
        (
            VS.replace("weight 1", "weight -1"),
            "k.conf:6: Real server weight -1 is outside range 0-2147483647",
        ),
        (
            VS.replace("192.0.2.1 80", "192.0.2.1 99999"),
            "k.conf:1: Invalid virtual server IP address 192.0.2.1 99999 - skipping",
        ),
        (
            VS.replace("10.0.0.1 80", "10.0.0.x 80"),
            "k.conf:5: Invalid real server ip address/port 10.0.0.x/80 - skipping",
        ),
        (
            VS.replace("protocol TCP", "persistence_timeout 0"),
            "k.conf:4: persistence_timeout invalid",
        ),
        (
            VS.replace("protocol TCP", "quorum 0"),
            "k.conf:4: Quorum 0 must be in [1, 4294967295]. Setting to 1.",
        ),
        (
            VS.replace("protocol TCP", "delay_loop 0"),
            "k.conf:4: virtual server delay loop '0' invalid - ignoring",
        ),
        (
            VS.replace("protocol TCP", "sorry_server_inhibit"),
            "k.conf:4: Ignoring sorry_server inhibit used before or without sorry_server",
        ),
        (
            VS.replace("protocol TCP", "sh-port"),
            "k.conf:4: sh-port only applies to sh scheduler - ignoring",
        ),
        (
            VS.replace("lb_kind NAT", "lb_kind TUN type gre"),
            "k.conf:3: tunnel type gre is not supported by pylvs (only ipip)",
        ),
        (
            VS.replace("weight 1", "HTTP_GET {\n}"),
            "k.conf:6: An HTTP_GET checker must have at least one url",
        ),
        (
            VS.replace("weight 1", "HTTP_GET {\nurl {\npath /\nstatus_code 600\n}\n}"),
            "k.conf:9: Invalid HTTP_GET status code range '600' - ignoring",
        ),
        (
            VS.replace("weight 1", "MISC_CHECK {\n}"),
            "k.conf:6: No script path has been specified for MISC_CHECKER - skipping",
        ),
        (
            VS.replace("weight 1", "DNS_CHECK {\ntype PTR\n}"),
            "k.conf:7: DNS_CHECK: Unknown type PTR",
        ),
        (VS + "}\n", "k.conf:9: Extra '}' found"),
        (VS[:-2], "k.conf:1: There are 1 missing '}'s or extra '{'s (block 'virtual_server')"),
        (
            VS.replace("protocol TCP", 'virtualhost "a'),
            "k.conf:4: Unterminated quote 'virtualhost \"a'",
        ),
        (
            "virtual_server group G {\n" + VS.split("\n", 1)[1],
            "k.conf:1: Virtual server group G specified but not configured",
        ),
        (
            VRRP.format("    priority 256"),
            "k.conf:4: (VI_1) Priority not valid! must be between 1 & 255. Using default 100",
        ),
        (
            VRRP.format("    state SLAVE"),
            "k.conf:4: (VI_1) unknown state 'SLAVE', defaulting to BACKUP",
        ),
        (
            VRRP.format("    advert_int 1.5"),
            "k.conf:4: (VI_1) VRRPv2 advertisement interval 1.500000s must be an integer.",
        ),
        (
            VRRP.format("    version 3\n    advert_int 0.015"),
            "k.conf:5: (VI_1) VRRPv3 advertisement interval 0.015000s must be in units of 10ms",
        ),
        (
            VRRP.format("    advert_int 0"),
            "k.conf:4: (VI_1) Advert interval (0) not valid! Must be > 0 - ignoring",
        ),
        (
            VRRP.format("    unicast_ttl 300"),
            "k.conf:4: (VI_1): TTL '300' not valid - must be between 0 & 255",
        ),
        (
            VRRP.format("    track_interface {\n        eth1 weight 254\n    }"),
            "k.conf:5: (VI_1) weight for interface eth1 must be between [-253..253] inclusive. "
            "Ignoring...",
        ),
        (
            VRRP.format("    preempt_delay 1001"),
            "k.conf:4: (VI_1) Preempt_delay not valid! must be between 0-1000",
        ),
        (
            VRRP.format("    authentication {\n        auth_type MD5\n    }"),
            "k.conf:5: (VI_1) unknown authentication type 'MD5'",
        ),
        (
            VRRP.format("    authentication {\n        auth_type PASS\n    }"),
            "k.conf:1: (VI_1) Authentication specified but no password given. Ignoring",
        ),
        (
            VRRP.format("").replace("    interface eth0\n", ""),
            "k.conf:1: (VI_1) Unknown interface!",
        ),
        (
            VRRP.format("").replace("192.0.2.10", "192.0.2.10/33"),
            "k.conf:6: VRRP parsed invalid IP 192.0.2.10/33. skipping IP...",
        ),
        (
            VRRP.format("") + VRRP.format("").replace("VI_1", "VI_2"),
            "k.conf:9: (VI_2) duplicate VRID conflict with VI_1 VRID 51",
        ),
        (
            "vrrp_script s {\n    script /x\n    weight 254\n}\n",
            "k.conf:3: vrrp_script s weight 254 must be in [-253, 253]",
        ),
        (
            "vrrp_sync_group G {\n    group {\n        VI_9\n    }\n}\n",
            "k.conf:1: Unable to find vrrp instance VI_9 for sync group G",
        ),
        (
            "global_defs {\n    lvs_sync_daemon eth0 VI_9\n}\n",
            "k.conf:2: Unable to find vrrp instance VI_9 for lvs_sync_daemon",
        ),
        (
            "global_defs {\n    lvs_timeouts tcp\n}\n",
            "k.conf:2: lvs_timeouts requires at least one option",
        ),
        ("global_defs {\n    vrrp_version 4\n}\n", "k.conf:2: Unknown VRRP version 4"),
        (
            "global_defs\n    router_id X\n",
            "k.conf:1: Missing '{' at beginning of configuration block global_defs",
        ),
        ("{\n}\n", "k.conf:1: Unexpected '{'"),
    ],
)
def test_errors(text: str, message: str) -> None:
    assert error(text) == message


@pytest.mark.parametrize(
    ("text", "warning"),
    [
        (
            VS.replace("protocol TCP", "protocol TCP\n    bogus 1"),
            "k.conf:5: Unknown keyword 'bogus'",
        ),
        (
            VS.replace("protocol TCP", "protocol TCP\n    bogus {\n        lb_algo foo\n    }"),
            "k.conf:5: Unknown keyword 'bogus'",
        ),
        ("bogus_top\n" + VS, "k.conf:1: Unknown keyword 'bogus_top'"),
        (
            VS.replace("protocol TCP\n", ""),
            "k.conf:1: Virtual server [192.0.2.1]:none:80: no protocol set - defaulting to UDP",
        ),
        (
            "virtual_server 192.0.2.1 80 {\n    protocol TCP\n}\n",
            "k.conf:1: Virtual server [192.0.2.1]:tcp:80 has no real servers - ignoring",
        ),
        (
            VRRP.format("    track_script {\n        nope\n    }"),
            "k.conf:5: (VI_1) track script nope not found, ignoring...",
        ),
        (
            VRRP.format("").replace("        192.0.2.10\n", ""),
            "k.conf:1: (VI_1) No VIP specified; at least one is sensible",
        ),
    ],
)
def test_warnings(text: str, warning: str) -> None:
    cfg = parse_keepalived_model(text, "k.conf")
    assert warning in cfg.warnings


def test_an_unknown_block_is_skipped_whole() -> None:
    cfg = parse_keepalived_model(
        VS.replace("protocol TCP", "protocol TCP\n    bogus {\n        lb_algo foo\n    }"),
        "k.conf",
    )
    assert cfg.virtual_servers[0].lvs_sched == "rr"


def test_format_detection() -> None:
    assert looks_like_keepalived("! Configuration File for keepalived\n\nglobal_defs {\n}\n")
    assert looks_like_keepalived("# c\n$X=1\nvirtual_server 1.2.3.4 80 {\n}\n")
    assert looks_like_keepalived("include /etc/keepalived/conf.d/*.conf\n")
    assert not looks_like_keepalived("checktimeout=3\nvirtual=192.0.2.1:80\n")
    assert not looks_like_keepalived("[global]\n")
    assert parse(VS, "x.conf").keepalived is not None
    assert parse("virtual=192.0.2.1:80\n\treal=10.0.0.1:80 gate\n", "x.cf").keepalived is None


def test_braces_in_quoted_names_do_not_break_messages() -> None:
    text = 'vrrp_instance "a{v}" {\n    interface eth0\n    virtual_router_id 300\n}\n'
    assert error(text) == "k.conf:3: (a{v}): VRID '300' not valid - must be between 1 & 255"


def test_many_large_groups_are_refused_before_they_are_expanded() -> None:
    entries = "".join(f"    2001:db8:{i:x}::0-ffff 80\n" for i in range(200))
    text = f"virtual_server_group G {{\n{entries}}}\n" + VS.replace("192.0.2.1 80", "group G")
    with pytest.raises(ConfigError, match="more than 65536 IPVS services in the configuration"):
        parse(text.replace("10.0.0.1", "2001:db8:ffff::1"), "k.conf")
