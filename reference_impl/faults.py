"""Deliberate protocol faults the reference can commit, to prove the suites catch them.

Test-only: nothing turns a fault on but `memif-ref --fault NAME` (a hidden option). Each
fault imitates a real interop bug of the fact sheet, so a suite that flags it is known to
flag that bug in a real implementation.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable


class Fault(enum.StrEnum):
    """One deliberate misbehaviour of the reference peer."""

    WRONG_COOKIE = "wrong-cookie"
    """Client: rings carry a cookie other than 0x03E31F20 (fact sheet §3.5, §4.2)."""
    STALE_NEXT = "stale-next"
    """Producer: NEXT is OR-ed into a slot's old flags instead of assigned, so a slot that
    carried NEXT on an earlier lap keeps it (DPDK `f7a52200d4`, fact sheet §5.5, §9.13)."""
    SPLIT_CHAIN = "split-chain"
    """Producer: publishes its index after the first fragment of a chain and the rest only
    with its next burst (a conforming producer publishes only at packet boundaries, fact
    sheet §5.5)."""
    WRONG_OFFSETS = "wrong-offsets"
    """Client: buffer offsets computed from a u16 slot number, so buffers overlap once
    rings x ring size > 65536 (DPDK/VPP layout code, fact sheet §4.7, §9.18)."""
    IGNORE_SECRET = "ignore-secret"
    """Server: accepts any secret; client: never sends its secret (fact sheet §3.3)."""


def parse_faults(names: Iterable[str]) -> frozenset[Fault]:
    """Faults by name.

    Raises:
        ValueError: a name that is no fault (the message lists the known ones).
    """
    faults = set()
    for name in names:
        try:
            faults.add(Fault(name))
        except ValueError:
            known = ", ".join(fault.value for fault in Fault)
            raise ValueError(f"no fault {name!r}; known faults: {known}") from None
    return frozenset(faults)
