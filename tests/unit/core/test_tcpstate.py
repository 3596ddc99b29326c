"""The IPVS TCP state tables, checked against the kernel's worked examples."""

from hypothesis import given
from hypothesis import strategies as st

from pylvs.core import tcpstate as t

FIN, SYN, RST, ACK = 0x01, 0x02, 0x04, 0x10


def walk(direction_flags: list[tuple[int, int]], state: int = t.TCP_NONE) -> list[str]:
    names = []
    for direction, flags in direction_flags:
        state = t.next_state(direction, flags, state)
        names.append(t.STATE_NAMES[state])
    return names


def test_dr_connection_life() -> None:
    # SYN -> SYN_RECV, ACK -> ESTABLISHED, client FIN -> FIN_WAIT, ACKs stay in FIN_WAIT.
    i = t.DIR_INPUT_ONLY
    assert walk([(i, SYN), (i, ACK), (i, ACK | FIN), (i, ACK)]) == [
        "SYN_RECV",
        "ESTABLISHED",
        "FIN_WAIT",
        "FIN_WAIT",
    ]


def test_nat_connection_life_server_closes_first() -> None:
    i, o = t.DIR_INPUT, t.DIR_OUTPUT
    assert walk([(i, SYN), (o, SYN | ACK), (i, ACK), (o, FIN | ACK), (i, FIN | ACK), (o, ACK)]) == [
        "SYN_RECV",
        "SYN_RECV",
        "ESTABLISHED",
        "FIN_WAIT",
        "TIME_WAIT",
        "TIME_WAIT",
    ]


def test_nat_client_closes_first() -> None:
    i, o = t.DIR_INPUT, t.DIR_OUTPUT
    states = walk([(i, SYN), (o, SYN | ACK), (i, ACK), (i, FIN | ACK), (o, FIN | ACK), (i, ACK)])
    assert states == ["SYN_RECV", "SYN_RECV", "ESTABLISHED", "CLOSE_WAIT", "TIME_WAIT", "TIME_WAIT"]


def test_rst_wins_over_syn_and_no_flags_closes() -> None:
    assert t.event_of(SYN | RST) == t.EV_RST
    assert t.event_of(SYN | FIN) == t.EV_SYN
    assert t.event_of(FIN | ACK) == t.EV_FIN
    assert t.next_state(t.DIR_INPUT, 0, t.TCP_ESTABLISHED) == t.TCP_CLOSE


def test_default_timeouts_and_active_states() -> None:
    to = dict(zip(t.STATE_NAMES, t.DEFAULT_TIMEOUTS, strict=True))
    assert to == {
        "NONE": 2,
        "ESTABLISHED": 900,
        "SYN_SENT": 120,
        "SYN_RECV": 60,
        "FIN_WAIT": 120,
        "TIME_WAIT": 120,
        "CLOSE": 10,
        "CLOSE_WAIT": 60,
        "LAST_ACK": 30,
        "LISTEN": 120,
        "SYNACK": 120,
    }
    active = {t.STATE_NAMES[s] for s in t.ACTIVE_STATES}
    assert active == {"ESTABLISHED", "SYN_SENT", "SYN_RECV", "SYNACK"}


def test_tables_are_complete() -> None:
    for table in t.TRANSITIONS:
        assert len(table) == 4
        for row in table:
            assert len(row) == len(t.STATE_NAMES)


@given(
    st.lists(
        st.tuples(
            st.sampled_from([t.DIR_INPUT, t.DIR_OUTPUT, t.DIR_INPUT_ONLY]), st.integers(0, 255)
        ),
        max_size=50,
    )
)
def test_state_machine_never_leaves_its_state_set(steps: list[tuple[int, int]]) -> None:
    state = t.TCP_NONE
    for direction, flags in steps:
        state = t.next_state(direction, flags, state)
        assert 0 <= state < len(t.STATE_NAMES)
