"""`pylvs lab` end to end: every scenario comes up, carries traffic to every real server, can be
inspected and traced, and goes down without leaving a namespace, a link or a process behind.
Also: the farm demo, a crash while the lab is up, and the commands of netns-lab/README.md."""

from __future__ import annotations

import io
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from pylvs import demo
from pylvs.lab import client, runner
from pylvs.lab.state import lab_run_dir, load_state
from pylvs.lab.topology import lab_dir, load_scenario

PREFIX = f"lvs-t{os.getpid() % 100000}-"
VENV_BIN = os.path.dirname(sys.executable)
README = lab_dir() / "README.md"


def lab(*args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "pylvs.cli.pylvs", "lab", "--prefix", PREFIX, *args]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    if check and proc.returncode != 0:
        raise AssertionError(
            f"pylvs lab {' '.join(args)} -> {proc.returncode}\n{proc.stdout}{proc.stderr}"
        )
    return proc


def runner_alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def root_links() -> set[str]:
    out = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True, check=True)
    return {line.split(": ")[1].split("@")[0] for line in out.stdout.splitlines()}


def assert_nothing_left(pids: list[int], links_before: set[str]) -> None:
    assert runner.lab_namespaces(PREFIX) == []
    assert runner.lab_pids(PREFIX) == {}
    for pid in pids:
        assert not runner_alive(pid), f"process {pid} of the lab still runs"
    assert root_links() == links_before, "the lab must not touch the root namespace's links"
    assert not lab_run_dir(PREFIX).exists()


@pytest.fixture
def clean() -> Iterator[set[str]]:
    links = root_links()
    runner.down(PREFIX)
    yield links
    runner.down(PREFIX)


EXPECT = {
    "dr": ["new Ethernet header: to rs"],
    "nat": ["(DNAT)", "(SNAT)"],
    "tun": ["IPIP header added: 192.0.2.2 > 203.0.113.1", "IPIP header removed"],
    "farm": ["new Ethernet header: to rs"],
}


@pytest.mark.parametrize("name", ["dr", "nat", "tun", "farm"])
def test_scenario(name: str, clean: set[str]) -> None:
    scenario = load_scenario(name)
    reals = sorted(n.name for n in scenario.by_role("realserver"))
    lab("up", name)
    state = load_state(PREFIX)
    assert state is not None and state.ready
    pids = [rec.pid for rec in state.processes]
    assert {rec.what for rec in state.processes} >= {"pylvsd", "servers"}

    status = lab("status").stdout
    for node in scenario.nodes:
        assert f"netns {PREFIX}{node.name}" in status
    assert "NOT RUNNING" not in status and "MISSING" not in status
    assert f"holds VIP {scenario.vip}" in status
    if name == "farm":
        assert "STANDBY" in status and "VIP not held" in status

    body = lab("exec", "client1", "--", "curl", "-s", "-m", "5", f"http://{scenario.vip}/").stdout
    assert body.strip() in reals
    listing = lab("exec", "director1", "--", "pylvsadm", "-L", "-n").stdout
    assert f"TCP  {scenario.vip}:80" in listing

    # HTTP and UDP through the VIP reach every real server.
    clients = [PREFIX + n.name for n in scenario.by_role("client")]
    result = client.http_load(clients, scenario.vip, 80, 120)
    assert result.ok == 120 and sorted(result.servers) == reals
    echoes = client.udp_echo(clients[0], scenario.vip, 7, count=2 * len(reals))
    assert sorted(echoes) == reals

    traced = lab("trace").stdout
    for text in EXPECT[name]:
        assert text in traced, traced
    assert "SYN: client -> virtual service" in traced and "(not captured)" not in traced
    assert "(not captured)" not in lab("trace", "--udp", "7").stdout

    assert "namespaces removed" in lab("down").stdout
    assert_nothing_left(pids, clean)


def test_down_after_a_crash(clean: set[str]) -> None:
    """Everything inside killed with SIGKILL and the state file lost: down still cleans up."""
    lab("up", "dr")
    state = load_state(PREFIX)
    assert state is not None
    pids = [rec.pid for rec in state.processes]
    os.kill(pids[-1], signal.SIGKILL)  # pylvsd
    # Something started inside the lab by hand, not in the state file.
    stray = subprocess.Popen(["ip", "netns", "exec", PREFIX + "rs1", "sleep", "300"])
    (lab_run_dir(PREFIX) / "state.json").unlink()
    assert "no lab" in lab("status", check=False).stderr
    assert lab("up", "dr", check=False).returncode == 1  # leftovers are found by prefix
    lab("down")
    assert stray.wait(5) is not None
    assert_nothing_left([*pids, stray.pid], clean)


def test_up_refuses_a_broken_scenario(tmp_path: Path, clean: set[str]) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text((lab_dir() / "dr.toml").read_text().replace('method = "dr"', 'method = "x"'))
    proc = lab("up", str(bad), check=False)
    assert proc.returncode == 1
    assert "bad.toml: method 'x' is not one of nat, dr, tun" in proc.stderr
    assert runner.lab_namespaces(PREFIX) == []


def test_farm_demo(clean: set[str]) -> None:
    out = io.StringIO()
    assert demo.run_farm_demo(out, PREFIX, requests=700) == 0
    text = out.getvalue()
    assert "700 requests to http://192.0.2.100:80/" in text and ", 0 failed" in text
    assert "TCP  192.0.2.100:80                    700" in text, text  # pylvsadm -Ln --stats
    assert "rs1 got 0 of the new connections" in text
    assert "  client1: rs" in text and "  client2: rs" in text
    assert re.search(r"-> 192\.0\.2\.11:80 +Route +0 ", text)
    # The failover: director1 killed in the middle of a download, director2 takes the VIP over,
    # the router follows, the download completes byte-exact, director1 gets the VIP back.
    assert "== 7. director1 dies in the middle of a download" in text
    assert re.search(r"director2 has the connection, from director1's sync daemon:\n"
                     r"  director2: TCP ESTABLISHED 198\.51\.100\.10:\d+ -> 192\.0\.2\.100:80 "
                     r"-> 192\.0\.2\.1[1-4]:80", text), text  # fmt: skip
    took = re.search(r"director2 holds the VIP (\d+\.\d\d) s after the kill", text)
    assert took and float(took.group(1)) < 5.0, text
    assert re.search(
        r"\(director1\.eth0\) -> [0-9a-f:]{17} \(director2\.eth0\), [\d.]+ s after", text
    )
    assert "The download completed: 8388608 bytes (8 MiB)" in text and "byte-exact" in text
    assert "heartbeat node director2: active" in text and "  director1: dead" in text
    assert "master sync daemon (mcast=eth0, syncid=1" in text
    assert re.search(r"the VIP is on director1 again [\d.]+ s after the heal began", text), text
    assert "== 8. Done: tearing down" in text
    assert "removed 10 namespaces" in text
    assert_nothing_left([], clean)


def _readme_commands() -> list[str]:
    """The `$ ` lines of the shell blocks of netns-lab/README.md, in order."""
    commands, in_block = [], False
    for line in README.read_text().splitlines():
        if line.startswith("```"):
            in_block = line.strip() == "```console"
            continue
        if in_block and line.startswith("$ ") and "# interactive" not in line:
            commands.append(line[2:])
    return commands


def test_readme_commands_run(clean: set[str], tmp_path: Path) -> None:
    commands = _readme_commands()
    assert len(commands) >= 15
    env = {**os.environ, "PATH": f"{VENV_BIN}:{os.environ['PATH']}", "PYLVS_LAB_PREFIX": PREFIX}
    for command in commands:
        # The walkthrough uses the default prefix; the test runs in its own.
        command = command.replace("lvs-", PREFIX).replace(
            "pylvs lab ", f"pylvs lab --prefix {PREFIX} "
        )
        proc = subprocess.run(
            command, shell=True, capture_output=True, text=True, timeout=90, env=env, cwd=tmp_path
        )
        assert proc.returncode == 0, f"$ {command}\n{proc.stdout}{proc.stderr}"
    assert runner.lab_namespaces(PREFIX) == []


def test_what_a_new_user_tries(clean: set[str], tmp_path: Path) -> None:
    """Each of these ended in a traceback, a wrong answer or a missing line before."""
    lab("up", "farm")
    # A port or UDP service nobody answers: one line, not a ConnectionRefusedError traceback.
    for args, what in ((["--port", "8081"], "192.0.2.100:8081/tcp"), (["--udp", "9"], "9/udp")):
        proc = lab("trace", *args, check=False)
        assert proc.returncode == 1 and "Traceback" not in proc.stderr
        assert "no service answers at" in proc.stderr and what in proc.stderr
    # A real server is no client: it would answer itself.
    proc = lab("http", "--from", "rs1", check=False)
    assert proc.returncode == 1 and "'rs1' is not a client node of farm" in proc.stderr
    # A picture format dot cannot write is refused before anything is printed.
    proc = subprocess.run([sys.executable, "-m", "pylvs.cli.pylvs", "lab", "show", "farm", "-o",
                           str(tmp_path / "x.jpg")], capture_output=True, text=True)  # fmt: skip
    assert (proc.returncode, proc.stdout) == (1, "") and "use a .svg, .png or .pdf" in proc.stderr
    # pylvs top takes the node's name, as lab exec does.
    env = {**os.environ, "PYLVS_LAB_PREFIX": PREFIX}
    top = subprocess.run([sys.executable, "-m", "pylvs.cli.pylvs", "top", "--netns", "director1",
                          "--once"], capture_output=True, text=True, env=env)  # fmt: skip
    assert top.returncode == 0 and f"netns {PREFIX}director1" in top.stdout
    # The persistence template is the NONE line of the connection listing.
    lab("http", "-n", "20", "--port", "8080", "--from", "client1")
    listing = lab("exec", "director1", "--", "pylvsadm", "-L", "-n", "-c").stdout
    (template,) = [line for line in listing.splitlines() if " NONE " in line]
    assert re.match(r"TCP \d\d:\d\d  NONE        198\.51\.100\.10:0 +192\.0\.2\.100:8080", template)
    # Synchronisation runs from the start (heartbeat's LVSSyncDaemonSwap made director1's daemon
    # the master): the standby learns the connections.
    daemons = lab("exec", "director1", "--", "pylvsadm", "-L", "--daemon").stdout
    assert daemons.startswith("master sync daemon (mcast=eth0, syncid=1"), daemons
    daemons = lab("exec", "director2", "--", "pylvsadm", "-L", "--daemon").stdout
    assert daemons.startswith("backup sync daemon (mcast=eth0, syncid=1"), daemons
    lab("http", "-n", "20")
    from pylvs.testing.netns import wait_until

    wait_until(
        lambda: ":80 " in lab("exec", "director2", "--", "pylvsadm", "-L", "-n", "-c").stdout,
        timeout=10,
        what="connections synchronised to director2",
    )
    # The daemons' logs carry the time of each line.
    log_text = (lab_run_dir(PREFIX) / "director1-pylvsd.log").read_text()
    assert all(
        re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ [A-Z]+ pylvs\.", line)
        for line in log_text.splitlines()
    ), log_text
    lab("down")
