"""Rate-limited logging for what can happen once per packet or per request.

The kernel logs per-packet trouble through ``net_ratelimit()``: at most ``message_burst`` (10)
messages every ``message_cost`` (5) seconds, the rest counted and reported as "N callbacks
suppressed". :class:`RateLimit` is the same rule with the time passed in, so the core can use it
without reading a clock.
"""

from __future__ import annotations

__all__ = ["RateLimit"]


class RateLimit:
    """At most ``burst`` events per ``interval`` seconds (``net_ratelimit``)."""

    __slots__ = ("burst", "interval", "missed", "printed", "start")

    def __init__(self, burst: int = 10, interval: float = 5.0) -> None:
        self.burst = burst
        self.interval = interval
        self.start = -interval
        self.printed = 0
        self.missed = 0

    def allow(self, now: float) -> bool:
        """True if an event at ``now`` may be logged; otherwise it is counted in ``missed``."""
        if now - self.start >= self.interval:
            self.start = now
            self.printed = 0
        if self.printed < self.burst:
            self.printed += 1
            return True
        self.missed += 1
        return False

    def take_missed(self) -> int:
        """How many events were suppressed since the last call (for "N suppressed" lines)."""
        missed, self.missed = self.missed, 0
        return missed
