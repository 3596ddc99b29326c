"""Command lines that made pylvsadm print a traceback: each gets ipvsadm's own message now."""

from __future__ import annotations

import pytest
from pylvsadm_fake import FakeControl, run

BIG = "9" * 4301  # more digits than int() converts


@pytest.mark.parametrize(
    ("argv", "code", "stderr"),
    [
        (["-A", "-t", f"10.0.0.1:{BIG}"], 2, "illegal virtual server address[:port] specified\n"),
        (["-A", "-f", BIG], 2, f"invalid fwmark value `{BIG}' specified\n"),
        (["-A", "-f", "0" * 5000 + "1", "-s", "rr"], 0, ""),
        (["-A", "-t", f"{BIG}.1.1.1:80"], 2, "illegal virtual server address[:port] specified\n"),
        (["--set", BIG, "0", "0"], 2, f"invalid timeout value `{BIG}' specified\n"),
        (["--start-daemon", "master", "--mcast-group", "\udcff"], 2,
         "invalid IPv4 mcast-group `\udcff'\n"),
        (["-A", "-t", "\udcff:80"], 2, "illegal virtual server address[:port] specified\n"),
        (["-A", "-t", "10.0.0.1:\udcff"], 2, "illegal virtual server address[:port] specified\n"),
    ],
)  # fmt: skip
def test_nasty_values_get_ipvsadms_messages(argv: list[str], code: int, stderr: str) -> None:
    rc, _out, err = run(FakeControl(), *argv)
    assert (rc, err) == (code, stderr)


def test_a_nul_byte_in_a_restore_line_ends_the_line() -> None:
    """ipvsadm reads each -R line into a C string: the NUL ends it. Before: a ValueError or
    TypeError from the resolvers."""
    ctl = FakeControl()
    stdin = "-A -t 10.0.0.1:80\x00 -s rr\n-A -t 10.0.0.2:ht\x00tp\n-A -t 10.0\x00.0.3:80\n"
    rc, _out, err = run(ctl, "-R", stdin=stdin)
    assert rc == 2
    assert err == "illegal virtual server address[:port] specified\n"
    assert [s.addr for s in ctl.ipvs.services()] == ["10.0.0.1"]
    assert ctl.ipvs.services()[0].scheduler == "wlc"  # "-s rr" was after the NUL
