"""pylvsadm command lines: ipvsadm 1.31's parsing, messages, exit codes, and what reaches IPVS."""

# ruff: noqa: E501  (tables of command lines and messages read best one per line)

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
from pylvsadm_fake import FakeControl, load_rules, run, run_line, without_gue

import pylvs.cli.pylvsadm as pylvsadm
from pylvs.core.control import DestSpec, ServiceSpec, Timeouts
from pylvs.core.engine import Engine

GOLDEN = Path(__file__).parent / "golden"
TRY = "Try `ipvsadm -h' or 'ipvsadm --help' for more information.\n"


@pytest.fixture
def ctl() -> FakeControl:
    return FakeControl()


def last_call(ctl: FakeControl) -> tuple[str, Any]:
    return ctl.calls[-1]


# --- what each command sends ------------------------------------------------------------------


def test_add_service_defaults(ctl: FakeControl) -> None:
    assert run_line(ctl, "-A -t 10.0.0.1:80") == (0, "", "")
    assert last_call(ctl) == (
        "add_service",
        ServiceSpec(af=4, protocol=6, addr="10.0.0.1", port=80, scheduler="wlc", timeout=0),
    )


def test_persistent_without_value_is_360_and_takes_no_dash_word(ctl: FakeControl) -> None:
    assert run_line(ctl, "-A -u 10.0.0.1:53 -p -s rr")[0] == 0
    spec = last_call(ctl)[1]
    assert (spec.protocol, spec.persistent, spec.timeout, spec.scheduler) == (17, True, 360, "rr")
    assert run_line(ctl, "-A -t 10.0.0.1:0 -p 60 -M 255.255.0.0")[0] == 0
    spec = last_call(ctl)[1]
    assert (spec.port, spec.timeout, spec.netmask) == (0, 60, 16)


def test_combined_short_options_and_glued_arguments(ctl: FakeControl) -> None:
    assert run(ctl, "-At10.0.0.1:80", "-srr", "-p=30")[0] == 0
    spec = last_call(ctl)[1]
    assert (spec.addr, spec.port, spec.scheduler, spec.timeout) == ("10.0.0.1", 80, "rr", 30)
    assert run(ctl, "--add-server", "--tcp-service=10.0.0.1:80", "--real-server", "10.0.0.2",
               "--masquerading", "--weight=3")[0] == 0  # fmt: skip
    _, dest = last_call(ctl)[1]
    assert dest == DestSpec(af=4, addr="10.0.0.2", port=80, weight=3, fwd=0)


def test_edit_resets_unspecified_options(ctl: FakeControl) -> None:
    run_line(ctl, "-A -t 10.0.0.1:80 -s rr -p 100")
    assert run_line(ctl, "-E -t 10.0.0.1:80")[0] == 0
    spec = last_call(ctl)[1]
    assert (spec.scheduler, spec.persistent, spec.netmask, spec.sched_flags) == (
        "wlc",
        False,
        32,
        0,
    )
    run_line(ctl, "-a -t 10.0.0.1:80 -r 10.0.0.2 -m -w 5 -x 10 -y 2")
    assert run_line(ctl, "-e -t 10.0.0.1:80 -r 10.0.0.2")[0] == 0
    dest = last_call(ctl)[1][1]
    assert (dest.fwd, dest.weight, dest.u_threshold, dest.l_threshold) == (3, 1, 0, 0)


def test_direct_routing_and_tunnel_dests_take_the_service_port(ctl: FakeControl) -> None:
    run_line(ctl, "-A -t 10.0.0.1:80")
    run_line(ctl, "-a -t 10.0.0.1:80 -r 10.0.0.2:8080")
    assert last_call(ctl)[1][1].port == 80
    run_line(ctl, "-a -t 10.0.0.1:80 -r 10.0.0.3:8080 -i")
    assert last_call(ctl)[1][1].port == 80
    run_line(ctl, "-a -t 10.0.0.1:80 -r 10.0.0.4:8080 -m")
    assert last_call(ctl)[1][1].port == 8080
    run_line(ctl, "-A -f 5")
    run_line(ctl, "-a -f 5 -r 10.0.0.5:8080 -g")
    assert last_call(ctl)[1][1].port == 8080


def test_fwmark_ipv6_and_ipv6_services(ctl: FakeControl) -> None:
    assert run_line(ctl, "-A -f 9 -6 -s rr -p -M 64")[0] == 0
    spec = last_call(ctl)[1]
    assert (spec.fwmark, spec.af, spec.netmask, spec.protocol) == (9, 6, 64, 6)
    assert run_line(ctl, "-A -t [2001:db8::1]:443 -p")[0] == 0
    spec = last_call(ctl)[1]
    assert (spec.af, spec.addr, spec.port, spec.netmask) == (6, "2001:db8::1", 443, 128)
    assert run_line(ctl, "-a -t [2001:db8::1]:443 -r [2001:db8::2]:443 -m")[0] == 0
    assert last_call(ctl)[1][1].addr == "2001:db8::2"


def test_port_names_resolve_with_the_service_protocol(ctl: FakeControl) -> None:
    assert run_line(ctl, "-A -t 10.0.0.1:http")[0] == 0
    assert last_call(ctl)[1].port == 80


def test_sched_flags_and_ops(ctl: FakeControl) -> None:
    assert run_line(ctl, "-A -u 10.0.0.1:53 -b sh-port,sh-fallback -s sh -o")[0] == 0
    spec = last_call(ctl)[1]
    assert (spec.sched_flags, spec.ops) == (0x18, True)
    assert run_line(ctl, "-A -t 10.0.0.1:81 -b flag-3")[0] == 0
    assert last_call(ctl)[1].sched_flags == 0x20


def test_tunnel_options_reach_the_dest(ctl: FakeControl) -> None:
    run_line(ctl, "-A -t 10.0.0.1:80")
    line = "-a -t 10.0.0.1:80 -r 10.0.0.2 -i --tun-type gue --tun-port 6080 --tun-remcsum"
    # pylvs encapsulates in IPIP only: the command line is understood, the dest refused.
    assert run_line(ctl, line) == (
        255,
        "",
        "ipvsadm: tunnel type gue is not supported (only ipip)\n",
    )
    dest = last_call(ctl)[1][1]
    assert (dest.fwd, dest.tun_type, dest.tun_port, dest.tun_flags) == (2, 1, 6080, 2)
    assert run_line(ctl, "-a -t 10.0.0.1:80 -r 10.0.0.2 -i --tun-type ipip")[0] == 0


def test_set_zero_flush(ctl: FakeControl) -> None:
    assert run_line(ctl, "--set 10 0 20") == (0, "", "")
    assert last_call(ctl) == ("set_timeouts", Timeouts(10, 0, 20))
    assert run_line(ctl, "-L --timeout") == (0, "Timeout (tcp tcpfin udp): 10 120 20\n", "")
    assert run_line(ctl, "-Z")[0] == 0
    assert last_call(ctl) == ("zero", None)
    assert run_line(ctl, "-C")[0] == 0
    assert last_call(ctl) == ("flush", None)


def test_no_arguments_lists_the_table(ctl: FakeControl) -> None:
    run_line(ctl, "-A -t 127.0.0.1:80")
    rc, out, _ = run(ctl)
    assert rc == 0
    assert out.startswith("IP Virtual Server version 1.2.1 (size=4096)\n")


def test_list_one_service_has_no_header(ctl: FakeControl) -> None:
    run_line(ctl, "-A -t 10.0.0.1:80 -s rr")
    assert run_line(ctl, "-Ln -t 10.0.0.1:80") == (
        0,
        "Prot LocalAddress:Port Scheduler Flags\n"
        "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n"
        "TCP  10.0.0.1:80 rr\n",
        "",
    )
    assert run_line(ctl, "-L -n -t 10.0.0.1:81") == (1, "", "No such service\n")


def test_sync_daemon_commands_and_listing() -> None:
    # The engine in-process: it records the daemons (pylvsd adds the sockets).
    engine = Engine()
    assert run_line(engine, "-L --daemon") == (0, "", "")
    assert run_line(engine, "--start-daemon master --syncid 3") == (0, "", "")
    assert run_line(engine, "--start-daemon backup --mcast-interface br0 --mcast-port 9000") == (
        0,
        "",
        "",
    )
    assert run_line(engine, "--start-daemon master") == (255, "", "Daemon has already run\n")
    assert run_line(engine, "-L --daemon") == (
        0,
        "master sync daemon (mcast=eth0, syncid=3, maxlen=1472, group=224.0.0.81, port=8848,"
        " ttl=1)\n"
        "backup sync daemon (mcast=br0, syncid=0, maxlen=1472, group=224.0.0.81, port=9000,"
        " ttl=1)\n",
        "",
    )
    assert run_line(engine, "--stop-daemon backup") == (0, "", "")
    assert run_line(engine, "--stop-daemon backup") == (255, "", "No daemon is running\n")
    assert run_line(engine, "--start-daemon slave")[0] == 2


def test_help_and_version() -> None:
    rc, out, err = run(None, "-h")
    assert rc == 0 and err == ""
    assert out.startswith("ipvsadm v1.31 2019/12/24 (compiled with popt and IPVS v1.2.1)\nUsage:\n")
    assert "  ipvsadm -A|E virtual-service [-s scheduler]" in out
    assert run(None, "--version") == (
        0,
        "ipvsadm v1.31 2019/12/24 (compiled with popt and IPVS v1.2.1)\n",
        "",
    )


# --- refusals: exact stderr and exit code -----------------------------------------------------

ERRORS = [
    ("-n -L", 255, TRY),
    ("foo", 255, TRY),
    ("--bogus", 255, TRY),
    ("-t 10.0.0.1:80", 255, TRY),
    ("-A -t", 255, "-t: missing argument\n"),
    ("-L --bogus", 255, "--bogus: unknown option\n"),
    ("-Lq", 255, "-Lq: unknown option\n"),
    ("-L -A", 2, "invalid option `-A'\n"),
    ("-L -h", 2, "invalid option `-h'\n"),
    ("-L --start-daemon master", 2, "invalid option `master'\n"),
    ("-A -t 10.0.0.1:80 extra", 2, "unexpected argument extra\n"),
    ("-A -t 10.0.0.1:80 -- -s", 2, "unexpected argument -s\n"),
    ("-A -t 10.0.0.1", 2, "Zero port specified for non-persistent service\n"),
    ("-A -t 80", 2, "illegal virtual server address[:port] specified\n"),
    ("-A -t 10.0.0.1:99999", 2, "illegal virtual server address[:port] specified\n"),
    ("-A -t [::1] -p", 2, "illegal virtual server address[:port] specified\n"),
    ("-A -t 10.0.0.1:80 -t 10.0.0.2:80", 2, "multiple 'service-address' options specified\n"),
    ("-A -t 10.0.0.1:80 -f 1", 2, "multiple 'service-address' options specified\n"),
    ("-A -f 0", 2, "invalid fwmark value `0' specified\n"),
    ("-A -f 4294967296", 2, "invalid fwmark value `4294967296' specified\n"),
    ("-A -6 -f 1", 2, "-6 used before -f\n\n"),
    ("-A -t 10.0.0.1:80 -p 0", 2, "invalid timeout value `0' specified\n"),
    ("-A -t 10.0.0.1:80 -p 2678401", 2, "invalid timeout value `2678401' specified\n"),
    ("-A -t 10.0.0.1:80 -p x", 2, "invalid timeout value `x' specified\n"),
    ("-A -t 10.0.0.1:80 -p -M 0xffffff00", 0, ""),
    # pylvs carries masks as prefix lengths, so a non-contiguous mask is refused as unparsable.
    ("-A -t 10.0.0.1:80 -p -M 1.2.3", 2, "illegal virtual server persistent mask specified\n"),
    ("-A -t 10.0.0.1:80 -M 255.255.255.0x", 2, "illegal virtual server persistent mask specified\n"),
    ("-A -t [2001:db8::1]:80 -M 129", 2, "illegal ipv6 netmask specified\n"),
    ("-A -t 10.0.0.1:80 -o", 2, "One-Packet Scheduling is only for UDP virtual services\n"),
    ("-A -t 10.0.0.1:80 -b bogus", 2, "invalid scheduler flag `bogus'\n"),
    ("-A -t 10.0.0.1:80 -b sh-port", 2, "incompatible scheduler flag `sh-port'\n"),
    ("-A -t 10.0.0.1:80 -s mh -b mh-port,sh-port", 2, "incompatible scheduler flag `sh-port'\n"),
    ("-A -t 10.0.0.1:80 -n", 2, "Illegal 'numeric' option with the 'add-service' command\n"),
    ("-A -s rr", 2, "You need to supply the 'service-address' option for the 'add-service' command\n"),
    ("-D -t 10.0.0.1:80 -s rr", 2, "Illegal 'scheduler' option with the 'delete-service' command\n"),
    ("-a -t 10.0.0.1:80", 2, "You need to supply the 'real-server' option for the 'add-server' command\n"),
    ("-a -t 10.0.0.1:80 -r 10.0.0.2 -w 65536", 2, "illegal weight specified\n"),
    ("-a -t 10.0.0.1:80 -r 10.0.0.2 -w -1", 2, "illegal weight specified\n"),
    ("-a -t 10.0.0.1:80 -r 10.0.0.2 -x 2147483648", 2, "illegal u_threshold specified\n"),
    ("-a -t 10.0.0.1:80 -r 10.0.0.2 -y z", 2, "illegal l_threshold specified\n"),
    ("-a -t 10.0.0.1:80 -r 10.0.0.2:x", 2, "illegal real server address[:port] specified\n"),
    ("-a -t 10.0.0.1:80 -r 10.0.0.2 -m -g", 2, "multiple 'forwarding-method' options specified\n"),
    ("-a -t 10.0.0.1:80 -r [::2]:80 -m", 2, "Different address family is allowed only for tunneling servers\n"),
    ("-a -t 10.0.0.1:80 -r 10.0.0.2 -m --tun-type gre", 2, "Tunnel options conflict with forward method\n"),
    ("-a -t 10.0.0.1:80 -r 10.0.0.2 -i --tun-type vxlan", 2, "illegal tunnel type specified\n"),
    ("-a -t 10.0.0.1:80 -r 10.0.0.2 -i --tun-port 0", 2, "illegal tunnel port specified\n"),
    ("-a -t 10.0.0.1:80 -r 10.0.0.2 -i --tun-port 5", 2, "Illegal 'tun-port' option with the 'ipip' tunnel type\n"),
    ("-a -t 10.0.0.1:80 -r 10.0.0.2 -i --tun-type gue", 2, "You need to supply the 'tun-port' option for the 'gue' tunnel type\n"),
    ("-a -t 10.0.0.1:80 -r 10.0.0.2 -i --tun-type gue --tun-port 1 --tun-csum --tun-nocsum", 2,
     "The option 'tun-csum' conflicts with the 'tun-nocsum' option in the 'gue' tunnel type\n"),
    ("-a -t 10.0.0.1:80 -r 10.0.0.2 -i --tun-type gre --tun-remcsum", 2, "Illegal 'tun-remcsum' option with the 'gre' tunnel type\n"),
    ("-L -c -t 10.0.0.1:80", 2, "The option 'service-address' conflicts with the 'connection' option in the 'list' command\n"),
    ("-L --timeout --daemon", 2, "The option 'daemon' conflicts with the 'timeout' option in the 'list' command\n"),
    ("-L -c --stats", 2, "options conflicts in the list command\n"),
    ("-L --timeout --persistent-conn", 2, "options conflicts in the list command\n"),
    ("-L -s rr", 2, "Illegal 'scheduler' option with the 'list' command\n"),
    ("-L -n -n", 2, "multiple 'numeric' options specified\n"),
    ("-S -c", 2, "Illegal 'connection' option with the 'save' command\n"),
    ("-C -n", 2, "Illegal 'numeric' option with the 'flush' command\n"),
    ("-Z -t 10.0.0.1:80 -n", 2, "Illegal 'numeric' option with the 'zero' command\n"),
    ("--set 1 2", 2, "--set option requires 3 timeout values\n"),
    ("--set 1 2 x", 2, "invalid timeout value `x' specified\n"),
    ("--set 1 2 3 4", 2, "unexpected argument 4\n"),
    ("--start-daemon primary", 2, "illegal start-daemon parameter specified\n"),
    ("--stop-daemon primary", 2, "illegal start_daemon specified\n"),
    ("--start-daemon master --syncid 256", 2, "illegal syncid specified\n"),
    ("--start-daemon master --mcast-port 0", 2, "illegal mcast-port specified\n"),
    ("--start-daemon master --mcast-ttl 256", 2, "illegal mcast-ttl specified\n"),
    ("--start-daemon master --sync-maxlen 65508", 2, "illegal sync-maxlen specified\n"),
    ("--start-daemon master --mcast-group 10.0.0.1", 2, "invalid IPv4 mcast-group `10.0.0.1'\n"),
    ("--start-daemon master --mcast-group ::1", 2, "invalid IPv6 mcast-group `::1'\n"),
    ("--stop-daemon master --mcast-interface eth1", 2, "Illegal 'mcast-interface' option with the 'stop-daemon' command\n"),
]  # fmt: skip


@pytest.mark.parametrize(("line", "code", "stderr"), ERRORS)
def test_refused_command_lines(ctl: FakeControl, line: str, code: int, stderr: str) -> None:
    rc, out, err = run_line(ctl, line)
    assert (rc, err) == (code, stderr)
    assert out == ""


REFUSED_BY_IPVS = [
    (["-A -t 10.0.0.1:80"], "-A -t 10.0.0.1:80", "Service already exists\n"),
    ([], "-A -t 10.0.0.1:80 -s nosuch", "Scheduler or persistence engine not found\n"),
    ([], "-E -t 10.0.0.1:80", "No such service\n"),
    ([], "-D -t 10.0.0.1:80", "No such service\n"),
    ([], "-Z -t 10.0.0.1:80", "No such service\n"),
    ([], "-a -t 10.0.0.1:80 -r 10.0.0.2", "Service not defined\n"),
    (["-A -t 10.0.0.1:80", "-a -t 10.0.0.1:80 -r 10.0.0.2"], "-a -t 10.0.0.1:80 -r 10.0.0.2",
     "Destination already exists\n"),
    (["-A -t 10.0.0.1:80"], "-e -t 10.0.0.1:80 -r 10.0.0.2", "No such destination\n"),
    (["-A -t 10.0.0.1:80"], "-d -t 10.0.0.1:80 -r 10.0.0.2", "No such destination\n"),
    ([], "-d -t 10.0.0.1:80 -r 10.0.0.2", "Service not defined\n"),
]  # fmt: skip


@pytest.mark.parametrize(("setup", "line", "stderr"), REFUSED_BY_IPVS)
def test_ipvs_refusals_print_ipvs_strerror(
    ctl: FakeControl, setup: list[str], line: str, stderr: str
) -> None:
    for prep in setup:
        assert run_line(ctl, prep)[0] == 0
    assert run_line(ctl, line) == (255, "", stderr)


def test_strerror_falls_back_to_the_c_library() -> None:
    import errno

    assert pylvsadm.ipvs_strerror("add_dest", errno.ERANGE) == "Numerical result out of range"
    assert pylvsadm.ipvs_strerror("flush", errno.EPERM) == "Permission denied (you must be root)"


# --- the legality matrix ----------------------------------------------------------------------

# One legal and the first illegal option of each command, read off commands_v_options.
MATRIX = [
    ("-A -t 10.0.0.1:80 -c", "Illegal 'connection' option with the 'add-service' command"),
    ("-E -t 10.0.0.1:80 -r 1.1.1.1", "Illegal 'real-server' option with the 'edit-service' command"),
    ("-D -t 10.0.0.1:80 -p", "Illegal 'persistent' option with the 'delete-service' command"),
    ("-C -t 10.0.0.1:80", "Illegal 'service-address' option with the 'flush' command"),
    ("-L -w 1", "Illegal 'weight' option with the 'list' command"),
    ("-L --pe sip", "Illegal 'pe' option with the 'list' command"),
    ("-a -t 10.0.0.1:80 -r 1.1.1.1 -M 1.2.3.4", "Illegal 'netmask' option with the 'add-server' command"),
    ("-a -t 10.0.0.1:80 -r 1.1.1.1 --tun-info", "Illegal 'tun-info' option with the 'add-server' command"),
    ("-d -t 10.0.0.1:80 -r 1.1.1.1 -w 1", "Illegal 'weight' option with the 'delete-server' command"),
    ("-e -t 10.0.0.1:80", "You need to supply the 'real-server' option for the 'edit-server' command"),
    ("--set 1 1 1 -n", "Illegal 'numeric' option with the 'set' command"),
    ("--start-daemon master --timeout", "Illegal 'timeout' option with the 'start-daemon' command"),
    ("--stop-daemon master --mcast-group 224.0.0.82", "Illegal 'mcast-group' option with the 'stop-daemon' command"),
    ("-R -n", "Illegal 'numeric' option with the 'restore' command"),
    ("-S --stats", "Illegal 'stats' option with the 'save' command"),
    ("-Z --nosort", "Illegal 'nosort' option with the 'zero' command"),
]  # fmt: skip


@pytest.mark.parametrize(("line", "message"), MATRIX)
def test_option_matrix(ctl: FakeControl, line: str, message: str) -> None:
    assert run_line(ctl, line) == (2, "", message + "\n")


LEGAL = [
    "-L -n --stats --exact --nosort",
    "-L -n --rate",
    "-L -n --thresholds --sort",
    "-L -n --persistent-conn",
    "-L -n --tun-info",
    "-l -c -n --persistent-conn",
    "-L --timeout -n",
    "-S -n",
    "-Z",
]


@pytest.mark.parametrize("line", LEGAL)
def test_legal_listing_combinations(ctl: FakeControl, line: str) -> None:
    rc, _, err = run_line(ctl, line)
    assert (rc, err) == (0, "")


# --- save and restore -------------------------------------------------------------------------

SAVE = (GOLDEN / "save.txt").read_text()


def load(ctl: Any, lines: str) -> None:
    for line in lines.splitlines():
        rc, out, err = run_line(ctl, line)
        assert (rc, out, err) == (0, "", ""), line


def test_save_golden(ctl: FakeControl) -> None:
    # Thresholds are set but ipvsadm -S does not save them.
    load_rules(
        ctl, SAVE.replace("192.168.16.3:443 -m -w 1", "192.168.16.3:443 -m -w 1 -x 10 -y 5")
    )
    assert run_line(ctl, "-S -n") == (0, SAVE, "")


def test_restore_round_trip(ctl: FakeControl) -> None:
    plain = without_gue(SAVE)  # pylvs refuses GUE real servers
    load(ctl, plain)
    _, saved, _ = run_line(ctl, "-S -n")
    fresh = FakeControl()
    stdin = (
        "# saved by ipvsadm-save\n" + "\n".join("ipvsadm " + s for s in saved.splitlines()) + "\n"
    )
    assert run_line(fresh, "-R", stdin=stdin) == (0, "", "")
    assert run_line(fresh, "-S -n") == (0, plain, "")


def test_restore_goes_on_after_a_refused_line_and_returns_the_last_result(
    ctl: FakeControl,
) -> None:
    stdin = "-A -t 10.0.0.1:80\n-A -t 10.0.0.1:80\n\n-A -t 10.0.0.2:80\n"
    assert run_line(ctl, "-R", stdin=stdin) == (0, "", "Service already exists\n")
    assert len(ctl.table) == 2
    assert run_line(ctl, "-R", stdin="-A -t 10.0.0.3:80\n-D -t 10.0.0.9:80\n")[0] == 255


def test_restore_stops_at_a_command_line_error(ctl: FakeControl) -> None:
    stdin = "-A -t 10.0.0.1:80\n-A -t 10.0.0.2\n-A -t 10.0.0.3:80\n"
    rc, _, err = run_line(ctl, "-R", stdin=stdin)
    assert (rc, err) == (2, "Zero port specified for non-persistent service\n")
    assert len(ctl.table) == 1
    assert run_line(ctl, "-R", stdin="-R\n") == (255, "", TRY)


# --- reaching pylvsd -------------------------------------------------------------------------


def test_missing_daemon_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    def unavailable() -> Any:
        raise pylvsadm.ControlUnavailable(pylvsadm.NOT_RUNNING)

    monkeypatch.setattr(pylvsadm, "default_control", unavailable)
    out, err = io.StringIO(), io.StringIO()
    rc = pylvsadm.main(["-A", "-t", "10.0.0.1:80"], stdout=out, stderr=err, prog="pylvsadm")
    assert (rc, out.getvalue()) == (2, "")
    assert err.getvalue() == "pylvsd is not running and could not be started\n"
    # The command line is checked before pylvsd is needed.
    rc = pylvsadm.main(["-A", "-t", "80"], stdout=out, stderr=err, prog="pylvsadm")
    assert rc == 2


EMPTY_LISTING = (
    "IP Virtual Server version 1.2.1 (size=4096)\n"
    "Prot LocalAddress:Port Scheduler Flags\n"
    "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n"
)


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("-L -n", EMPTY_LISTING),
        ("", EMPTY_LISTING),
        ("-S -n", ""),
        ("-L --timeout", "Timeout (tcp tcpfin udp): 900 120 300\n"),
        ("-L --daemon", ""),
        ("-L -n -c", "IPVS connection entries\npro expire state       source             virtual            destination\n"),
    ],
)
def test_listings_without_a_daemon_show_a_fresh_table_and_start_nothing(
    monkeypatch: pytest.MonkeyPatch, line: str, expected: str
) -> None:
    """Kernel IPVS lists an empty table; before, pylvsadm -L -n started pylvsd (and its rules)."""
    import pylvs.ctl

    def must_not_start(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a listing started pylvsd")

    monkeypatch.setattr(pylvs.ctl, "connect_or_start", must_not_start)
    monkeypatch.setattr(pylvs.ctl, "connect_if_running", lambda *a, **k: None)
    out, err = io.StringIO(), io.StringIO()
    rc = pylvsadm.main(line.split(), stdout=out, stderr=err, prog="pylvsadm")
    assert (rc, out.getvalue(), err.getvalue()) == (0, expected, "")


def test_a_refusal_of_pylvs_own_is_shown_with_its_reason(ctl: FakeControl) -> None:
    """A backend limit (IPVS would accept it) has no ipvsadm message: pylvsd's reason is shown."""
    from pylvs.core.control import IPVSError

    def refuse(spec: ServiceSpec) -> None:
        raise IPVSError(95, "add_service", "the afpacket backend cannot serve fwmark services", True)

    ctl.add_service = refuse  # type: ignore[method-assign]
    assert run_line(ctl, "-A -f 1") == (
        255,
        "",
        "ipvsadm: the afpacket backend cannot serve fwmark services\n",
    )


def test_default_control_wraps_start_failures(monkeypatch: pytest.MonkeyPatch) -> None:
    import pylvs.ctl

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise OSError("cannot start")

    monkeypatch.setattr(pylvs.ctl, "connect_or_start", refuse)
    with pytest.raises(pylvsadm.ControlUnavailable, match="pylvsd is not running"):
        pylvsadm.default_control()


def test_program_name_in_messages() -> None:
    err = io.StringIO()
    rc = pylvsadm.main(["--bogus"], stdout=io.StringIO(), stderr=err, prog="pylvsadm")
    assert rc == 255
    assert err.getvalue() == "Try `pylvsadm -h' or 'pylvsadm --help' for more information.\n"
