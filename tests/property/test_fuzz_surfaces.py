"""Every surface pylvs offers to the outside, fed with mutated input from fixed seeds.

Each test draws a bounded number of inputs from ``random.Random(seed)``, so a failure reproduces
exactly, and the whole file runs in well under a minute:

* ``pylvsadm`` command lines (and ``-R`` input): an exit code and ipvsadm's messages, never a
  traceback;
* configuration files (ldirectord.cf and pylvs.toml): a Config or a ConfigError;
* control-socket requests: a response for every line, and a refused operation leaves the table
  as it was (every listing still formats);
* packets through the engine: a verdict for every input, and the table's invariants hold.
"""

from __future__ import annotations

import io
import json
import random
import sys
from pathlib import Path
from typing import Any

import pytest

from pylvs.cli.ipvsadm_format import Fmt, format_conns, format_listing
from pylvs.cli.pylvsadm import main as pylvsadm_main
from pylvs.config import ConfigError, parse_ldirectord, parse_native
from pylvs.core.control import DestSpec, ServiceSpec
from pylvs.core.engine import Engine, Verdict
from pylvs.core.ipvs import IPVS
from pylvs.ctl import _parse, dispatch
from pylvs.testing.packets import vectors

sys.path.insert(0, str(Path(__file__).parent.parent / "unit" / "pylvsadm"))
from pylvsadm_fake import FakeControl

DATA = Path(__file__).parent.parent / "unit" / "config" / "data"

# Values that broke parsers before: over-long numbers (int() digit limit), NUL, bytes that are no
# UTF-8 (surrogate escapes, as argv gets them), signs, spaces, huge and negative numbers.
NASTY = [
    "9" * 4301, "0" * 5000 + "1", "-" + "9" * 30, "\x00", "a\x00b", "\udcff", "\udcff\udcfe:80",
    "", " ", "-1", "+0", "0x", "4294967296", "18446744073709551616", "1e9", "NaN", "[", "]:80",
    "[::1", "::1]:80", "10.0.0.1:99999", "10.0.0.1:-1", "10.0.0.1:0x50", "300.1.1.1:80",
    "é", "\u202e", "a" * 5000, "%n%s", "10.0.0.1:http", "localhost:80", "0.0.0.0:0",
]  # fmt: skip
WORDS = [
    "-A", "-E", "-D", "-C", "-R", "-S", "-a", "-e", "-d", "-L", "-l", "-Z", "--set", "-t", "-u",
    "-f", "--sctp-service", "-s", "-p", "-M", "-r", "-g", "-i", "-m", "-w", "-x", "-y", "-c",
    "--timeout", "--daemon", "--stats", "--rate", "--thresholds", "--persistent-conn", "--nosort",
    "--sort", "-n", "--exact", "-6", "-o", "--pe", "-b", "--start-daemon", "--stop-daemon",
    "--mcast-interface", "--syncid", "--sync-maxlen", "--mcast-group", "--mcast-port",
    "--mcast-ttl", "--tun-type", "--tun-port", "--tun-nocsum", "--tun-csum", "--tun-remcsum",
    "--tun-info", "-h", "-v", "--version", "master", "backup", "rr", "wlc", "sh", "mh", "ipip",
    "gue", "gre", "sh-port,sh-fallback", "10.0.0.1:80", "10.0.0.2", "[2001:db8::1]:80", "80",
    "5", "255.255.255.0", "lo", "224.0.0.81",
]  # fmt: skip


# Command lines built the way people write them, with one value replaced by a nasty one.
TEMPLATES = [
    "-A -t {v}:80 -s rr", "-A -t 10.0.0.1:{v}", "-A -u {v} -p {v}", "-A -f {v} -s {v}",
    "-A -t 10.0.0.1:80 -p {v} -M {v}", "-A -t 10.0.0.1:80 -b {v} -s sh",
    "-a -t 10.0.0.1:80 -r {v} -w {v}", "-a -t 10.0.0.1:80 -r 10.0.0.3:{v} -m -x {v} -y {v}",
    "-a -t 10.0.0.1:80 -r 10.0.0.4 -i --tun-type {v} --tun-port {v}",
    "-e -t 10.0.0.1:80 -r 10.0.0.2 -w {v}", "-d -t {v} -r {v}", "-D -t {v}", "-E -f {v}",
    "--set {v} {v} {v}", "-L -t {v}", "-L -n --{v}", "-Z -t {v}",
    "--start-daemon {v} --mcast-interface {v} --syncid {v}",
    "--start-daemon master --mcast-group {v} --mcast-port {v} --mcast-ttl {v}",
    "--start-daemon backup --sync-maxlen {v}", "--stop-daemon {v}", "-A -t [{v}]:80",
]  # fmt: skip


def _templated(rng: random.Random) -> list[str]:
    words = rng.choice(TEMPLATES).split()
    return [w.replace("{v}", rng.choice(NASTY)) if "{v}" in w else w for w in words]


def _token(rng: random.Random) -> str:
    r = rng.random()
    if r < 0.6:
        return rng.choice(WORDS)
    if r < 0.85:
        return rng.choice(NASTY)
    # glued forms: -t10.0.0.1:80, --port=...
    return rng.choice(WORDS) + rng.choice(["=", ""]) + rng.choice(NASTY + WORDS)


def _run(ctl: FakeControl, argv: list[str], stdin: str = "") -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    rc = pylvsadm_main(argv, control=ctl, stdin=io.StringIO(stdin), stdout=out, stderr=err,
                       prog="ipvsadm")  # fmt: skip
    return rc, out.getvalue(), err.getvalue()


ARGV_VECTORS = 4000


def test_pylvsadm_command_lines() -> None:
    rng = random.Random(20261201)
    ctl = FakeControl()
    _run(ctl, ["-A", "-t", "10.0.0.1:80", "-s", "rr"])
    _run(ctl, ["-a", "-t", "10.0.0.1:80", "-r", "10.0.0.2", "-m"])
    for n in range(ARGV_VECTORS):
        argv = _templated(rng) if n % 2 else [_token(rng) for _ in range(rng.randint(1, 9))]
        rc, _out, err = _run(ctl, argv)
        assert 0 <= rc <= 255, argv
        assert "Traceback" not in err, argv
        # Whatever was accepted must still list.
        format_listing(ctl.ipvs.services(), Fmt.NONE)


RESTORE_INPUTS = 500


def test_pylvsadm_restore_input() -> None:
    rng = random.Random(7)
    for _ in range(RESTORE_INPUTS):
        ctl = FakeControl()
        lines = [" ".join(_templated(rng)) for _ in range(5)]
        lines.append(" ".join(_token(rng) for _ in range(rng.randint(0, 7))))
        rc, _out, err = _run(ctl, ["-R"], stdin="\n".join(lines) + "\n")
        assert 0 <= rc <= 255 and "Traceback" not in err, lines


def _mutate_text(rng: random.Random, text: str) -> str:
    lines = text.split("\n")
    for _ in range(rng.randint(1, 4)):
        op = rng.random()
        i = rng.randrange(len(lines))
        if op < 0.25:
            del lines[i]
            if not lines:
                lines = [""]
        elif op < 0.45:
            lines.insert(i, lines[rng.randrange(len(lines))])
        elif op < 0.8:
            words = lines[i].replace("=", " = ").split(" ")
            j = rng.randrange(len(words))
            words[j] = rng.choice(NASTY + WORDS + ["yes", "no", '"', "=", "#", "\t"])
            lines[i] = " ".join(words).replace(" = ", "=")
        else:
            data = bytearray(lines[i].encode())
            if data:
                data[rng.randrange(len(data))] = rng.randrange(256)
            lines[i] = data.decode("utf-8", errors="replace")
    return "\n".join(lines)


CONFIG_FILES = 3000


@pytest.mark.parametrize(("name", "parse"), [("ldirectord.cf", parse_ldirectord),
                                              ("pylvs.toml", parse_native)])  # fmt: skip
def test_configuration_files(name: str, parse: Any) -> None:
    rng = random.Random(name)
    seed_text = (DATA / name).read_text()
    for _ in range(CONFIG_FILES):
        text = _mutate_text(rng, seed_text)
        try:
            config = parse(text, name)
        except ConfigError as exc:
            assert str(exc).startswith(name), str(exc)
            continue
        # What parses must apply or be refused cleanly: IPVSError is the only refusal.
        ipvs = IPVS(random.Random(1))
        for spec, dests in config.services():
            _apply(ipvs, spec, dests)
        format_listing(ipvs.services(), Fmt.NUMERIC)


def _apply(ipvs: IPVS, spec: ServiceSpec, dests: list[DestSpec]) -> None:
    from pylvs.core.control import IPVSError

    try:
        ipvs.add_service(spec)
    except IPVSError:
        return
    for dest in dests:
        try:
            ipvs.add_dest(spec, dest)
        except IPVSError:
            pass


def _random_json(rng: random.Random, depth: int = 0) -> Any:
    r = rng.random()
    if depth > 3 or r < 0.3:
        return rng.choice([0, 1, -1, 80, 81.5, 2**70, True, False, None, "", "rr", "10.0.0.1",
                           "2001:db8::1", "x" * 300, "\u0000", 6, 17, 24.5, "master"])  # fmt: skip
    if r < 0.6:
        keys = ["protocol", "addr", "port", "fwmark", "scheduler", "persistent", "timeout",
                "netmask", "weight", "fwd", "af", "tun_type", "tun_port", "u_threshold",
                "l_threshold", "state", "mcast_ifn", "bogus"]  # fmt: skip
        return {rng.choice(keys): _random_json(rng, depth + 1) for _ in range(rng.randint(0, 6))}
    return [_random_json(rng, depth + 1) for _ in range(rng.randint(0, 3))]


CONTROL_REQUESTS = 5000


def test_control_requests() -> None:
    """Every line gets a response; a refused operation leaves no trace."""
    from pylvs.core.control import OPERATIONS

    rng = random.Random(330)
    ipvs = IPVS(random.Random(2))
    ops = [op.name for op in OPERATIONS] + ["ping", "status", "nope"]
    for _ in range(CONTROL_REQUESTS):
        request: Any = {"op": rng.choice(ops)}
        if rng.random() < 0.9:
            request["args"] = {
                name: _random_json(rng) for name in rng.sample(["spec", "svc", "dest", "timeouts",
                                                                "state", "x"], rng.randint(0, 3))
            }  # fmt: skip
        if rng.random() < 0.5 and "args" in request:
            # Mostly well-formed specs, so that operations get past the types and reach IPVS.
            request["args"]["spec"] = request["args"]["svc"] = {
                "protocol": rng.choice([6, 17, 0, 99]), "addr": rng.choice(["10.0.0.1", "::1"]),
                "port": rng.choice([80, 0, 70000]), "scheduler": rng.choice(["rr", "mh", "x"]),
            }  # fmt: skip
            request["args"]["dest"] = {"addr": rng.choice(["10.0.0.2", "2001:db8::7"]),
                                       "port": 80, "fwd": rng.randrange(-1, 6),
                                       "tun_type": rng.randrange(-1, 4)}  # fmt: skip
        line = json.dumps(request).encode()
        if rng.random() < 0.2:
            raw = bytearray(line)
            raw[rng.randrange(len(raw))] = rng.randrange(256)
            line = bytes(raw)
        before = ipvs.services()
        parsed, refusal = _parse(line)
        response = refusal if refusal is not None else dispatch(ipvs, parsed)
        assert isinstance(response, dict) and "ok" in response
        assert response.get("errno") != 5, response  # EIO: a bug reached the catch-all
        if not response["ok"]:
            assert ipvs.services() == before, request
        format_listing(ipvs.services(), Fmt.NUMERIC | Fmt.STATS)
        format_conns(ipvs.conns(), Fmt.NUMERIC)


ENGINE_PACKETS = 30000


def test_engine_packets() -> None:
    rng = random.Random(2_200_000)
    engine = Engine(random.Random(3))
    for port, proto, persistent in ((80, 6, False), (53, 17, True), (0, 6, True)):
        svc = ServiceSpec(protocol=proto, addr="192.0.2.10", port=port, scheduler="rr",
                          persistent=persistent)  # fmt: skip
        engine.add_service(svc)
        for fwd in (0, 2, 3):
            engine.add_dest(svc, DestSpec(addr=f"203.0.113.{fwd + 1}", port=port, fwd=fwd))
    # The IP packets of the packet table's frames (Ethernet header off; VLAN-tagged rows left out).
    seeds = [v.frame[14:] for v in vectors() if v.frame[12:14] in (b"\x08\x00", b"\x86\xdd")]
    verdicts = set(Verdict)
    for n in range(ENGINE_PACKETS):
        data = bytearray(rng.choice(seeds))
        for _ in range(rng.randint(0, 4)):
            if data:
                data[rng.randrange(len(data))] = rng.randrange(256)
        if rng.random() < 0.1:
            data = data[: rng.randrange(len(data) + 1)]
        action = engine.handle(bytes(data), n * 0.001)
        assert action.verdict in verdicts
        if n % 5000 == 0:
            engine.tick(n * 0.001)
            for svc in engine.services_list:
                for dest in svc.dests:
                    assert dest.activeconns >= 0 and dest.inactconns >= 0
