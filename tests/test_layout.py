"""Tests of reference_impl.layout: ring and buffer geometry (fact sheet section 4)."""

from __future__ import annotations

import itertools
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reference_impl import layout
from reference_impl.layout import BufferPlacement, CopyLayout
from reference_impl.wire import DESCRIPTOR_SIZE, RingType

C2S = RingType.C2S
S2C = RingType.S2C


# ------------------------------------------------------------------ header geometry


@pytest.mark.parametrize(
    ("cache_line", "tail", "header"),
    [(64, 64, 128), (128, 128, 256)],
)
def test_ring_header_geometry_follows_cache_line(cache_line: int, tail: int, header: int) -> None:
    assert layout.ring_tail_offset(cache_line) == tail
    assert layout.ring_header_size(cache_line) == header
    assert layout.ring_bytes(10, cache_line) == header + DESCRIPTOR_SIZE * 1024


def test_fixed_header_fields() -> None:
    assert (layout.COOKIE_OFFSET, layout.FLAGS_OFFSET, layout.HEAD_OFFSET) == (0, 4, 6)
    assert layout.DEFAULT_CACHE_LINE == 64
    assert layout.ring_tail_offset() == 64


# ------------------------------------------------------------------ worked example (4.5)


def test_worked_example_region0() -> None:
    """Fact sheet 4.5: R=1024, one ring each way, buffer 2048, CL 64."""
    shape = CopyLayout(c2s_rings=1, s2c_rings=1, log2_ring_size=10, buffer_size=2048)
    assert shape.ring_size == 1024
    assert shape.ring_stride == 16512
    assert shape.ring_offset(C2S, 0) == 0
    assert shape.ring_offset(S2C, 0) == 16512
    assert shape.descriptors_offset(C2S, 0) == 128
    assert shape.descriptors_offset(S2C, 0) == 16512 + 128
    assert shape.rings_size() == 33024
    assert shape.buffer_area_offset() == 33024
    assert shape.buffer_region == 0
    assert shape.region_sizes() == (4_227_328,)
    for j in (0, 1, 511, 1023):
        assert shape.buffer_offset(C2S, 0, j) == 33024 + 2048 * j
        assert shape.buffer_offset(S2C, 0, j) == 33024 + 2048 * (1024 + j)
    assert shape.rings() == [(C2S, 0), (S2C, 0)]


def test_worked_example_with_cache_line_128() -> None:
    shape = CopyLayout(1, 1, 10, 2048, cache_line=128)
    assert shape.ring_stride == 256 + 16 * 1024
    assert shape.ring_offset(S2C, 0) == 16640
    assert shape.descriptors_offset(C2S, 0) == 256
    assert shape.descriptors_offset(S2C, 0) == 16640 + 256
    assert shape.buffer_area_offset() == 2 * 16640
    assert shape.region_sizes() == (2 * 16640 + 2048 * 1024 * 2,)
    assert shape.buffer_offset(S2C, 0, 3) == 2 * 16640 + 2048 * (1024 + 3)


def test_multi_queue_asymmetric_counts() -> None:
    """3 C2S and 2 S2C rings: C2S rings first, S2C global index = 3 + k."""
    shape = CopyLayout(c2s_rings=3, s2c_rings=2, log2_ring_size=8, buffer_size=1000)
    stride = 128 + 16 * 256
    assert shape.ring_stride == stride
    assert shape.total_rings == 5
    assert shape.rings() == [(C2S, 0), (C2S, 1), (C2S, 2), (S2C, 0), (S2C, 1)]
    assert [shape.global_ring_index(t, i) for t, i in shape.rings()] == [0, 1, 2, 3, 4]
    assert shape.ring_offset(C2S, 2) == 2 * stride
    assert shape.ring_offset(S2C, 0) == 3 * stride
    assert shape.ring_offset(S2C, 1) == 4 * stride
    base = 5 * stride
    assert shape.buffer_area_offset() == base
    assert shape.buffer_offset(C2S, 1, 7) == base + (256 + 7) * 1000
    assert shape.buffer_offset(S2C, 0, 0) == base + 3 * 256 * 1000
    assert shape.buffer_offset(S2C, 1, 255) == base + (4 * 256 + 255) * 1000
    assert shape.region_sizes() == (base + 5 * 256 * 1000,)


def test_separate_placement_libmemif_style() -> None:
    """libmemif: region 0 holds only the rings, region 1 the buffers from offset 0."""
    shape = CopyLayout(1, 1, 10, 2048, placement=BufferPlacement.SEPARATE)
    assert shape.buffer_region == 1
    assert shape.buffer_area_offset() == 0
    assert shape.region_sizes() == (33024, 2048 * 1024 * 2)
    assert shape.ring_offset(S2C, 0) == 16512  # rings unchanged
    assert shape.buffer_offset(C2S, 0, 0) == 0
    assert shape.buffer_offset(C2S, 0, 5) == 5 * 2048
    assert shape.buffer_offset(S2C, 0, 5) == (1024 + 5) * 2048


def test_many_rings_do_not_wrap_slot_math() -> None:
    """Fact sheet 4.7: DPDK/VPP compute the slot in u16; 6 x 16384 slots must not wrap."""
    shape = CopyLayout(3, 3, 14, 2048)
    last = shape.buffer_offset(S2C, 2, 16383)
    assert last == shape.buffer_area_offset() + (6 * 16384 - 1) * 2048
    assert last + 2048 == shape.region_sizes()[0]


# ------------------------------------------------------------------ bad inputs


@pytest.mark.parametrize(
    "kwargs",
    [
        {"c2s_rings": -1},
        {"s2c_rings": -1},
        {"buffer_size": 0},
        {"buffer_size": -5},
        {"cache_line": 0},
        {"cache_line": 12},
        {"cache_line": -64},
        {"log2_ring_size": -1},
        # 16 rings * 16384 slots * 65536 bytes = 2**34: past u32 offsets
        {"c2s_rings": 8, "s2c_rings": 8, "log2_ring_size": 14, "buffer_size": 65536},
    ],
)
def test_bad_parameters_raise_value_error(kwargs: dict[str, int]) -> None:
    params = {"c2s_rings": 1, "s2c_rings": 1, "log2_ring_size": 10, "buffer_size": 2048}
    params.update(kwargs)
    with pytest.raises(ValueError):
        CopyLayout(**params)  # type: ignore[arg-type]


def test_largest_addressable_layout_is_accepted() -> None:
    """Buffers ending exactly at 4 GiB are still addressable by u32 offsets."""
    rings_bytes = 2 * layout.ring_bytes(0)
    # one slot per ring: buffer area = 2 * buffer_size; make it end at exactly 2**32
    buffer_size = ((1 << 32) - rings_bytes) // 2
    assert (rings_bytes + 2 * buffer_size) <= 1 << 32
    shape = CopyLayout(1, 1, 0, buffer_size)
    assert shape.region_sizes()[0] <= 1 << 32
    with pytest.raises(ValueError):
        CopyLayout(1, 1, 0, buffer_size + 1)


@pytest.mark.parametrize(
    ("ring_type", "index", "slot"),
    [(C2S, 2, 0), (S2C, 1, 0), (C2S, -1, 0), (S2C, 0, 256), (C2S, 0, -1)],
)
def test_out_of_range_ring_or_slot_raises_index_error(
    ring_type: RingType, index: int, slot: int
) -> None:
    shape = CopyLayout(c2s_rings=2, s2c_rings=1, log2_ring_size=8, buffer_size=64)
    with pytest.raises(IndexError):
        shape.buffer_offset(ring_type, index, slot)


@pytest.mark.parametrize(("ring_type", "index"), [(C2S, 2), (S2C, 1), (S2C, -1)])
def test_out_of_range_ring_offset_raises_index_error(ring_type: RingType, index: int) -> None:
    shape = CopyLayout(c2s_rings=2, s2c_rings=1, log2_ring_size=8, buffer_size=64)
    with pytest.raises(IndexError):
        shape.ring_offset(ring_type, index)


# ------------------------------------------------------------------ properties


def _check_disjoint(intervals: list[tuple[int, int, str]]) -> None:
    """Assert that half-open [start, end) intervals do not overlap."""
    ordered = sorted(intervals)
    for (s1, e1, n1), (s2, e2, n2) in itertools.pairwise(ordered):
        assert s1 < e1 and s2 < e2
        assert e1 <= s2, f"{n1} [{s1},{e1}) overlaps {n2} [{s2},{e2})"


@settings(max_examples=150, deadline=None)
@given(
    c2s=st.integers(1, 8),
    s2c=st.integers(1, 8),
    log2=st.integers(1, 14),
    buffer_size=st.integers(1, 10000),
    cache_line=st.sampled_from([64, 128]),
    placement=st.sampled_from(list(BufferPlacement)),
    seed=st.integers(0, 2**32 - 1),
)
def test_layout_has_no_overlaps_and_fits_in_u32(
    c2s: int,
    s2c: int,
    log2: int,
    buffer_size: int,
    cache_line: int,
    placement: BufferPlacement,
    seed: int,
) -> None:
    """Rings and buffers never overlap, all lie inside their region, offsets fit u32.

    Every buffer is checked when there are at most 4096 per ring; otherwise the first,
    second, last and 32 random slots of each ring, plus the per-ring arithmetic that
    makes the ring's buffers one contiguous run.
    """
    shape = CopyLayout(c2s, s2c, log2, buffer_size, cache_line, placement)
    sizes = shape.region_sizes()
    size_r = shape.ring_size
    rng = random.Random(seed)
    assert len(sizes) == (1 if placement is BufferPlacement.REGION0 else 2)
    assert all(s <= 1 << 32 for s in sizes)

    ring_spans: list[tuple[int, int, str]] = []
    for ring_type, index in shape.rings():
        start = shape.ring_offset(ring_type, index)
        end = start + layout.ring_bytes(log2, cache_line)
        assert shape.descriptors_offset(ring_type, index) == start + 2 * cache_line
        assert start >= 0
        assert end <= sizes[0]
        assert start % 8 == 0  # header fields stay naturally aligned
        ring_spans.append((start, end, f"ring {ring_type.name}{index}"))
    _check_disjoint(ring_spans)

    buffer_region_size = sizes[shape.buffer_region]
    buffer_spans: list[tuple[int, int, str]] = []
    for ring_type, index in shape.rings():
        first = shape.buffer_offset(ring_type, index, 0)
        if size_r <= 4096:
            slots = list(range(size_r))
        else:
            slots = sorted({0, 1, size_r - 1, *(rng.randrange(size_r) for _ in range(32))})
        for slot in slots:
            offset = shape.buffer_offset(ring_type, index, slot)
            assert offset == first + slot * buffer_size
            assert 0 <= offset < 1 << 32
            assert offset + buffer_size <= buffer_region_size
        # with the arithmetic above, the ring's buffers are one contiguous run
        name = f"buffers {ring_type.name}{index}"
        buffer_spans.append((first, first + size_r * buffer_size, name))
    _check_disjoint(buffer_spans)

    if shape.buffer_region == 0:
        _check_disjoint(ring_spans + buffer_spans)
        assert sizes[0] == max(end for _, end, _ in ring_spans + buffer_spans)
    else:
        assert sizes[0] == max(end for _, end, _ in ring_spans)
        assert min(start for start, _, _ in buffer_spans) == 0
        assert sizes[1] == max(end for _, end, _ in buffer_spans)
