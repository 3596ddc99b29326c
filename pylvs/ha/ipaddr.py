"""The ``IPaddr2`` (and ``IPaddr``) resource of haresources: take a virtual address over, give it
back, tell whether it is held.

As heartbeat's IPaddr2 agent does:

* **start**: the interface and prefix length are those written (``IPaddr2::ip/bits/iface``),
  else those of the configured network that contains the address (``findif``); the broadcast is
  the written one or ``brd +``; the address is added with the label written (``iface:label``),
  after removing it from ``lo`` where ``lvs_support`` left it; then gratuitous ARP exactly as
  ``send_arp`` sends it (5 requests and 5 replies, 100 ms apart), so the LAN follows at once;
* **stop**: the address is removed; with ``lvs_support`` it is put on ``lo`` (/32) instead, so a
  director that is also a real server of a DR service keeps accepting the VIP's packets;
* **status**: ``running`` when the address is on the interface, ``stopped`` otherwise.

Host changes go through :mod:`pylvs.io.netcfg`, the announcement through :mod:`pylvs.io.garp`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from pylvs.config.heartbeat import IPAddrSpec
from pylvs.io import garp, netcfg

__all__ = ["IPaddr2", "IPaddrError"]

log = logging.getLogger("pylvs.ha")


class IPaddrError(Exception):
    """The address cannot be taken over as written (no interface, no network for it)."""


@dataclass
class IPaddr2:
    spec: IPAddrSpec
    lvs_support: bool = False
    announce: Callable[[str, str], int] = garp.announce

    def placement(self) -> tuple[str, int]:
        """The interface and prefix length the address goes on."""
        if self.spec.iface is not None and self.spec.prefixlen is not None:
            return self.spec.iface, self.spec.prefixlen
        found = netcfg.connected_network(self.spec.ip)
        if self.spec.iface is not None:
            if not netcfg.link_exists(self.spec.iface):
                raise IPaddrError(f"no interface {self.spec.iface} for {self.spec.ip}")
            plen = self.spec.prefixlen
            if plen is None:
                plen = found[1] if found is not None and found[0] == self.spec.iface else 32
            return self.spec.iface, plen
        if found is None:
            raise IPaddrError(
                f"Unable to find an interface for {self.spec.ip}: no configured network holds it"
            )
        iface, plen = found
        return iface, self.spec.prefixlen if self.spec.prefixlen is not None else plen

    def status(self) -> str:
        iface, _plen = self.placement()
        return "running" if netcfg.has_address(iface, self.spec.ip) else "stopped"

    def start(self) -> None:
        iface, plen = self.placement()
        if netcfg.link_exists("lo") and netcfg.has_address("lo", self.spec.ip):
            netcfg.del_address("lo", self.spec.ip, 32)
        label = f"{iface}:{self.spec.label}" if self.spec.label else None
        if netcfg.add_address(
            iface, self.spec.ip, plen, label=label, broadcast=self.spec.broadcast_for(plen)
        ):
            log.info("IPaddr2: %s/%d added on %s", self.spec.ip, plen, iface)
        sent = self.announce(iface, self.spec.ip)
        if sent:  # 0: sent in the background, which logs it
            log.info(
                "IPaddr2: %d gratuitous ARP frames sent for %s on %s", sent, self.spec.ip, iface
            )

    def stop(self) -> None:
        iface, plen = self.placement()
        if netcfg.del_address(iface, self.spec.ip, plen):
            log.info("IPaddr2: %s removed from %s", self.spec.ip, iface)
        if self.lvs_support:
            netcfg.add_address("lo", self.spec.ip, 32)
            log.info("IPaddr2: %s kept on lo (lvs_support)", self.spec.ip)
