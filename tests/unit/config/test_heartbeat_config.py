"""The heartbeat 3.0.6 ha.cf / authkeys / haresources parsers against heartbeat's own rules."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pylvs.config.heartbeat import (
    BcastMedium,
    HeartbeatConfigError,
    McastMedium,
    OtherMedium,
    PingNode,
    Resource,
    SerialMedium,
    UcastMedium,
    default_udpport,
    get_msec,
    load_authkeys,
    load_ha_cf,
    load_haresources,
    parse_authkeys,
    parse_ha_cf,
    parse_haresources,
    parse_ipaddr_arg,
)
from pylvs.core.hbmsg import AuthKey

DATA = Path(__file__).parent / "data" / "heartbeat"
BASE = "ucast eth0 10.0.0.2\nnode nodea nodeb\nauto_failback on\nlogfile /var/log/ha-log\n"


def cfg(text: str = "", base: str = BASE, node: str = "nodea"):
    return parse_ha_cf(base + text, nodename=node)


def err(text: str, base: str = BASE, node: str = "nodea") -> HeartbeatConfigError:
    with pytest.raises(HeartbeatConfigError) as info:
        parse_ha_cf(base + text, nodename=node)
    return info.value


def base_lines() -> int:
    return BASE.count("\n")


# ---------------------------------------------------------------- time syntax (cl_get_msec)


@pytest.mark.parametrize(
    ("text", "ms"),
    [
        ("2", 2000), ("1.7", 1700), ("2000ms", 2000), ("500ms", 500), (".5", 500), ("0", 0),
        ("10MS", 10), ("1000000us", 1000), ("501us", 1), ("499us", 0), ("1.2.3", 1200),
        ("3 ms", 3), ("100msec", 100),
        ("", -1), ("ms", -1), ("abc", -1), ("1s", -1), ("-1", -1), ("1x", -1),
    ],
)  # fmt: skip
def test_get_msec(text: str, ms: int) -> None:
    assert get_msec(text) == ms


# ---------------------------------------------------------------- defaults


def test_defaults() -> None:
    c = cfg()
    assert c.keepalive_ms == 1000
    assert c.deadtime_ms == 30000
    assert c.warntime_ms == 15000  # deadtime / 2
    assert c.initdead_ms == 30000  # deadtime when > 10 s
    assert c.deadping_ms == 30000  # deadtime
    assert c.udpport == default_udpport() == 694
    assert c.hopfudge == 1
    assert c.debug == 0
    assert c.msgfmt == "classic"
    assert c.autojoin == "none"
    assert c.nodes == ["nodea", "nodeb"]
    assert c.media == [UcastMedium("eth0", "10.0.0.2", 694, 1)]
    assert c.unused == [] and c.warnings == []
    assert c.use_logd is False


def test_auto_failback_default_is_legacy_with_warning() -> None:
    c = cfg(base="bcast eth0\nnode nodea\nlogfile /x\n")
    assert c.auto_failback == "legacy"
    assert c.warnings == ["ha.cf: Deprecated 'legacy' auto_failback option selected."]


@pytest.mark.parametrize(
    ("deadtime", "initdead"),
    [("5", 12000), ("6", 12000), ("8", 16000), ("10", 20000), ("11", 11000)],
)
def test_initdead_default(deadtime: str, initdead: int) -> None:
    c = cfg(f"keepalive 1\ndeadtime {deadtime}\n")
    assert c.initdead_ms == initdead


def test_small_initdead_warns() -> None:
    c = cfg("keepalive 200ms\ndeadtime 1\ninitdead 2\n")
    assert c.initdead_ms == 2000
    assert "ha.cf: Initial dead time [2000 ms] may be too small!" in c.warnings


def test_measured_peer_config() -> None:
    text = (DATA / "ha.cf.peer").read_text()
    c = parse_ha_cf(text, nodename="nodeA")
    assert c.nodename == "nodea"
    assert (c.keepalive_ms, c.warntime_ms, c.deadtime_ms, c.initdead_ms) == (200, 500, 1000, 2000)
    assert c.media == [
        UcastMedium("eth0", "10.0.0.1", 694, 6),
        UcastMedium("eth0", "10.0.0.2", 694, 7),
    ]
    assert c.auto_failback == "on" and c.logfile == "/tmp/ha-log" and not c.use_logd


# ---------------------------------------------------------------- directives


def test_times() -> None:
    c = cfg("keepalive 2\ndeadtime 30\nwarntime 10\ninitdead 120\ndeadping 40\n")
    assert (c.keepalive_ms, c.deadtime_ms, c.warntime_ms, c.initdead_ms, c.deadping_ms) == (
        2000, 30000, 10000, 120000, 40000,
    )  # fmt: skip


def test_values_split_on_commas_and_applied_in_turn() -> None:
    assert cfg("keepalive 1,2\n").keepalive_ms == 2000
    assert cfg("node c,D\n").nodes == ["nodea", "nodeb", "c", "d"]


def test_nodes_lower_cased_on_several_lines() -> None:
    c = cfg(base="bcast eth0\nnode NodeA\nnode NODEB nodec\nauto_failback off\nlogfile /x\n")
    assert c.nodes == ["nodea", "nodeb", "nodec"]
    assert c.auto_failback == "off"


def test_current_node_from_uname(monkeypatch: pytest.MonkeyPatch) -> None:
    name = os.uname().nodename.lower()
    c = parse_ha_cf(f"bcast eth0\nnode {name.upper()}\nauto_failback on\nlogfile /x\n")
    assert c.nodename == name


def test_media_in_file_order() -> None:
    c = cfg(
        base="udpport 700\nbcast eth0 eth1\nmcast eth2 239.0.0.1 694 1 0\nucast eth3 10.0.0.2\n"
        "ucast eth3 10.0.0.1\nserial /dev/ttyS0\nmcast6 eth0 ff05::1 694 1 0\n"
        "node nodea\nauto_failback on\nlogfile /x\n"
    )
    assert c.udpport == 700
    assert c.media == [
        BcastMedium("eth0", 700, 2),
        BcastMedium("eth1", 700, 2),
        McastMedium("eth2", "239.0.0.1", 694, 1, 0, 3),
        UcastMedium("eth3", "10.0.0.2", 700, 4),
        UcastMedium("eth3", "10.0.0.1", 700, 5),
        SerialMedium("/dev/ttyS0", 19200, 6),
        OtherMedium("mcast6", ("eth0", "ff05::1", "694", "1", "0"), 7),
    ]
    assert c.unused == ["serial", "mcast6"]


def test_udp_is_bcast() -> None:
    c = cfg(base="udp eth0\nnode nodea\nauto_failback on\nlogfile /x\n")
    assert c.media == [BcastMedium("eth0", 694, 1)]
    assert "ha.cf:1: WARNING: directive 'udp' replaced by 'bcast'" in c.warnings


def test_udpport_after_media_does_not_apply_to_them() -> None:
    c = cfg(base="bcast eth0\nudpport 700\nbcast eth1\nucast eth0 10.0.0.2\nnode nodea\n"
            "auto_failback on\nlogfile /x\n")  # fmt: skip
    # bcast took its port with its first medium; ucast takes it now.
    assert c.media == [
        BcastMedium("eth0", 694, 1),
        BcastMedium("eth1", 694, 3),
        UcastMedium("eth0", "10.0.0.2", 700, 4),
    ]
    assert c.udpport == 700
    assert "ha.cf:2: udpport setting must precede media statements" in c.warnings


def test_empty_ucast_line_adds_nothing() -> None:
    assert len(cfg("ucast\n").media) == 1


def test_ping_and_ping_group() -> None:
    c = cfg("ping 10.0.0.254 10.0.0.253\nping_group Group1 10.0.0.1 10.0.0.2\ndeadping 20\n")
    assert c.ping_nodes == [
        PingNode("10.0.0.254", ("10.0.0.254",), "ping", 5),
        PingNode("10.0.0.253", ("10.0.0.253",), "ping", 5),
        PingNode("group1", ("10.0.0.1", "10.0.0.2"), "ping_group", 6),
    ]
    assert c.deadping_ms == 20000


def test_respawn() -> None:
    c = cfg("respawn hacluster /usr/lib/heartbeat/ipfail -x 1\nfailfast root /bin/true\n")
    r, f = c.respawn
    assert (r.user, r.command, r.path, r.failfast) == (
        "hacluster", "/usr/lib/heartbeat/ipfail -x 1", "/usr/lib/heartbeat/ipfail", False,
    )  # fmt: skip
    assert f.failfast and f.path == "/bin/true"
    assert c.unused == ["failfast"]


def test_logging() -> None:
    c = cfg("debugfile /var/log/ha-debug\nlogfacility local0\nuse_logd yes\ndebug 3\n")
    assert (c.logfile, c.debugfile, c.logfacility, c.use_logd, c.debug) == (
        "/var/log/ha-log", "/var/log/ha-debug", "local0", True, 3,
    )  # fmt: skip
    base = "bcast eth0\nnode nodea\nauto_failback on\n"
    assert cfg(base=base).use_logd is True  # no log entry: logd implied
    assert cfg("logfacility none\n", base=base).logfacility is None


@pytest.mark.parametrize("value", ["off", "no", "false", "n", "0", "OFF"])
def test_crm_off_accepted(value: str) -> None:
    assert cfg(f"crm {value}\n").unused == []
    assert cfg(f"pacemaker {value}\n").unused == []


@pytest.mark.parametrize("value", ["on", "yes", "respawn", "minimal", "ccm-only", "valgrind"])
def test_crm_on_refused(value: str) -> None:
    e = err(f"crm {value}\n")
    assert e.line == base_lines() + 1
    assert "not supported" in e.problem and "crm off" in e.problem


def test_unused_directives_listed_once_in_order() -> None:
    c = cfg(
        "hopfudge 2\nwatchdog /dev/watchdog\nbaud 19200\nstonith baytech /etc/ha.d/st\n"
        "stonith_host * baytech 10.0.0.3 login pw\napiauth ipfail gid=haclient uid=hacluster\n"
        "apiauth ping gid=haclient\nrealtime off\nrtprio 5\nhbgenmethod time\nmsgfmt netstring\n"
        "compression bz2\ncompression_threshold 2\ncoredumps true\nuuidfrom nodename\n"
        "env FOO=bar\nmax_rexmit_delay 250\nmemreserve 6500\ncluster c1\nconn_logd_time 60\n"
        "log_badpack no\nsyslogmsgfmt yes\nrealtime on\nautojoin none\n"
    )
    assert c.hopfudge == 2 and c.msgfmt == "netstring"
    assert c.unused == [
        "watchdog", "baud", "stonith", "stonith_host", "apiauth", "realtime", "rtprio",
        "hbgenmethod", "compression", "compression_threshold", "coredumps", "uuidfrom", "env",
        "max_rexmit_delay", "memreserve", "cluster", "conn_logd_time", "log_badpack",
        "syslogmsgfmt", "autojoin",
    ]  # fmt: skip


def test_nice_failback_is_obsolete() -> None:
    c = cfg("nice_failback on\n", base="bcast eth0\nnode nodea\nlogfile /x\n")
    assert c.auto_failback == "legacy"
    assert any("nice_failback flag is obsolete" in w for w in c.warnings)
    c = cfg("auto_failback on\nnice_failback on\n", base="bcast eth0\nnode nodea\nlogfile /x\n")
    assert c.auto_failback == "off"


def test_comments_anywhere_and_crlf() -> None:
    c = cfg("keepalive 2 # every two seconds\r\n  # indented comment\n\n")
    assert c.keepalive_ms == 2000


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("bogus 1", "Illegal directive [bogus] in ha.cf"),
        ("Keepalive 1", "Illegal directive [Keepalive] in ha.cf"),
        ("hbaping fc0", "Illegal directive [hbaping] in ha.cf"),
        ("keepalive 0", "invalid keepalive [0]"),
        ("keepalive 2 ms", "invalid keepalive [ms]"),
        ("deadtime x", "invalid deadtime [x]"),
        ("warntime 0", "Warn time [0] is invalid."),
        ("initdead -1", "invalid initdead [-1]"),
        ("udpport 0", "invalid port [0] specified."),
        ("udpport abc", "invalid port [abc] specified."),
        ("udpport 70000", "invalid port [70000] specified."),
        ("auto_failback maybe", "invalid auto_failback [maybe]: on, off or legacy"),
        ("logfacility local9", "Log facility(local9) not valid"),
        ("use_logd perhaps", "cl_str_to_boolean failed[perhaps]"),
        ("debug 256", "invalid debug level [256]"),
        ("hopfudge 300", "invalid hopfudge [300]"),
        ("msgfmt xml", "invalid msgfmt [xml]: classic or netstring"),
        ("crm maybe", "invalid crm/pacemaker value [maybe]"),
        ("ucast eth0", "ucast: [eth0] missing target IP address/hostname"),
        ("mcast eth0", "mcast [eth0] missing mcast address"),
        ("mcast eth0 10.0.0.1 694 1 0", "mcast [eth0] bad addr [10.0.0.1]"),
        ("mcast eth0 239.0.0.1", "mcast [eth0] missing port"),
        ("mcast eth0 239.0.0.1 0 1 0", "mcast [eth0] bad port [0]"),
        ("mcast eth0 239.0.0.1 694", "mcast [eth0] missing ttl"),
        ("mcast eth0 239.0.0.1 694 5 0", "mcast [eth0] bad ttl [5]"),
        ("mcast eth0 239.0.0.1 694 1", "mcast [eth0] missing loop"),
        ("mcast eth0 239.0.0.1 694 1 2", "mcast [eth0] bad loop [2]"),
        ("serial ttyS0", "Serial port not full pathname [ttyS0] in config file"),
        ("ping_group g1", "ping_group [g1] has no hosts"),
        ("respawn hacluster ipfail", "Client child command [ipfail] is not full pathname"),
        ("respawn", "Invalid uid [] specified for client child"),
        ("stonith", "No Stonith type given"),
        ("stonith_host", "No Stonith hostname argument given"),
        ("stonith_host *", "No Stonith type given"),
        ("apiauth ipfail", "Invalid apiauth directive [ipfail]"),
        ("apiauth ipfail foo",
         "Missing uid or gid in apiauth: Invalid apiauth directive [ipfail foo]"),
        ("apiauth a uid=x uid=y",
         "Duplicate uid list in apiauth: Invalid apiauth directive [a uid=x uid=y]"),
        ("apiauth a uid=x\napiauth a gid=y",
         "Duplicate apiauth directive for API client a: [a gid=y]"),
        ("baud 1234", "invalid baudrate [1234] specified."),
        ("baud 9600\nbaud 19200", "Baudrate multiply specified."),
        ("watchdog /dev/a\nwatchdog /dev/b", "Watchdog device multiply specified."),
        ("rtprio 100", "Illegal realtime priority [100]"),
        ("hbgenmethod random", "Illegal hb generation method [random]"),
        ("autojoin some", "Invalid autojoin directive [some]"),
        ("uuidfrom mac", "Invalid uuidfrom directive [mac]"),
        ("realtime maybe", "realtime: Invalid directive value maybe"),
        ("compression_threshold 0", "invalid compression_threshold [0]"),
        ("crm off\ncrm off", "pacemaker/crm directive used multiple times!"),
        ("crm off\ncrm_daemon_dir /x",
         "If you specify crm_daemon_dir, it must come before the pacemaker directive"),
        ("env =x", "set_env: invalid nvpair(=x)"),
    ],
)  # fmt: skip
def test_line_errors(text: str, problem: str) -> None:
    e = err(text + "\n")
    assert e.problem == problem
    assert e.line == base_lines() + text.count("\n") + 1
    assert str(e) == f"ha.cf:{e.line}: {problem}"


@pytest.mark.parametrize(
    ("base", "problem"),
    [
        ("node nodea\n", "No heartbeat media defined"),
        ("bcast eth0\n", "no nodes defined"),
        ("bcast eth0\nnode nodeb\n", "Current node [nodea] not in configuration!"),
        ("bcast eth0\nnode nodea\nuse_logd off\n",
         "No log entry found in ha.cf and use_logd is set to off"),
    ],
)  # fmt: skip
def test_whole_file_errors(base: str, problem: str) -> None:
    e = err("", base=base)
    assert (e.line, e.problem, str(e)) == (0, problem, f"ha.cf: {problem}")


def test_deadtime_too_small() -> None:
    e = err("keepalive 2\ndeadtime 4\n")
    assert e.problem == "Dead time [4000] is too small compared to keeplive [2000]"
    assert e.line == base_lines() + 2
    e = err("keepalive 15\n")
    assert e.problem == "Dead time [30000] is too small compared to keeplive [15000]"
    assert e.line == base_lines() + 1


def test_initdead_smaller_than_deadtime() -> None:
    e = err("initdead 10\n")
    assert e.problem == "Initial dead time [10000] is smaller than deadtime [30000]"
    assert e.line == base_lines() + 1


def test_deadping_too_small() -> None:
    e = err("keepalive 1\ndeadping 2\n")
    assert e.problem == "Ping dead time [2000] is too small compared to keeplive [1000]"
    assert e.line == base_lines() + 2


def test_autojoin_conflicts_with_release_1() -> None:
    e = err("autojoin other\n")
    assert e.problem.startswith("R1 style resource management conflicts with autojoin set")
    e = err("autojoin any\n", base="bcast eth0\nlogfile /x\nauto_failback on\n", node="x")
    assert e.problem.startswith("R1 style resource management conflicts with autojoin set")


def test_too_many_media() -> None:
    e = err("bcast " + " ".join(f"eth{i}" for i in range(64)) + "\n")
    assert e.problem == "Too many media specified (> 64)"


# ---------------------------------------------------------------- the Debian samples


def test_sample_ha_cf_is_refused_as_heartbeat_does() -> None:
    # Everything but logfacility and auto_failback is commented out: no media, no nodes.
    with pytest.raises(HeartbeatConfigError) as info:
        load_ha_cf(DATA / "ha.cf", nodename="ken3")
    assert info.value.problem == "No heartbeat media defined"


def test_sample_ha_cf_examples_uncommented() -> None:
    text = (DATA / "ha.cf").read_text()
    wanted = ("debugfile", "logfile", "keepalive", "deadtime", "warntime", "initdead", "udpport",
              "baud", "serial", "bcast", "mcast", "ucast", "node", "ping", "ping_group", "respawn",
              "hopfudge", "deadping", "hbgenmethod", "realtime", "debug",
              "conn_logd_time", "compression", "compression_threshold", "watchdog")  # fmt: skip
    out = []
    for line in text.splitlines():
        m = re.match(r"#(\w+)[ \t]", line)
        if m and m.group(1) in wanted and "[" not in line and "<" not in line:
            line = line[1:]
        out.append(line)
    c = parse_ha_cf("\n".join(out), nodename="ken3")
    assert c.nodes == ["ken3", "kathy"]
    assert (c.keepalive_ms, c.deadtime_ms, c.warntime_ms, c.initdead_ms) == (
        2000,
        30000,
        10000,
        120000,
    )
    kinds = [type(m).__name__ for m in c.media]
    assert kinds.count("SerialMedium") == 4 and "McastMedium" in kinds and "UcastMedium" in kinds
    assert [m.dev for m in c.media if isinstance(m, BcastMedium)] == [
        "eth0",
        "eth1",
        "eth2",
        "le0",
        "le1",
        "le2",
    ]
    assert [p.name for p in c.ping_nodes] == ["10.10.10.254", "group1"]
    assert [r.path for r in c.respawn] == ["/path/name/to/run", "/usr/lib/heartbeat/ipfail"]
    assert c.logfacility == "local0" and c.auto_failback == "on"


def test_sample_authkeys_has_no_auth_directive(tmp_path: Path) -> None:
    key = tmp_path / "authkeys"
    key.write_bytes((DATA / "authkeys").read_bytes())
    key.chmod(0o600)
    with pytest.raises(HeartbeatConfigError) as info:
        load_authkeys(key)
    assert info.value.problem == f"Missing auth directive in keyfile [{key}]"
    text = "\n".join(
        line[1:] if re.match(r"#(auth|\d) ", line) else line
        for line in (DATA / "authkeys").read_text().splitlines()
    )
    keys = parse_authkeys(text)
    assert (keys.selected.num, keys.selected.method) == (1, "crc")
    assert keys.keys[2].method == "sha1" and keys.keys[2].secret == b"HI!"  # type: ignore[union-attr]
    assert keys.keys[3].method == "md5" and keys.keys[3].secret == b"Hello!"  # type: ignore[union-attr]


def test_sample_haresources() -> None:
    assert load_haresources(DATA / "haresources") == []
    text = "\n".join(
        line[1:] if re.match(r"#(just|node1)", line) else line
        for line in (DATA / "haresources").read_text().splitlines()
    )
    groups = parse_haresources(text, nodes=["just.linux-ha.org", "node1"])
    assert [g.node for g in groups] == ["just.linux-ha.org"] * 4 + ["node1"]
    assert groups[3].resources == (
        Resource("IPaddr", ("135.9.216.3/28/eth0/135.9.216.12",)), Resource("httpd"),
    )  # fmt: skip
    assert groups[4].resources[1] == Resource("Filesystem", ("/dev/sda1", "/data1", "ext2"))


# ---------------------------------------------------------------- authkeys


def test_authkeys_selects_key() -> None:
    k = parse_authkeys("# c\nauth 2\n1 md5 one\n2 sha1 two\n\n15 crc\n")
    assert isinstance(k.selected, AuthKey)
    assert (k.selected.num, k.selected.method, k.selected.secret) == (2, "sha1", b"two")
    assert sorted(k.keys) == [1, 2, 15]
    assert k.keys[15].method == "crc" and k.keys[15].secret == b""
    assert k.signing_key() is k.selected


def test_authkeys_crc_signs_with_heartbeats_crc() -> None:
    k = parse_authkeys("auth 1\n1 crc\n")
    key = k.signing_key()
    assert (key.num, key.method) == (1, "crc")
    # HBauth/crc.c: the cksum CRC without the length, inverted ("%lx")
    assert key.sign(b"") == "ffffffff"
    assert key.sign(b"123456789") == "765e7680"  # the CRC-32/POSIX check value


@pytest.mark.parametrize(
    ("text", "line", "problem"),
    [
        ("authx 1\n", 1, "Invalid auth line [authx 1] in authkeys"),
        ("auth 1\n1\n", 2, "Auth line [1] is invalid."),
        ("auth 1\nsha1 x\n", 2, "Auth line [sha1 x] is invalid."),
        ("auth 1\n16 sha1 x\n", 2, "Invalid authnum [16] in authkeys"),
        ("auth 1\n1 des x\n", 2, "Invalid authtype [des]"),
        ("auth 1\n1 crc x\n", 2, "Auth method [crc] doesn't use a key"),
        ("auth 1\n1 sha1\n", 2, "Auth method [sha1] requires a key"),
        ("1 sha1 x\n", 0, "Missing auth directive in keyfile [authkeys]"),
        ("auth 2\n1 sha1 x\n", 0, "Auth Key [2] not found in keyfile [authkeys]"),
        ("1 sha1 x\nauth 1\n", 0, "Auth Key [1] not found in keyfile [authkeys]"),
    ],
)
def test_authkeys_errors(text: str, line: int, problem: str) -> None:
    with pytest.raises(HeartbeatConfigError) as info:
        parse_authkeys(text)
    assert (info.value.line, info.value.problem) == (line, problem)


def test_authkeys_permissions(tmp_path: Path) -> None:
    key = tmp_path / "authkeys"
    key.write_text("auth 1\n1 sha1 SECRET\n")
    key.chmod(0o644)
    with pytest.raises(HeartbeatConfigError) as info:
        load_authkeys(key)
    assert str(info.value) == f"{key}: Bad permissions on keyfile [{key}], 600 recommended."
    key.chmod(0o640)
    with pytest.raises(HeartbeatConfigError):
        load_authkeys(key)
    key.chmod(0o600)
    k = load_authkeys(key)
    assert k.signing_key().secret == b"SECRET" and k.filename == str(key)


# ---------------------------------------------------------------- haresources


def test_haresources_director_line() -> None:
    text = (
        "# director\n"
        "LB1 IPaddr2::192.168.6.240/24/eth0 ldirectord::ldirectord.cf \\\n"
        "    LVSSyncDaemonSwap::master   # sync daemon\n"
        "\n"
        "lb2\t10.0.0.5/24 httpd\n"
    )
    g1, g2 = parse_haresources(text, nodes=["lb1", "lb2"])
    assert (g1.node, g1.line) == ("lb1", 2)
    assert g1.resources == (
        Resource("IPaddr2", ("192.168.6.240/24/eth0",)),
        Resource("ldirectord", ("ldirectord.cf",)),
        Resource("LVSSyncDaemonSwap", ("master",)),
    )
    assert str(g1.resources[0]) == "IPaddr2::192.168.6.240/24/eth0"
    assert (g2.node, g2.line) == ("lb2", 5)
    assert g2.resources == (Resource("IPaddr", ("10.0.0.5/24",)), Resource("httpd"))


def test_haresources_comment_before_continuation() -> None:
    # ipres strips comments first, so a backslash followed by a comment still ends the line.
    groups = parse_haresources("a r1 \\ # x\nb r2\n")
    assert [(g.node, g.resources) for g in groups] == [
        ("a", (Resource("r1"), Resource("\\"))), ("b", (Resource("r2"),)),
    ]  # fmt: skip


def test_haresources_errors() -> None:
    with pytest.raises(HeartbeatConfigError) as info:
        parse_haresources("\nlb3 httpd\n", nodes=["lb1"])
    assert str(info.value) == "haresources:2: Bad nodename in haresources [lb3]"
    with pytest.raises(HeartbeatConfigError) as info:
        parse_haresources("lb1 IPaddr2::300.1.1.1/24\n")
    assert info.value.problem == "invalid IP address [300.1.1.1] in [300.1.1.1/24]"
    with pytest.raises(HeartbeatConfigError) as info:
        parse_haresources("lb1 IPaddr2\n")
    assert info.value.problem == "IPaddr2 needs one argument: IPaddr2"


def test_ipaddr_arg() -> None:
    s = parse_ipaddr_arg("192.168.6.240")
    assert (s.ip, s.prefixlen, s.iface, s.label, s.broadcast) == (
        "192.168.6.240",
        None,
        None,
        None,
        None,
    )
    assert s.broadcast_for(24) == "192.168.6.255"
    assert s.broadcast_for(32) is None and s.broadcast_for(31) is None
    s = parse_ipaddr_arg("135.9.8.7/24/eth0:vip/135.9.8.210")
    assert (s.prefixlen, s.iface, s.label, s.broadcast) == (24, "eth0", "vip", "135.9.8.210")
    assert s.broadcast_for(24) == "135.9.8.210"
    s = parse_ipaddr_arg("135.9.8.7/24/135.9.8.210")
    assert (s.iface, s.broadcast) == (None, "135.9.8.210")
    assert parse_ipaddr_arg("10.0.0.1/255.255.0.0/eth1").prefixlen == 16
    for bad in ("x", "10.0.0.1/33", "10.0.0.1/24/eth0/1.2.3", "10.0.0.1/abc"):
        with pytest.raises(ValueError):
            parse_ipaddr_arg(bad)


# ---------------------------------------------------------------- fuzz

_WORDS = st.sampled_from(
    ["node", "bcast", "ucast", "mcast", "keepalive", "deadtime", "initdead", "warntime", "udpport",
     "auto_failback", "crm", "ping", "ping_group", "respawn", "apiauth", "stonith_host", "baud",
     "logfacility", "use_logd", "#", "\\", ",", "nodea", "eth0", "239.0.0.1", "10.0.0.1", "1",
     "0", "2ms", "on", "legacy", "/bin/x", "auth", "sha1", "crc", "md5", "::",
     "IPaddr2::1.2.3.4/24", "\t", " ", "\n", "\r\n", "-1", "99999999999999999999", "1e9", "."]
)  # fmt: skip
_TEXT = st.one_of(
    st.text(max_size=200),
    st.lists(_WORDS, max_size=60).map(" ".join),
    st.lists(_WORDS, max_size=60).map("".join),
)


@settings(max_examples=400, deadline=None)
@given(_TEXT)
def test_fuzz_only_config_errors(text: str) -> None:
    for parse in (
        lambda: parse_ha_cf(text, nodename="nodea"),
        lambda: parse_ha_cf(BASE + text, nodename="nodea"),
        lambda: parse_authkeys(text),
        lambda: parse_haresources(text, nodes=["nodea"]),
    ):
        try:
            parse()
        except HeartbeatConfigError:
            pass
