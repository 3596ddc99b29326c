"""Properties every IPVS scheduler keeps, over random dest sets and loads."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from pylvs.core.schedulers import available, create
from pylvs.core.service import AF_INET, IPPROTO_TCP, Dest, Service, ServiceFlags

ALL = available()


@st.composite
def services(draw: st.DrawFn, eligible: bool | None = None) -> Service:
    """A service with 0..8 dests of random weight, load and threshold state.

    ``eligible=False`` makes every dest quiescent or overloaded.
    """
    flags = draw(st.sampled_from([0, ServiceFlags.SCHED1, ServiceFlags.SCHED2, 0x18]))
    svc = Service(AF_INET, IPPROTO_TCP, 0xC0A80001, 80, flags=ServiceFlags(flags))
    n = draw(st.integers(min_value=0, max_value=8))
    for i in range(n):
        weight = draw(st.integers(min_value=0, max_value=6))
        overloaded = draw(st.booleans())
        if eligible is False and weight > 0:
            overloaded = True
        dest = Dest(AF_INET, 0x0A000101 + i, 80, weight=weight)
        if weight == 0 and draw(st.booleans()):
            dest.last_weight = draw(st.integers(min_value=1, max_value=6))  # a quiesced dest
        dest.overloaded = overloaded
        dest.activeconns = draw(st.integers(min_value=0, max_value=12))
        dest.inactconns = draw(st.integers(min_value=0, max_value=12))
        svc.dests.append(dest)
    return svc


clients = st.lists(
    st.tuples(
        st.integers(min_value=0, max_value=2**32 - 1),
        st.integers(min_value=0, max_value=65535),
        st.integers(min_value=0, max_value=2**32 - 1),
    ),
    min_size=1,
    max_size=12,
)


@settings(max_examples=150, deadline=None)
@given(name=st.sampled_from(ALL), svc=services(), calls=clients, seed=st.integers(0, 2**32))
def test_never_a_quiescent_or_overloaded_dest(
    name: str, svc: Service, calls: list[tuple[int, int, int]], seed: int
) -> None:
    sched = create(name, svc, random.Random(seed))
    for t, (caddr, cport, daddr) in enumerate(calls):
        dest = sched.schedule(svc, caddr, cport, daddr, float(t))
        if dest is not None:
            assert any(d is dest for d in svc.dests)
            assert dest.weight > 0
            assert not dest.overloaded
            if name == "ovf":
                assert dest.activeconns <= dest.weight


@settings(max_examples=150, deadline=None)
@given(
    name=st.sampled_from(ALL),
    svc=services(eligible=False),
    calls=clients,
    seed=st.integers(0, 2**32),
)
def test_none_when_no_dest_is_eligible(
    name: str, svc: Service, calls: list[tuple[int, int, int]], seed: int
) -> None:
    sched = create(name, svc, random.Random(seed))
    for t, (caddr, cport, daddr) in enumerate(calls):
        assert sched.schedule(svc, caddr, cport, daddr, float(t)) is None


@settings(max_examples=100, deadline=None)
@given(name=st.sampled_from(["sh", "mh"]), svc=services(), calls=clients)
def test_hashing_is_stable_per_client(
    name: str, svc: Service, calls: list[tuple[int, int, int]]
) -> None:
    sched = create(name, svc)
    first = [sched.schedule(svc, c, p, d, 0.0) for c, p, d in calls]
    # Other clients in between change nothing.
    for c, p, d in reversed(calls):
        sched.schedule(svc, c ^ 0x5A5A, p, d, 1.0)
    again = [sched.schedule(svc, c, p, d, 2.0) for c, p, d in calls]
    assert first == again
    # A freshly built table gives the same answers (no hidden state).
    assert [create(name, svc).schedule(svc, c, p, d, 3.0) for c, p, d in calls] == first


@settings(max_examples=100, deadline=None)
@given(svc=services(), calls=clients)
def test_dh_is_stable_per_destination_address(
    svc: Service, calls: list[tuple[int, int, int]]
) -> None:
    dh = create("dh", svc)
    for c, p, d in calls:
        assert dh.schedule(svc, c, p, d, 0.0) is dh.schedule(svc, c ^ 1, p ^ 1, d, 0.0)


@settings(max_examples=100, deadline=None)
@given(svc=services(), calls=clients)
def test_lblc_keeps_a_valid_binding(svc: Service, calls: list[tuple[int, int, int]]) -> None:
    lblc = create("lblc", svc)
    for c, p, d in calls:
        first = lblc.schedule(svc, c, p, d, 0.0)
        # Nothing changed: the same destination address goes to the same dest.
        assert lblc.schedule(svc, c ^ 1, p, d, 1.0) is first
