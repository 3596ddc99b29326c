"""The pure parts of pylvs.ha.vrrp: vrrp_script rise/fall, the sync daemon's role mapping, and
keepalived.conf -> InstanceConfig."""

from __future__ import annotations

import pytest

from pylvs.config.keepalived import parse_keepalived_model
from pylvs.core.vrrp import BACKUP, FAULT, INIT, MASTER, STOP, VRRPInstance
from pylvs.core.vrrpmsg import AUTH_PASS
from pylvs.ha.vrrp import (
    Placement,
    ScriptState,
    SyncdPlan,
    VRRPConfigError,
    instance_config,
    placements,
    script_argv,
    syncd_event,
    syncd_plan,
)

# -- vrrp_script: vrrp_script_child_thread ----------------------------------------------------


def test_script_one_success_is_enough_at_start() -> None:
    st = ScriptState(rise=3, fall=2)
    assert st.up is None  # not run yet
    assert st.record(True) is True
    assert st.up is True


def test_script_first_failure_reports_down() -> None:
    st = ScriptState(rise=2, fall=2)
    assert st.record(False) is False
    assert st.up is False


def test_script_fall_and_rise_counts() -> None:
    st = ScriptState(rise=2, fall=3)
    assert st.record(True) is True  # result = rise + fall - 1 = 4
    assert st.record(False) is None  # 3
    assert st.record(False) is None  # 2 = rise: still up
    assert st.up is True
    assert st.record(False) is False  # down at the third failure
    assert st.up is False
    assert st.record(True) is None  # 1: one success is not enough after a fall
    assert st.up is False
    assert st.record(True) is True  # 2 successes: up
    assert st.record(True) is None


def test_script_init_fail_starts_down_and_needs_rise() -> None:
    st = ScriptState(rise=2, fall=1, init_fail=True)
    assert st.up is False
    assert st.record(False) is None  # already down: nothing to report
    assert st.record(True) is None
    assert st.record(True) is True


def test_script_argv_splits_like_a_command_line() -> None:
    assert script_argv("/usr/bin/test -e '/tmp/a b'") == ["/usr/bin/test", "-e", "/tmp/a b"]
    # keepalived: "missing terminating '" - the script is ignored
    assert script_argv("/bin/x 'unbalanced") == []
    assert script_argv('/bin/sh -c "exit 0"') == ["/bin/sh", "-c", "exit 0"]


# -- lvs_sync_daemon ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("before", "after", "event"),
    [
        (BACKUP, MASTER, "master"),
        (INIT, MASTER, "master"),
        (MASTER, BACKUP, "backup"),
        (MASTER, FAULT, "backup"),
        (BACKUP, FAULT, None),
        (FAULT, BACKUP, None),
        (INIT, BACKUP, None),
        (MASTER, STOP, "stop"),
        (BACKUP, STOP, "stop"),
        (MASTER, MASTER, None),
    ],
)
def test_syncd_follows_the_instance(before: str, after: str, event: str | None) -> None:
    assert syncd_event(before, after) == event


CONF = """
global_defs {
    lvs_sync_daemon eth1 VI_1 maxlen 1400 port 8849 ttl 2 group 224.0.0.82
}
vrrp_script chk {
    script "/bin/true"
    weight -20
    rise 2
    fall 3
}
vrrp_script chk0 {
    script "/bin/true"
    init_fail
}
vrrp_instance VI_1 {
    state MASTER
    interface eth0
    virtual_router_id 51
    priority 150
    advert_int 1
    authentication {
        auth_type PASS
        auth_pass secret99
    }
    track_interface {
        eth2 weight -10
    }
    track_script {
        chk
        chk0
    }
    virtual_ipaddress {
        10.0.0.100/24 dev eth0 label eth0:vip brd +
        10.0.0.101
    }
    virtual_ipaddress_excluded {
        10.0.1.5/32 dev eth1 scope host
    }
}
vrrp_instance VI_2 {
    interface eth0
    virtual_router_id 52
    version 3
    advert_int 0.1
    nopreempt
    unicast_src_ip 10.0.0.1
    unicast_peer {
        10.0.0.2
    }
    virtual_ipaddress {
        10.0.0.200
    }
}
"""


def test_instance_config_from_keepalived_conf() -> None:
    ka = parse_keepalived_model(CONF)
    vi = ka.vrrp_instances[0]
    links = {"eth0": True, "eth2": False}
    cfg = instance_config(vi, ka, "10.0.0.1", lambda name: links[name])
    assert (cfg.name, cfg.vrid, cfg.priority, cfg.state, cfg.version) == (
        "VI_1",
        51,
        150,
        MASTER,
        2,
    )
    assert cfg.vips == ("10.0.0.100", "10.0.0.101")
    assert cfg.excluded_vips == ("10.0.1.5",)
    assert (cfg.auth_type, cfg.auth_pass) == (AUTH_PASS, "secret99")
    trackers = {t.name: t for t in cfg.trackers}
    assert (trackers["eth0"].weight, trackers["eth0"].up) == (0, True)
    assert (trackers["eth2"].weight, trackers["eth2"].up) == (-10, False)
    assert (trackers["chk"].weight, trackers["chk"].up) == (-20, None)  # not run yet
    assert (trackers["chk0"].weight, trackers["chk0"].up) == (0, False)  # init_fail
    # the state machine: eth2 down (-10) and chk0 failed (weight 0: FAULT)
    inst = VRRPInstance(cfg)
    inst.start(0.0)
    assert inst.state == FAULT and inst.effective_priority == 140


def test_unicast_v3_instance() -> None:
    ka = parse_keepalived_model(CONF)
    cfg = instance_config(ka.vrrp_instances[1], ka, "10.0.0.1")
    assert (cfg.version, cfg.advert_int, cfg.nopreempt, cfg.priority) == (3, 0.1, True, 100)
    assert [p.address for p in cfg.unicast_peers] == ["10.0.0.2"]
    assert cfg.unicast_peers[0].max_ttl == 255


def test_placements_keep_dev_label_scope_brd() -> None:
    ka = parse_keepalived_model(CONF)
    assert placements(ka.vrrp_instances[0], "eth0") == (
        Placement("10.0.0.100", 24, "eth0", "10.0.0.255", None, "eth0:vip"),
        Placement("10.0.0.101", 32, "eth0"),
        Placement("10.0.1.5", 32, "eth1", None, "host", None),
    )


def test_syncd_plan_defaults_syncid_to_the_vrid() -> None:
    ka = parse_keepalived_model(CONF)
    plan, notes = syncd_plan(ka)
    assert plan == SyncdPlan("VI_1", "eth1", 51, 1400, 8849, 2, "224.0.0.82")
    assert notes == []


def test_ipv6_instance_with_an_ipv4_vip_is_refused_clearly() -> None:
    # IPv6 instances run (tests/unit/ha/test_vrrp_service_v6.py); mixing families does not.
    ka = parse_keepalived_model(
        "vrrp_instance V6 {\n interface eth0\n virtual_router_id 9\n"
        " virtual_ipaddress {\n  fd00::100/64\n  10.0.0.100\n }\n}\n"
    )
    with pytest.raises(VRRPConfigError, match="address family must match"):
        instance_config(ka.vrrp_instances[0], ka, "fe80::1")
