"""pylvsadm with IPv6 services and real servers: every listing mode, byte for byte as ipvsadm 1.31.

The expected text is built here with the printf formats of ipvsadm.c (``print_title``,
``print_service_entry``, ``print_conn``, ``addrport_to_anyname``): IPv6 addresses in brackets,
compressed as glibc's ``inet_ntop`` does, service and dest names never truncated (only IPv4 ones
are cut at 33/28 characters), the persistence mask of an IPv6 service as a prefix length
(``mask 64`` / ``-M 64``), fwmark services as ``FWM  N IPv6`` / ``-f N -6``.
"""

# ruff: noqa: UP031  (tables of command lines; printf formats of ipvsadm.c on purpose)

from __future__ import annotations

import ipaddress
import random
import socket

import pytest
from pylvsadm_fake import FakeControl, run_line
from scapy.layers.inet import TCP, UDP
from scapy.layers.inet6 import IPv6

from pylvs.core.control import ConnInfo
from pylvs.core.engine import Engine, Verdict

HEADER = "IP Virtual Server version 1.2.1 (size=4096)\n"
TITLE = (
    "Prot LocalAddress:Port Scheduler Flags\n"
    "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n"
)
CLIENT = "2001:db8:1::7"
DIRECTOR = "2001:db8:2::fe"
RULES = """\
-A -t [2001:db8::10]:80 -s rr -p 300 -M 64
-a -t [2001:db8::10]:80 -r [2001:db8:2::1]:80 -m
-a -t [2001:db8::10]:80 -r [2001:db8:2::2]:80 -m -w 3 -x 100 -y 50
-A -u [2001:db8::10]:53 -s sh -b sh-port
-a -u [2001:db8::10]:53 -r [2001:db8:2::1]:53 -m
-A -f 7 -6 -s rr -p 60
-a -f 7 -6 -r [2001:db8:2::3]:0 -g
"""


def dest_line(name: str, fwd: str, weight: int, active: int, inact: int) -> str:
    return "  -> %-28s %-7s %-6d %-10u %-10u\n" % (name, fwd, weight, active, inact)


def largenums(*values: int) -> str:
    return "".join("%9d" % v for v in values)


def ip6(text: str) -> int:
    return int(ipaddress.IPv6Address(text))


@pytest.fixture
def farm() -> Engine:
    """The real engine with RULES loaded, one TCP SYN and one UDP datagram balanced."""
    engine = Engine(random.Random(1))
    for line in RULES.splitlines():
        assert run_line(engine, line) == (0, "", ""), line
    for rip in ("2001:db8:2::1", "2001:db8:2::2", "2001:db8:2::3"):
        engine.set_path(10, ip6(rip), ip6(DIRECTOR), 1500)
    syn = IPv6(src=CLIENT, dst="2001:db8::10") / TCP(sport=40000, dport=80, flags="S")
    assert engine.handle(bytes(syn), 0.0).verdict == Verdict.REWRITE
    query = IPv6(src=CLIENT, dst="2001:db8::10") / UDP(sport=5353, dport=53) / b"qqqq"
    assert engine.handle(bytes(query), 0.5).verdict == Verdict.REWRITE
    engine.tick(1.0)
    return engine


def test_list_numeric(farm: Engine) -> None:
    expected = (
        HEADER
        + TITLE
        + "%s %s persistent %u mask %i\n" % ("TCP  [2001:db8::10]:80", "rr", 300, 64)
        + dest_line("[2001:db8:2::1]:80", "Masq", 1, 1, 0)
        + dest_line("[2001:db8:2::2]:80", "Masq", 3, 0, 0)
        + "%s %s (%s)\n" % ("UDP  [2001:db8::10]:53", "sh", "sh-port")
        + dest_line("[2001:db8:2::1]:53", "Masq", 1, 0, 1)
        + "%s %s persistent %u\n" % ("FWM  7 IPv6", "rr", 60)
        + dest_line("[2001:db8:2::3]:0", "Route", 1, 0, 0)
    )
    assert run_line(farm, "-L -n") == (0, expected, "")


def test_list_stats_and_rate(farm: Engine) -> None:
    title = "%-33s %8s %8s %8s %8s %8s\n  -> RemoteAddress:Port\n"
    # A TCP SYN over IPv6 is 40 + 20 bytes, the UDP query 40 + 8 + 4.
    expected = (
        HEADER
        + title % ("Prot LocalAddress:Port", "Conns", "InPkts", "OutPkts", "InBytes", "OutBytes")
        + "%-33s" % "TCP  [2001:db8::10]:80" + largenums(1, 1, 0, 60, 0) + "\n"
        + "  -> %-28s" % "[2001:db8:2::1]:80" + largenums(1, 1, 0, 60, 0) + "\n"
        + "  -> %-28s" % "[2001:db8:2::2]:80" + largenums(0, 0, 0, 0, 0) + "\n"
        + "%-33s" % "UDP  [2001:db8::10]:53" + largenums(1, 1, 0, 52, 0) + "\n"
        + "  -> %-28s" % "[2001:db8:2::1]:53" + largenums(1, 1, 0, 52, 0) + "\n"
        + "%-33s" % "FWM  7 IPv6" + largenums(0, 0, 0, 0, 0) + "\n"
        + "  -> %-28s" % "[2001:db8:2::3]:0" + largenums(0, 0, 0, 0, 0) + "\n"
    )  # fmt: skip
    assert run_line(farm, "-L -n --stats") == (0, expected, "")
    rc, out, err = run_line(farm, "-L -n --rate")
    lines = out.splitlines()
    assert (rc, err) == (0, "")
    assert (
        lines[1]
        == (title % ("Prot LocalAddress:Port", "CPS", "InPPS", "OutPPS", "InBPS", "OutBPS")).split(
            "\n"
        )[0]
    )
    # The rate estimator has had no 2-second tick, so the rates are zero; the columns are the point.
    assert lines[3] == "%-33s" % "TCP  [2001:db8::10]:80" + largenums(0, 0, 0, 0, 0)
    assert lines[4] == "  -> %-28s %8u %8u %8u" % ("[2001:db8:2::1]:80", 0, 0, 0) + largenums(0, 0)


def test_list_thresholds_and_persistent_conn(farm: Engine) -> None:
    thr = (
        "%-33s %-10s %-10s %-10s %-10s\n  -> RemoteAddress:Port\n"
        % ("Prot LocalAddress:Port", "Uthreshold", "Lthreshold", "ActiveConn", "InActConn")
        + "TCP  [2001:db8::10]:80 rr persistent 300 mask 64\n"
        + "  -> %-28s %-10u %-10u %-10u %-10u\n" % ("[2001:db8:2::1]:80", 0, 0, 1, 0)
        + "  -> %-28s %-10u %-10u %-10u %-10u\n" % ("[2001:db8:2::2]:80", 100, 50, 0, 0)
        + "UDP  [2001:db8::10]:53 sh (sh-port)\n"
        + "  -> %-28s %-10u %-10u %-10u %-10u\n" % ("[2001:db8:2::1]:53", 0, 0, 0, 1)
        + "FWM  7 IPv6 rr persistent 60\n"
        + "  -> %-28s %-10u %-10u %-10u %-10u\n" % ("[2001:db8:2::3]:0", 0, 0, 0, 0)
    )
    assert run_line(farm, "-L -n --thresholds") == (0, HEADER + thr, "")
    pc = (
        "%-33s %-9s %-11s %-10s %-10s\n  -> RemoteAddress:Port\n"
        % ("Prot LocalAddress:Port", "Weight", "PersistConn", "ActiveConn", "InActConn")
        + "TCP  [2001:db8::10]:80 rr persistent 300 mask 64\n"
        # one persistence template (client /64) points at the first real server
        + "  -> %-28s %-9u %-11u %-10u %-10u\n" % ("[2001:db8:2::1]:80", 1, 1, 1, 0)
        + "  -> %-28s %-9u %-11u %-10u %-10u\n" % ("[2001:db8:2::2]:80", 3, 0, 0, 0)
        + "UDP  [2001:db8::10]:53 sh (sh-port)\n"
        + "  -> %-28s %-9u %-11u %-10u %-10u\n" % ("[2001:db8:2::1]:53", 1, 0, 0, 1)
        + "FWM  7 IPv6 rr persistent 60\n"
        + "  -> %-28s %-9u %-11u %-10u %-10u\n" % ("[2001:db8:2::3]:0", 1, 0, 0, 0)
    )
    assert run_line(farm, "-L -n --persistent-conn") == (0, HEADER + pc, "")


def conn_row(proto: str, expire: str, state: str, c: str, v: str, d: str) -> str:
    return "%-3s %-6s %-11s %-18s %-18s %s\n" % (proto, expire, state, c, v, d)


CONN_TITLE = "IPVS connection entries\n" + "pro expire %-11s %-18s %-18s %s\n" % (
    "state",
    "source",
    "virtual",
    "destination",
)


def test_connection_listing(farm: Engine) -> None:
    rc, out, err = run_line(farm, "-L -n -c")
    assert (rc, err) == (0, "")
    assert out.startswith(CONN_TITLE)
    rows = sorted(out[len(CONN_TITLE) :].splitlines(keepends=True))
    assert rows == sorted(
        [
            # the SYN_RECV timeout is 60 s, one second has gone by
            conn_row(
                "TCP",
                "00:59",
                "SYN_RECV",
                "[2001:db8:1::7]:40000",
                "[2001:db8::10]:80",
                "[2001:db8:2::1]:80",
            ),
            conn_row(
                "UDP",
                "04:59",
                "UDP",
                "[2001:db8:1::7]:5353",
                "[2001:db8::10]:53",
                "[2001:db8:2::1]:53",
            ),
            # the template: the client masked to /64, port 0, state NONE
            conn_row(
                "TCP",
                "04:59",
                "NONE",
                "[2001:db8:1::]:0",
                "[2001:db8::10]:80",
                "[2001:db8:2::1]:80",
            ),
        ]
    )


def test_connection_listing_fwmark_template_and_mixed_family() -> None:
    """A fwmark template of an IPv6 service carries the mark in the first address word (the kernel
    prints it with %pI6, ipvsadm re-prints it with inet_ntop); a tunnel dest of another family is
    read with its own family (``daf`` in print_conn)."""
    ctl = FakeControl()
    ctl.conn_list = [
        ConnInfo(
            0,
            6,
            "2001:db8:1::",
            0,
            "::",
            0,
            "2001:db8:2::3",
            0,
            "NONE",
            55,
            0,
            template=True,
            fwmark=7,
        ),
        ConnInfo(
            6, 6, "2001:db8:1::7", 1234, "2001:db8::10", 80, "10.0.0.5", 80, "ESTABLISHED", 899, 2
        ),
        ConnInfo(17, 4, "10.1.1.8", 5353, "192.168.6.240", 53, "2001:db8:2::9", 53, "UDP", 299, 2),
    ]
    expected = (
        CONN_TITLE
        + conn_row("IP", "00:55", "NONE", "[2001:db8:1::]:0", "[0:7::]:0", "[2001:db8:2::3]:0")
        + conn_row(
            "TCP",
            "14:59",
            "ESTABLISHED",
            "[2001:db8:1::7]:1234",
            "[2001:db8::10]:80",
            "10.0.0.5:80",
        )
        + conn_row("UDP", "04:59", "UDP", "10.1.1.8:5353", "192.168.6.240:53", "[2001:db8:2::9]:53")
    )
    assert run_line(ctl, "-L -n -c") == (0, expected, "")


def test_names_are_bracketed_and_not_truncated(
    farm: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``-L`` without ``-n``: ipvsadm 1.30+ asks gethostbyaddr with the 16-byte address, prints
    ``[name]:service`` and cuts IPv6 names only at its 60-byte buffer."""
    names = {
        "2001:db8::10": "www.v6.example.com",
        "2001:db8:2::2": "a-rather-long-real-server-name.v6.example.com",
    }

    def gethostbyaddr(addr: str) -> tuple[str, list[str], list[str]]:
        if addr in names:
            return names[addr], [], [addr]
        raise socket.herror(1, "Unknown host")

    monkeypatch.setattr(socket, "gethostbyaddr", gethostbyaddr)
    rc, out, err = run_line(farm, "-L -t [2001:db8::10]:80")
    long_name = "[a-rather-long-real-server-name.v6.example.com]:http"
    assert (rc, err) == (0, "")
    assert out == (
        TITLE
        + "%s %s persistent %u mask %i\n" % ("TCP  [www.v6.example.com]:http", "rr", 300, 64)
        + dest_line("[2001:db8:2::1]:http", "Masq", 1, 1, 0)
        + dest_line(long_name, "Masq", 3, 0, 0)
    )
    rc, out, err = run_line(farm, "-L -c")
    assert "[www.v6.example.com]:http" in out and "[2001:db8:1::7]:mdns" in out


def test_save_and_restore_round_trip(farm: Engine) -> None:
    save = (
        "-A -t [2001:db8::10]:80 -s rr -p 300 -M 64\n"
        "-a -t [2001:db8::10]:80 -r [2001:db8:2::1]:80 -m -w 1\n"
        "-a -t [2001:db8::10]:80 -r [2001:db8:2::2]:80 -m -w 3\n"
        "-A -u [2001:db8::10]:53 -s sh -b sh-port\n"
        "-a -u [2001:db8::10]:53 -r [2001:db8:2::1]:53 -m -w 1\n"
        "-A -f 7 -6 -s rr -p 60\n"
        "-a -f 7 -6 -r [2001:db8:2::3]:0 -g -w 1\n"
    )
    assert run_line(farm, "-S -n") == (0, save, "")
    fresh = Engine(random.Random(2))
    assert run_line(fresh, "-R", stdin=save) == (0, "", "")
    assert run_line(fresh, "-S -n") == (0, save, "")


def test_fwmark_ipv6_is_its_own_service() -> None:
    ctl = FakeControl()
    assert run_line(ctl, "-A -f 7 -6 -s wlc -p -M 48") == (0, "", "")
    assert run_line(ctl, "-A -f 7 -s rr") == (0, "", "")
    assert run_line(ctl, "-a -f 7 -6 -r [2001:db8::2]:0 -m")[0] == 0
    assert run_line(ctl, "-L -n -f 7 -6") == (
        0,
        TITLE
        + "FWM  7 IPv6 wlc persistent 360 mask 48\n"
        + dest_line("[2001:db8::2]:0", "Masq", 1, 0, 0),
        "",
    )
    assert run_line(ctl, "-L -n -f 7") == (0, TITLE + "FWM  7 rr\n", "")
    assert run_line(ctl, "-S -n") == (
        0,
        "-A -f 7 -s rr\n-A -f 7 -6 -s wlc -p 360 -M 48\n-a -f 7 -6 -r [2001:db8::2]:0 -m -w 1\n",
        "",
    )
    assert run_line(ctl, "-D -f 7 -6") == (0, "", "")
    assert run_line(ctl, "-D -f 7 -6") == (255, "", "No such service\n")


def test_mixed_family_tunnels_and_sorting() -> None:
    """IPv4 services sort before IPv6 ones (AF_INET 2 < AF_INET6 10); a v6 service with a v4 tunnel
    dest prints the v4 one truncated at 28 like any v4 name."""
    ctl = FakeControl()
    for line in (
        "-A -t [2001:db8::1]:80 -s rr",
        "-a -t [2001:db8::1]:80 -r 10.0.0.5:80 -i",
        "-a -t [2001:db8::1]:80 -r [2001:db8::5]:80 -i",
        "-A -t 10.0.0.1:80 -s rr",
        "-a -t 10.0.0.1:80 -r [2001:db8::5]:80 -i",
        "-A -t [::1]:80 -s rr",
    ):
        assert run_line(ctl, line) == (0, "", ""), line
    assert run_line(ctl, "-L -n") == (
        0,
        HEADER
        + TITLE
        + "TCP  10.0.0.1:80 rr\n"
        + dest_line("[2001:db8::5]:80", "Tunnel", 1, 0, 0)
        + "TCP  [::1]:80 rr\n"
        + "TCP  [2001:db8::1]:80 rr\n"
        + dest_line("10.0.0.5:80", "Tunnel", 1, 0, 0)
        + dest_line("[2001:db8::5]:80", "Tunnel", 1, 0, 0),
        "",
    )
    assert (
        run_line(ctl, "-S -n")[1].splitlines()[1]
        == "-a -t 10.0.0.1:80 -r [2001:db8::5]:80 -i -w 1 --tun-type ipip"
    )


def test_inet_ntop_forms_in_listings() -> None:
    ctl = FakeControl()
    assert run_line(ctl, "-A -t [2001:DB8:0:0:1:0:0:1]:80") == (0, "", "")
    assert run_line(ctl, "-A -t [::ffff:0:0:1]:80 -p") == (0, "", "")
    out = run_line(ctl, "-L -n")[1]
    # glibc compresses the first of two equal zero runs and keeps lowercase hex.
    assert "TCP  [2001:db8::1:0:0:1]:80 wlc\n" in out
    assert "TCP  [::ffff:0:0:1]:80 wlc persistent 360\n" in out


@pytest.mark.parametrize(
    ("line", "code", "stderr"),
    [
        ("-A -t [2001:db8::1:80", 2, "illegal virtual server address[:port] specified\n"),
        ("-A -t [2001:db8::1]80", 2, "illegal virtual server address[:port] specified\n"),
        ("-A -t [2001:db8::zz]:80", 2, "illegal virtual server address[:port] specified\n"),
        ("-A -t [2001:db8::1]:99999", 2, "illegal virtual server address[:port] specified\n"),
        (
            "-A -t [2001:db8::1]:nosuchservice",
            2,
            "illegal virtual server address[:port] specified\n",
        ),
        # a bare IPv6 address is accepted (no port: 0), so only a persistent service may omit it
        ("-A -t 2001:db8::1", 2, "Zero port specified for non-persistent service\n"),
        ("-A -t [2001:db8::1]:80 -p -M 0", 2, "illegal ipv6 netmask specified\n"),
        ("-A -t [2001:db8::1]:80 -p -M 129", 2, "illegal ipv6 netmask specified\n"),
        ("-A -t [2001:db8::1]:80 -p -M 255.255.255.0", 2, "illegal ipv6 netmask specified\n"),
        ("-A -t [2001:db8::1]:80 -p -M ff", 2, "illegal ipv6 netmask specified\n"),
        ("-A -6 -t [2001:db8::1]:80", 2, "-6 used before -f\n\n"),
        (
            "-a -t [2001:db8::1]:80 -r [2001:db8::2",
            2,
            "illegal real server address[:port] specified\n",
        ),
        (
            "-a -t [2001:db8::1]:80 -r [2001:db8::2]",
            2,
            "illegal real server address[:port] specified\n",
        ),
        (
            "-a -t [2001:db8::1]:80 -r 10.0.0.2:80 -m",
            2,
            "Different address family is allowed only for tunneling servers\n",
        ),
        (
            "-a -t 10.0.0.1:80 -r [2001:db8::2]:80 -g",
            2,
            "Different address family is allowed only for tunneling servers\n",
        ),
    ],
)
def test_bad_ipv6_input(line: str, code: int, stderr: str) -> None:
    assert run_line(FakeControl(), line) == (code, "", stderr)


@pytest.mark.parametrize(
    ("line", "stderr"),
    [
        # ip_vs_ctl.c: an IPv6 real server must be unicast and not link-local (EINVAL)
        (
            "-a -t [2001:db8::1]:80 -r [fe80::1]:80 -m",
            "Invalid operation.  Possibly wrong module version, address not unicast, ...\n",
        ),
        (
            "-a -t [2001:db8::1]:80 -r [ff02::1]:80 -m",
            "Invalid operation.  Possibly wrong module version, address not unicast, ...\n",
        ),
        ("-a -t [2001:db8::1]:80 -r [2001:db8::2]:80 -m", ""),
        ("-a -t [2001:db8::1]:80 -r [2001:db8::2]:80 -m", "Destination already exists\n"),
        ("-d -t [2001:db8::1]:80 -r [2001:db8::3]:80", "No such destination\n"),
        ("-D -t [2001:db8::9]:80", "No such service\n"),
    ],
)
def test_ipvs_refusals_for_ipv6(line: str, stderr: str) -> None:
    ctl = FakeControl()
    assert run_line(ctl, "-A -t [2001:db8::1]:80") == (0, "", "")
    if "already" in stderr:
        assert run_line(ctl, line)[0] == 0
    assert run_line(ctl, line) == ((255 if stderr else 0), "", stderr)


def test_sync_daemon_with_an_ipv6_group() -> None:
    ctl = FakeControl()
    line = "--start-daemon master --mcast-interface eth0 --mcast-group ff02::1:81 --syncid 3"
    assert run_line(ctl, line) == (0, "", "")
    # maxlen: a 1500-byte link less the IPv6 and UDP headers (48 bytes)
    assert run_line(ctl, "-L --daemon") == (
        0,
        "master sync daemon (mcast=eth0, syncid=3, maxlen=1452, group=ff02::1:81, port=8848, "
        "ttl=1)\n",
        "",
    )
    assert run_line(ctl, "--start-daemon backup --mcast-group 2001:db8::1") == (
        2,
        "",
        "invalid IPv6 mcast-group `2001:db8::1'\n",
    )
