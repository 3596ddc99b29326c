"""lblc and lblcr: binding, rebinding and expiry on a stepped clock."""

from __future__ import annotations

from sched_util import label, make_service

from pylvs.core.schedulers.hashing import hash_32
from pylvs.core.schedulers.lblc import LocalityLeastConnectionScheduler
from pylvs.core.schedulers.lblcr import ReplicatedLocalityScheduler
from pylvs.core.schedulers.locality import TAB_SIZE
from pylvs.core.service import Service

X = 0xC6336401  # 198.51.100.1: the destination address the client asked for
Y = 0xC6336402
DAY = 86400.0


def pick(sched: LocalityLeastConnectionScheduler | ReplicatedLocalityScheduler, svc: Service,
         daddr: int, now: float) -> str:  # fmt: skip
    return label(svc, sched.schedule(svc, 1, 1, daddr, now))


# --- lblc --------------------------------------------------------------------------------------


def test_lblc_binds_a_destination_address_and_sticks() -> None:
    svc = make_service([1, 1])
    lblc = LocalityLeastConnectionScheduler(svc)
    assert pick(lblc, svc, X, 0.0) == "A"  # wlc over idle dests: the first
    svc.dests[0].activeconns = 1  # wlc would now pick B, but A is not "overloaded" (1 <= 1)
    assert pick(lblc, svc, X, 1.0) == "A"
    assert pick(lblc, svc, Y, 2.0) == "B"  # another address gets its own wlc choice
    assert lblc.size() == 2


def test_lblc_rebinds_when_busier_than_weight_and_another_is_half_idle() -> None:
    svc = make_service([1, 2])
    lblc = LocalityLeastConnectionScheduler(svc)
    assert pick(lblc, svc, X, 0.0) == "A"
    svc.dests[0].activeconns = 2  # 2 > weight 1 ...
    svc.dests[1].activeconns = 1  # ... but B: 1 * 2 < 2 is false, nobody is half idle
    assert pick(lblc, svc, X, 1.0) == "A"
    svc.dests[1].activeconns = 0  # now B is half idle: A is overloaded in lblc's sense
    assert pick(lblc, svc, X, 2.0) == "B"
    svc.dests[0].activeconns = 0
    assert pick(lblc, svc, X, 3.0) == "B"  # the binding moved


def test_lblc_rebinds_away_from_quiescent_or_deleted_dest() -> None:
    svc = make_service([1, 1, 1])
    lblc = LocalityLeastConnectionScheduler(svc)
    assert pick(lblc, svc, X, 0.0) == "A"
    svc.dests[0].weight = 0
    assert pick(lblc, svc, X, 1.0) == "B"
    svc.dests[0].weight = 1
    assert pick(lblc, svc, X, 2.0) == "B"
    b = svc.dests[1]
    svc.dests.remove(b)
    b.available = False  # IPVS clears IP_VS_DEST_F_AVAILABLE when it unlinks a dest
    lblc.update(svc)
    assert pick(lblc, svc, X, 3.0) == "A"


def test_lblc_cached_dest_is_not_checked_for_the_threshold_flag() -> None:
    # ip_vs_lblc_schedule validates a hit with AVAILABLE, weight > 0 and its own overload test,
    # not IP_VS_DEST_F_OVERLOAD; only the wlc fallback skips flagged dests.
    svc = make_service([1, 1])
    lblc = LocalityLeastConnectionScheduler(svc)
    assert pick(lblc, svc, X, 0.0) == "A"
    svc.dests[0].overloaded = True
    assert pick(lblc, svc, X, 1.0) == "A"
    assert pick(lblc, svc, Y, 1.0) == "B"


def test_lblc_entry_counter_counts_rebinds() -> None:
    svc = make_service([1, 1])
    lblc = LocalityLeastConnectionScheduler(svc)
    pick(lblc, svc, X, 0.0)
    svc.dests[0].weight = 0
    pick(lblc, svc, X, 1.0)
    assert lblc.size() == 1
    assert lblc.entries == 2  # tbl->entries is not decremented by ip_vs_lblc_new's unlink


def test_lblc_none_when_no_dest() -> None:
    svc = make_service([0, 0])
    assert pick(LocalityLeastConnectionScheduler(svc), svc, X, 0.0) == "-"


def test_lblc_full_expiry_after_a_day_idle() -> None:
    svc = make_service([1, 1])
    lblc = LocalityLeastConnectionScheduler(svc)
    pick(lblc, svc, X, 0.0)  # arms the 60 s timer: runs at 60, 120, ...
    # Full checks run every 30th tick: 1800, 3600, ..., 86400 = 48 * 1800.
    lblc.expire(DAY - 0.5)
    assert lblc.get(X) is not None
    lblc.expire(DAY)
    assert lblc.get(X) is None
    assert lblc.entries == 0


def test_lblc_use_refreshes_the_entry() -> None:
    svc = make_service([1, 1])
    lblc = LocalityLeastConnectionScheduler(svc)
    pick(lblc, svc, X, 0.0)
    assert pick(lblc, svc, X, 50000.0) == "A"
    # Idle from 50000: the first full check at or after 136400 is 76 * 1800 = 136800.
    lblc.expire(136799.0)
    assert lblc.get(X) is not None
    lblc.expire(136800.0)
    assert lblc.get(X) is None


def test_lblc_stepping_equals_jumping() -> None:
    def build() -> tuple[Service, LocalityLeastConnectionScheduler]:
        svc = make_service([1, 1])
        lblc = LocalityLeastConnectionScheduler(svc)
        for i in range(50):
            lblc.schedule(svc, 1, 1, X + i, float(i * 1000))
        return svc, lblc

    _, stepped = build()
    _, jumped = build()
    t = 49000.0
    while t < 3 * DAY:
        t += 7.0
        stepped.expire(t)
    jumped.expire(t)
    assert sorted(k for b in stepped.buckets for k in b) == sorted(
        k for b in jumped.buckets for k in b
    )
    assert (stepped.counter, stepped.next_check) == (jumped.counter, jumped.next_check)


def test_lblc_partial_collection_when_the_table_is_full() -> None:
    svc = make_service([1])
    lblc = LocalityLeastConnectionScheduler(svc)
    n = lblc.max_size + 300
    for i in range(n):
        lblc.schedule(svc, 1, 1, 0x0B000000 + i, 0.0)
    assert lblc.entries == n
    lblc.expire(300.0)  # runs at 60..300: over the limit, but nothing idle for 6 minutes yet
    assert lblc.entries == n
    assert lblc.counter == 1  # collecting runs do not count towards the full check
    lblc.expire(360.0)
    # goal = 300 * 4 // 3 = 400, taken bucket by bucket from rover + 1 = 1 onwards.
    removed = n - lblc.entries
    sizes = [0] * TAB_SIZE
    for i in range(n):
        sizes[hash_32(0x0B000000 + i, 10)] += 1
    expected, j = 0, 0
    while expected < 400:
        j += 1
        expected += sizes[j]
    assert removed == expected
    assert lblc.rover == j
    lblc.expire(420.0)  # back under the limit: the run only counts
    assert lblc.entries == n - removed
    assert lblc.counter == 2


# --- lblcr -------------------------------------------------------------------------------------


def test_lblcr_adds_a_server_to_the_set_when_overloaded() -> None:
    svc = make_service([1, 1])
    a, b = svc.dests
    lblcr = ReplicatedLocalityScheduler(svc)
    assert pick(lblcr, svc, X, 0.0) == "A"
    a.activeconns = 2  # A busier than its weight while B is idle
    assert pick(lblcr, svc, X, 10.0) == "B"
    en = lblcr.get(X)
    assert en is not None
    assert en.dests == [b, a]  # new members go to the front
    assert en.lastmod == 10.0
    # Both members serve now: the set's weighted least-connection member wins.
    a.activeconns = 0
    b.activeconns = 1
    assert pick(lblcr, svc, X, 20.0) == "A"
    a.activeconns = 1
    assert pick(lblcr, svc, X, 30.0) == "B"  # tie at 256: the first in the set, B


def test_lblcr_prunes_the_busiest_member_after_expiration() -> None:
    svc = make_service([1, 1])
    a, b = svc.dests
    lblcr = ReplicatedLocalityScheduler(svc)
    pick(lblcr, svc, X, 0.0)
    a.activeconns = 2
    assert pick(lblcr, svc, X, 10.0) == "B"  # set {B, A}, lastmod 10
    en = lblcr.get(X)
    assert en is not None
    assert pick(lblcr, svc, X, 10.0 + DAY) == "B"  # not strictly after lastmod + expiration
    assert en.dests == [b, a]
    assert pick(lblcr, svc, X, 10.5 + DAY) == "B"
    assert en.dests == [b]  # A (512/1) was the most loaded
    assert en.lastmod == 10.5 + DAY


def test_lblcr_empty_usable_set_falls_back_to_wlc() -> None:
    svc = make_service([1, 1, 1])
    lblcr = ReplicatedLocalityScheduler(svc)
    assert pick(lblcr, svc, X, 0.0) == "A"
    svc.dests[0].weight = 0
    assert pick(lblcr, svc, X, 1.0) == "B"
    en = lblcr.get(X)
    assert en is not None and len(en.dests) == 2
    svc.dests[1].overloaded = True
    assert pick(lblcr, svc, X, 2.0) == "C"


def test_lblcr_expiry() -> None:
    svc = make_service([1])
    lblcr = ReplicatedLocalityScheduler(svc)
    pick(lblcr, svc, X, 0.0)
    lblcr.expire(DAY - 1)
    assert lblcr.get(X) is not None
    lblcr.expire(DAY)
    assert lblcr.get(X) is None
    assert lblcr.entries == 0


def test_lblcr_none_when_no_dest() -> None:
    svc = make_service([1])
    svc.dests[0].overloaded = True
    assert pick(ReplicatedLocalityScheduler(svc), svc, X, 0.0) == "-"
