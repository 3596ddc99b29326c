"""The schedulers on IPv6 services: the same invariants as for IPv4, and the kernel's rule that
an IPv6 address is hashed by XOR-folding its four 32-bit words (ip_vs_sh_hashkey,
ip_vs_dh_hashkey, ip_vs_mh_hashkey, ip_vs_lblc_hashkey: ``ntohl(addr_fold)``)."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from pylvs.core.schedulers import available, create
from pylvs.core.service import AF_INET, AF_INET6, IPPROTO_TCP, Dest, Service, ServiceFlags

ALL = available()
VIP6 = 0x20010DB8 << 96 | 0x10
ADDR6 = st.integers(min_value=0, max_value=2**128 - 1)


def fold(addr: int) -> int:
    """The four 32-bit words of an IPv6 address XORed: written out here, independently of
    pylvs.core.schedulers.hashing."""
    words = [(addr >> shift) & 0xFFFFFFFF for shift in (96, 64, 32, 0)]
    return words[0] ^ words[1] ^ words[2] ^ words[3]


@st.composite
def services6(draw: st.DrawFn, eligible: bool | None = None) -> Service:
    """An IPv6 service with 0..8 dests of random address, weight, load and overload state."""
    flags = draw(st.sampled_from([0, ServiceFlags.SCHED1, ServiceFlags.SCHED2, 0x18]))
    svc = Service(AF_INET6, IPPROTO_TCP, VIP6, 80, flags=ServiceFlags(flags))
    addrs = draw(st.lists(ADDR6, min_size=0, max_size=8, unique=True))
    for addr in addrs:
        weight = draw(st.integers(min_value=0, max_value=6))
        overloaded = draw(st.booleans())
        if eligible is False and weight > 0:
            overloaded = True
        dest = Dest(AF_INET6, addr, 80, weight=weight)
        if weight == 0 and draw(st.booleans()):
            dest.last_weight = draw(st.integers(min_value=1, max_value=6))
        dest.overloaded = overloaded
        dest.activeconns = draw(st.integers(min_value=0, max_value=12))
        dest.inactconns = draw(st.integers(min_value=0, max_value=12))
        svc.dests.append(dest)
    return svc


clients6 = st.lists(
    st.tuples(ADDR6, st.integers(min_value=0, max_value=65535), ADDR6), min_size=1, max_size=12
)


@settings(max_examples=150, deadline=None)
@given(name=st.sampled_from(ALL), svc=services6(), calls=clients6, seed=st.integers(0, 2**32))
def test_never_a_quiescent_or_overloaded_dest_v6(
    name: str, svc: Service, calls: list[tuple[int, int, int]], seed: int
) -> None:
    sched = create(name, svc, random.Random(seed))
    for t, (caddr, cport, daddr) in enumerate(calls):
        dest = sched.schedule(svc, caddr, cport, daddr, float(t))
        if dest is not None:
            assert any(d is dest for d in svc.dests)
            assert dest.weight > 0 and not dest.overloaded


@settings(max_examples=150, deadline=None)
@given(name=st.sampled_from(ALL), svc=services6(eligible=False), calls=clients6)
def test_none_when_no_dest_is_eligible_v6(
    name: str, svc: Service, calls: list[tuple[int, int, int]]
) -> None:
    sched = create(name, svc, random.Random(1))
    for t, (caddr, cport, daddr) in enumerate(calls):
        assert sched.schedule(svc, caddr, cport, daddr, float(t)) is None


def _folded_twin(svc: Service) -> Service:
    """The IPv4 service whose dests sit at the folded addresses of ``svc``'s, same order,
    weights, loads and flags: the kernel hashes nothing else of an IPv6 address."""
    twin = Service(AF_INET, IPPROTO_TCP, fold(svc.addr), svc.port, flags=svc.flags)
    for d in svc.dests:
        copy = Dest(AF_INET, fold(d.addr), d.port, weight=d.weight)
        copy.last_weight = d.last_weight
        copy.overloaded = d.overloaded
        copy.activeconns, copy.inactconns = d.activeconns, d.inactconns
        twin.dests.append(copy)
    return twin


def _position(svc: Service, dest: Dest | None) -> int:
    return -1 if dest is None else next(i for i, d in enumerate(svc.dests) if d is dest)


@settings(max_examples=150, deadline=None)
@given(name=st.sampled_from(["sh", "mh", "dh"]), svc=services6(), calls=clients6)
def test_hashing_schedulers_hash_the_folded_address(
    name: str, svc: Service, calls: list[tuple[int, int, int]]
) -> None:
    twin = _folded_twin(svc)
    sched6, sched4 = create(name, svc), create(name, twin)
    for caddr, cport, daddr in calls:
        got = _position(svc, sched6.schedule(svc, caddr, cport, daddr, 0.0))
        want = _position(twin, sched4.schedule(twin, fold(caddr), cport, fold(daddr), 0.0))
        assert got == want


@settings(max_examples=100, deadline=None)
@given(svc=services6(), calls=clients6)
def test_lblc_and_lblcr_bind_by_destination_address_v6(
    svc: Service, calls: list[tuple[int, int, int]]
) -> None:
    for name in ("lblc", "lblcr"):
        sched = create(name, svc)
        for c, p, d in calls:
            first = sched.schedule(svc, c, p, d, 0.0)
            # Nothing changed: the same destination address goes to the same dest.
            assert sched.schedule(svc, c ^ 1, p, d, 1.0) is first


def test_sh_ipv6_known_bucket() -> None:
    """One worked value: client 2001:db8::1 folds to 0x20010db9; hash_32 of it with the golden
    ratio 0x61C88647 is bucket 0x20010db9 * 0x61C88647 mod 2**32 >> 24."""
    svc = Service(AF_INET6, IPPROTO_TCP, VIP6, 80)
    svc.dests = [Dest(AF_INET6, 0x20010DB8 << 96 | 0x100 + i, 80) for i in range(256)]
    sh = create("sh", svc)
    caddr = 0x20010DB8 << 96 | 1
    bucket = ((0x20010DB9 * 0x61C88647) & 0xFFFFFFFF) >> 24
    # 256 dests of weight 1: bucket i holds dest i.
    assert sh.schedule(svc, caddr, 0, VIP6, 0.0) is svc.dests[bucket]
