"""The iptables rules of the backends: run ``iptables`` / ``iptables-restore``, add and remove the
jumps into pylvs's own chains.

Every call passes ``-w`` (wait for the xtables lock instead of failing when another program holds
it). Chains are declared and filled with ``iptables-restore --noflush``: declaring a chain flushes
it, so a whole chain is replaced in one transaction, whatever its size.

``family=6`` runs ``ip6tables`` / ``ip6tables-restore`` instead (the same chains and rules for
IPv6 virtual services: netfilter keeps separate IPv4 and IPv6 tables).
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence

__all__ = ["IptablesError", "ensure_jump", "remove_chains", "restore", "run"]


class IptablesError(Exception):
    """An iptables command failed; the message has the command and its error output."""


# Matches what is not addressed to this host: the rules for NAT replies use it, so that what a real
# server sends to the director itself (health check answers, ping replies) is left to the kernel.
NOT_LOCAL = "-m addrtype ! --dst-type LOCAL"


def _tool(family: int) -> str:
    return "ip6tables" if family == 6 else "iptables"


def run(*args: str, check: bool = True, family: int = 4) -> bool:
    """``iptables -w ARGS`` (``ip6tables`` for ``family`` 6); True if it succeeded
    (IptablesError on failure when ``check``)."""
    return _call([_tool(family), "-w", *args], None, check)


def restore(rules: str, family: int = 4) -> None:
    """``iptables-restore -w --noflush`` (``ip6tables-restore``) with ``rules`` as input."""
    _call([_tool(family) + "-restore", "-w", "--noflush"], rules, True)


def _call(cmd: list[str], stdin: str | None, check: bool) -> bool:
    try:
        proc = subprocess.run(cmd, input=stdin, capture_output=True, text=True, check=False)
    except OSError as exc:
        if check:
            raise IptablesError(f"{cmd[0]}: {exc.strerror or exc}") from None
        return False
    if check and proc.returncode != 0:
        detail = proc.stderr.strip() or f"exit status {proc.returncode}"
        raise IptablesError(f"{' '.join(cmd)}: {detail}")
    return proc.returncode == 0


def ensure_jump(table: str, match: Sequence[str], chain: str, first: bool, family: int = 4) -> None:
    """Make ``PREROUTING`` of ``table`` jump to ``chain`` for ``match`` (once): inserted at the top
    when ``first``, appended otherwise."""
    rule = [*match, "-j", chain]
    if run("-t", table, "-C", "PREROUTING", *rule, check=False, family=family):
        return
    if first:
        run("-t", table, "-I", "PREROUTING", "1", *rule, family=family)
    else:
        run("-t", table, "-A", "PREROUTING", *rule, family=family)


def remove_chains(table: str, chains: Sequence[str], family: int = 4) -> bool:
    """Remove every ``PREROUTING`` jump to ``chains`` and the chains themselves (also what a killed
    daemon left); True if anything was there."""
    removed = False
    try:
        listing = subprocess.run(
            [_tool(family), "-w", "-t", table, "-S", "PREROUTING"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.splitlines()
    except OSError:
        return False
    targets = [["-j", chain] for chain in chains]
    for line in listing:
        words = line.split()
        if words[:2] == ["-A", "PREROUTING"] and words[-2:] in targets:
            run("-t", table, "-D", *words[1:], check=False, family=family)
            removed = True
    for chain in chains:
        if run("-t", table, "-F", chain, check=False, family=family):
            removed = True
    for chain in chains:
        run("-t", table, "-X", chain, check=False, family=family)
    return removed
