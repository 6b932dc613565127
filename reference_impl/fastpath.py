"""Fast paths for the common burst: copies of one frame onto a ring, unchained frames off it.

The general producer and consumer (reference_impl.ring) handle chains, mixed regions and
bad descriptors with some thirty numpy operations per burst. A traffic generator sends
copies of one frame and its peer nearly always publishes single-slot frames in one
region, so these paths do the same work in a handful of operations over slices of the
descriptor table and strided 2-D views of the buffers, and answer None (the caller takes
the general path) whenever their assumptions do not hold.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import numpy.typing as npt

from reference_impl.memory import Region
from reference_impl.ring import (
    DESCRIPTOR_DTYPE,
    I64,
    U8,
    OwnedBuffers,
    PacketBatch,
    ReceiveResult,
    RingView,
    _arithmetic_stride,
    _slot_runs,
    _strided_rows,
    gather,
)

U32 = npt.NDArray[np.uint32]
FrameFill = Callable[[U8, int], None]
"""Writes per-frame fields into `rows` ((n, frame length) views of the frames of one run,
already holding the template) given `index`, the position of the run's first frame in
the burst."""


def _descriptor_words(ring: RingView, first: int, last: int) -> np.ndarray:
    """Slots [first, last) of the descriptor table as (n, 2) u64: one 16-byte copy each."""
    return ring.descriptors[first:last].view(np.uint64).reshape(-1, 2)


def own_descriptor_image(owned: OwnedBuffers, length: int) -> np.ndarray:
    """The descriptor table a client writes for frames of `length` in its own buffers,
    as (ring size, 2) u64 words: flags 0, its region and offset, `length`, metadata 0."""
    table = np.zeros(owned.offsets.size, dtype=DESCRIPTOR_DTYPE)
    table["region"] = owned.region_ids
    table["offset"] = owned.offsets
    table["length"] = length
    return table.view(np.uint64).reshape(-1, 2)


def produce_copies(
    ring: RingView,
    regions: Sequence[Region],
    start: int,
    count: int,
    template: U8,
    *,
    owned: OwnedBuffers | None,
    image: np.ndarray | None = None,
    fill: FrameFill | None = None,
) -> int | None:
    """Write `count` copies of `template` into the slots from `start`, one slot each.

    Every frame is written into its own memif buffer (one broadcast copy per run of
    slots), then `fill` adds its per-frame fields; descriptors follow the data. A client
    (`owned` with rows) writes its own buffers and descriptors (`image`, from
    `own_descriptor_image`); a server writes the buffers its client posted, when they
    lie evenly spaced in one region and each holds the frame. The caller has checked
    that `count` slots are free and publishes the index.

    Returns:
        `count`, or None when this path does not apply (the general one does).
    """
    length = int(template.size)
    if owned is not None:
        if owned.rows is None or image is None or length > owned.capacity:
            return None
        runs = _slot_runs(start, count, ring.size)
        for first, last, window in runs:
            rows = owned.rows[first:last, :length]
            rows[...] = template
            if fill is not None:
                fill(rows, window.start)
        for first, last, _ in runs:
            _descriptor_words(ring, first, last)[...] = image[first:last]
        return count
    targets = []
    for first, last, window in _slot_runs(start, count, ring.size):
        posted = _posted_rows(ring, regions, first, last, length)
        if posted is None:
            return None
        targets.append((first, last, window.start, posted))
    for first, last, index, posted in targets:
        posted[...] = template
        if fill is not None:
            fill(posted, index)
        ring.length_column[first:last] = length
        ring.flags_column[first:last] = 0
    return count


def _posted_rows(
    ring: RingView, regions: Sequence[Region], first: int, last: int, length: int
) -> U8 | None:
    """(n, length) rows over the buffers a client posted in slots [first, last), or None
    unless they are evenly spaced in one announced region and each holds `length` bytes."""
    region_ids = ring.region_column[first:last]
    region = int(region_ids[0])
    if region >= len(regions) or int(region_ids.max()) != int(region_ids.min()):
        return None
    if int(ring.length_column[first:last].min()) < length:
        return None
    offsets = ring.offset_column[first:last].astype(np.int64)
    stride = _arithmetic_stride(offsets)
    area = regions[region].array
    if stride is None or (offsets.size > 1 and stride < length):
        return None
    if int(offsets[-1]) + length > area.size:
        return None
    return _strided_rows(area, int(offsets[0]), stride or length, offsets.size, length)


def consume_unchained(
    ring: RingView,
    regions: Sequence[Region],
    start: int,
    end: int,
    *,
    copy: bool,
    max_frame: int | None = None,
    owned: OwnedBuffers | None = None,
    window: tuple[int, int] | None = None,
) -> tuple[ReceiveResult, U8 | None] | None:
    """Take slots [start, end) when every one is a whole frame (no NEXT flag) in one valid
    region, within `max_frame`, and (with `owned`) in the buffer the client posted there.

    With `window` = (offset, width) every frame must also reach offset + width, and the
    `width` bytes at `offset` of each come back as an (n, width) array, read through a
    strided view of the buffers.

    Returns:
        (result, window bytes or None), or None when the general consumer must decide
        (chains, mixed regions, a descriptor to drop, a short frame, too large a window).
    """
    pending = (end - start) & 0xFFFF
    if pending == 0 or pending > ring.size:
        return None
    reach = max(1, window[0] + window[1]) if window is not None else 1
    runs: list[tuple[U8, U32, U32]] = []
    for first, last, _ in _slot_runs(start, pending, ring.size):
        checked = _unchained_run(ring, regions, first, last, reach, max_frame, owned)
        if checked is None:
            return None
        runs.append(checked)
    lengths = (runs[0][2] if len(runs) == 1 else np.concatenate([r[2] for r in runs])).astype(
        np.int64
    )
    data = np.empty(0, dtype=np.uint8)
    if copy:
        pieces = [
            gather(area, offsets.astype(np.int64), run_lengths.astype(np.int64))
            for area, offsets, run_lengths in runs
        ]
        data = pieces[0] if len(pieces) == 1 else np.concatenate(pieces)
    windows = None
    if window is not None:
        cuts = [_run_windows(area, offsets, *window) for area, offsets, _ in runs]
        windows = cuts[0] if len(cuts) == 1 else np.concatenate(cuts)
    segments = _ONES[:pending] if pending <= _ONES.size else np.ones(pending, dtype=np.int64)
    return ReceiveResult(PacketBatch(data, lengths, segments), pending, 0), windows


_ONES = np.ones(1 << 15, dtype=np.int64)
_ONES.flags.writeable = False  # shared by every burst's `segments`


def _unchained_run(
    ring: RingView,
    regions: Sequence[Region],
    first: int,
    last: int,
    reach: int,
    max_frame: int | None,
    owned: OwnedBuffers | None,
) -> tuple[U8, U32, U32] | None:
    """(area, offsets, lengths) of slots [first, last) if the fast path may take them.

    Counting mismatches (np.count_nonzero) is the cheapest reduction numpy has: a burst
    of checks costs a few microseconds, whatever its size.
    """
    words = ring.descriptors[first:last].view(np.uint32)  # flags|region, length, offset, meta
    head, lengths, offsets = words[0::4], words[1::4], words[2::4]
    region = int(head[0]) >> 16
    if region >= len(regions) or np.count_nonzero(head != region << 16):
        return None  # a NEXT flag (a chain), another region, or no such region
    if int(lengths.min()) < reach:
        return None  # an empty frame (to drop) or one shorter than the window
    longest = int(lengths.max())
    area = regions[region].array
    if int(offsets.max()) + longest > area.size or (max_frame is not None and longest > max_frame):
        return None
    if owned is not None and (
        longest > owned.capacity
        or np.count_nonzero(offsets != owned.offsets[first:last])
        or np.count_nonzero(owned.region_ids[first:last] != region)
    ):
        return None
    return area, offsets, lengths


def _run_windows(area: U8, offsets: U32, offset: int, width: int) -> U8:
    """(n, width) bytes at `offset` of each buffer at `offsets` (checked to hold them)."""
    first = int(offsets[0])
    count = int(offsets.size)
    stride = int(offsets[-1]) - first
    if count > 1 and stride > 0 and stride % (count - 1) == 0:
        stride //= count - 1
        if not np.count_nonzero((offsets[1:] - offsets[:-1]) != stride):
            # one `width`-byte item per buffer: a copy of n items, not of n rows of bytes
            items: npt.NDArray[np.void] = np.ndarray(
                (count,), f"V{width}", buffer=area, offset=first + offset, strides=(stride,)
            )
            rows: U8 = items.copy().view(np.uint8).reshape(count, width)
            return rows
    index = offsets.astype(np.int64)[:, None] + np.arange(offset, offset + width)
    picked: U8 = area[index]
    return picked


def frame_windows_in(area: U8, offsets: I64, lengths: I64, offset: int, width: int) -> U8:
    """The `width` bytes at `offset` of frames at `offsets` of `lengths` in `area`, as an
    (n, width) array; rows of frames shorter than offset + width are zeros."""
    count = int(offsets.size)
    stride = _arithmetic_stride(offsets)
    reach = offset + width
    if stride is not None and int(offsets[-1]) + reach <= area.size:
        out = _strided_rows(area, int(offsets[0]) + offset, stride or width, count, width).copy()
    else:
        index = np.minimum(offsets[:, None] + np.arange(offset, reach), area.size - 1)
        out = area[index]
    short = lengths < reach
    if short.any():
        out[short] = 0
    return out


def frame_windows(batch: PacketBatch, offset: int, width: int) -> U8:
    """`frame_windows_in` over a batch's own bytes (frames back to back in `data`)."""
    if not len(batch):
        return np.zeros((0, width), dtype=np.uint8)
    padded = np.concatenate((batch.data, np.zeros(offset + width, dtype=np.uint8)))
    return frame_windows_in(padded, batch.starts, batch.lengths, offset, width)


__all__ = [
    "FrameFill",
    "consume_unchained",
    "frame_windows",
    "frame_windows_in",
    "own_descriptor_image",
    "produce_copies",
]
