"""Fuzzed keepalived.conf files: random mutations of keepalived's samples and the corpus never
raise anything but ConfigError, and a Config that comes out is consistent."""

from __future__ import annotations

from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pylvs.config import Config, ConfigError
from pylvs.config.keepalived import parse_keepalived

DATA = Path(__file__).resolve().parents[2] / "data" / "keepalived"
# The examples Debian's keepalived package installs (scripts/setup installs it).
KEEPALIVED_SAMPLES = Path("/usr/share/doc/keepalived/samples")
FILES = sorted(KEEPALIVED_SAMPLES.glob("keepalived.conf.*")) + sorted(
    (DATA / "corpus").glob("*.conf")
)
TEXTS = [p.read_text() for p in FILES]

# Words that hit the grammar and the value checks.
WORDS = [
    "{", "}", "{ }", "!", "#", '"', "'", "\\", "$X", "${X}", "$X=1", "@a", "@^a", "include",
    "include /nonexistent/*", "0", "-1", "1.5", "0.01", "256", "65536", "4294967296",
    "99999999999999999999999", "abc", "", " ", "\t", "weight", "real_server", "virtual_server",
    "virtual_server_group", "vrrp_instance", "vrrp_script", "vrrp_sync_group", "global_defs",
    "fwmark", "group", "TCP_CHECK", "HTTP_GET", "url", "path", "status_code", "lvs_method",
    "TUN", "DR", "NAT", "sh-port", "persistence_timeout", "192.0.2.1", "192.0.2.1-300",
    "2001:db8::1", "fe80::1", "10.0.0.1/33", "lo", "eth0", "MASTER", "BACKUP", "priority",
    "virtual_router_id", "advert_int", "authentication", "\x00", "é", "\ufeff", '"a{v}"',
    '"{"', '"x y"',
]  # fmt: skip


@st.composite
def mutated(draw: st.DrawFn) -> str:
    lines = draw(st.sampled_from(TEXTS)).split("\n")
    for _ in range(draw(st.integers(1, 6))):
        i = draw(st.integers(0, len(lines) - 1))
        op = draw(st.integers(0, 4))
        if op == 0:
            words = lines[i].split()
            if words:
                words[draw(st.integers(0, len(words) - 1))] = draw(st.sampled_from(WORDS))
            lines[i] = " ".join(words)
        elif op == 1:
            del lines[i]
            if not lines:
                lines = [""]
        elif op == 2:
            lines.insert(i, draw(st.sampled_from(lines)))
        elif op == 3:
            lines[i] += " " + draw(st.sampled_from(WORDS))
        else:
            lines[i] = draw(st.text(max_size=30))
    return "\n".join(lines)


def _consistent(config: Config) -> None:
    ka = config.keepalived
    assert ka is not None
    for v in config.virtuals:
        assert v.spec.fwmark or v.spec.addr
        for r in v.reals:
            assert 0 <= r.dest.port <= 65535 and r.dest.weight >= 0
    for inst in ka.vrrp_instances:
        assert inst.virtual_router_id is not None and 1 <= inst.virtual_router_id <= 255
        assert 1 <= inst.priority <= 255 and inst.advert_int > 0


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_mutations_give_a_config_or_a_config_error(text: str) -> None:
    try:
        config = parse_keepalived(text, "/nonexistent/keepalived.conf")
    except ConfigError as exc:
        assert str(exc).startswith("/nonexistent/keepalived.conf")
        return
    _consistent(config)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.sampled_from(list('{}!#"\\$@ \t\nabc019.-_=') + WORDS), max_size=80).map("".join)
)
def test_random_text_gives_a_config_or_a_config_error(text: str) -> None:
    try:
        parse_keepalived(text, "k.conf")
    except ConfigError:
        pass
