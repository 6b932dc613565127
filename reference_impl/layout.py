"""Region, ring and descriptor geometry as pure functions (fact sheet section 4).

The cache-line size is a parameter everywhere: nothing on the wire conveys it, and peers
built for aarch64 may use 128 (fact sheet 4.2, interop bug 5).
"""

from __future__ import annotations

import dataclasses
from enum import Enum

from reference_impl.wire import DESCRIPTOR_SIZE, RingType

DEFAULT_CACHE_LINE = 64
MAX_USABLE_LOG2_RING_SIZE = 15  # free-running u16 indices tell full from empty up to 2^15
COOKIE_OFFSET = 0
FLAGS_OFFSET = 4
HEAD_OFFSET = 6


def ring_tail_offset(cache_line: int = DEFAULT_CACHE_LINE) -> int:
    """Offset of `tail` inside a ring header: one cache line in."""
    return cache_line


def ring_header_size(cache_line: int = DEFAULT_CACHE_LINE) -> int:
    """Bytes of ring header before the first descriptor: two cache lines."""
    return 2 * cache_line


def ring_bytes(log2_ring_size: int, cache_line: int = DEFAULT_CACHE_LINE) -> int:
    """Stride of one ring in memory: header plus 16-byte descriptors."""
    return ring_header_size(cache_line) + DESCRIPTOR_SIZE * (1 << log2_ring_size)


class BufferPlacement(Enum):
    """Where a copy-mode client puts its packet buffers."""

    REGION0 = "region0"  # DPDK and VPP clients: rings then buffers, all in region 0
    SEPARATE = "separate"  # libmemif: rings in region 0, buffers in region 1 from offset 0


@dataclasses.dataclass(frozen=True)
class CopyLayout:
    """A client's copy-mode memory: every ring and buffer position, derived.

    Ring order is C2S rings 0..n-1 then S2C rings 0..m-1; global ring g owns buffers
    g*R .. g*R+R-1 (fact sheet 4.4).
    """

    c2s_rings: int
    s2c_rings: int
    log2_ring_size: int
    buffer_size: int
    cache_line: int = DEFAULT_CACHE_LINE
    placement: BufferPlacement = BufferPlacement.REGION0

    def __post_init__(self) -> None:
        if self.c2s_rings < 0 or self.s2c_rings < 0:
            raise ValueError("ring counts must not be negative")
        if self.buffer_size <= 0:
            raise ValueError("buffer size must be positive")
        if not 0 <= self.log2_ring_size <= MAX_USABLE_LOG2_RING_SIZE:
            raise ValueError(
                f"log2 ring size {self.log2_ring_size} not in 0..{MAX_USABLE_LOG2_RING_SIZE}"
            )
        if self.cache_line <= 0 or self.cache_line % 8:
            raise ValueError(f"cache line {self.cache_line} must be a positive multiple of 8")
        if self.buffer_area_offset() + self.buffer_area_size() > 1 << 32:
            raise ValueError("buffers past 4 GiB cannot be addressed by u32 descriptor offsets")

    @property
    def ring_size(self) -> int:
        """Slots per ring."""
        return 1 << self.log2_ring_size

    @property
    def total_rings(self) -> int:
        """Rings in both directions."""
        return self.c2s_rings + self.s2c_rings

    @property
    def ring_stride(self) -> int:
        """Bytes from one ring header to the next."""
        return ring_bytes(self.log2_ring_size, self.cache_line)

    def rings(self) -> list[tuple[RingType, int]]:
        """Every ring in memory (and ADD_RING) order: C2S 0..n-1, then S2C 0..m-1."""
        return [(RingType.C2S, i) for i in range(self.c2s_rings)] + [
            (RingType.S2C, i) for i in range(self.s2c_rings)
        ]

    def global_ring_index(self, ring_type: RingType, index: int) -> int:
        """Position of a ring in memory order (C2S first)."""
        count = self.c2s_rings if ring_type is RingType.C2S else self.s2c_rings
        if not 0 <= index < count:
            raise IndexError(f"{ring_type.name} ring {index} of {count}")
        return index if ring_type is RingType.C2S else self.c2s_rings + index

    def ring_offset(self, ring_type: RingType, index: int) -> int:
        """Offset of the ring header in region 0."""
        return self.global_ring_index(ring_type, index) * self.ring_stride

    def descriptors_offset(self, ring_type: RingType, index: int) -> int:
        """Offset of the ring's descriptor table in region 0."""
        return self.ring_offset(ring_type, index) + ring_header_size(self.cache_line)

    def rings_size(self) -> int:
        """Bytes taken by all ring headers and descriptor tables."""
        return self.total_rings * self.ring_stride

    @property
    def buffer_region(self) -> int:
        """Region index holding the packet buffers."""
        return 0 if self.placement is BufferPlacement.REGION0 else 1

    def buffer_area_offset(self) -> int:
        """Offset of the first buffer within the buffer region."""
        return self.rings_size() if self.placement is BufferPlacement.REGION0 else 0

    def buffer_area_size(self) -> int:
        """Bytes of packet buffers for all rings."""
        return self.buffer_size * self.ring_size * self.total_rings

    def buffer_offset(self, ring_type: RingType, index: int, slot: int) -> int:
        """Offset, in the buffer region, of the buffer owned by (ring, slot)."""
        if not 0 <= slot < self.ring_size:
            raise IndexError(f"slot {slot} of {self.ring_size}")
        first = self.global_ring_index(ring_type, index) * self.ring_size
        return self.buffer_area_offset() + (first + slot) * self.buffer_size

    def region_sizes(self) -> tuple[int, ...]:
        """Size of every region, in index order."""
        if self.placement is BufferPlacement.REGION0:
            return (self.rings_size() + self.buffer_area_size(),)
        return (self.rings_size(), self.buffer_area_size())
