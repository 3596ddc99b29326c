"""keepalived itself as the oracle: ``keepalived -t -f FILE`` (Debian's keepalived 2.2.7) and
pylvs agree on which files are valid.

keepalived -t exits 0 for a file it has nothing to say about, 4 (2 for a missing parameter)
for one it cannot run, 5 for one it reports problems in but runs, 6 for scripts it would run
without script security. pylvs's verdicts: no remark (keepalived 0), a ConfigError or warnings
(anything else), and always a ConfigError where keepalived cannot run the file.

keepalived looks up the interfaces a file names, so it runs in a namespace of our own with
eth0..eth3 (veth pairs to a second namespace). Skipped without root or without keepalived.
"""

from __future__ import annotations

import os
import random
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from pylvs.config import ConfigError
from pylvs.config.keepalived import parse_keepalived
from pylvs.testing.netns import Lab

DATA = Path(__file__).resolve().parents[2] / "data" / "keepalived"
# The examples Debian's keepalived package installs (scripts/setup installs it).
KEEPALIVED_SAMPLES = Path("/usr/share/doc/keepalived/samples")
FILES = sorted(KEEPALIVED_SAMPLES.glob("keepalived.conf.*")) + sorted(
    (DATA / "corpus").glob("*.conf")
)

# Samples keepalived reports for what pylvs does not check: an interface missing here (eth0.1),
# static/virtual routes and rules (pylvs keeps them as words).
KNOWN = {
    "keepalived.conf.track_interface": "interface eth0.1 for vrrp_instance VI_1 doesn't exist",
    "keepalived.conf.vrrp.routes": "cannot track route",
    "keepalived.conf.vrrp.rules": "Invalid rule to address",
    "keepalived.conf.vrrp.static_ipaddress": "cannot track route",
}
# Files keepalived -t accepts and pylvs refuses: what pylvs cannot serve (SCTP, GUE/GRE tunnels)
# and a second virtual_server for the same service (keepalived's add then fails in IPVS).
STRICTER = {
    "error-duplicate-vs.conf": "duplicates the service of line",
    "error-sctp.conf": "protocol SCTP is not supported by pylvs",
    "error-tun-gue.conf": "tunnel type gue is not supported by pylvs (only ipip)",
}
# keepalived messages about routes, rules and interfaces: the same reasons, in mutated files.
UNCHECKED = ("doesn't exist", "route", "rule", "Unknown interface", "nexthop", "via", "VROUTE")

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("keepalived") is None or shutil.which("ip") is None,
    reason="needs root, ip and Debian's keepalived (apt-get install keepalived)",
)


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    with Lab() as lab:
        lab.add_netns("ka")
        lab.add_netns("peer")
        for i in range(4):
            lab.veth("ka", f"eth{i}", "peer", f"p{i}")
        yield lab


def keepalived_t(lab: Lab, path: Path) -> tuple[int, str]:
    done = lab.run("ka", ["keepalived", "-t", "-f", str(path)], check=False, timeout=30)
    # keepalived 2.2.7 prints an uninitialised buffer for some messages (FWM 0): not UTF-8.
    return done.returncode, done.stderr.decode(errors="replace")


def pylvs_verdict(text: str, path: Path) -> str:
    try:
        config = parse_keepalived(text, str(path))
    except ConfigError:
        return "error"
    return "warn" if config.warnings else "ok"


def agree(rc: int, verdict: str) -> bool:
    if rc == 0:
        return verdict == "ok"
    if rc in (2, 4):  # keepalived cannot run it
        return verdict == "error"
    return verdict != "ok"


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_keepalived_and_pylvs_agree(lab: Lab, path: Path) -> None:
    rc, stderr = keepalived_t(lab, path)
    verdict = pylvs_verdict(path.read_text(), path)
    if path.name in KNOWN:
        assert rc != 0 and KNOWN[path.name] in stderr
        assert verdict == "ok"
        return
    if path.name in STRICTER:
        assert rc == 0 and verdict == "error"
        with pytest.raises(ConfigError, match=re.escape(STRICTER[path.name])):
            parse_keepalived(path.read_text(), str(path))
        return
    assert agree(rc, verdict), (rc, verdict, stderr)


def test_mutated_files_agree(lab: Lab, tmp_path: Path) -> None:
    """Seeded random mutations of the corpus: keepalived and pylvs agree on every one whose
    keepalived messages are not about routes, rules or interfaces."""
    rng = random.Random(2207)
    words = ["{", "}", "!", '"', "0", "-1", "256", "1.5", "abc", "weight", "real_server", "fwmark",
             "TCP_CHECK", "url", "eth0", "999999999999999999999", "$X", "@a"]  # fmt: skip
    texts = [p.read_text() for p in FILES if p.name not in KNOWN and p.name not in STRICTER]
    disagreements = []
    for n in range(150):
        lines = rng.choice(texts).split("\n")
        for _ in range(rng.randint(1, 3)):
            i = rng.randrange(len(lines))
            op = rng.randrange(4)
            split = lines[i].split()
            if op == 0 and split:
                split[rng.randrange(len(split))] = rng.choice(words)
                lines[i] = " ".join(split)
            elif op == 1 and len(lines) > 1:
                del lines[i]
            elif op == 2:
                lines.insert(i, rng.choice(lines))
            else:
                lines[i] += " " + rng.choice(words)
        path = tmp_path / f"m{n}.conf"
        text = "\n".join(lines)
        path.write_text(text)
        rc, stderr = keepalived_t(lab, path)
        verdict = pylvs_verdict(text, path)
        if not agree(rc, verdict) and not any(word in stderr for word in UNCHECKED):
            disagreements.append((n, rc, verdict, stderr[:300]))
    assert disagreements == []
