"""Tests of reference_impl.ring: ring views and the batched producer/consumer.

Every test builds real shared memory (a sealed memfd `Region`), a `RingView` at the
position `CopyLayout` gives, and `init_ring` with the client's own buffers, then drives
`produce`/`consume` with explicit free-running u16 indices (fact sheet section 5).
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from collections.abc import Iterator, Sequence

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reference_impl import layout
from reference_impl.layout import BufferPlacement, CopyLayout
from reference_impl.memory import Region
from reference_impl.ring import (
    DESCRIPTOR_DTYPE,
    PacketBatch,
    ReceiveResult,
    RingError,
    RingView,
    consume,
    gather,
    init_ring,
    post_buffers,
    produce,
    scatter,
)
from reference_impl.wire import COOKIE, RingType

I64 = npt.NDArray[np.int64]
NEXT = 1
U16 = 0xFFFF


# ------------------------------------------------------------------ fixtures and helpers


@dataclasses.dataclass
class RingUnderTest:
    """A ring in real shared memory with the client's own buffers posted."""

    shape: CopyLayout
    regions: list[Region]
    view: RingView
    region_ids: I64
    offsets: I64
    capacity: int

    @property
    def size(self) -> int:
        return self.view.size

    def snapshot(self) -> list[bytes]:
        """Every byte of every region."""
        return [bytes(region.array) for region in self.regions]

    def send(
        self, start: int, frames: Sequence[bytes], available: int | None = None
    ) -> tuple[int, int]:
        """produce() the frames from `start` with (by default) the whole ring free."""
        return produce(
            self.view,
            self.regions,
            start,
            self.size if available is None else available,
            PacketBatch.from_frames(frames),
            self.capacity,
        )

    def take(self, start: int, end: int, **kwargs: object) -> ReceiveResult:
        """consume() slots [start, end)."""
        return consume(self.view, self.regions, start, end, **kwargs)  # type: ignore[arg-type]


@contextlib.contextmanager
def ring_under_test(
    log2: int = 4,
    buffer_size: int = 64,
    *,
    cache_line: int = layout.DEFAULT_CACHE_LINE,
    placement: BufferPlacement = BufferPlacement.REGION0,
    ring_type: RingType = RingType.C2S,
    alternate_regions: bool = False,
) -> Iterator[RingUnderTest]:
    """Build region(s), a ring view and `init_ring` the way a copy-mode client does.

    Args:
        log2: log2 of the ring size.
        buffer_size: the client's buffer size (and the produce capacity).
        cache_line: cache-line size of the ring header.
        placement: where the buffers live.
        ring_type: which ring of the 1+1 layout to use.
        alternate_regions: add a second buffer region and give odd slots buffers in it.
    """
    shape = CopyLayout(1, 1, log2, buffer_size, cache_line, placement)
    regions = [
        Region.create(f"memif-test region {i}", size) for i, size in enumerate(shape.region_sizes())
    ]
    view: RingView | None = None
    try:
        slots = np.arange(shape.ring_size, dtype=np.int64)
        offsets = shape.buffer_offset(ring_type, 0, 0) + slots * buffer_size
        region_ids = np.full(shape.ring_size, shape.buffer_region, dtype=np.int64)
        if alternate_regions:
            extra = len(regions)
            regions.append(Region.create("memif-test extra", shape.ring_size * buffer_size))
            odd = slots % 2 == 1
            region_ids[odd] = extra
            offsets[odd] = slots[odd] * buffer_size
        view = RingView(regions[0], shape.ring_offset(ring_type, 0), log2, cache_line)
        init_ring(view, region_ids, offsets, buffer_size)
        yield RingUnderTest(shape, regions, view, region_ids, offsets, buffer_size)
    finally:
        if view is not None:
            view.release()
        for region in regions:
            region.close()


def payloads(lengths: Sequence[int], seed: int = 0) -> list[bytes]:
    """Random frames of the given lengths."""
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, n, dtype=np.uint8).tobytes() for n in lengths]


def slot_range(start: int, count: int, size: int) -> list[int]:
    """Ring slots of the window [start, start+count)."""
    return [(start + i) & (size - 1) for i in range(count)]


def buffer_bytes(rut: RingUnderTest, slot: int, length: int) -> bytes:
    """What a slot's buffer holds, read straight from the region it names."""
    region = rut.regions[int(rut.view.region_column[slot])]
    offset = int(rut.view.offset_column[slot])
    return bytes(region.array[offset : offset + length])


# ------------------------------------------------------------------ ring view and init


@pytest.mark.parametrize("cache_line", [64, 128])
def test_init_ring_writes_cookie_indices_and_descriptors(cache_line: int) -> None:
    with ring_under_test(log2=3, buffer_size=100, cache_line=cache_line) as rut:
        ring = rut.view
        ring.head, ring.tail, ring.flags = 5, 6, 1
        ring.descriptors["metadata"] = 0xDEAD
        ring.flags_column[:] = NEXT
        init_ring(ring, rut.region_ids, rut.offsets, 100)
        assert ring.cookie == COOKIE
        raw = rut.regions[0].array
        base = rut.shape.ring_offset(RingType.C2S, 0)
        assert bytes(raw[base : base + 4]) == COOKIE.to_bytes(4, "little")
        assert (ring.head, ring.tail, ring.flags) == (0, 0, 0)
        assert ring.interrupts_masked is False
        assert list(ring.region_column) == [0] * 8
        assert list(ring.offset_column) == [int(o) for o in rut.offsets]
        assert list(ring.length_column) == [100] * 8
        assert not ring.flags_column.any()
        assert not ring.descriptors["metadata"].any()
        # descriptor 0 sits right after the two-cache-line header, little-endian
        first = base + 2 * cache_line
        expected = (0).to_bytes(2, "little") * 2 + (100).to_bytes(4, "little")
        expected += int(rut.offsets[0]).to_bytes(4, "little") + bytes(4)
        assert bytes(raw[first : first + 16]) == expected


def test_descriptor_dtype_is_the_packed_16_byte_struct() -> None:
    assert DESCRIPTOR_DTYPE.itemsize == 16
    fields = DESCRIPTOR_DTYPE.fields
    assert fields is not None
    layout_of = {name: (str(kind), offset) for name, (kind, offset, *_) in fields.items()}
    assert layout_of == {
        "flags": ("uint16", 0),
        "region": ("uint16", 2),
        "length": ("uint32", 4),
        "offset": ("uint32", 8),
        "metadata": ("uint32", 12),
    }


@pytest.mark.parametrize("cache_line", [64, 128])
def test_index_setters_store_two_little_endian_bytes_in_place(cache_line: int) -> None:
    """head at byte 6, tail at one cache line, flags at 4; neighbours untouched."""
    with ring_under_test(log2=3, cache_line=cache_line) as rut:
        raw = rut.regions[0].array
        base = rut.shape.ring_offset(RingType.C2S, 0)
        header = raw[base : base + 2 * cache_line]
        header[4:] = 0xEE
        rut.view.head = 0xABCD
        assert bytes(header[6:8]) == b"\xcd\xab"
        assert bytes(header[4:6]) == b"\xee\xee"
        assert bytes(header[8:10]) == b"\xee\xee"
        rut.view.tail = 0x1234
        assert bytes(header[cache_line : cache_line + 2]) == b"\x34\x12"
        assert bytes(header[cache_line - 2 : cache_line]) == b"\xee\xee"
        assert bytes(header[cache_line + 2 : cache_line + 4]) == b"\xee\xee"
        rut.view.flags = 1
        assert bytes(header[4:6]) == b"\x01\x00"
        assert rut.view.interrupts_masked
        assert (rut.view.head, rut.view.tail, rut.view.flags) == (0xABCD, 0x1234, 1)
        rut.view.head = 0x1ABCD  # free-running: stored modulo 2**16
        rut.view.tail = -1
        assert (rut.view.head, rut.view.tail) == (0xABCD, 0xFFFF)
        assert bytes(header[8 : cache_line - 2]) == b"\xee" * (cache_line - 10)


def test_ring_view_rejects_rings_outside_region_or_misaligned() -> None:
    region = Region.create("memif-test small", 4096)
    try:
        with pytest.raises(RingError):
            RingView(region, 4096 - layout.ring_bytes(4) + 4, 4)
        with pytest.raises(RingError):
            RingView(region, -4, 4)
        with pytest.raises(RingError):
            RingView(region, 2, 4)
        fits = RingView(region, 4096 - layout.ring_bytes(4), 4)
        assert fits.size == 16
        fits.release()
    finally:
        region.close()


def test_post_buffers_rewrites_region_offset_length_and_flags() -> None:
    with ring_under_test(log2=3, ring_type=RingType.S2C) as rut:
        ring = rut.view
        ring.region_column[:] = 9
        ring.offset_column[:] = 1
        ring.length_column[:] = 7
        ring.flags_column[:] = NEXT
        post_buffers(ring, 0xFFFE, 3, rut.region_ids, rut.offsets, 50)
        touched = slot_range(0xFFFE, 3, 8)
        assert touched == [6, 7, 0]
        for slot in range(8):
            if slot in touched:
                assert int(ring.region_column[slot]) == 0
                assert int(ring.offset_column[slot]) == int(rut.offsets[slot])
                assert (int(ring.length_column[slot]), int(ring.flags_column[slot])) == (50, 0)
            else:
                assert int(ring.region_column[slot]) == 9
                assert int(ring.length_column[slot]) == 7


# ------------------------------------------------------------------ produce / consume


def test_round_trip_byte_for_byte() -> None:
    with ring_under_test(log2=4, buffer_size=64) as rut:
        frames = payloads([1, 14, 60, 63, 64, 33])
        assert rut.send(0, frames) == (6, 6)
        for slot, frame in enumerate(frames):
            assert int(rut.view.length_column[slot]) == len(frame)
            assert int(rut.view.flags_column[slot]) == 0
            assert buffer_bytes(rut, slot, len(frame)) == frame
        result = rut.take(0, 6)
        assert result.slots == 6
        assert result.errors == 0
        assert result.batch.frames() == frames
        assert list(result.batch.lengths) == [len(f) for f in frames]
        assert result.batch.segments is not None
        assert list(result.batch.segments) == [1] * 6


@pytest.mark.parametrize("segments", [2, 3, 5])
@pytest.mark.parametrize("shortfall", [0, 1, 63])
def test_chains_of_several_descriptors(segments: int, shortfall: int) -> None:
    with ring_under_test(log2=4, buffer_size=64) as rut:
        length = 64 * segments - shortfall
        first, frame, last = payloads([10, length, 20], seed=segments)
        assert rut.send(3, [first, frame, last]) == (3, segments + 2)
        chain = list(range(4, 4 + segments))
        assert [int(rut.view.flags_column[s]) for s in chain] == [NEXT] * (segments - 1) + [0]
        fragment_lengths = [int(rut.view.length_column[s]) for s in chain]
        assert fragment_lengths == [64] * (segments - 1) + [64 - shortfall]
        pieces = b"".join(
            buffer_bytes(rut, s, n) for s, n in zip(chain, fragment_lengths, strict=True)
        )
        assert pieces == frame
        result = rut.take(3, 3 + segments + 2)
        assert result.batch.frames() == [first, frame, last]
        assert result.batch.segments is not None
        assert list(result.batch.segments) == [1, segments, 1]
        assert result.slots == segments + 2


def test_jumbo_frames_at_capacity_2048() -> None:
    with ring_under_test(log2=5, buffer_size=2048) as rut:
        frames = payloads([9000, 9000, 64, 9000], seed=9)
        assert rut.send(0, frames) == (4, 16)
        assert [int(n) for n in rut.view.length_column[:5]] == [2048] * 4 + [808]
        result = rut.take(0, 16)
        assert result.batch.frames() == frames
        assert result.batch.segments is not None
        assert list(result.batch.segments) == [5, 5, 1, 5]
        # a 9000-byte frame exceeds nothing here; max_frame=9216 keeps it
        assert rut.take(0, 16, max_frame=9216).batch.frames() == frames


@pytest.mark.parametrize(
    "start",
    [
        13,  # near the end of the ring, far from the u16 wrap
        15,  # last slot
        0xFFFE,  # u16 wrap and ring wrap at the same time
        0xFFFF,
        0xFFFD - 16,  # ring wraps before the u16 counter does
    ],
)
def test_chains_across_ring_wrap(start: int) -> None:
    with ring_under_test(log2=4, buffer_size=64) as rut:
        frames = payloads([64 * 5, 10, 64 * 3 - 1, 130], seed=start)
        sent, used = rut.send(start, frames)
        assert (sent, used) == (4, 5 + 1 + 3 + 3)
        end = (start + used) & U16
        result = rut.take(start, end)
        assert result.slots == used
        assert result.errors == 0
        assert result.batch.frames() == frames
        flags = [int(rut.view.flags_column[s]) for s in slot_range(start, used, 16)]
        assert flags == [NEXT] * 4 + [0] + [0] + [NEXT] * 2 + [0] + [NEXT] * 2 + [0]


def test_index_math_for_frames_that_do_not_fit() -> None:
    """Segments [1, 3, 1, 2]: only whole frames go, the slots used say how many."""
    lengths = [10, 130, 64, 65]
    cases = {10: (4, 7), 7: (4, 7), 6: (3, 5), 5: (3, 5), 4: (2, 4), 3: (1, 1), 1: (1, 1)}
    for available, expected in cases.items():
        with ring_under_test(log2=4, buffer_size=64) as rut:
            assert rut.send(0, payloads(lengths), available) == expected


def test_chain_exactly_fills_the_free_space() -> None:
    with ring_under_test(log2=3, buffer_size=64) as rut:
        frame = payloads([64 * 4 - 5])[0]
        assert rut.send(6, [frame], available=4) == (1, 4)
        assert rut.take(6, 10).batch.frames() == [frame]


def test_chain_exactly_filling_the_whole_ring() -> None:
    with ring_under_test(log2=3, buffer_size=64) as rut:
        frame = payloads([64 * 8])[0]
        assert rut.send(0xFFFC, [frame]) == (1, 8)
        result = rut.take(0xFFFC, 4)
        assert result.slots == 8
        assert result.batch.frames() == [frame]


def test_frame_that_does_not_fit_is_not_written_at_all() -> None:
    with ring_under_test(log2=3, buffer_size=64) as rut:
        before = rut.snapshot()
        frame = payloads([64 * 5 - 1])[0]  # 5 slots
        assert rut.send(6, [frame], available=4) == (0, 0)
        assert rut.snapshot() == before


def test_partial_batch_writes_only_the_frames_that_fit() -> None:
    """Frames of 2 and 3 slots with 4 free: memory equals a send of the first alone."""
    frames = payloads([100, 150], seed=3)
    with (
        ring_under_test(log2=3, buffer_size=64) as full,
        ring_under_test(log2=3, buffer_size=64) as alone,
    ):
        assert full.send(5, frames, available=4) == (1, 2)
        assert alone.send(5, frames[:1], available=4) == (1, 2)
        assert full.snapshot() == alone.snapshot()


@pytest.mark.parametrize(("batch_frames", "available", "capacity"), [([], 8, 64), ([b"x"], 0, 64)])
def test_produce_nothing_to_do(batch_frames: list[bytes], available: int, capacity: int) -> None:
    with ring_under_test(log2=3) as rut:
        before = rut.snapshot()
        batch = PacketBatch.from_frames(batch_frames)
        assert produce(rut.view, rut.regions, 0, available, batch, capacity) == (0, 0)
        assert produce(rut.view, rut.regions, 0, 8, PacketBatch.from_frames([b"x"]), 0) == (0, 0)
        assert rut.snapshot() == before


def test_flags_are_assigned_not_ored() -> None:
    """Stale NEXT bits from an earlier lap must not survive (fact sheet 5.5)."""
    with ring_under_test(log2=4, buffer_size=64) as rut:
        rut.view.flags_column[:] = NEXT | 0x8000
        frames = payloads([40] * 16)
        assert rut.send(0xFFF8, frames) == (16, 16)
        assert list(rut.view.flags_column) == [0] * 16
        assert rut.take(0xFFF8, 8).batch.frames() == frames
        # and the other way round: chains on a ring whose flags were all clear
        assert rut.send(8, payloads([100, 40])) == (2, 3)
        assert [int(f) for f in rut.view.flags_column[8:11]] == [NEXT, 0, 0]


def test_zero_length_frame_takes_one_empty_slot_and_consumer_drops_it() -> None:
    """Current behaviour: produce() writes a length-0 descriptor for an empty frame.

    consume() (like VPP's `memif_validate_desc_data`) treats length 0 as a bad
    descriptor, so the frame is sent but arrives as an error.
    """
    with ring_under_test(log2=3, buffer_size=64) as rut:
        frames = [b"a" * 10, b"", b"c" * 70]
        assert rut.send(0, frames) == (3, 4)
        assert (int(rut.view.length_column[1]), int(rut.view.flags_column[1])) == (0, 0)
        result = rut.take(0, 4)
        assert result.slots == 4
        assert result.errors == 1
        assert result.batch.frames() == [b"a" * 10, b"c" * 70]


def test_produce_refuses_slots_pointing_outside_the_regions() -> None:
    with ring_under_test(log2=3, buffer_size=64) as rut:
        frames = payloads([10, 10, 10])
        rut.view.region_column[2] = 3
        before = rut.snapshot()
        with pytest.raises(RingError):
            rut.send(0, frames)
        assert rut.snapshot() == before
        rut.view.region_column[2] = 0
        rut.view.offset_column[2] = rut.regions[0].size - 5
        before = rut.snapshot()
        with pytest.raises(RingError):
            rut.send(0, frames)
        assert rut.snapshot() == before


# ------------------------------------------------------------------ consumer edge cases


def test_consume_leaves_an_open_trailing_chain_for_later() -> None:
    with ring_under_test(log2=4, buffer_size=64) as rut:
        frames = payloads([20, 64 * 3, 30], seed=4)
        start = 0xFFFE
        assert rut.send(start, frames) == (3, 5)
        # the peer has published the first frame and two of the chain's three slots
        result = rut.take(start, (start + 3) & U16)
        assert (result.slots, result.errors) == (1, 0)
        assert result.batch.frames() == frames[:1]
        cursor = (start + 1) & U16
        nothing = rut.take(cursor, (start + 3) & U16)
        assert (nothing.slots, len(nothing.batch)) == (0, 0)
        rest = rut.take(cursor, (start + 5) & U16)
        assert rest.slots == 4
        assert rest.batch.frames() == frames[1:]


def test_consume_empty_window() -> None:
    with ring_under_test(log2=3) as rut:
        result = rut.take(0x1234, 0x1234)
        assert (result.slots, result.errors, len(result.batch)) == (0, 0, 0)


def _corrupt(rut: RingUnderTest, slot: int, how: str) -> None:
    view = rut.view
    size = rut.regions[0].size
    if how == "region":
        view.region_column[slot] = 1  # only region 0 exists
    elif how == "past_end":
        view.offset_column[slot] = size - 10
        view.length_column[slot] = 11
    elif how == "u32_overflow":
        # 0xFFFFFFF0 + 0x20 wraps to 0x10 in u32: looks tiny unless summed in 64 bits
        view.offset_column[slot] = 0xFFFFFFF0
        view.length_column[slot] = 0x20
    elif how == "zero_length":
        view.length_column[slot] = 0
    else:  # pragma: no cover
        raise AssertionError(how)


@pytest.mark.parametrize("how", ["region", "past_end", "u32_overflow", "zero_length"])
@pytest.mark.parametrize("fragment", [0, 1])
def test_consume_drops_frames_with_bad_descriptors(how: str, fragment: int) -> None:
    with ring_under_test(log2=4, buffer_size=64) as rut:
        frames = payloads([50, 100, 64 * 3, 7], seed=11)
        start = 0xFFFC
        assert rut.send(start, frames) == (4, 7)
        # frame 1 occupies the 2nd and 3rd slots; spoil one of its fragments
        _corrupt(rut, (start + 1 + fragment) & 15, how)
        result = rut.take(start, (start + 7) & U16)
        assert result.slots == 7
        assert result.errors == 1
        assert result.batch.frames() == [frames[0], frames[2], frames[3]]
        assert result.batch.segments is not None
        assert list(result.batch.segments) == [1, 3, 1]


def test_consume_drops_every_frame_when_all_are_bad() -> None:
    with ring_under_test(log2=3, buffer_size=64) as rut:
        assert rut.send(0, payloads([5, 6])) == (2, 2)
        rut.view.length_column[:2] = 0
        result = rut.take(0, 2)
        assert (result.slots, result.errors, len(result.batch)) == (2, 2, 0)
        assert result.batch.data.size == 0


def test_consume_max_frame_drops_only_long_frames() -> None:
    with ring_under_test(log2=5, buffer_size=2048) as rut:
        frames = payloads([100, 9000, 9216, 9217, 60], seed=5)
        sent, used = rut.send(0, frames)
        assert (sent, used) == (5, 1 + 5 + 5 + 5 + 1)
        result = rut.take(0, used, max_frame=9216)
        assert result.slots == used
        assert result.errors == 1
        assert result.batch.frames() == [frames[0], frames[1], frames[2], frames[4]]


def test_consume_without_copy_reports_lengths_only() -> None:
    with ring_under_test(log2=4, buffer_size=64) as rut:
        assert rut.send(0, payloads([10, 200, 64])) == (3, 6)
        result = rut.take(0, 6, copy=False)
        assert result.slots == 6
        assert list(result.batch.lengths) == [10, 200, 64]
        assert result.batch.segments is not None
        assert list(result.batch.segments) == [1, 4, 1]
        assert result.batch.data.size == 0


@pytest.mark.parametrize(("start", "ahead"), [(0, 17), (0xFFF8, 17), (5, 0x8000), (7, 0xFFFF)])
def test_consume_raises_when_peer_index_jumps_past_ring_size(start: int, ahead: int) -> None:
    with ring_under_test(log2=4) as rut, pytest.raises(RingError):
        rut.take(start, (start + ahead) & U16)


def test_consume_accepts_exactly_a_full_ring() -> None:
    with ring_under_test(log2=4, buffer_size=64) as rut:
        frames = payloads([30] * 16)
        assert rut.send(0xFFF5, frames) == (16, 16)
        assert rut.take(0xFFF5, (0xFFF5 + 16) & U16).batch.frames() == frames


def test_consume_raises_when_whole_ring_is_one_open_chain() -> None:
    with ring_under_test(log2=4) as rut:
        rut.view.flags_column[:] = NEXT
        with pytest.raises(RingError):
            rut.take(0xFFF0, 0)
        partial = rut.take(0xFFF0, 0xFFFF)  # 15 open slots: may still be completed
        assert (partial.slots, len(partial.batch)) == (0, 0)


# ------------------------------------------------------------------ two buffer regions


@pytest.mark.parametrize("start", [0, 7, 0xFFFB])
def test_buffers_alternating_between_two_regions(start: int) -> None:
    with ring_under_test(log2=4, buffer_size=64, alternate_regions=True) as rut:
        assert list(rut.view.region_column[:4]) == [0, 1, 0, 1]
        frames = payloads([64 * 3, 5, 64, 100, 64 * 2 + 1, 1], seed=start)
        sent, used = rut.send(start, frames)
        assert (sent, used) == (6, 3 + 1 + 1 + 2 + 3 + 1)
        # each fragment landed in the region its descriptor names
        flat = b"".join(frames)
        position = 0
        for slot in slot_range(start, used, 16):
            length = int(rut.view.length_column[slot])
            assert buffer_bytes(rut, slot, length) == flat[position : position + length]
            position += length
        assert position == len(flat)
        result = rut.take(start, (start + used) & U16)
        assert result.errors == 0
        assert result.batch.frames() == frames


def test_two_regions_drop_keeps_others() -> None:
    with ring_under_test(log2=4, buffer_size=64, alternate_regions=True) as rut:
        frames = payloads([10, 100, 20, 30], seed=8)
        assert rut.send(0, frames) == (4, 5)
        rut.view.offset_column[2] = rut.regions[0].size  # 2nd fragment of frame 1 (region 0)
        result = rut.take(0, 5)
        assert result.errors == 1
        assert result.batch.frames() == [frames[0], frames[2], frames[3]]


def test_separate_placement_round_trip() -> None:
    with ring_under_test(log2=4, buffer_size=100, placement=BufferPlacement.SEPARATE) as rut:
        assert list(rut.view.region_column) == [1] * 16
        frames = payloads([300, 17, 100], seed=2)
        assert rut.send(0xFFFF, frames) == (3, 5)
        assert bytes(rut.regions[1].array[1500:1600]) == frames[0][:100]  # slot 15
        assert rut.take(0xFFFF, 4).batch.frames() == frames


# ------------------------------------------------------------------ scatter / gather


def reference_scatter(
    area: bytearray, offsets: Sequence[int], lengths: Sequence[int], source: bytes
) -> None:
    """Plain-Python scatter: fragment i gets the next lengths[i] bytes of source."""
    position = 0
    for offset, length in zip(offsets, lengths, strict=True):
        area[offset : offset + length] = source[position : position + length]
        position += length


def reference_gather(area: bytes, offsets: Sequence[int], lengths: Sequence[int]) -> bytes:
    """Plain-Python gather."""
    return b"".join(area[o : o + n] for o, n in zip(offsets, lengths, strict=True))


def check_scatter_gather(area_size: int, offsets: Sequence[int], lengths: Sequence[int]) -> None:
    """Compare scatter and gather with the plain-Python reference on one layout."""
    rng = np.random.default_rng(len(offsets) * 7919 + area_size)
    background = rng.integers(0, 256, area_size, dtype=np.uint8)
    source = rng.integers(0, 256, sum(lengths), dtype=np.uint8)
    off = np.asarray(offsets, dtype=np.int64)
    lens = np.asarray(lengths, dtype=np.int64)

    area = background.copy()
    scatter(area, off, lens, source)
    expected = bytearray(background.tobytes())
    reference_scatter(expected, offsets, lengths, source.tobytes())
    assert area.tobytes() == bytes(expected)

    got = gather(area, off, lens)
    assert got.dtype == np.uint8
    assert got.tobytes() == reference_gather(bytes(expected), offsets, lengths)
    assert got.tobytes() == source.tobytes()
    # gather must return a copy, not a view into the shared memory
    snapshot = got.tobytes()
    area[:] = 0
    assert got.tobytes() == snapshot


@pytest.mark.parametrize(
    ("area_size", "offsets", "lengths"),
    [
        (500, [0, 100, 150, 400], [50, 50, 50, 50]),  # uneven offsets, equal lengths
        (500, [0, 100, 150, 400], [10, 50, 1, 100]),  # uneven offsets, unequal lengths
        (400, [0, 100, 200, 300], [100, 3, 50, 0]),  # even offsets, unequal (strided path)
        (400, [0, 100, 200, 300], [100, 100, 100, 100]),  # even offsets, equal, full stride
        (321, [10, 110, 210, 310], [100, 100, 100, 11]),  # strided rows would pass the end
        (400, [300, 200, 100, 0], [30, 40, 50, 60]),  # descending
        (400, [0, 200, 100, 300], [30, 40, 50, 60]),  # shuffled
        (64, [5], [59]),  # one fragment up to the end
        (64, [5], [0]),
        (64, [0, 10, 20], [0, 0, 0]),
        (100, [40, 40], [0, 10]),  # same offset twice, one empty
        (200, [7, 57, 107], [50, 50, 50]),  # back to back (stride == width)
    ],
)
def test_scatter_gather_match_reference(
    area_size: int, offsets: list[int], lengths: list[int]
) -> None:
    check_scatter_gather(area_size, offsets, lengths)


def test_gather_overlapping_fragments() -> None:
    """Reads may overlap (a peer can point two descriptors at one buffer)."""
    area = np.arange(100, dtype=np.uint8)
    for offsets, lengths in (([0, 10, 20], [30, 30, 30]), ([5, 5], [10, 10]), ([0, 1], [3, 1])):
        got = gather(area, np.array(offsets, np.int64), np.array(lengths, np.int64))
        assert got.tobytes() == reference_gather(area.tobytes(), offsets, lengths)


def test_scatter_gather_empty() -> None:
    area = np.zeros(10, dtype=np.uint8)
    empty = np.empty(0, np.int64)
    scatter(area, empty, empty, np.empty(0, np.uint8))
    assert not area.any()
    assert gather(area, empty, empty).size == 0


@st.composite
def fragment_layouts(draw: st.DrawFn) -> tuple[int, list[int], list[int]]:
    """Non-overlapping fragments: evenly spaced rows, or random gaps in random order."""
    count = draw(st.integers(1, 12))
    if draw(st.booleans()):
        stride = draw(st.integers(1, 80))
        first = draw(st.integers(0, 20))
        lengths = draw(st.lists(st.integers(0, stride), min_size=count, max_size=count))
        offsets = [first + i * stride for i in range(count)]
    else:
        lengths = draw(st.lists(st.integers(0, 60), min_size=count, max_size=count))
        gaps = draw(st.lists(st.integers(0, 40), min_size=count, max_size=count))
        offsets, position = [], 0
        for gap, length in zip(gaps, lengths, strict=True):
            position += gap
            offsets.append(position)
            position += length
        order = draw(st.permutations(range(count)))
        offsets = [offsets[i] for i in order]
        lengths = [lengths[i] for i in order]
    end = max(o + n for o, n in zip(offsets, lengths, strict=True))
    slack = draw(st.integers(0, 30))
    return end + slack, offsets, lengths


@settings(max_examples=300, deadline=None)
@given(fragment_layouts())
def test_scatter_gather_property(case: tuple[int, list[int], list[int]]) -> None:
    area_size, offsets, lengths = case
    check_scatter_gather(max(area_size, 1), offsets, lengths)


# ------------------------------------------------------------------ round-trip property


@settings(max_examples=120, deadline=None)
@given(data=st.data())
def test_round_trip_property(data: st.DataObject) -> None:
    """Whatever goes in comes out identical, in order, in ceil(len/capacity) slots.

    The consumer sometimes reads only up to a random point of what was published
    (possibly inside a chain), as a peer that publishes in several steps would.
    """
    log2 = data.draw(st.integers(1, 8), label="log2")
    capacity = data.draw(st.integers(1, 3000), label="capacity")
    size = 1 << log2
    longest = min(20000, capacity * size)
    lengths = data.draw(st.lists(st.integers(1, longest), max_size=25), label="lengths")
    start = data.draw(st.integers(0, U16), label="start")
    frames = payloads(lengths, seed=data.draw(st.integers(0, 2**32 - 1), label="seed"))
    with ring_under_test(log2, capacity) as rut:
        head = tail = start
        pending = list(frames)
        received: list[bytes] = []
        segments: list[int] = []
        for _ in range(4 * len(frames) + 4):
            if not pending and head == tail:
                break
            free = size - ((head - tail) & U16)
            sent, used = rut.send(head, pending, free) if pending else (0, 0)
            assert used <= free
            assert used == sum(math.ceil(len(f) / capacity) for f in pending[:sent])
            if pending:
                # the first waiting frame fits whenever the ring is empty
                assert sent > 0 or free < size
            pending = pending[sent:]
            head = (head + used) & U16
            published = (head - tail) & U16
            cut = data.draw(st.integers(0, published), label="cut") if published else 0
            if sent == 0:
                cut = published  # make progress
            result = rut.take(tail, (tail + cut) & U16)
            assert result.errors == 0
            assert result.slots <= cut
            received += result.batch.frames()
            assert result.batch.segments is not None
            segments += [int(s) for s in result.batch.segments]
            assert result.slots == sum(int(s) for s in result.batch.segments)
            tail = (tail + result.slots) & U16
        assert not pending
        assert head == tail
        assert received == frames
        assert segments == [math.ceil(n / capacity) for n in lengths]


# ------------------------------------------------------------------ PacketBatch


def test_packet_batch_helpers() -> None:
    frames = [b"abc", b"", b"defgh", b"ij"]
    batch = PacketBatch.from_frames(frames)
    assert len(batch) == 4
    assert list(batch.starts) == [0, 3, 3, 8]
    assert batch.frames() == frames
    head = batch.head(3)
    assert head.frames() == frames[:3]
    assert head.data.tobytes() == b"abcdefgh"
    repeated = PacketBatch.repeat(b"xyz", 3)
    assert repeated.frames() == [b"xyz"] * 3
    empty = PacketBatch.empty()
    assert len(empty) == 0
    assert empty.frames() == []
    assert list(empty.starts) == []
