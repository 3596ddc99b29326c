"""The IPVS TCP state machine as tables (net/netfilter/ipvs/ip_vs_proto_tcp.c, non-secure variant).

Rules of this file:
- States are the IP_VS_TCP_S_* numbers, in the kernel's order, so that they index the tables.
- A packet's TCP flags select one *event* row: RST wins, then SYN, then FIN, then ACK
  (``tcp_state_idx``). A segment with none of these flags has no event, and the kernel then
  moves the connection to CLOSE (the ``new_state = IP_VS_TCP_S_CLOSE`` default of set_tcp_state).
- There are three tables: INPUT (client -> server), OUTPUT (server -> client, only seen in NAT)
  and INPUT_ONLY, used for input packets while the connection has NOOUTPUT (DR and tunnel
  connections, and NAT ones until the first reply is seen).
- Each cell is the next state for (table, event, current state); every cell is a valid state.
- ESTABLISHED, SYN_SENT, SYN_RECV and SYNACK count as *active* connections
  (``tcp_state_active_table``); every other state counts as inactive.
"""

from __future__ import annotations

__all__ = [
    "ACTIVE_STATES",
    "DEFAULT_TIMEOUTS",
    "DIR_INPUT",
    "DIR_INPUT_ONLY",
    "DIR_OUTPUT",
    "EV_ACK",
    "EV_FIN",
    "EV_NONE",
    "EV_RST",
    "EV_SYN",
    "STATE_NAMES",
    "TCP_CLOSE",
    "TCP_CLOSE_WAIT",
    "TCP_ESTABLISHED",
    "TCP_FIN_WAIT",
    "TCP_LAST_ACK",
    "TCP_LISTEN",
    "TCP_NONE",
    "TCP_SYNACK",
    "TCP_SYN_RECV",
    "TCP_SYN_SENT",
    "TCP_TIME_WAIT",
    "TRANSITIONS",
    "event_of",
    "next_state",
]

TCP_NONE = 0
TCP_ESTABLISHED = 1
TCP_SYN_SENT = 2
TCP_SYN_RECV = 3
TCP_FIN_WAIT = 4
TCP_TIME_WAIT = 5
TCP_CLOSE = 6
TCP_CLOSE_WAIT = 7
TCP_LAST_ACK = 8
TCP_LISTEN = 9
TCP_SYNACK = 10

STATE_NAMES = (
    "NONE",
    "ESTABLISHED",
    "SYN_SENT",
    "SYN_RECV",
    "FIN_WAIT",
    "TIME_WAIT",
    "CLOSE",
    "CLOSE_WAIT",
    "LAST_ACK",
    "LISTEN",
    "SYNACK",
)

# tcp_timeouts[] in seconds.
DEFAULT_TIMEOUTS = (2, 15 * 60, 2 * 60, 60, 2 * 60, 2 * 60, 10, 60, 30, 2 * 60, 2 * 60)

ACTIVE_STATES = frozenset({TCP_ESTABLISHED, TCP_SYN_SENT, TCP_SYN_RECV, TCP_SYNACK})

DIR_INPUT = 0
DIR_OUTPUT = 1
DIR_INPUT_ONLY = 2

EV_SYN = 0
EV_FIN = 1
EV_ACK = 2
EV_RST = 3
EV_NONE = -1

_FIN, _SYN, _RST, _ACK = 0x01, 0x02, 0x04, 0x10

# Short names keep the tables below readable and identical in layout to the kernel's.
sNO, sES, sSS, sSR, sFW, sTW, sCL, sCW, sLA, sLI, sSA = range(11)

# fmt: off
# Columns are the current state:  NO   ES   SS   SR   FW   TW   CL   CW   LA   LI   SA
_INPUT = (
    (sSR, sES, sES, sSR, sSR, sSR, sSR, sSR, sSR, sSR, sSR),  # syn
    (sCL, sCW, sSS, sTW, sTW, sTW, sCL, sCW, sLA, sLI, sTW),  # fin
    (sES, sES, sSS, sES, sFW, sTW, sCL, sCW, sCL, sLI, sES),  # ack
    (sCL, sCL, sCL, sSR, sCL, sCL, sCL, sCL, sLA, sLI, sSR),  # rst
)
_OUTPUT = (
    (sSS, sES, sSS, sSR, sSS, sSS, sSS, sSS, sSS, sLI, sSR),  # syn
    (sTW, sFW, sSS, sTW, sFW, sTW, sCL, sTW, sLA, sLI, sTW),  # fin
    (sES, sES, sSS, sES, sFW, sTW, sCL, sCW, sLA, sES, sES),  # ack
    (sCL, sCL, sSS, sCL, sCL, sTW, sCL, sCL, sCL, sCL, sCL),  # rst
)
_INPUT_ONLY = (
    (sSR, sES, sES, sSR, sSR, sSR, sSR, sSR, sSR, sSR, sSR),  # syn
    (sCL, sFW, sSS, sTW, sFW, sTW, sCL, sCW, sLA, sLI, sTW),  # fin
    (sES, sES, sSS, sES, sFW, sTW, sCL, sCW, sCL, sLI, sES),  # ack
    (sCL, sCL, sCL, sSR, sCL, sCL, sCL, sCL, sLA, sLI, sCL),  # rst
)
# fmt: on

TRANSITIONS = (_INPUT, _OUTPUT, _INPUT_ONLY)


def event_of(tcp_flags: int) -> int:
    """The table row a segment selects (tcp_state_idx): RST, then SYN, then FIN, then ACK."""
    if tcp_flags & _RST:
        return EV_RST
    if tcp_flags & _SYN:
        return EV_SYN
    if tcp_flags & _FIN:
        return EV_FIN
    if tcp_flags & _ACK:
        return EV_ACK
    return EV_NONE


def next_state(direction: int, tcp_flags: int, state: int) -> int:
    """The state after a segment with ``tcp_flags`` travelling in ``direction``."""
    event = event_of(tcp_flags)
    if event == EV_NONE:
        return TCP_CLOSE
    return TRANSITIONS[direction][event][state]
