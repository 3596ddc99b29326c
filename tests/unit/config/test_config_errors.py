"""Broken files raise ConfigError naming file, line and problem; nothing else escapes."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pylvs.config import ConfigError, load, parse_ldirectord, parse_native
from pylvs.config._resolve import resolve_port

HEAD = "checktimeout=3\n"
VIRT = "virtual=192.0.2.1:80\n"

LDIRECTORD_CASES = [
    ("unknown global", "frobnicate=1\n", 'ldirectord.cf:1: Unknown command "frobnicate=1"'),
    ("unknown in virtual", VIRT + "\treal=10.0.0.1:80 gate\n\tfoo=bar\n",
     'ldirectord.cf:3: Unknown command "foo=bar"'),
    ("blank line ends the section", VIRT + "\treal=10.0.0.1:80 gate\n\n\treal=10.0.0.2:80 gate\n",
     'ldirectord.cf:4: indented line outside a virtual section: "real=10.0.0.2:80 gate" '
     "(a virtual section ends at the first blank or unindented line)"),
    ("indent of 2 spaces", VIRT + "  real=10.0.0.1:80 gate\n",
     'ldirectord.cf:2: indented line outside a virtual section: "real=10.0.0.1:80 gate" '
     "(a virtual section ends at the first blank or unindented line)"),
    ("bad real line", VIRT + "\treal=10.0.0.1:80\n",
     "ldirectord.cf:2: forward method must be gate, masq or ipip"),
    ("bad real address", VIRT + "\treal=@@@ gate\n",
     "ldirectord.cf:2: invalid address for real server (wrong format)"),
    ("bad weight", HEAD * 11 + VIRT + "\treal=10.0.0.1:80 gate abc\n",
     'ldirectord.cf:13: invalid weight "abc" in real= line'),
    ("weight too large", VIRT + "\treal=10.0.0.1:80 gate 65536\n",
     'ldirectord.cf:2: invalid weight "65536" in real= line'),
    ("trailing junk", VIRT + '\treal=10.0.0.1:80 gate 1 "/", "x" junk\n',
     'ldirectord.cf:2: Invalid real server line, around "junk"'),
    ("bad threshold", VIRT + "\treal=10.0.0.1:80 gate 1 u:x\n",
     'ldirectord.cf:2: invalid upper threshold "x" in real= line'),
    ("thresholds reversed", VIRT + "\treal=10.0.0.1:80 gate 1 l:10 u:5\n",
     "ldirectord.cf:2: lower threshold is higher than upper threshold"),
    ("bad real port", VIRT + "\treal=10.0.0.1:99999 masq\n",
     "ldirectord.cf:2: invalid port (99999) for real server (could not resolve port)"),
    ("bad virtual port", "virtual=192.0.2.1:nosuchservice\n\treal=10.0.0.1 gate\n",
     "ldirectord.cf:1: invalid address for virtual service"),
    ("bad virtual", "virtual=192.0.2.1\n", "ldirectord.cf:1: invalid address for virtual server"),
    ("v6 in virtual", "virtual=[2001:db8::1]:80\n",
     'ldirectord.cf:1: cannot specify an IPv6 address here. please use "virtual6" instead.'),
    ("real6 in virtual", VIRT + "\treal6=[2001:db8::2]:80 gate\n",
     'ldirectord.cf:2: cannot specify "real6" here.  please use "real" instead'),
    ("bad checktype", VIRT + "\tchecktype=sometimes\n",
     'ldirectord.cf:2: checktype must be "connect", "negotiate", "on", "off", "ping", '
     '"external", "external-perl" or a positive number'),
    ("bad service", VIRT + "\tservice=gopher\n",
     "ldirectord.cf:2: service must be dns, ftp, http, https, http_proxy, imap, imaps, ldap, "
     "ldaps, mysql, nntp, none, oracle, pgsql, pop, pops, radius, simpletcp, sip, smtp "
     "or submission"),
    ("deprecated timeout", HEAD + "timeout=5\n",
     "ldirectord.cf:2: timeout directive deprecated in favour of checktimeout and "
     "negotiatetimeout"),
    ("deprecated connecttimeout", VIRT + "\tconnecttimeout=5\n",
     "ldirectord.cf:2: connecttimeout directive deprecated in favour of negotiatetimeout"),
    ("duplicate virtual", VIRT + "\treal=10.0.0.1:80 gate\n" + VIRT + "\treal=10.0.0.2:80 gate\n",
     "ldirectord.cf:3: duplicate virtual server (first on line 1)"),
    ("duplicate real", VIRT + "\treal=10.0.0.1:80 gate\n\treal=10.0.0.1:8080 gate\n",
     "ldirectord.cf:3: duplicate real server 10.0.0.1:80 (first on line 2)"),
    ("quiescent", "quiescent=maybe\n", "ldirectord.cf:1: quiescent must be 'yes' or 'no'"),
    ("zero timeout", "checktimeout=0\n", "ldirectord.cf:1: invalid check timeout value"),
    ("protocol on fwmark", "virtual=3\n\tprotocol=tcp\n",
     "ldirectord.cf:2: protocol must be fwm if the virtual service is a fwmark (a number)"),
    ("netmask", VIRT + "\tpersistent=60\n\tnetmask=255.0.255.0\n",
     "ldirectord.cf:3: invalid netmask: dotted quad notation of a contiguous mask is required"),
    ("scheduler", VIRT + "\tscheduler=WRR\n",
     "ldirectord.cf:2: invalid scheduler, should be only lowercase letters (a-z)"),
    ("bad range", VIRT + "\treal=10.0.0.9->10.0.0.1:80 masq\n",
     "ldirectord.cf:2: Invalid Range: 10.0.0.9->10.0.0.1: the first address must not be "
     "greater than the second"),
    ("email status", "emailalertstatus=none,running\n",
     'ldirectord.cf:1: invalid email alert status: "running" specified with "none"'),
    ("zero port", "virtual=192.0.2.1:0\n\treal=10.0.0.1 gate\n",
     "ldirectord.cf:1: Zero port specified for non-persistent service"),
    ("unquoted request", VIRT + "\trequest=/index.html\n",
     'ldirectord.cf:2: Unknown command "request=/index.html"'),
]  # fmt: skip


@pytest.mark.parametrize(("text", "message"), [c[1:] for c in LDIRECTORD_CASES],
                         ids=[c[0] for c in LDIRECTORD_CASES])  # fmt: skip
def test_ldirectord_errors(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_ldirectord(text, "ldirectord.cf")
    assert str(info.value) == message


TOML_CASES = [
    ("syntax", "[global]\ncheckinterval = = 3\n",
     "pylvs.toml:2: TOML: Invalid value (column 17)"),
    ("wrong type", "[[virtual]]\naddress = \"192.0.2.1\"\nport = \"80\"\n",
     "pylvs.toml:3: virtual[0].port must be an integer, not a string"),
    ("bool is not int", "[global]\ncheckinterval = true\n",
     "pylvs.toml:2: global.checkinterval must be an integer, not a boolean"),
    ("unknown key", "[[virtual]]\nfwmark = 1\nschedular = \"rr\"\n",
     'pylvs.toml:3: unknown key "schedular" in [virtual[0]]'),
    ("unknown real key", "[[virtual]]\nfwmark = 1\n[[virtual.real]]\naddress = \"10.0.0.1\"\n"
     "wieght = 3\n", 'pylvs.toml:5: unknown key "wieght" in [virtual[0].real[0]]'),
    ("bad weight", "[[virtual]]\nfwmark = 1\n[[virtual.real]]\naddress = \"10.0.0.1\"\n"
     "weight = 70000\n", "pylvs.toml:5: virtual[0].real[0].weight must be in 0..65535, not 70000"),
    ("bad forward", "[[virtual]]\nfwmark = 1\n[[virtual.real]]\naddress = \"10.0.0.1\"\n"
     "forward = \"dr\"\n",
     'pylvs.toml:5: virtual[0].real[0].forward must be gate, masq or ipip (or route, tunnel), '
     'not "dr"'),
    ("bad checktype", "[[virtual]]\nfwmark = 1\nchecktype = \"often\"\n",
     "pylvs.toml:3: virtual[0].checktype must be one of connect, negotiate, ping, off, on, "
     "external, external-perl, misc or a number"),
    ("duplicate virtual", "[[virtual]]\nfwmark = 1\n[[virtual]]\nfwmark = 1\n",
     "pylvs.toml:3: duplicate virtual server fwm:1"),
    ("gue refused", "[[virtual]]\nfwmark = 1\n[[virtual.real]]\naddress = \"10.0.0.1\"\n"
     "forward = \"ipip\"\ntun_type = \"gue\"\n",
     "pylvs.toml:6: virtual[0].real[0].tun_type gue is not supported (only ipip)"),
    ("ops on tcp", "[[virtual]]\naddress = \"192.0.2.1\"\nport = 80\nops = true\n",
     "pylvs.toml:4: one-packet scheduling (ops) is only for UDP services"),
]  # fmt: skip


@pytest.mark.parametrize(("text", "message"), [c[1:] for c in TOML_CASES],
                         ids=[c[0] for c in TOML_CASES])  # fmt: skip
def test_native_errors(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_native(text, "pylvs.toml")
    assert str(info.value) == message


def test_error_attributes() -> None:
    with pytest.raises(ConfigError) as info:
        parse_ldirectord("bogus\n", "x.cf")
    err = info.value
    assert isinstance(err, ValueError)
    assert (err.filename, err.line, err.problem) == ("x.cf", 1, 'Unknown command "bogus"')


def test_load_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="can not open file"):
        load(tmp_path / "nope.cf")


def test_load_picks_format_by_content(tmp_path: Path) -> None:
    path = tmp_path / "farm.conf"
    path.write_text("[[virtual]]\nfwmark = 7\n")
    assert load(path).virtuals[0].spec.fwmark == 7
    path.write_text("virtual=7\n\treal=10.0.0.1 gate\n")
    assert load(path).virtuals[0].spec.scheduler == "wrr"


def _literal_only(name: str, af: int) -> str | None:
    """A resolver that never touches DNS, for fuzzing."""
    import ipaddress

    try:
        ip = ipaddress.ip_address(name.strip("[]"))
    except ValueError:
        return None
    return str(ip) if (ip.version == 4) == (af == 4) else None


_LINES = st.sampled_from([
    "virtual=192.0.2.1:80", "virtual6=[2001:db8::1]:80", "virtual=5", "\treal=10.0.0.1:80 gate",
    "\treal=10.0.0.1->10.0.0.3:80 masq 3 \"/\", \"ok\" l:1 u:2", "\treal6=[2001:db8::2]:80 ipip",
    "\tchecktype=3", "\tpersistent=60", "\tnetmask=255.255.255.0", "\tprotocol=udp", "",
    "checktimeout=4", "\tfallback=127.0.0.1:80 masq", "fallback=127.0.0.1", "# c", "\tops=yes",
    "\tschedflags=sh-port", "quiescent=yes", "\tservice=dns",
])  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(_LINES, st.text(max_size=40)), max_size=12))
def test_ldirectord_only_raises_config_error(lines: list[str]) -> None:
    try:
        parse_ldirectord("\n".join(lines), "f.cf", resolve_host=_literal_only,
                         resolve_port=resolve_port)  # fmt: skip
    except ConfigError:
        pass


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_native_only_raises_config_error(text: str) -> None:
    try:
        parse_native(text, "f.toml")
    except ConfigError:
        pass


_TOML_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 70000) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3),
    max_leaves=4,
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(
    st.sampled_from(["address", "port", "fwmark", "protocol", "scheduler", "persistent", "netmask",
                     "ops", "checktype", "family", "sched_flags", "pe", "weight"]),
    _TOML_VALUES, max_size=6,
))  # fmt: skip
def test_native_typed_fuzz(table: dict[str, object]) -> None:
    import json

    lines = ["[[virtual]]"]
    for key, value in table.items():
        if value is not None:
            lines.append(f"{key} = {json.dumps(value)}")
    try:
        parse_native("\n".join(lines), "f.toml")
    except ConfigError:
        pass
