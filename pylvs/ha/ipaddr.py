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

IPv6 (an address with a ``:``; IPaddr2 sets ``FAMILY=inet6``, and the ``IPv6addr`` resource):
the default prefix is the connected IPv6 network's (``findif``), else /128; no broadcast, no
label (the kernel keeps none for IPv6); the address goes on with ``nodad`` (as keepalived adds
its IPv6 VIPs: usable at once, and no duplicate-address failure against a killed node that
still holds it; IPaddr2's own default is to run DAD and wait for it), then ``send_ua``'s
unsolicited neighbour advertisements (5, 200 ms apart: ``send_ua -i 200 -c 5``,
:func:`pylvs.io.garp.announce_na`). ``lvs_support`` is refused for IPv6, as IPaddr2 does ("The
IPv6 does not support lvs_support"). Nothing is sent on release.

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
    announce: Callable[[str, str], int] | None = None  # None: garp.announce / announce_na

    @property
    def six(self) -> bool:
        return ":" in self.spec.ip

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
                host = 128 if self.six else 32
                plen = found[1] if found is not None and found[0] == self.spec.iface else host
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
        if self.six:
            self._start6()
            return
        iface, plen = self.placement()
        if netcfg.link_exists("lo") and netcfg.has_address("lo", self.spec.ip):
            netcfg.del_address("lo", self.spec.ip, 32)
        label = f"{iface}:{self.spec.label}" if self.spec.label else None
        if netcfg.add_address(
            iface, self.spec.ip, plen, label=label, broadcast=self.spec.broadcast_for(plen)
        ):
            log.info("IPaddr2: %s/%d added on %s", self.spec.ip, plen, iface)
        sent = (self.announce or garp.announce)(iface, self.spec.ip)
        if sent:  # 0: sent in the background, which logs it
            log.info(
                "IPaddr2: %d gratuitous ARP frames sent for %s on %s", sent, self.spec.ip, iface
            )

    def _start6(self) -> None:
        if self.lvs_support:
            raise IPaddrError(f"{self.spec.ip}: The IPv6 does not support lvs_support")
        iface, plen = self.placement()
        if netcfg.add_address(iface, self.spec.ip, plen, nodad=True):
            log.info("IPaddr2: %s/%d added on %s (nodad)", self.spec.ip, plen, iface)
        sent = (self.announce or garp.announce_na)(iface, self.spec.ip)
        if sent:  # 0: sent in the background, which logs it
            log.info(
                "IPaddr2: %d unsolicited neighbour advertisements sent for %s on %s",
                sent,
                self.spec.ip,
                iface,
            )

    def stop(self) -> None:
        iface, plen = self.placement()
        if netcfg.del_address(iface, self.spec.ip, plen):
            log.info("IPaddr2: %s removed from %s", self.spec.ip, iface)
        if self.lvs_support and not self.six:
            netcfg.add_address("lo", self.spec.ip, 32)
            log.info("IPaddr2: %s kept on lo (lvs_support)", self.spec.ip)
