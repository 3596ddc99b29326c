"""Regression tests for configuration files that used to hurt the director."""

from __future__ import annotations

import random
import time

import pytest

from pylvs.config import ConfigError, parse_ldirectord, parse_native
from pylvs.core.ipvs import IPVS


@pytest.mark.parametrize(
    "real",
    ["10.0.0.0->10.255.255.255:80 gate", "0.0.0.0->255.255.255.255:80 gate"],
)
def test_a_huge_range_is_refused_before_it_is_expanded(real: str) -> None:
    """Before, the first took 35 s and 1.2 GB before the ConfigError; the second was a
    MemoryError (an out-of-memory director at start or on SIGHUP)."""
    started = time.monotonic()
    with pytest.raises(ConfigError, match="more than 65536 addresses"):
        parse_ldirectord(f"virtual=192.0.2.1:80\n\treal={real}\n", "ldirectord.cf")
    first = real.split(":")[0]
    text = f'[[virtual]]\naddress = "192.0.2.1"\nport = 80\n[[virtual.real]]\naddress = "{first}"\n'
    with pytest.raises(ConfigError, match="invalid IPv4 range"):
        parse_native(text, "pylvs.toml")
    assert time.monotonic() - started < 5  # generous: it is instant


def test_many_ranges_together_are_bounded() -> None:
    reals = "".join(f"\treal=10.{i}.0.0->10.{i}.127.255:80 gate\n" for i in range(3))
    with pytest.raises(ConfigError, match="more than 65536 real servers in the file"):
        parse_ldirectord(f"virtual=192.0.2.1:80\n{reals}", "ldirectord.cf")


def test_a_toml_integer_of_too_many_digits_is_a_config_error() -> None:
    """Before, tomllib's ValueError (the int() digit limit) escaped as it was."""
    with pytest.raises(ConfigError, match=r"pylvs\.toml: TOML"):
        parse_native("[global]\ncheckinterval = " + "9" * 4301 + "\n", "pylvs.toml")


def test_unsupported_features_are_refused_with_their_line() -> None:
    base = '[[virtual]]\naddress = "192.0.2.1"\nport = 5060\nprotocol = "udp"\npersistent = 60\n'
    with pytest.raises(ConfigError, match=r"pylvs\.toml:6: .*persistence engines are not"):
        parse_native(base + 'pe = "sip"\n', "pylvs.toml")
    six = (
        '[[virtual]]\naddress = "192.0.2.1"\nport = 80\n[[virtual.real]]\n'
        'address = "2001:db8::7"\nforward = "masq"\n'
    )
    # Mixed families are for tunnels only (an ipip one is accepted: test_native_v6.py).
    with pytest.raises(ConfigError, match="another address family needs forward = ipip"):
        parse_native(six, "pylvs.toml")


def test_the_documented_complete_example_applies_to_an_engine() -> None:
    """Before, it parsed but the engine refused it (pe sip)."""
    from test_config_examples import _doc_block  # type: ignore[import-not-found]

    config = parse_native(_doc_block("### Complete example", "toml"), "example.toml")
    ipvs = IPVS(random.Random(1))
    for spec, dests in config.services():
        ipvs.add_service(spec)
        for dest in dests:
            ipvs.add_dest(spec, dest)
    assert [len(s.dests) for s in ipvs.services()] == [4, 1, 2]
