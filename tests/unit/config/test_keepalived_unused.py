"""Keywords pylvs reads and checks in a keepalived.conf but does not act on are listed as
unused (``pylvsd --check`` prints them), so nobody believes they take effect."""

from __future__ import annotations

from pylvs.config.keepalived import CHECKED_NOT_RUN, parse_keepalived

TEXT = """\
global_defs {
  notification_email { admin@example.org }
  smtp_server 192.0.2.25
  lvs_flush
  vrrp_garp_interval 0.001
}
vrrp_instance VI_1 {
  interface eth0
  virtual_router_id 51
  priority 100
  use_vmac
  accept
  virtual_ipaddress { 192.0.2.100/24 }
}
virtual_server 192.0.2.100 80 {
  ha_suspend
  smtp_alert
  real_server 192.0.2.1 80 {
    TCP_CHECK { connect_timeout 2 }
  }
}
"""


def test_checked_but_not_run_keywords_are_listed_with_their_lines() -> None:
    ka = parse_keepalived(TEXT, "ka.conf").keepalived
    assert ka is not None
    listed = {entry.rsplit(": ", 1)[1]: entry for entry in ka.unused}
    for keyword, line in (
        ("notification_email", 2),
        ("smtp_server", 3),
        ("lvs_flush", 4),
        ("vrrp_garp_interval", 5),
        ("use_vmac", 11),
        ("accept", 12),
        ("ha_suspend", 16),
        ("smtp_alert", 17),
    ):
        assert keyword in CHECKED_NOT_RUN
        assert listed[keyword] == f"ka.conf:{line}: {keyword}"
    # what pylvs runs is not listed
    assert not {"priority", "virtual_router_id", "TCP_CHECK", "connect_timeout"} & set(listed)
