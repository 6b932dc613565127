"""What a server sees of its client's shared memory at CONNECT, checked against §4.

The report is taken before any traffic, when every descriptor still holds what the client
wrote at init (fact sheet §4.2-§4.4): it lists regions and rings, infers the client's cache
line from the ring stride, and names each rule the layout breaks. Nothing here refuses a
client; the endpoint decides that (it refuses a wrong cookie, as DPDK and VPP do).
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Sequence
from typing import Any

import numpy as np

from reference_impl import layout
from reference_impl.memory import Region
from reference_impl.ring import RingView
from reference_impl.wire import COOKIE, DESCRIPTOR_SIZE, AddRing, RingType

MAX_LISTED = 5
"""Violations of one kind listed one by one; the rest are counted."""


@dataclasses.dataclass(frozen=True)
class RingFacts:
    """One announced ring as the server found it."""

    direction: str  # "c2s" or "s2c"
    index: int
    region: int
    offset: int
    log2_ring_size: int
    cookie: int


@dataclasses.dataclass(frozen=True)
class LayoutReport:
    """A client's memory layout and the §4 rules it breaks (empty: none)."""

    region_sizes: tuple[int, ...]
    rings: tuple[RingFacts, ...]
    cache_line: int | None
    buffer_size: int | None
    buffer_regions: tuple[int, ...]
    violations: tuple[str, ...]
    unposted_slots: int = 0
    """Descriptors still all zero at CONNECT in a zero-copy layout (§4.6: the client
    fills them when it transmits or refills); counted, not a violation."""
    zero_copy: bool = False
    """Region 0 holds only rings and buffers can only be in regions >= 1 (§4.4 libmemif,
    §4.6 zero-copy clients)."""

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON-ready form."""
        facts = dataclasses.asdict(self)
        facts["rings"] = [{**ring, "cookie": f"0x{ring['cookie']:08x}"} for ring in facts["rings"]]
        return facts


def _name(ring: AddRing) -> str:
    return f"{'C2S' if ring.ring_type is RingType.C2S else 'S2C'} ring {ring.index}"


def _capped(kind: str, found: list[str]) -> list[str]:
    if len(found) <= MAX_LISTED:
        return found
    return [*found[:MAX_LISTED], f"... and {len(found) - MAX_LISTED} more {kind}"]


def infer_cache_line(rings: Sequence[AddRing]) -> int | None:
    """The cache line implied by the spacing of consecutive rings in one region.

    Ring stride is 2*CL + 16*R (§4.2); with rings packed back to back (every known client
    does) the smallest gap between two rings of a region gives CL. None when no region
    holds two rings.
    """
    inferred: list[int] = []
    for region in {ring.region for ring in rings}:
        placed = sorted((r.offset, r.log2_ring_size) for r in rings if r.region == region)
        for (first, log2), (second, _) in itertools.pairwise(placed):
            header = second - first - DESCRIPTOR_SIZE * (1 << log2)
            if header > 0 and header % 2 == 0:
                inferred.append(header // 2)
    return min(inferred) if inferred else None


def inspect(
    regions: Sequence[Region],
    rings: Sequence[tuple[AddRing, RingView]],
    cache_line: int = layout.DEFAULT_CACHE_LINE,
) -> LayoutReport:
    """Check the client's rings and descriptor tables as they are at CONNECT.

    Rules: every cookie is 0x03E31F20; rings are spaced for this server's cache line;
    every slot points to a non-empty buffer inside an announced region, with NEXT clear;
    every C2S slot offers the same capacity (the client's buffer size); no buffer overlaps
    another buffer or any ring header or descriptor table.

    A zero-copy layout (region 0 holds only the rings, more regions follow) may leave
    descriptors all zero until its first transmit or refill (DPDK `zero-copy=yes` does:
    its memif_init_rings skips them, §4.6); those slots are counted as `unposted_slots`,
    not reported as violations, and its buffer regions are the regions without rings
    when no descriptor names one yet. Its buffers may sit at any offset (§4.6).
    """
    violations: list[str] = []
    sizes = np.array([region.size for region in regions], dtype=np.int64)
    announced = [message for message, _ in rings]
    zero_copy = _rings_only_in_region0(announced, sizes, cache_line)
    unposted = 0
    for message, view in rings:
        if view.cookie != COOKIE:
            violations.append(
                f"{_name(message)}: cookie 0x{view.cookie:08x}, expected 0x{COOKIE:08x}"
            )
    inferred = infer_cache_line(announced)
    if inferred is not None and inferred != cache_line:
        violations.append(
            f"rings are spaced for a {inferred}-byte cache line (tail at {inferred}, "
            f"descriptors at {2 * inferred}); this server uses {cache_line}"
        )
    owners: list[str] = []
    starts: list[np.ndarray[Any, np.dtype[np.int64]]] = []
    ends: list[np.ndarray[Any, np.dtype[np.int64]]] = []
    region_of: list[np.ndarray[Any, np.dtype[np.int64]]] = []
    slot_of: list[np.ndarray[Any, np.dtype[np.int64]]] = []
    outside: list[str] = []
    empty: list[str] = []
    chained: list[str] = []
    c2s_capacities: set[int] = set()
    for message, view in rings:
        ring_start = np.array([message.offset], dtype=np.int64)
        owners.append(f"{_name(message)} header and descriptors")
        starts.append(ring_start)
        ends.append(ring_start + layout.ring_bytes(message.log2_ring_size, cache_line))
        region_of.append(np.array([message.region], dtype=np.int64))
        slot_of.append(np.array([-1], dtype=np.int64))
        region_ids = view.region_column.astype(np.int64)
        offsets = view.offset_column.astype(np.int64)
        lengths = view.length_column.astype(np.int64)
        posted = np.ones(lengths.size, dtype=np.bool_)
        if zero_copy:
            posted = (region_ids != 0) | (offsets != 0) | (lengths != 0)
            posted |= view.flags_column != 0
            unposted += int(lengths.size - np.count_nonzero(posted))
            region_ids, offsets, lengths = region_ids[posted], offsets[posted], lengths[posted]
        slot_numbers = np.flatnonzero(posted)
        known = region_ids < len(regions)
        limit = np.where(known, sizes[np.minimum(region_ids, max(len(regions) - 1, 0))], 0)
        bad = np.flatnonzero(~known | (offsets + lengths > limit))
        outside += [
            f"{_name(message)} slot {slot_numbers[i]}: buffer region {region_ids[i]} offset "
            f"{offsets[i]} length {lengths[i]} is outside the announced regions"
            for i in bad[: MAX_LISTED + 1]
        ]
        empty += [
            f"{_name(message)} slot {slot_numbers[i]}: length 0"
            for i in np.flatnonzero(lengths == 0)
        ]
        chained += [
            f"{_name(message)} slot {slot}: NEXT set before any traffic"
            for slot in np.flatnonzero(view.flags_column & 1)
        ]
        if message.ring_type is RingType.C2S:
            c2s_capacities.update(int(value) for value in np.unique(lengths))
        good = np.flatnonzero(known & (lengths > 0))
        owners.append(_name(message))
        starts.append(offsets[good])
        ends.append(offsets[good] + lengths[good])
        region_of.append(region_ids[good])
        slot_of.append(slot_numbers[good].astype(np.int64))
    violations += _capped("buffers outside their region", outside[: MAX_LISTED + 1])
    violations += _capped("empty buffers", empty)
    violations += _capped("slots with NEXT", chained)
    if len(c2s_capacities) > 1:
        violations.append(
            f"C2S slots offer different capacities {sorted(c2s_capacities)}; a client "
            "uses one buffer size (§4.4)"
        )
    violations += _overlaps(owners, starts, ends, region_of, slot_of)
    buffer_regions = sorted(
        {
            int(r)
            for part, name in zip(region_of, owners, strict=True)
            if "descriptors" not in name
            for r in np.unique(part)
        }
    )
    if zero_copy and not buffer_regions:  # nothing posted yet: where buffers can only be
        buffer_regions = sorted(set(range(1, len(regions))) - {r.region for r in announced})
    return LayoutReport(
        region_sizes=tuple(int(size) for size in sizes),
        rings=tuple(
            RingFacts(
                "c2s" if message.ring_type is RingType.C2S else "s2c",
                message.index,
                message.region,
                message.offset,
                message.log2_ring_size,
                view.cookie,
            )
            for message, view in rings
        ),
        cache_line=inferred,
        buffer_size=min(c2s_capacities) if len(c2s_capacities) == 1 else None,
        buffer_regions=tuple(buffer_regions),
        violations=tuple(violations),
        unposted_slots=unposted,
        zero_copy=zero_copy,
    )


def _rings_only_in_region0(
    rings: Sequence[AddRing], sizes: np.ndarray[Any, np.dtype[np.int64]], cache_line: int
) -> bool:
    """Whether region 0 ends where its last ring ends and more regions follow (§4.4, §4.6)."""
    if sizes.size < 2 or not rings:
        return False
    in_region0 = [r for r in rings if r.region == 0]
    if not in_region0:
        return False
    end = max(r.offset + layout.ring_bytes(r.log2_ring_size, cache_line) for r in in_region0)
    return int(sizes[0]) == end


def _overlaps(
    owners: list[str],
    starts: list[np.ndarray[Any, np.dtype[np.int64]]],
    ends: list[np.ndarray[Any, np.dtype[np.int64]]],
    region_of: list[np.ndarray[Any, np.dtype[np.int64]]],
    slot_of: list[np.ndarray[Any, np.dtype[np.int64]]],
) -> list[str]:
    """Every pair of byte ranges (ring areas, buffers) that share bytes, sorted by address."""
    counts = [part.size for part in starts]
    if not sum(counts):
        return []
    owner = np.repeat(np.arange(len(owners)), counts)
    region = np.concatenate(region_of)
    base = region << _REGION_SHIFT  # one address line: regions never meet
    start = base + np.concatenate(starts)
    end = base + np.concatenate(ends)
    slot = np.concatenate(slot_of)
    order = np.argsort(start, kind="stable")
    start, end, region, owner, slot = (a[order] for a in (start, end, region, owner, slot))
    reach = np.maximum.accumulate(end)  # furthest byte covered by any earlier range
    holder = np.maximum.accumulate(np.where(end == reach, np.arange(end.size), 0))
    clash = np.flatnonzero(start[1:] < reach[:-1])
    found = []
    for i in clash[: MAX_LISTED + 1]:
        j, k = i + 1, holder[i]
        found.append(
            f"{_where(owners, owner[j], slot[j])} [{_local(start[j])}, {_local(end[j])}) "
            f"overlaps {_where(owners, owner[k], slot[k])} [{_local(start[k])}, "
            f"{_local(end[k])}) in region {region[j]}"
        )
    if clash.size > MAX_LISTED:
        found = [*found[:MAX_LISTED], f"... and {clash.size - MAX_LISTED} more overlapping buffers"]
    return found


_REGION_SHIFT = 40  # offsets and lengths are u32: their sum stays below 2^33


def _local(address: np.int64) -> int:
    return int(address) & ((1 << _REGION_SHIFT) - 1)


def _where(owners: list[str], owner: np.int64, slot: np.int64) -> str:
    name = owners[int(owner)]
    return name if slot < 0 else f"{name} slot {int(slot)} buffer"
