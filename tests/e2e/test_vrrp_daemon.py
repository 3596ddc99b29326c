"""pylvsd's VRRP service inside the daemon: fail-closed queue rules, notify scripts (compared
with keepalived's), track_interface, sync groups, script_user, SIGHUP reload, ``pylvs vrrp
status``, lvs_sync_daemon following the role, use_vmac. Timings are printed (``-s``), never
asserted."""

from __future__ import annotations

import functools
import json
import re
import shutil
import signal
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from lvslab import REPO, pylvs_argv
from vrrplab import ADDR, VIP, VrrpLan, instance_conf, keepalived_conf, needs_vrrp_peers, vrrp_lan

from pylvs.testing.netns import wait_until

pytestmark = needs_vrrp_peers


@pytest.fixture
def lan(tmp_path: Path) -> Iterator[VrrpLan]:
    with vrrp_lan(tmp_path) as lan:
        yield lan


VS = f"""virtual_server {VIP} 80 {{
    lb_kind NAT
    protocol TCP
    real_server 10.81.0.10 80 {{
    }}
}}
"""


def test_queue_rules_fail_closed_with_vrrp(lan: VrrpLan) -> None:
    """A keepalived.conf with a vrrp_instance is one node of an HA pair: its queue rules fail
    closed (no --queue-bypass), so a killed master's kernel does not reset the connections the
    backup takes over. Without vrrp_instance the default stays fail open."""
    lan.start_pylvs("a", keepalived_conf(instance_conf(150), top=VS))
    lan.wait_holder("a")
    rules = str(lan.lab.run("a", ["iptables", "-t", "raw", "-S"], text=True).stdout)
    assert "NFQUEUE" in rules and "--queue-bypass" not in rules, rules
    lan.start_pylvs("b", "global_defs {\n    router_id lab\n}\n" + VS)
    rules = str(lan.lab.run("b", ["iptables", "-t", "raw", "-S"], text=True).stdout)
    assert "--queue-bypass" in rules, rules


# -- notify scripts, track_interface, sync groups: pylvsd next to keepalived -----------------

VIP2 = "10.81.0.101"

RECORDER = """#!/bin/sh
# one line per call: the arguments keepalived (or pylvsd) gives, and who runs it
echo "$* uid=$(id -u)" >> {out}
"""


def write_recorder(path: Path, out: Path) -> Path:
    path.write_text(RECORDER.format(out=out))
    path.chmod(0o755)
    return path


def notifies(script: Path, tag: str) -> str:
    """notify_master ... notify lines calling the recorder with ``tag``-STATE as first word."""
    return (
        f'notify_master "{script} {tag}-master"\n'
        f'notify_backup "{script} {tag}-backup"\n'
        f'notify_fault "{script} {tag}-fault"\n'
        f'notify_stop "{script} {tag}-stop"\n'
        f'notify "{script} {tag}-notify"\n'
    )


def instance(
    name: str,
    vrid: int,
    vip: str,
    priority: int,
    extra: str = "",
) -> str:
    body = (
        "state BACKUP\ninterface eth0\n"
        f"virtual_router_id {vrid}\npriority {priority}\nadvert_int 1\n"
        f"virtual_ipaddress {{\n    {vip}/24 dev eth0\n}}\n" + extra
    )
    inner = "".join(f"    {line}\n" for line in body.splitlines())
    return f"vrrp_instance {name} {{\n{inner}}}\n"


def sync_group(name: str, members: list[str], extra: str = "") -> str:
    body = "group {\n" + "".join(f"    {m}\n" for m in members) + "}\n" + extra
    inner = "".join(f"    {line}\n" for line in body.splitlines())
    return f"vrrp_sync_group {name} {{\n{inner}}}\n"


def add_tracked_link(lan: VrrpLan, short: str) -> None:
    """``trk0`` in ``short``, a veth whose other end (``t{short}``) is in the switch: bringing
    that end down takes trk0's carrier away (IFF_RUNNING off), as a pulled cable does."""
    lan.lab.veth(short, "trk0", "sw", f"t{short}", None)
    lan.lab.run("sw", ["ip", "link", "set", f"t{short}", "up"])


def far_end(lan: VrrpLan, short: str, up: bool) -> None:
    lan.lab.run("sw", ["ip", "link", "set", f"t{short}", "up" if up else "down"])


def lines_of(path: Path) -> list[str]:
    try:
        return path.read_text().splitlines()
    except FileNotFoundError:
        return []


def wait_line(path: Path, line: str, timeout: float = 15.0) -> None:
    wait_until(
        lambda: line in lines_of(path),
        timeout=timeout,
        what=f"{line!r} in {path.name}: {lines_of(path)}",
    )


def by_tag(lines: list[str]) -> dict[str, list[str]]:
    """The calls of each script (its first word), in order. Scripts started at the same
    moment (notify_master and notify) may write in either order, in keepalived too."""
    out: dict[str, list[str]] = {}
    for line in lines:
        out.setdefault(line.split()[0], []).append(line)
    return out


def state_of(lan: VrrpLan, short: str, name: str = "VI_1") -> str:
    """An instance's state: pylvsd's vrrp-status, or keepalived's last "Entering" line."""
    peer = lan.peers[short]
    if peer.kind == "pylvs":
        return str(lan.pylvs_state(short, name)["state"])
    found = re.findall(rf"\({name}\) Entering (\w+) STATE", peer.log.read_text(errors="replace"))
    return found[-1] if found else "INIT"


def group_state(lan: VrrpLan, short: str, name: str = "G1") -> str:
    """A sync group's state (keepalived: its last "Syncing instances to" line; it does not log
    "Entering FAULT STATE" for the members the group takes to FAULT)."""
    peer = lan.peers[short]
    if peer.kind == "pylvs":
        assert peer.daemon is not None
        return str(peer.daemon.ctl.request("vrrp-status")["groups"][name]["state"])
    text = peer.log.read_text(errors="replace")
    found = re.findall(rf"VRRP_Group\({name}\) Syncing instances to (\w+) state", text)
    return found[-1] if found else "INIT"


def wait_state(
    lan: VrrpLan, short: str, state: str, names: tuple[str, ...], timeout: float = 15
) -> None:
    wait_until(
        lambda: all(state_of(lan, short, n) == state for n in names),
        timeout=timeout,
        what=f"{names} {state} on {short}",
    )


GLOBALS = "    enable_script_security\n    script_user root\n"


def notify_run(lan: VrrpLan, kind: str, grouped: bool) -> list[str]:
    """a (priority 100, ``kind``: pylvs or keepalived) with notify scripts and a tracked link,
    b (150) keepalived: a alone is MASTER, b preempts (a BACKUP), a's tracked link loses its
    carrier (FAULT) and gets it back (BACKUP), b stops (a MASTER), a stops (STOP). Returns the
    lines a's scripts wrote."""
    tmp = lan.tmp / f"notify-{kind}"
    tmp.mkdir()
    out = tmp / "calls"
    rec = write_recorder(tmp / "rec.sh", out)
    track = "track_interface {\n    trk0\n}\n"
    names: tuple[str, ...] = ("VI_1",)
    if grouped:
        names = ("VI_1", "VI_2")
        a_conf = (
            sync_group("G1", ["VI_1", "VI_2"], notifies(rec, "g"))
            + instance("VI_1", 51, VIP, 100, track + notifies(rec, "i1"))
            + instance("VI_2", 52, VIP2, 100, notifies(rec, "i2"))
        )
        b_conf = (
            sync_group("G1", ["VI_1", "VI_2"])
            + instance("VI_1", 51, VIP, 150)
            + instance("VI_2", 52, VIP2, 150)
        )
    else:
        a_conf = instance("VI_1", 51, VIP, 100, track + notifies(rec, "i1"))
        b_conf = instance("VI_1", 51, VIP, 150)
    a_conf = keepalived_conf(a_conf, global_defs=GLOBALS)
    b_conf = keepalived_conf(b_conf)
    if kind == "pylvs":
        lan.start_pylvs("a", a_conf)
    else:
        lan.start_keepalived("a", a_conf)
    wait_state(lan, "a", "MASTER", names)
    lan.start_keepalived("b", b_conf)
    lan.wait_holder("b", timeout=15, what="b preempts")
    wait_state(lan, "a", "BACKUP", names)
    far_end(lan, "a", up=False)
    wait_state(lan, "a", "FAULT", ("VI_1",))
    if grouped:
        wait_until(lambda: group_state(lan, "a") == "FAULT", timeout=5, what="G1 FAULT on a")
        if kind == "pylvs":
            assert state_of(lan, "a", "VI_2") == "FAULT"
    far_end(lan, "a", up=True)
    wait_state(lan, "a", "BACKUP", names)
    lan.term("b")
    wait_state(lan, "a", "MASTER", names)
    lan.vip("a")
    lan.term("a")
    # the scripts started last (notify_stop is waited for, 1 s) have written by now; others
    # were started seconds ago
    time.sleep(0.5)
    return lines_of(out)


@pytest.mark.parametrize("grouped", [False, True], ids=["instance", "sync_group"])
def test_notify_and_track_interface_like_keepalived(lan: VrrpLan, grouped: bool) -> None:
    """The notify scripts pylvsd runs, with their arguments and in their order, are those
    keepalived 2.2.7 runs in the same events (the same keepalived.conf, the same peer):
    start, preempted, track_interface carrier loss (FAULT) and return, takeover, SIGTERM.
    In a sync group the tracked link's fault takes both instances to FAULT."""
    add_tracked_link(lan, "a")
    ours = notify_run(lan, "pylvs", grouped)
    theirs = notify_run(lan, "keepalived", grouped)
    print("\npylvsd:    ", ours, "\nkeepalived:", theirs)
    assert ours, "no notify script ran"
    assert by_tag(ours) == by_tag(theirs)
    assert sorted(ours) == sorted(theirs)


# -- script_user / enable_script_security -----------------------------------------------------

USER_CHECK = """#!/bin/sh
echo "check uid=$(id -u)" >> {out}
exit 0
"""


def both_ran(out: Path) -> bool:
    lines = lines_of(out)
    return "check uid=1" in lines and any(line.startswith("i1-master") for line in lines)


def test_script_user(lan: VrrpLan) -> None:
    """``script_user nobody`` runs the notify scripts as nobody, a vrrp_script's own ``user
    daemon`` runs it as daemon (the uid each script prints), as keepalived 2.2.7 does."""
    base = Path(tempfile.mkdtemp(prefix="pylvs-vrrp-user-", dir="/tmp"))
    try:
        base.chmod(0o755)
        results: dict[str, list[str]] = {}
        for kind in ("pylvs", "keepalived"):
            outdir = base / f"out-{kind}"
            outdir.mkdir()
            outdir.chmod(0o777)  # the scripts (nobody, daemon) write there
            out = outdir / "calls"
            out.touch()
            out.chmod(0o666)  # written by nobody and daemon
            rec = write_recorder(base / f"rec-{kind}.sh", out)
            chk = base / f"chk-{kind}.sh"
            chk.write_text(USER_CHECK.format(out=out))
            chk.chmod(0o755)
            top = f'vrrp_script chk {{\n    script "{chk}"\n    interval 1\n    user daemon\n}}\n'
            conf = keepalived_conf(
                instance(
                    "VI_1", 51, VIP, 150, "track_script {\n    chk\n}\n" + notifies(rec, "i1")
                ),
                top=top,
                global_defs="    enable_script_security\n    script_user nobody\n",
            )
            if kind == "pylvs":
                lan.start_pylvs("a", conf)
            else:
                lan.start_keepalived("a", conf)
            lan.wait_holder("a", timeout=15, what=f"{kind}: VIP on a")
            wait_until(
                functools.partial(both_ran, out),
                timeout=10,
                what=f"{kind}: the scripts' output: {lines_of(out)}",
            )
            lan.term("a")
            time.sleep(0.3)
            results[kind] = sorted(set(lines_of(out)))
        print("\npylvsd:    ", results["pylvs"], "\nkeepalived:", results["keepalived"])
        assert "i1-master uid=65534" in results["pylvs"]
        assert "check uid=1" in results["pylvs"]
        assert results["pylvs"] == results["keepalived"]
    finally:
        shutil.rmtree(base, ignore_errors=True)


# -- SIGHUP reload, pylvs vrrp status, track_interface weight ---------------------------------

VIP3, VIP4 = "10.81.0.102", "10.81.0.103"


def pylvs_cli(lan: VrrpLan, short: str, *args: str) -> str:
    out = lan.lab.run(short, pylvs_argv("pylvs.cli.pylvs", *args), cwd=REPO, text=True)
    return str(out.stdout)


def hup(lan: VrrpLan, short: str, conf: str, reloads: int) -> None:
    """Rewrite pylvsd's keepalived.conf, SIGHUP, wait for the reload's log line."""
    peer = lan.peers[short]
    (lan.tmp / f"pylvs-{short}.conf").write_text(conf)
    peer.proc.send_signal(signal.SIGHUP)
    wait_until(
        lambda: peer.log.read_text(errors="replace").count("VRRP: reloaded") >= reloads,
        timeout=10,
        what="the VRRP reload",
    )


def test_sighup_reload_and_status(lan: VrrpLan) -> None:
    """pylvsd a (150) master of VI_1 and VI_3, keepalived b (100) backup of VI_1. SIGHUP with
    VI_1 unchanged, VI_3 removed, VI_4 added: VI_1 stays MASTER without a new election or
    gratuitous ARP, VI_3's address goes, VI_4 starts and becomes master. ``pylvs vrrp status``
    (plain and --json) shows it. SIGHUP with VI_1 at priority 50: still the same router, it
    keeps its state and advertises 50 at once, so b takes over (keepalived's reload)."""

    def a_conf(prio1: int, with3: bool, with4: bool) -> str:
        body = instance("VI_1", 51, VIP, prio1)
        if with3:
            body += instance("VI_3", 53, VIP3, 150)
        if with4:
            body += instance("VI_4", 54, VIP4, 150)
        return keepalived_conf(body)

    lan.start_pylvs("a", a_conf(150, True, False))
    lan.wait_holder("a")
    lan.start_keepalived("b", keepalived_conf(instance("VI_1", 51, VIP, 100)))
    wait_until(lambda: state_of(lan, "b") == "BACKUP", timeout=10, what="b BACKUP")
    wait_until(lambda: lan.vip("a", VIP3), timeout=10, what="VI_3 master on a")
    # past the second GARP burst of becoming master (vrrp_garp_master_delay 1)
    wait_until(lambda: lan.pylvs_state("a")["since"] > 1.5, timeout=5, what="VI_1's GARPs")
    before = lan.pylvs_state("a")
    assert before["state"] == "MASTER"

    arp_log = lan.tmp / "arp.txt"
    arp_err = lan.tmp / "arp.err"
    with arp_log.open("w") as out, arp_err.open("w") as err:
        dump = lan.lab.popen(
            "c", ["tcpdump", "-l", "-n", "-i", "eth0", "arp"], stdout=out, stderr=err
        )
    try:
        wait_until(lambda: "listening on" in arp_err.read_text(), timeout=10, what="tcpdump")
        hup(lan, "a", a_conf(150, False, True), reloads=1)
        wait_until(lambda: not lan.vip("a", VIP3), timeout=5, what="VI_3's address removed")
        # VI_4 starts as keepalived starts an instance: BACKUP, master after Master_Down
        # (3.4 s); longer than a restarted VI_1 would take to hold its election again.
        wait_until(lambda: lan.vip("a", VIP4), timeout=10, what="VI_4 master on a")
        wait_until(lambda: f"tell {VIP4}" in arp_log.read_text(), timeout=5, what="VI_4's GARP")
    finally:
        dump.terminate()
        dump.wait(5)
    after = lan.pylvs_state("a")
    assert after["state"] == "MASTER"
    assert after["transitions"] == before["transitions"]
    assert after["counters"]["become_master"] == before["counters"]["become_master"]
    assert f"tell {VIP} " not in arp_log.read_text() and f"tell {VIP}," not in arp_log.read_text()
    assert lan.holders() == ["a"]

    text = pylvs_cli(lan, "a", "vrrp", "status")
    print("\n" + text)
    assert "VI_1: MASTER  vrid 51 on eth0  priority 150 (effective 150)  master 10.81.0.1" in text
    assert "VI_4: MASTER  vrid 54" in text and "VI_3" not in text
    js = json.loads(pylvs_cli(lan, "a", "vrrp", "status", "--json"))
    assert sorted(js["instances"]) == ["VI_1", "VI_4"]
    assert js["instances"]["VI_1"]["vips"] == [f"{VIP}/24"]
    assert js["instances"]["VI_4"]["vips_set"] is True

    hup(lan, "a", a_conf(50, False, True), reloads=2)
    lan.wait_holder("b", timeout=10, what="b takes over from VI_1 at priority 50")
    st = lan.pylvs_state("a")
    assert (st["state"], st["priority"], st["effective_priority"]) == ("BACKUP", 50, 50)
    assert st["master"] == ADDR["b"]
    assert lan.vip("a", VIP4)


def test_track_interface_weight(lan: VrrpLan) -> None:
    """Two pylvsd: a (150) tracks trk0 with weight -60; when trk0 loses its carrier a's
    priority is 90 and b (100) takes over; ``pylvs vrrp status`` shows the tracker down and
    the effective priority; when trk0 is back, a preempts."""
    add_tracked_link(lan, "a")
    track = "track_interface {\n    trk0 weight -60\n}\n"
    lan.start_pylvs("a", keepalived_conf(instance("VI_1", 51, VIP, 150, track)))
    lan.wait_holder("a")
    lan.start_pylvs("b", keepalived_conf(instance("VI_1", 51, VIP, 100)))
    wait_until(lambda: state_of(lan, "b") == "BACKUP", timeout=10, what="b BACKUP")
    far_end(lan, "a", up=False)
    lan.wait_holder("b", timeout=10, what="b master while a's trk0 is down")
    wait_until(lambda: state_of(lan, "a") == "BACKUP", timeout=5, what="a BACKUP")
    text = pylvs_cli(lan, "a", "vrrp", "status")
    print("\n" + text)
    assert "priority 150 (effective 90)" in text
    assert "tracking: eth0 up, trk0 down" in text
    far_end(lan, "a", up=True)
    lan.wait_holder("a", timeout=10, what="a preempts with trk0 back")
    assert lan.pylvs_state("a")["effective_priority"] == 150


# -- lvs_sync_daemon follows the VRRP role --------------------------------------------------

RIP = "10.81.0.20"
DR_VS = f"""virtual_server {VIP} 5353 {{
    lb_kind DR
    protocol UDP
    real_server {RIP} 5353 {{
    }}
}}
"""


def sync_daemons(lan: VrrpLan, short: str) -> str:
    return str(
        lan.lab.run(
            short, pylvs_argv("pylvs.cli.pylvsadm", "-L", "--daemon"), cwd=REPO, text=True
        ).stdout
    )


def synced_conns(lan: VrrpLan, short: str) -> str:
    out = lan.lab.run(
        short, pylvs_argv("pylvs.cli.pylvsadm", "-L", "-n", "-c"), cwd=REPO, text=True
    )
    return str(out.stdout)


def datagrams_from_client(lan: VrrpLan, port: int) -> None:
    """Five datagrams from the client to the VIP from one source port: one UDP connection of
    five packets (IPVS syncs a connection at its third packet, sync_threshold 3 50; the real
    server behind the DR director is a bare address, what it does with them does not matter)."""
    code = (
        "import socket\n"
        "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
        f"s.bind(('{ADDR['c']}', {port}))\n"
        "for _ in range(5):\n"
        f"    s.sendto(b'x', ('{VIP}', 5353))\n"
    )
    lan.lab.run("c", ["python3", "-c", code])


def test_lvs_sync_daemon_follows_the_role(lan: VrrpLan) -> None:
    """Two pylvsd with ``lvs_sync_daemon eth0 VI_1`` and a DR virtual server: the MASTER runs
    the master sync daemon, the BACKUP the backup one (syncid = the VRID); a connection made
    through the master appears in the backup's connection table; after a failover the roles
    swap, and a connection through the new master reaches the old one."""
    lan.lab.add_netns("r")
    lan.lab.veth("r", "eth0", "sw", "pr", f"{RIP}/24")
    lan.lab.run("sw", ["ip", "link", "set", "pr", "master", "br0"])
    g = "    lvs_sync_daemon eth0 VI_1\n"
    lan.start_pylvs("a", keepalived_conf(instance("VI_1", 51, VIP, 150), top=DR_VS, global_defs=g))
    lan.wait_holder("a")
    lan.start_pylvs("b", keepalived_conf(instance("VI_1", 51, VIP, 100), top=DR_VS, global_defs=g))
    wait_until(lambda: state_of(lan, "b") == "BACKUP", timeout=10, what="b BACKUP")
    wait_until(
        lambda: "master sync daemon" in sync_daemons(lan, "a"), timeout=5, what="a master daemon"
    )
    wait_until(
        lambda: "backup sync daemon" in sync_daemons(lan, "b"), timeout=5, what="b backup daemon"
    )
    print("\na:", sync_daemons(lan, "a"), "b:", sync_daemons(lan, "b"))
    assert "backup sync daemon" not in sync_daemons(lan, "a")
    assert "master sync daemon" not in sync_daemons(lan, "b")
    assert "syncid=51" in sync_daemons(lan, "a")

    datagrams_from_client(lan, 40001)
    assert f"{ADDR['c']}:40001" in synced_conns(lan, "a")
    wait_until(
        lambda: f"{ADDR['c']}:40001" in synced_conns(lan, "b"),
        timeout=10,
        what="the connection synced to b",
    )
    print(synced_conns(lan, "b"))

    lan.term("a")
    lan.wait_holder("b", timeout=10, what="b master after a's SIGTERM")
    wait_until(
        lambda: "master sync daemon" in sync_daemons(lan, "b"), timeout=5, what="b master daemon"
    )
    assert "backup sync daemon" not in sync_daemons(lan, "b")
    lan.start_pylvs(
        "a",
        keepalived_conf(instance("VI_1", 51, VIP, 150, "nopreempt\n"), top=DR_VS, global_defs=g),
    )
    wait_until(lambda: state_of(lan, "a") == "BACKUP", timeout=10, what="a BACKUP (nopreempt)")
    wait_until(
        lambda: "backup sync daemon" in sync_daemons(lan, "a"), timeout=5, what="a backup daemon"
    )
    datagrams_from_client(lan, 40002)
    wait_until(
        lambda: f"{ADDR['c']}:40002" in synced_conns(lan, "a"),
        timeout=10,
        what="the connection synced to a",
    )
