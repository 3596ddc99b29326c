"""Prepare a host (a network namespace) to be an LVS real server, and undo it.

What each forwarding method needs on the real server (LVS-HOWTO; kernel selftest ``ipvs.sh``):

* ``dr`` and ``tun``: the VIP on ``lo`` as a /32, so the server accepts packets addressed to it;
  ``arp_ignore=1`` and ``arp_announce=2`` on ``all`` and ``lo`` so only the director answers ARP
  for the VIP ("the ARP problem"); ``rp_filter=0`` on ``all``, ``default`` and every interface,
  because client packets arrive where the client is not routed (always so for TUN).
* ``tun`` additionally: a decapsulator. Where the kernel has ``tunl0`` (the ``ipip`` module), bring
  it up with ``rp_filter=0``; otherwise run :class:`pylvs.io.ipipdecap.IpipDecapsulator` until
  stopped.
* ``nat``: replies must go back through the director, so the default route points at it.

An IPv6 VIP (``--vip 2001:db8::10``) is put on ``lo`` as a /128 (a shorter prefix on ``lo`` would
make the whole prefix local). IPv6 has no "ARP problem" to suppress: Linux answers a Neighbor
Solicitation only for an address of the interface it arrived on (``ndisc_recv_ns`` looks the
target up on that device, unless proxy NDP is on), so a VIP on ``lo`` is never advertised on the
real server's other interfaces; this was checked in namespaces (a neighbour soliciting the VIP of
a host that has it on ``lo`` gets no answer: FAILED), so nothing replaces ``arp_ignore`` /
``arp_announce``, and IPv6 has no ``rp_filter``. Addresses on ``lo`` do no duplicate address
detection, so the VIP is usable at once. In ``nat`` mode with an IPv6 director, the IPv6 default
route points at it. The tunnel decapsulator takes IPv6-in-IPv6 and IPv4-in-IPv6 as well
(:mod:`pylvs.io.ipipdecap`).

:func:`setup` records every value it changes in a state file under ``/run/pylvs`` (one per network
namespace), and :func:`undo` puts them back.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import socket
from dataclasses import asdict, dataclass, field

from pylvs.io import netcfg

__all__ = [
    "MODES",
    "RealServerError",
    "RealServerState",
    "needs_decapsulator",
    "setup",
    "state_path",
    "undo",
]

MODES = ("dr", "tun", "nat")
_STATE_DIR = "/run/pylvs"


class RealServerError(Exception):
    """The real server cannot be set up as asked; the message says why."""


@dataclass
class RealServerState:
    """What :func:`setup` changed, so that :func:`undo` can revert exactly that."""

    vip: str
    mode: str
    director: str | None = None
    address_added: bool = False
    sysctls: dict[str, str] = field(default_factory=dict)
    old_gateway: str | None = None
    route_set: bool = False
    lo_raised: bool = False
    tunl0_used: bool = False


def state_path() -> str:
    """One state file per network namespace, named after the namespace's cookie (never reused,
    unlike inode numbers: :func:`netcfg.netns_cookie`)."""
    return os.path.join(_STATE_DIR, f"realserver-{netcfg.netns_cookie()}.json")


def _load_state() -> RealServerState | None:
    try:
        with open(state_path()) as f:
            return RealServerState(**json.load(f))
    except FileNotFoundError:
        return None


def _save_state(state: RealServerState) -> None:
    os.makedirs(_STATE_DIR, exist_ok=True)
    with open(state_path(), "w") as f:
        json.dump(asdict(state), f)


def _set(state: RealServerState, key: str, value: int) -> None:
    old = netcfg.write_sysctl(key, value)
    state.sysctls.setdefault(key, old)


def setup(vip: str, mode: str, director: str | None = None) -> RealServerState:
    """Configure this namespace as a real server for ``vip``; returns what was changed.

    For ``tun`` this does not start the userspace decapsulator (the caller runs it, as it blocks);
    the returned state tells whether it is needed (:func:`needs_decapsulator`).
    """
    if mode not in MODES:
        raise RealServerError(f"unknown mode {mode!r} (use dr, tun or nat)")
    try:
        ip = ipaddress.ip_address(vip)
    except ValueError:
        raise RealServerError(f"VIP {vip!r} is not an IPv4 or IPv6 address") from None
    if mode == "nat" and director is None:
        raise RealServerError("nat mode needs --director ADDR (the real server's gateway)")
    if mode == "nat" and director is not None:
        try:
            gateway = ipaddress.ip_address(director)
        except ValueError:
            raise RealServerError(f"director {director!r} is not an IP address") from None
        if gateway.version != ip.version:
            raise RealServerError(
                f"director {director} and VIP {vip} are not of one family (NAT does not mix "
                "IPv4 and IPv6)"
            )
    previous = _load_state()
    if previous is not None:
        raise RealServerError(
            f"already set up as a real server for {previous.vip} ({previous.mode}); "
            "run with --undo first"
        )
    state = RealServerState(vip=str(ip), mode=mode, director=director)
    try:
        if mode in ("dr", "tun"):
            if not netcfg.link_is_up("lo"):
                # A fresh namespace has lo down: the VIP on it would accept nothing.
                netcfg.set_link_up("lo")
                state.lo_raised = True
            state.address_added = netcfg.add_address("lo", f"{ip}/{ip.max_prefixlen}")
            if ip.version == 4:
                # IPv6: nothing to suppress (module docstring).
                for conf in ("all", "lo"):
                    _set(state, f"net/ipv4/conf/{conf}/arp_ignore", 1)
                    _set(state, f"net/ipv4/conf/{conf}/arp_announce", 2)
                for conf in ("all", "default", *netcfg.link_names()):
                    _set(state, f"net/ipv4/conf/{conf}/rp_filter", 0)
            if mode == "tun" and netcfg.link_exists("tunl0"):
                state.tunl0_used = True
                netcfg.set_link_up("tunl0")
        else:
            assert director is not None
            try:
                netcfg.route_get(director)
            except netcfg.NoRouteError:
                raise RealServerError(f"director {director} is not reachable (no route)") from None
            family = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
            state.old_gateway = netcfg.default_gateway(family)
            netcfg.replace_default_route(director)
            state.route_set = True
    except Exception:
        _revert(state)
        raise
    _save_state(state)
    return state


def needs_decapsulator(state: RealServerState) -> bool:
    """True for tunnel mode on a kernel without ``tunl0``: IPIP is decapsulated in userspace."""
    return state.mode == "tun" and not netcfg.link_exists("tunl0")


def _revert(state: RealServerState) -> None:
    if state.route_set:
        if state.old_gateway:
            netcfg.replace_default_route(state.old_gateway)
        elif state.director:
            netcfg.del_route("default", state.director)
    for key, old in reversed(list(state.sysctls.items())):
        with contextlib.suppress(netcfg.NetcfgError, OSError):
            netcfg.write_sysctl(key, old)
    if state.address_added:
        prefix = 128 if ":" in state.vip else 32
        netcfg.del_address("lo", f"{state.vip}/{prefix}")
    if state.lo_raised:
        with contextlib.suppress(netcfg.NetcfgError, OSError):
            netcfg.set_link_down("lo")


def undo() -> RealServerState | None:
    """Revert what :func:`setup` did in this namespace; None if it had not been set up."""
    state = _load_state()
    if state is None:
        return None
    _revert(state)
    os.unlink(state_path())
    return state


def describe(state: RealServerState) -> str:
    """One line saying what :func:`setup` changed (``pylvs realserver`` prints it)."""
    if state.mode == "nat":
        return f"nat real server: default route via {state.director}"
    prefix = 128 if ":" in state.vip else 32
    done = [f"{state.vip}/{prefix} on lo" + (" (lo brought up)" if state.lo_raised else "")]
    if prefix == 32:
        done.append("arp_ignore=1 arp_announce=2 on all and lo, rp_filter=0")
    else:
        done.append("no neighbour advertisement for it (the kernel answers NS per interface)")
    if state.tunl0_used:
        done.append("tunl0 up")
    return f"{state.mode} real server: " + ", ".join(done)
