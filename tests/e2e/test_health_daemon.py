"""pylvsd's own health checks end to end: the check types that are not a service, e-mail alerts
through a real SMTP server, the monitor file, autoreload with its callback, and keepalived's
MISC_CHECK with ``misc_dynamic`` and ``rise`` from the native format.

Namespace ``d`` runs pylvsd; ``r1`` (198.51.100.11) is a real server that answers pings and runs
Debian's exim4 on port 25, which accepts every message and appends it to a file.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from lvslab import Daemon, start_daemon

from pylvs.testing.netns import Lab, wait_until

RIP = "198.51.100.11"
ABSENT = "198.51.100.99"  # no host: pings and connections go unanswered
VIP = "203.0.113.10"
SMTP_PORT = 25  # ldirectord's smtp= is a host only: its mail goes to port 25

EXIM_CONF = """\
primary_hostname = mx.pylvs.test
local_interfaces = {addr}
daemon_smtp_ports = {port}
spool_directory = {d}/spool
log_file_path = {d}/log/%slog
pid_file_path = {d}/exim.pid
exim_user = Debian-exim
exim_group = Debian-exim
keep_environment =
tls_advertise_hosts =
host_lookup =
acl_smtp_rcpt = acl_rcpt

begin acl
acl_rcpt:
  accept

begin routers
everything:
  driver = accept
  transport = mailbox

begin transports
mailbox:
  driver = appendfile
  file = {d}/mailbox
  user = Debian-exim
"""


@dataclass
class Env:
    lab: Lab
    root: Path

    @property
    def mailbox(self) -> Path:
        return self.root / "exim" / "mailbox"


@pytest.fixture(scope="module")
def env() -> Iterator[Env]:
    # exim's own user must reach its spool and mailbox: not under pytest's private tmp.
    root = Path(tempfile.mkdtemp(prefix="pylvs-health-"))
    root.chmod(0o755)
    try:
        with Lab() as lab:
            lab.add_netns("d")
            lab.add_netns("r1")
            lab.veth("d", "d0", "r1", "r0", "198.51.100.1/24", f"{RIP}/24")
            d = root / "exim"
            for sub in (d, d / "spool", d / "log"):
                sub.mkdir()
                shutil.chown(sub, "Debian-exim", "Debian-exim")
            (d / "exim.conf").write_text(EXIM_CONF.format(d=d, addr=RIP, port=SMTP_PORT))
            lab.popen("r1", ["exim4", "-bdf", "-C", str(d / "exim.conf")])

            def listening() -> bool:
                out = lab.run("r1", ["ss", "-Htln", f"sport = :{SMTP_PORT}"], check=False)
                return bool(out.stdout.strip())

            wait_until(listening, 10, what="exim listening")
            yield Env(lab, root)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _script(path: Path, text: str) -> str:
    path.write_text(text)
    path.chmod(0o755)
    return str(path)


@contextmanager
def _pylvsd(env: Env, tmp_path: Path, config: Path) -> Iterator[Daemon]:
    """pylvsd with ``config`` in ``d``, stopped at the end (the next test starts its own)."""
    daemon = start_daemon(env.lab, tmp_path / "pylvsd.log", "nfqueue", "--config", str(config))
    try:
        yield daemon
    finally:
        env.lab.stop(daemon.proc)


def _rows(daemon: Daemon) -> dict[str, dict[str, Any]]:
    rows: list[dict[str, Any]] = daemon.ctl.request("health")
    return {f"{r['check']} {r['real']}": r for r in rows}


def _dests(daemon: Daemon, port: int) -> dict[str, int]:
    for svc in daemon.ctl.services():
        if svc.port == port:
            return {d.addr: d.weight for d in svc.dests}
    return {}


def test_ping_external_and_external_perl_checks(env: Env, tmp_path: Path) -> None:
    seen = tmp_path / "external-args"
    external = _script(
        tmp_path / "check.sh",
        f'#!/bin/sh\necho "$@" >> {seen}\n[ "$3" = "{RIP}" ]\n',
    )
    perl = tmp_path / "check.pl"
    perl.write_text(f'exit($ARGV[2] eq "{RIP}" ? 0 : 1);\n')
    hang = _script(tmp_path / "hang.sh", "#!/bin/sh\nexec sleep 30\n")
    config = tmp_path / "ldirectord.cf"
    blocks = [
        ("1", "checktype=ping"),
        ("2", f"checktype=external\n\tcheckcommand={external}"),
        ("3", f"checktype=external-perl\n\tcheckcommand={perl}"),
        ("4", f"checktype=external\n\tcheckcommand={hang}\n\tchecktimeout=1"),
    ]
    text = "checkinterval=1\nchecktimeout=1\n"
    for port, check in blocks:
        text += (
            f"virtual={VIP}:{port}\n\treal={RIP}:{port} masq\n\treal={ABSENT}:{port} masq\n"
            f"\tprotocol=tcp\n\t{check}\n"
        )
    config.write_text(text)
    with _pylvsd(env, tmp_path, config) as daemon:
        for port in (1, 2, 3):
            wait_until(lambda p=port: _dests(daemon, p) == {RIP: 1}, 15, what=f"port {port}: {RIP}")
        wait_until(
            lambda: all(r["checks"] for k, r in _rows(daemon).items() if not k.endswith(":4")),
            15,
            what="every real server checked",
        )
        rows = _rows(daemon)
        assert rows[f"ping {RIP}:1"]["state"] == "up"
        assert rows[f"ping {ABSENT}:1"]["state"] == "down"
        assert "no echo reply" in rows[f"ping {ABSENT}:1"]["reason"]
        assert rows[f"external {ABSENT}:2"]["reason"].endswith("exited with status 1")
        assert rows[f"external-perl {RIP}:3"]["reason"].endswith("(perl) exited with status 0")
        # ldirectord's arguments: VIP VPORT RIP RPORT.
        assert f"{VIP} 2 {RIP} 2" in seen.read_text().splitlines()
        # The hung command costs its timeout, nothing more, and is killed with its process group.
        hung = wait_until(lambda: _rows(daemon)[f"external {RIP}:4"]["checks"] >= 2, 15)
        assert hung
        row = _rows(daemon)[f"external {RIP}:4"]
        assert row["state"] == "down" and "did not finish within 1s" in row["reason"]
        assert row["latency"] < 2.0
        assert _dests(daemon, 4) == {}


def test_alerts_monitorfile_autoreload_and_callback(env: Env, tmp_path: Path) -> None:
    monitor = tmp_path / "monitor.log"
    told = tmp_path / "callback-args"
    callback = _script(tmp_path / "callback.sh", f'#!/bin/sh\necho "$@" >> {told}\n')
    config = tmp_path / "ldirectord.cf"

    def write(weight: int) -> None:
        config.write_text(
            "checkinterval=1\nchecktimeout=1\nautoreload=yes\n"
            f'callback="{callback}"\nemailalert=ops@pylvs.test\n'
            f"smtp={RIP}\nemailalertfrom=pylvsd@pylvs.test\n"
            f"virtual={VIP}:25\n\treal={RIP}:{SMTP_PORT} masq {weight}\n"
            f"\treal={ABSENT}:25 masq\n\tprotocol=tcp\n\tchecktype=connect\n"
            f'\tmonitorfile="{monitor}"\n\tservicename=mail\n'
        )

    write(1)
    with _pylvsd(env, tmp_path, config) as daemon:
        wait_until(lambda: _dests(daemon, 25) == {RIP: 1}, 15, what="the SMTP real server up")
        # The down server's alert, through exim, with ldirectord's subject and body.
        subject = f"[mail] Deleted real server: {ABSENT}:25 ({VIP}:25)"
        mail = wait_until(
            lambda: env.mailbox.exists() and subject in env.mailbox.read_text() and env.mailbox,
            20,
            what="the alert in exim's mailbox",
        )
        text = mail.read_text()
        assert "Log-Message: " + subject in text and "Service name: mail" in text
        assert "From: pylvsd@pylvs.test" in text
        lines = wait_until(
            lambda: [x for x in monitor.read_text().splitlines() if "[down]" in x],
            10,
            what="the monitorfile's down line",
        )
        assert any(f"{ABSENT} 25" in x for x in lines), lines
        lines = monitor.read_text().splitlines()
        assert any(f"{RIP} {SMTP_PORT}" in x and "[up]" in x for x in lines), lines
        # autoreload: the changed file is read again at the next check cycle, and callback told.
        write(4)
        wait_until(lambda: _dests(daemon, 25) == {RIP: 4}, 15, what="the reloaded weight")
        out = daemon.output()
        assert f"Configuration file '{config}' has changed on disk" in out
        assert " - reread new configuration" in out
        wait_until(lambda: told.exists() and str(config) in told.read_text(), 10, what="callback")


def test_misc_check_with_misc_dynamic_and_rise(env: Env, tmp_path: Path) -> None:
    status = tmp_path / "status"
    status.write_text("0")
    check = _script(tmp_path / "misc.sh", f"#!/bin/sh\nexit $(cat {status})\n")
    config = tmp_path / "pylvs.toml"
    config.write_text(
        "[global]\ncheckinterval = 1\nchecktimeout = 2\n\n"
        f'[[virtual]]\naddress = "{VIP}"\nport = 80\nprotocol = "tcp"\nscheduler = "wrr"\n'
        f'checktype = "misc"\nmisc_path = "{check}"\nmisc_dynamic = true\nrise = 2\n'
        f'real = [{{ address = "{RIP}", port = 80, forward = "masq", weight = 1 }}]\n'
    )
    with _pylvsd(env, tmp_path, config) as daemon:
        wait_until(lambda: _dests(daemon, 80) == {RIP: 1}, 15, what="up after two passes")
        assert "Soft recovery real server: 198.51.100.11:80 (tcp:203.0.113.10:80) success 1/2" in (
            daemon.output()
        )
        status.write_text("7")  # misc_dynamic: exit 2..255 is up with weight exit-2
        wait_until(lambda: _dests(daemon, 80) == {RIP: 5}, 15, what="weight 5")
        status.write_text("1")
        wait_until(lambda: _dests(daemon, 80) == {}, 15, what="down on exit 1")
        row = next(iter(_rows(daemon).values()))
        assert row["reason"].endswith("exited with status 1") and row["check"] == "misc"


def test_oracle_is_refused_clearly(env: Env, tmp_path: Path) -> None:
    config = tmp_path / "ldirectord.cf"
    config.write_text(
        "checkinterval=1\n"
        f"virtual={VIP}:1521\n\treal={RIP}:1521 masq\n\tprotocol=tcp\n\tchecktype=negotiate\n"
        '\tservice=oracle\n\tlogin="u"\n\tpasswd="p"\n\trequest="SELECT 1 FROM DUAL"\n'
    )
    with _pylvsd(env, tmp_path, config) as daemon:
        row = wait_until(lambda: next(iter(_rows(daemon).values()), {}).get("checks"), 15)
        assert row
        reason = next(iter(_rows(daemon).values()))["reason"]
        assert "not supported" in reason or "oracledb" in reason, reason
