"""Ring views and batched producer/consumer operations over shared memory.

A burst is a handful of numpy operations over the descriptor table and the buffers; no
Python loop runs per packet. Indices are free-running u16 counters (fact sheet 5.1) and
are published with one aligned 2-byte store through `memoryview.cast('H')`, never with
`struct.pack_into` (which zeroes the field first, so a peer can read 0 in between).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from reference_impl import layout
from reference_impl.memory import Region
from reference_impl.wire import COOKIE, DescriptorFlag, RingFlag

DESCRIPTOR_DTYPE = np.dtype(
    [
        ("flags", "<u2"),
        ("region", "<u2"),
        ("length", "<u4"),
        ("offset", "<u4"),
        ("metadata", "<u4"),
    ]
)
assert DESCRIPTOR_DTYPE.itemsize == 16

U8 = npt.NDArray[np.uint8]
U16 = npt.NDArray[np.uint16]
I64 = npt.NDArray[np.int64]
_INDEX_MASK = 0xFFFF
_NEXT = int(DescriptorFlag.NEXT)
_MASK_INT = int(RingFlag.MASK_INT)


class RingError(Exception):
    """The peer left a ring in a state no conforming peer produces."""


@dataclasses.dataclass
class PacketBatch:
    """Frames stored back to back in one byte array, with their lengths."""

    data: U8
    lengths: I64
    segments: I64 | None = None  # descriptors each frame used (received batches)

    @classmethod
    def from_frames(cls, frames: Sequence[bytes]) -> PacketBatch:
        """Pack a list of frames (tests and control traffic; not the fast path)."""
        data = np.frombuffer(b"".join(frames), dtype=np.uint8).copy()
        lengths = np.fromiter((len(f) for f in frames), dtype=np.int64, count=len(frames))
        return cls(data, lengths)

    @classmethod
    def repeat(cls, frame: bytes, count: int) -> PacketBatch:
        """`count` copies of one frame."""
        template = np.frombuffer(frame, dtype=np.uint8)
        return cls(np.tile(template, count), np.full(count, len(frame), dtype=np.int64))

    @classmethod
    def empty(cls) -> PacketBatch:
        """A batch with no frames."""
        return cls(np.empty(0, np.uint8), np.empty(0, np.int64), np.empty(0, np.int64))

    def __len__(self) -> int:
        return int(self.lengths.size)

    @property
    def starts(self) -> I64:
        """Byte offset of each frame in `data`."""
        starts = np.zeros(self.lengths.size, dtype=np.int64)
        np.cumsum(self.lengths[:-1], out=starts[1:])
        return starts

    def head(self, count: int) -> PacketBatch:
        """The first `count` frames."""
        total = int(self.lengths[:count].sum())
        segments = None if self.segments is None else self.segments[:count]
        return PacketBatch(self.data[:total], self.lengths[:count], segments)

    def frames(self) -> list[bytes]:
        """Each frame as bytes (tests and control traffic; not the fast path)."""
        raw = self.data.tobytes()
        ends = np.cumsum(self.lengths)
        return [raw[int(e - n) : int(e)] for e, n in zip(ends, self.lengths, strict=True)]


@dataclasses.dataclass(frozen=True)
class OwnedBuffers:
    """A client's own buffer for every slot of one ring, and their capacity.

    `rows`, when the buffers are evenly spaced by `capacity` in one region (every
    layout this package builds), is a (ring size, capacity) view of them.
    """

    region_ids: I64
    offsets: I64
    capacity: int
    rows: U8 | None = None

    @classmethod
    def of_region(
        cls, region: Region, index: int, first: int, count: int, capacity: int
    ) -> OwnedBuffers:
        """`count` consecutive buffers of `capacity` bytes from offset `first` of a region."""
        if first < 0 or first + count * capacity > region.size:
            raise RingError("buffers extend past the end of their region")
        offsets = first + np.arange(count, dtype=np.int64) * capacity
        region_ids = np.full(count, index, dtype=np.int64)
        rows = _strided_rows(region.array, first, capacity, count, capacity)
        return cls(region_ids, offsets, capacity, rows)


@dataclasses.dataclass
class ReceiveResult:
    """What one consumer burst took off a ring."""

    batch: PacketBatch
    slots: int  # descriptors consumed (including dropped frames)
    errors: int  # frames dropped for bad descriptors
    open_chain: bool = False  # the peer's index stopped inside a chain (left for later)


class RingView:
    """Header fields and the descriptor table of one ring inside a region."""

    def __init__(
        self,
        region: Region,
        offset: int,
        log2_ring_size: int,
        cache_line: int = layout.DEFAULT_CACHE_LINE,
    ) -> None:
        """Locate a ring at `offset` in `region`.

        Raises:
            RingError: the ring does not fit in the region, or is misaligned.
        """
        if not 0 <= log2_ring_size <= layout.MAX_USABLE_LOG2_RING_SIZE:
            raise RingError(
                f"log2 ring size {log2_ring_size}: u16 indices address at most "
                f"2^{layout.MAX_USABLE_LOG2_RING_SIZE} slots"
            )
        size = layout.ring_bytes(log2_ring_size, cache_line)
        if offset < 0 or offset + size > region.size:
            raise RingError(f"ring at {offset} ({size} bytes) outside region of {region.size}")
        if offset % 4:
            raise RingError(f"ring offset {offset} is not 4-byte aligned")
        self.size = 1 << log2_ring_size
        self.mask = self.size - 1
        header = memoryview(region.mmap)[offset : offset + layout.ring_header_size(cache_line)]
        self._halves = header.cast("H")
        self._words = header.cast("I")
        self._head_index = layout.HEAD_OFFSET // 2
        self._flags_index = layout.FLAGS_OFFSET // 2
        self._tail_index = layout.ring_tail_offset(cache_line) // 2
        table: npt.NDArray[np.void] = np.ndarray(
            shape=(self.size,),
            dtype=DESCRIPTOR_DTYPE,
            buffer=region.mmap,
            offset=offset + layout.ring_header_size(cache_line),
        )
        self.flags_column: npt.NDArray[np.uint16] = table["flags"]
        self.region_column: npt.NDArray[np.uint16] = table["region"]
        self.length_column: npt.NDArray[np.uint32] = table["length"]
        self.offset_column: npt.NDArray[np.uint32] = table["offset"]
        self.descriptors = table

    @property
    def cookie(self) -> int:
        """The ring's cookie word."""
        return int(self._words[0])

    @cookie.setter
    def cookie(self, value: int) -> None:
        self._words[0] = value

    @property
    def head(self) -> int:
        """The client-owned index (one aligned load)."""
        return int(self._halves[self._head_index])

    @head.setter
    def head(self, value: int) -> None:
        self._halves[self._head_index] = value & _INDEX_MASK

    @property
    def tail(self) -> int:
        """The server-owned index (one aligned load)."""
        return int(self._halves[self._tail_index])

    @tail.setter
    def tail(self, value: int) -> None:
        self._halves[self._tail_index] = value & _INDEX_MASK

    @property
    def flags(self) -> int:
        """Ring flags, owned by the receiver (bit 0 MASK_INT)."""
        return int(self._halves[self._flags_index])

    @flags.setter
    def flags(self, value: int) -> None:
        self._halves[self._flags_index] = value

    @property
    def interrupts_masked(self) -> bool:
        """Whether the receiver polls and asked not to be signalled."""
        return bool(self.flags & _MASK_INT)  # an int: IntFlag's & costs microseconds

    def release(self) -> None:
        """Drop the views into the mapping so the region can be unmapped."""
        self._halves.release()
        self._words.release()
        empty = np.zeros(0, dtype=DESCRIPTOR_DTYPE)
        self.descriptors = empty
        self.flags_column = empty["flags"]
        self.region_column = empty["region"]
        self.length_column = empty["length"]
        self.offset_column = empty["offset"]


# ------------------------------------------------------------------ byte movement


def _arithmetic_stride(offsets: I64) -> int | None:
    """The common difference of `offsets`, or None if they are not evenly spaced."""
    if offsets.size < 2:
        return 0
    stride = int(offsets[1] - offsets[0])
    if stride <= 0 or not np.all(np.diff(offsets) == stride):
        return None
    return stride


def _strided_rows(area: U8, first: int, stride: int, rows: int, width: int) -> U8:
    """A (rows, width) view of `area` with rows `stride` bytes apart.

    Built with the ndarray constructor, which checks the rows lie inside `area` (and costs
    a fifth of `as_strided`: it runs once per burst).
    """
    view: U8 = np.ndarray(
        (rows, width),
        np.uint8,
        buffer=area,
        offset=first,
        strides=(stride if rows > 1 else width, 1),
    )
    return view


def _byte_index(offsets: I64, lengths: I64) -> I64:
    """Absolute byte positions of every fragment, concatenated."""
    total = int(lengths.sum())
    starts = np.cumsum(lengths) - lengths
    return np.repeat(offsets - starts, lengths) + np.arange(total, dtype=np.int64)


def _run_fits(area: U8, offsets: I64, stride: int | None, width: int) -> bool:
    if stride is None or (offsets.size > 1 and width > stride):
        return False
    return int(offsets[-1]) + width <= area.size


def scatter(area: U8, offsets: I64, lengths: I64, source: U8) -> None:
    """Write `source` into `area` as consecutive fragments at `offsets` of `lengths`.

    Evenly spaced buffers (the normal case: consecutive slots of a layout) are written
    through one strided 2-D view; anything else through a flat byte index.
    """
    if offsets.size == 0:
        return
    width = int(lengths.max())
    stride = _arithmetic_stride(offsets)
    if width and _run_fits(area, offsets, stride, width):
        rows = _strided_rows(area, int(offsets[0]), stride or width, offsets.size, width)
        if int(lengths.min()) == width:
            rows[...] = source.reshape(offsets.size, width)
        else:
            rows[np.arange(width) < lengths[:, None]] = source
        return
    area[_byte_index(offsets, lengths)] = source


def gather(area: U8, offsets: I64, lengths: I64) -> U8:
    """Read fragments at `offsets` of `lengths` from `area`, concatenated."""
    if offsets.size == 0:
        return np.empty(0, dtype=np.uint8)
    width = int(lengths.max())
    stride = _arithmetic_stride(offsets)
    if width and _run_fits(area, offsets, stride, width):
        rows = _strided_rows(area, int(offsets[0]), stride or width, offsets.size, width)
        if int(lengths.min()) == width:
            return rows.reshape(-1).copy()
        return rows[np.arange(width) < lengths[:, None]]
    return area[_byte_index(offsets, lengths)]


def _wrap_runs(start: int, count: int, ring_size: int) -> list[slice]:
    """Index ranges of a [start, start+count) slot window that do not wrap."""
    first = min(count, ring_size - (start & (ring_size - 1)))
    runs = [slice(0, first)]
    if first < count:
        runs.append(slice(first, count))
    return runs


def _valid_fragments(
    regions: Sequence[Region], region_ids: I64, offsets: I64, lengths: I64
) -> npt.NDArray[np.bool_]:
    """Fragments whose bytes lie entirely inside an announced region, and are not empty."""
    if not regions:
        return np.zeros(region_ids.size, dtype=np.bool_)
    sizes = np.fromiter((r.size for r in regions), dtype=np.int64, count=len(regions))
    known = region_ids < len(regions)
    limit = np.where(known, sizes[np.minimum(region_ids, len(regions) - 1)], 0)
    return known & (lengths > 0) & (offsets + lengths <= limit)


# ------------------------------------------------------------------ ring operations


def _fragment_plan(batch: PacketBatch, available: int, capacity: int) -> tuple[int, I64, U16]:
    """How many whole frames fit in `available` slots, each fragment's length and flags."""
    if int(batch.lengths.max()) <= capacity:  # no chains: one slot per frame
        frames = min(len(batch), available)
        return frames, batch.lengths[:frames], np.zeros(frames, dtype=np.uint16)
    fragments = np.maximum(1, -(-batch.lengths // capacity))
    ends = np.cumsum(fragments)
    frames = int(np.searchsorted(ends, available, side="right"))
    if frames == 0:
        return 0, np.empty(0, np.int64), np.empty(0, np.uint16)
    slots_used = int(ends[frames - 1])
    fragments = fragments[:frames]
    frame_of_slot = np.repeat(np.arange(frames), fragments)
    position = np.arange(slots_used) - np.repeat(ends[:frames] - fragments, fragments)
    remaining = batch.lengths[frame_of_slot] - position * capacity
    frag_lengths = np.minimum(remaining, capacity).astype(np.int64)
    last_in_frame = position == fragments[frame_of_slot] - 1
    flags = np.where(last_in_frame, 0, _NEXT).astype(np.uint16)
    return frames, frag_lengths, flags


def produce(
    ring: RingView,
    regions: Sequence[Region],
    start: int,
    available: int,
    batch: PacketBatch,
    capacity: int,
    *,
    owned: OwnedBuffers | None = None,
    stale_next: bool = False,
) -> tuple[int, int]:
    """Write as many whole frames of `batch` as fit in `available` slots from `start`.

    Frames longer than `capacity` are chained over consecutive slots (NEXT on every slot
    but the last). Flags are assigned on every slot, never OR-ed. The caller publishes
    the index; this only fills descriptors and buffers.

    With `owned` (a client filling its C2S ring) region and offset are rewritten from
    the client's own layout and the data goes straight into its buffer rows, so a peer
    that scribbled on the descriptors cannot redirect the writes. Otherwise (a server
    filling buffers the client posted) every descriptor is bounds-checked first.

    `stale_next` OR-s the flags in instead (Fault.STALE_NEXT: the DPDK bug of §5.5).

    Returns:
        (frames written, slots used).

    Raises:
        RingError: a slot points outside the announced memory.
    """
    available = min(available, ring.size)
    if not len(batch) or available <= 0 or capacity <= 0:
        return 0, 0
    frames, frag_lengths, flags = _fragment_plan(batch, available, capacity)
    if frames == 0:
        return 0, 0
    slots_used = int(frag_lengths.size)
    source = batch.data[: int(frag_lengths.sum())]
    if owned is not None and owned.rows is not None:
        _produce_into_own_buffers(ring, owned, start, frag_lengths, flags, source, stale_next)
        return frames, slots_used
    slots = (start + np.arange(slots_used)) & ring.mask
    region_ids = ring.region_column[slots].astype(np.int64)
    offsets = ring.offset_column[slots].astype(np.int64)
    if not np.all(_valid_fragments(regions, region_ids, offsets, np.maximum(frag_lengths, 1))):
        raise RingError("a transmit slot points outside the announced regions")
    if np.all(region_ids == region_ids[0]):
        area = regions[int(region_ids[0])].array
        begin = 0
        for run in _wrap_runs(start, slots_used, ring.size):
            end = begin + int(frag_lengths[run].sum())
            scatter(area, offsets[run], frag_lengths[run], source[begin:end])
            begin = end
    else:
        source_starts = np.cumsum(frag_lengths) - frag_lengths
        for r in np.unique(region_ids):
            sel = region_ids == r
            picked = source[_byte_index(source_starts[sel], frag_lengths[sel])]
            scatter(regions[int(r)].array, offsets[sel], frag_lengths[sel], picked)
    ring.length_column[slots] = frag_lengths
    ring.flags_column[slots] = flags | ring.flags_column[slots] if stale_next else flags
    return frames, slots_used


def _produce_into_own_buffers(
    ring: RingView,
    owned: OwnedBuffers,
    start: int,
    lengths: I64,
    flags: U16,
    source: U8,
    stale_next: bool = False,
) -> None:
    """Client TX: descriptors and data by slices of the client's own buffer rows."""
    assert owned.rows is not None
    begin = 0
    for first, last, run in _slot_runs(start, int(lengths.size), ring.size):
        run_lengths = lengths[run]
        end = begin + int(run_lengths.sum())
        width = int(run_lengths.max())
        rows = owned.rows[first:last, :width]
        if int(run_lengths.min()) == width:
            rows[...] = source[begin:end].reshape(last - first, width)
        else:
            rows[np.arange(width) < run_lengths[:, None]] = source[begin:end]
        begin = end
        ring.region_column[first:last] = owned.region_ids[first:last]
        ring.offset_column[first:last] = owned.offsets[first:last]
        ring.length_column[first:last] = run_lengths
        if stale_next:
            ring.flags_column[first:last] |= flags[run]
        else:
            ring.flags_column[first:last] = flags[run]


def _slot_runs(start: int, count: int, ring_size: int) -> list[tuple[int, int, slice]]:
    """(first slot, end slot, window slice) of the non-wrapping parts of a slot window."""
    return [
        (
            (start + run.start) & (ring_size - 1),
            ((start + run.start) & (ring_size - 1)) + run.stop - run.start,
            run,
        )
        for run in _wrap_runs(start, count, ring_size)
    ]


def consume(
    ring: RingView,
    regions: Sequence[Region],
    start: int,
    end: int,
    *,
    copy: bool = True,
    max_frame: int | None = None,
    owned: OwnedBuffers | None = None,
) -> ReceiveResult:
    """Take the complete frames in slots [start, end) off a ring.

    A chain that is still open at `end` is left for the next burst. Frames with a
    fragment outside the announced regions, an empty fragment, or (with `max_frame`)
    longer than that are dropped and counted as errors. With `owned` (a client reading
    its S2C ring) a fragment must also sit in the very buffer the client posted in that
    slot and fit its capacity, so a server cannot make the client read elsewhere.

    Raises:
        RingError: the window is larger than the ring, or the whole ring is one
            unterminated chain.
    """
    pending = (end - start) & _INDEX_MASK
    if pending == 0:
        return ReceiveResult(PacketBatch.empty(), 0, 0)
    if pending > ring.size:
        raise RingError(f"peer index moved {pending} slots ahead on a ring of {ring.size}")
    slots = (start + np.arange(pending)) & ring.mask
    flags = ring.flags_column[slots]
    boundaries = np.flatnonzero((flags & _NEXT) == 0)
    if boundaries.size == 0:
        if pending == ring.size:
            raise RingError("a chain fills the whole ring and never ends")
        return ReceiveResult(PacketBatch.empty(), 0, 0, open_chain=True)
    used = int(boundaries[-1]) + 1
    slots = slots[:used]
    region_ids = ring.region_column[slots].astype(np.int64)
    offsets = ring.offset_column[slots].astype(np.int64)
    lengths = ring.length_column[slots].astype(np.int64)
    frame_starts = np.concatenate(([0], boundaries[:-1] + 1))
    segments = np.diff(np.concatenate((frame_starts, [used])))
    frame_lengths = np.add.reduceat(lengths, frame_starts)
    good_fragment = _valid_fragments(regions, region_ids, offsets, lengths)
    if owned is not None:
        good_fragment &= (
            (region_ids == owned.region_ids[slots])
            & (offsets == owned.offsets[slots])
            & (lengths <= owned.capacity)
        )
    good_frame = np.logical_and.reduceat(good_fragment, frame_starts)
    if max_frame is not None:
        good_frame &= frame_lengths <= max_frame
    errors = int(good_frame.size - np.count_nonzero(good_frame))
    if errors:
        keep = np.repeat(good_frame, segments)
        region_ids, offsets, lengths = region_ids[keep], offsets[keep], lengths[keep]
        frame_lengths, segments = frame_lengths[good_frame], segments[good_frame]
        positions = np.flatnonzero(keep)
    else:
        positions = np.arange(used)
    if not copy or not lengths.size:
        data = np.empty(0, dtype=np.uint8)
    elif np.all(region_ids == region_ids[0]):
        area = regions[int(region_ids[0])].array
        split = int(np.searchsorted(positions, _wrap_runs(start, used, ring.size)[0].stop))
        parts = [
            gather(area, offsets[part], lengths[part])
            for part in (slice(0, split), slice(split, None))
            if lengths[part].size
        ]
        data = parts[0] if len(parts) == 1 else np.concatenate(parts)
    else:
        data = _gather_mixed(regions, region_ids, offsets, lengths)
    batch = PacketBatch(data, frame_lengths.astype(np.int64), segments.astype(np.int64))
    return ReceiveResult(batch, used, errors, open_chain=used < pending)


def _gather_mixed(regions: Sequence[Region], region_ids: I64, offsets: I64, lengths: I64) -> U8:
    out = np.empty(int(lengths.sum()), dtype=np.uint8)
    out_starts = np.cumsum(lengths) - lengths
    for r in np.unique(region_ids):
        selected = region_ids == r
        out[_byte_index(out_starts[selected], lengths[selected])] = gather(
            regions[int(r)].array, offsets[selected], lengths[selected]
        )
    return out


def post_buffers(
    ring: RingView, start: int, count: int, region_ids: I64, offsets: I64, capacity: int
) -> None:
    """Client: hand `count` empty buffers from slot `start` to the server (S2C refill).

    Region and offset are rewritten from the client's own layout on every post, so a
    peer that scribbled on them cannot redirect our writes.
    """
    if count <= 0:
        return
    slots = (start + np.arange(count)) & ring.mask
    ring.region_column[slots] = region_ids[slots]
    ring.offset_column[slots] = offsets[slots]
    ring.length_column[slots] = capacity
    ring.flags_column[slots] = 0


def init_ring(ring: RingView, region_ids: I64, offsets: I64, capacity: int) -> None:
    """Client: write the cookie, clear indices and flags, and fill every descriptor."""
    ring.descriptors["metadata"] = 0
    ring.region_column[:] = region_ids
    ring.offset_column[:] = offsets
    ring.length_column[:] = capacity
    ring.flags_column[:] = 0
    ring.head = 0
    ring.tail = 0
    ring.flags = 0
    ring.cookie = COOKIE


# ------------------------------------------------------------------ zero-copy receive


@dataclasses.dataclass
class ReceivedInPlace:
    """Frames a zero-copy client received, as views into its own buffers (no copy).

    The views stay valid until the link's next receive (or `release_received`), when the
    slots go back to the server. Slots are in ring order: `runs` holds one (slots,
    capacity) view per non-wrapping run of slots, `slot_lengths` the valid bytes of each.

    Attributes:
        runs: The buffer rows of the slots taken, one 2-D view per run.
        slot_lengths: Valid bytes in each slot (descriptor length).
        frame_slots: For each kept frame, the index of its first slot.
        segments: For each kept frame, the slots it spans (1 unless chained).
        lengths: For each kept frame, its length in bytes.
        slots: Slots taken off the ring (including dropped frames).
        errors: Frames dropped for descriptors that do not name the buffer posted there.
    """

    runs: list[U8]
    slot_lengths: I64
    frame_slots: I64
    segments: I64
    lengths: I64
    slots: int
    errors: int

    def __len__(self) -> int:
        return int(self.lengths.size)

    def slot_view(self, index: int) -> U8:
        """The valid bytes of slot `index` (in window order), a view into shared memory."""
        for run in self.runs:
            if index < run.shape[0]:
                return run[index, : int(self.slot_lengths[index])]
            index -= run.shape[0]
        raise IndexError("slot outside the received window")

    def frame_views(self, frame: int) -> list[U8]:
        """The fragments of frame `frame`, each a view into shared memory."""
        first = int(self.frame_slots[frame])
        return [self.slot_view(first + k) for k in range(int(self.segments[frame]))]

    def frames(self) -> list[bytes]:
        """Each frame as bytes (a copy: tests and control traffic, not the fast path)."""
        return [b"".join(view.tobytes() for view in self.frame_views(f)) for f in range(len(self))]

    def batch(self, copy: bool = True) -> PacketBatch:
        """The frames as a PacketBatch (bytes copied out, vectorised, only with `copy`)."""
        data = np.empty(0, dtype=np.uint8)
        if copy and len(self):
            total = int(self.segments.sum())
            within = np.arange(total) - np.repeat(np.cumsum(self.segments) - self.segments,
                                                  self.segments)  # fmt: skip
            kept = np.repeat(self.frame_slots, self.segments) + within
            lengths = np.zeros(self.slot_lengths.size, dtype=np.int64)
            lengths[kept] = self.slot_lengths[kept]
            parts, first = [], 0
            for run in self.runs:
                run_lengths = lengths[first : first + run.shape[0]]
                first += run.shape[0]
                width = int(run_lengths.max()) if run_lengths.size else 0
                if width:
                    parts.append(run[:, :width][np.arange(width) < run_lengths[:, None]])
            data = parts[0] if len(parts) == 1 else np.concatenate(parts)
        return PacketBatch(data, self.lengths.copy(), self.segments.copy())


def consume_in_place(
    ring: RingView, owned: OwnedBuffers, start: int, end: int, max_frame: int | None = None
) -> ReceivedInPlace:
    """Client zero-copy RX: the complete frames in slots [start, end), as views.

    Nothing is read from the descriptors but flags and length: the data is where the
    client posted its buffer for that slot. A descriptor whose region or offset differs
    from that buffer, or whose length is 0 or above its capacity, drops its frame (a
    server must not change region or offset, fact sheet §5.2). A chain still open at
    `end` is left for later.

    Raises:
        RingError: the window is larger than the ring, the whole ring is one open chain,
            or the buffers are not evenly spaced rows (no in-place view possible).
    """
    if owned.rows is None:
        raise RingError("zero-copy receive needs evenly spaced buffers")
    pending = (end - start) & _INDEX_MASK
    nothing = np.empty(0, dtype=np.int64)
    if pending == 0:
        return ReceivedInPlace([], nothing, nothing, nothing, nothing, 0, 0)
    if pending > ring.size:
        raise RingError(f"peer index moved {pending} slots ahead on a ring of {ring.size}")
    slots = (start + np.arange(pending)) & ring.mask
    boundaries = np.flatnonzero((ring.flags_column[slots] & _NEXT) == 0)
    if boundaries.size == 0:
        if pending == ring.size:
            raise RingError("a chain fills the whole ring and never ends")
        return ReceivedInPlace([], nothing, nothing, nothing, nothing, 0, 0)
    used = int(boundaries[-1]) + 1
    slots = slots[:used]
    lengths = ring.length_column[slots].astype(np.int64)
    good_slot = (
        (ring.region_column[slots].astype(np.int64) == owned.region_ids[slots])
        & (ring.offset_column[slots].astype(np.int64) == owned.offsets[slots])
        & (lengths > 0)
        & (lengths <= owned.capacity)
    )
    frame_starts = np.concatenate(([0], boundaries[:-1] + 1)).astype(np.int64)
    segments = np.diff(np.concatenate((frame_starts, [used]))).astype(np.int64)
    frame_lengths = np.add.reduceat(lengths, frame_starts)
    good_frame = np.logical_and.reduceat(good_slot, frame_starts)
    if max_frame is not None:
        good_frame &= frame_lengths <= max_frame
    errors = int(good_frame.size - np.count_nonzero(good_frame))
    runs = [owned.rows[first:last] for first, last, _ in _slot_runs(start, used, ring.size)]
    return ReceivedInPlace(
        runs,
        np.where(good_slot, lengths, 0),
        frame_starts[good_frame],
        segments[good_frame],
        frame_lengths[good_frame],
        used,
        errors,
    )


# ------------------------------------------------------------------ zero-copy transmit


def own_rows(owned: OwnedBuffers, ring: RingView, start: int, count: int) -> U8:
    """Client zero-copy TX: the (n, capacity) buffer rows of up to `count` slots from
    `start`, without wrapping (n stops at the end of the ring). Writes go straight into
    the shared region."""
    if owned.rows is None:
        raise RingError("zero-copy transmit needs evenly spaced buffers")
    first = start & ring.mask
    return owned.rows[first : first + max(0, min(count, ring.size - first))]


def describe_filled(
    ring: RingView, owned: OwnedBuffers, start: int, lengths: I64, flags: U16
) -> None:
    """Client zero-copy TX: point slots [start, start+n) at their own buffers, with the
    lengths and flags given (assigned, never OR-ed); the data is already in place.

    The slots must not wrap (they come from one `own_rows` window).
    """
    first = start & ring.mask
    last = first + int(lengths.size)
    if last > ring.size:
        raise RingError("a zero-copy burst cannot wrap the ring")
    ring.region_column[first:last] = owned.region_ids[first:last]
    ring.offset_column[first:last] = owned.offsets[first:last]
    ring.length_column[first:last] = lengths
    ring.flags_column[first:last] = flags
