"""The demonstration: the engine walk-through (no root); the farm demo runs in tests/e2e."""

import io

import pytest

from pylvs import demo


def test_engine_walkthrough_shows_each_method_and_the_spread() -> None:
    out = io.StringIO()
    assert demo.main(["--engine"], out) == 0
    text = out.getvalue()
    for method in ("== Masq", "== Route", "== Tunnel"):
        assert method in text
    # Tunnel: the outer header goes from the director to the real server, protocol 4.
    assert "IP 203.0.113.254 -> 203.0.113.1 ttl=63 proto=4" in text
    # wrr 3:1 over 4000 connections, then the quiesced server gets none of the next 1000.
    assert "  -> 203.0.113.1:80                   3000" in text
    assert "  203.0.113.2: 1000 new connections" in text


def test_farm_demo_options() -> None:
    with pytest.raises(SystemExit) as info:
        demo.main(["--help"], io.StringIO())
    assert info.value.code == 0
