"""The reference's deliberate faults (test-only) and the layout report that catches the
memory ones: each fault does what its name says, and nothing when it is off."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numpy as np
import pytest

from reference_impl import inspect_layout, layout, ring
from reference_impl.faults import Fault, parse_faults
from reference_impl.layout import BufferPlacement, CopyLayout
from reference_impl.memory import Region
from reference_impl.protocol import InterfaceConfig, StaticInterfaceDirectory
from reference_impl.ring import PacketBatch, RingView
from reference_impl.wire import COOKIE, AddRing, AddRingFlag, RingType
from tests.test_protocol import Pair
from tests.test_ring import ring_under_test

# ------------------------------------------------------------------ names


def test_parse_faults_by_name() -> None:
    assert parse_faults(["stale-next", "wrong-cookie"]) == {Fault.STALE_NEXT, Fault.WRONG_COOKIE}
    assert parse_faults([]) == frozenset()


def test_unknown_fault_names_the_known_ones() -> None:
    with pytest.raises(ValueError, match="no fault 'late'; known faults: wrong-cookie"):
        parse_faults(["late"])


# ------------------------------------------------------------------ protocol


def _pair(client: InterfaceConfig, server: InterfaceConfig) -> Pair:
    pair = Pair(client, StaticInterfaceDirectory(server))
    pair.pump()
    return pair


def test_ignore_secret_server_accepts_a_wrong_secret() -> None:
    server = InterfaceConfig(secret="right", faults=frozenset({Fault.IGNORE_SECRET}))
    assert _pair(InterfaceConfig(secret="wrong"), server).client.connected
    assert not _pair(
        InterfaceConfig(secret="wrong"), InterfaceConfig(secret="right")
    ).client.connected


def test_ignore_secret_client_never_sends_it() -> None:
    client = InterfaceConfig(secret="right", faults=frozenset({Fault.IGNORE_SECRET}))
    pair = _pair(client, InterfaceConfig(secret="right"))
    assert not pair.client.connected
    assert pair.client.disconnect_reason == "Secret required"


# ------------------------------------------------------------------ datapath


def test_stale_next_ors_flags_into_old_ones() -> None:
    with ring_under_test(log2=3, buffer_size=64) as rut:
        two_fragments = [bytes(100)]
        rut.send(0, two_fragments)
        assert list(rut.view.flags_column[:2]) == [1, 0]
        single = PacketBatch.from_frames([bytes(60)])
        for stale, expected in ((False, 0), (True, 1)):
            rut.view.flags_column[0] = 1
            ring.produce(rut.view, rut.regions, 0, rut.size, single, 64, stale_next=stale)
            assert rut.view.flags_column[0] == expected


def test_consume_says_when_the_index_stops_inside_a_chain() -> None:
    with ring_under_test(log2=3, buffer_size=64) as rut:
        rut.send(0, [bytes(60), bytes(150)])  # slots 0, then 1-3 chained
        inside = rut.take(0, 2)
        assert (len(inside.batch), inside.slots, inside.open_chain) == (1, 1, True)
        whole = rut.take(0, 4)
        assert (len(whole.batch), whole.slots, whole.open_chain) == (2, 4, False)
        alone = rut.take(1, 3)
        assert (len(alone.batch), alone.slots, alone.open_chain) == (0, 0, True)


# ------------------------------------------------------------------ layout report


@contextlib.contextmanager
def client_memory(
    shape: CopyLayout, *, first_offsets: dict[int, int] | None = None
) -> Iterator[tuple[list[Region], list[tuple[AddRing, RingView]]]]:
    """A client's regions and initialised rings; `first_offsets` moves a ring's buffers."""
    regions = [
        Region.create(f"test region {i}", size) for i, size in enumerate(shape.region_sizes())
    ]
    rings: list[tuple[AddRing, RingView]] = []
    try:
        for ring_type, index in shape.rings():
            g = shape.global_ring_index(ring_type, index)
            first = (first_offsets or {}).get(g, shape.buffer_offset(ring_type, index, 0))
            offsets = first + np.arange(shape.ring_size, dtype=np.int64) * shape.buffer_size
            region_ids = np.full(shape.ring_size, shape.buffer_region, dtype=np.int64)
            offset = shape.ring_offset(ring_type, index)
            view = RingView(regions[0], offset, shape.log2_ring_size, shape.cache_line)
            ring.init_ring(view, region_ids, offsets, shape.buffer_size)
            flags = int(AddRingFlag.C2S) if ring_type is RingType.C2S else 0
            message = AddRing(flags=flags, index=index, region=0, offset=offset,
                              log2_ring_size=shape.log2_ring_size)  # fmt: skip
            rings.append((message, view))
        yield regions, rings
    finally:
        for _, view in rings:
            view.release()
        for region in regions:
            region.close()


@pytest.mark.parametrize("placement", list(BufferPlacement))
def test_a_correct_layout_has_no_violation(placement: BufferPlacement) -> None:
    shape = CopyLayout(2, 2, 6, 1024, placement=placement)
    with client_memory(shape) as (regions, rings):
        report = inspect_layout.inspect(regions, rings)
    assert report.violations == ()
    assert report.cache_line == 64 and report.buffer_size == 1024
    assert report.region_sizes == shape.region_sizes()
    assert report.buffer_regions == (shape.buffer_region,)
    assert [(r.direction, r.index) for r in report.rings] == [
        ("c2s", 0), ("c2s", 1), ("s2c", 0), ("s2c", 1),
    ]  # fmt: skip
    assert report.as_dict()["rings"][0]["cookie"] == f"0x{COOKIE:08x}"


def test_wrong_cookie_is_named_per_ring() -> None:
    with client_memory(CopyLayout(1, 1, 4, 256)) as (regions, rings):
        rings[1][1].cookie = 0xDEADBEEF
        report = inspect_layout.inspect(regions, rings)
    assert report.violations == ("S2C ring 0: cookie 0xdeadbeef, expected 0x03e31f20",)


def test_a_128_byte_cache_line_client_is_told_apart() -> None:
    shape = CopyLayout(1, 1, 4, 256, cache_line=128)
    with client_memory(shape) as (regions, rings):
        report = inspect_layout.inspect(regions, rings, cache_line=64)
    assert report.cache_line == 128
    assert any("128-byte cache line" in v for v in report.violations)


def test_overlapping_buffers_are_found_and_capped() -> None:
    shape = CopyLayout(1, 1, 4, 256)
    c2s_first = shape.buffer_offset(RingType.C2S, 0, 0)
    with client_memory(shape, first_offsets={1: c2s_first}) as (regions, rings):
        report = inspect_layout.inspect(regions, rings)
    overlaps = [v for v in report.violations if "overlap" in v]
    assert overlaps[0] == (
        "S2C ring 0 slot 0 buffer [768, 1024) overlaps C2S ring 0 slot 0 buffer [768, 1024) "
        "in region 0"
    )
    assert len(overlaps) == inspect_layout.MAX_LISTED + 1
    assert overlaps[-1] == "... and 11 more overlapping buffers"


def test_buffers_over_the_rings_overlap_them() -> None:
    shape = CopyLayout(1, 1, 4, 64)
    with client_memory(shape, first_offsets={0: 0}) as (regions, rings):
        report = inspect_layout.inspect(regions, rings)
    assert report.violations[0] == (
        "C2S ring 0 slot 0 buffer [0, 64) overlaps C2S ring 0 header and descriptors "
        "[0, 384) in region 0"
    )


def test_descriptor_faults_outside_empty_chained_and_mixed_capacity() -> None:
    shape = CopyLayout(1, 1, 4, 256)
    with client_memory(shape) as (regions, rings):
        c2s = rings[0][1]
        c2s.region_column[0] = 3
        c2s.offset_column[1] = regions[0].size - 10
        c2s.length_column[2] = 0
        c2s.flags_column[3] = 1
        c2s.length_column[4] = 128
        report = inspect_layout.inspect(regions, rings)
    text = "\n".join(report.violations)
    assert "C2S ring 0 slot 0: buffer region 3" in text
    assert "C2S ring 0 slot 1: buffer region 0 offset" in text
    assert "C2S ring 0 slot 2: length 0" in text
    assert "C2S ring 0 slot 3: NEXT set before any traffic" in text
    assert "different capacities [0, 128, 256]" in text
    assert report.buffer_size is None


def test_wrong_offsets_fault_overlaps_only_past_65536_slots() -> None:
    from reference_impl.endpoint import _own_buffers

    for queues, log2, overlap in ((1, 14, False), (4, 14, True)):
        shape = CopyLayout(queues, queues, log2, 64)
        firsts = {}
        for ring_type, index in shape.rings():
            own = _own_buffers(shape, [_FakeRegion(shape.region_sizes()[0])], ring_type, index,
                               frozenset({Fault.WRONG_OFFSETS}))  # type: ignore[list-item]  # fmt: skip
            firsts[shape.global_ring_index(ring_type, index)] = int(own.offsets[0])
        assert (len(set(firsts.values())) < len(firsts)) is overlap


class _FakeRegion:
    """Just enough of a Region for OwnedBuffers.of_region (size and an array)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.array = np.zeros(size, dtype=np.uint8)


def test_layout_sizes_match_the_fact_sheet_example() -> None:
    shape = CopyLayout(1, 1, 10, 2048)
    assert layout.ring_bytes(10) == 16512 and shape.region_sizes() == (4227328,)
