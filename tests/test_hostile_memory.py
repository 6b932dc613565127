"""Hostile shared memory against the reference receiver, both roles (fact sheet §5.1-§5.6).

A test peer writes bad descriptors and ring indices straight into the shared memory of a
connected in-process pair (tests/test_link.py's `memif_pair`, test_zero_copy's
`zero_copy_pair`: real endpoints over a real socket). Each case must be detected and counted:
a bad descriptor drops its frame (`rx_errors`) and the link goes on; a ring no conforming peer
leaves (an index that jumps or moves back, a chain that never ends, a bad buffer posted for
the server to fill) stops the link (`ring_errors`) and the victim sends DISCONNECT with a
reason naming the problem. Nothing may raise out of the link, and nothing may be read or
written past a region: each region's memfd is grown behind its announced size and filled
with a guard pattern that must never appear in received data, nor change.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from reference_impl import wire
from reference_impl.endpoint import ClientEndpoint, ServerEndpoint
from reference_impl.faults import Fault
from reference_impl.link import Link, QueueRing
from reference_impl.protocol import InterfaceConfig
from reference_impl.ring import PacketBatch
from tests.test_link import memif_pair
from tests.test_zero_copy import zero_copy_pair

DEADLINE = 5.0
RING = 64  # both pair helpers use log2 6
BUFFER = 256
NEXT = int(wire.DescriptorFlag.NEXT)
GUARD = b"<past the region>"
GUARD_SIZE = 8192
U32 = 0xFFFFFFFF


# ------------------------------------------------------------------ the hostile peer


@dataclasses.dataclass(frozen=True)
class Slot:
    """What the hostile peer writes into one descriptor.

    `payload` goes into the buffer the slot names before the overrides are applied; None
    fields keep what the slot already holds (its own buffer); `length` None means
    len(payload).
    """

    payload: bytes = b""
    region: int | None = None
    offset: int | None = None
    length: int | None = None
    flags: int = 0


def write_slots(link: Link, q: QueueRing, slots: list[Slot]) -> None:
    """Fill descriptors from `q`'s cursor and move the cursor past them (not published)."""
    view = q.view
    for i, slot in enumerate(slots):
        s = (q.cursor + i) & view.mask
        region, offset = int(view.region_column[s]), int(view.offset_column[s])
        link.regions[region].array[offset : offset + len(slot.payload)] = np.frombuffer(
            slot.payload, dtype=np.uint8
        )
        if slot.region is not None:
            view.region_column[s] = slot.region
        if slot.offset is not None:
            view.offset_column[s] = slot.offset
        view.length_column[s] = len(slot.payload) if slot.length is None else slot.length
        view.flags_column[s] = slot.flags
    q.cursor = (q.cursor + len(slots)) & 0xFFFF


@dataclasses.dataclass
class Setup:
    """A connected pair seen from one direction: who writes (hostile) and who receives."""

    pair: Any
    direction: str  # "c2s": the client is hostile; "s2c"/"s2c-zero-copy": the server is

    @property
    def hostile(self) -> Link:
        return self.pair.client_link if self.direction == "c2s" else self.pair.server_link

    @property
    def victim(self) -> Link:
        return self.pair.server_link if self.direction == "c2s" else self.pair.client_link

    @property
    def victim_endpoint(self) -> ServerEndpoint | ClientEndpoint:
        return self.pair.server if self.direction == "c2s" else self.pair.client

    @property
    def hostile_endpoint(self) -> ServerEndpoint | ClientEndpoint:
        return self.pair.client if self.direction == "c2s" else self.pair.server

    @property
    def index_name(self) -> str:
        """The index the hostile side owns on this ring (§4.2)."""
        return "head" if self.direction == "c2s" else "tail"

    def publish(self, slots: list[Slot]) -> None:
        """Write `slots` on the hostile side's TX ring and publish its index."""
        q = self.hostile.tx[0]
        write_slots(self.hostile, q, slots)
        self.set_index(q.cursor)

    def set_index(self, value: int) -> None:
        """Store the hostile side's index (head for the client, tail for the server)."""
        view = self.hostile.tx[0].view
        if self.direction == "c2s":
            view.head = value
        else:
            view.tail = value

    @property
    def cursor(self) -> int:
        return self.hostile.tx[0].cursor

    def poll(self, condition: Callable[[], bool]) -> None:
        deadline = time.monotonic() + DEADLINE
        while not condition():
            assert time.monotonic() < deadline, "the pair did not reach the expected state"
            self.pair.server.service(0.002)
            self.pair.client.service(0.002)


GUARD_PATTERN = (GUARD * (GUARD_SIZE // len(GUARD) + 1))[:GUARD_SIZE]


def guard(link: Link) -> list[tuple[int, int]]:
    """Grow each region's memfd past its announced size and fill the excess with GUARD;
    returns (a dup of the fd, the size) per region, to check the guard after the link."""
    guarded = []
    for region in link.regions:
        os.ftruncate(region.fd, region.size + GUARD_SIZE)
        assert os.pwrite(region.fd, GUARD_PATTERN, region.size) == GUARD_SIZE
        guarded.append((os.dup(region.fd), region.size))
    return guarded


@contextlib.contextmanager
def hostile_pair(direction: str) -> Iterator[Setup]:
    """A guarded pair; on exit the guard bytes must be unchanged."""
    if direction == "s2c-zero-copy":
        opened: Any = zero_copy_pair()
    else:
        opened = memif_pair()
    with opened as pair:
        guarded = guard(pair.client_link)
        try:
            yield Setup(pair, direction)
            for fd, size in guarded:
                assert os.pread(fd, GUARD_SIZE, size) == GUARD_PATTERN, "wrote past a region"
        finally:
            for fd, _ in guarded:
                os.close(fd)


def received(setup: Setup) -> PacketBatch:
    """What the victim takes off its RX ring now (never raises)."""
    batch = setup.victim.receive()
    assert GUARD[:8] not in batch.data.tobytes(), "bytes past the end of a region were read"
    return batch


DIRECTIONS = ["c2s", "s2c", "s2c-zero-copy"]


def region_size(setup: Setup, slot: int = 0) -> tuple[int, int]:
    """(index, size) of the region holding the buffer of the hostile side's next slot."""
    view = setup.hostile.tx[0].view
    index = int(view.region_column[(setup.cursor + slot) & view.mask])
    return index, setup.hostile.regions[index].size


# ------------------------------------------------------------------ bad descriptors: dropped


def good(n: int, fill: int) -> Slot:
    return Slot(payload=bytes([fill]) * n)


BAD_DESCRIPTORS: dict[str, Callable[[Setup], Slot]] = {
    "region-index-out-of-range": lambda s: Slot(good(60, 1).payload, region=len(s.victim.regions)),
    "region-index-0xffff": lambda s: Slot(good(60, 1).payload, region=0xFFFF),
    "offset-plus-length-one-past-the-region": lambda s: Slot(
        good(60, 1).payload, offset=region_size(s, 1)[1] - 59, length=60
    ),
    "offset-far-past-the-region": lambda s: Slot(good(60, 1).payload, offset=0xFFFFFF00, length=60),
    "offset-plus-length-overflows-u32": lambda s: Slot(
        good(60, 1).payload, offset=U32 - 0xF, length=0x20
    ),
    "length-overflows-u32-past-offset": lambda s: Slot(good(60, 1).payload, length=U32),
    "zero-length": lambda s: Slot(length=0),
    "single-descriptor-longer-than-9216": lambda s: Slot(offset=0, region=0, length=9217),
}
"""Each breaks one rule of §5.6; VPP drops such a descriptor's packet (§9.14), so do we."""


@pytest.mark.parametrize("case", list(BAD_DESCRIPTORS))
@pytest.mark.parametrize("direction", DIRECTIONS)
def test_a_bad_descriptor_drops_its_frame_and_the_link_goes_on(direction: str, case: str) -> None:
    with hostile_pair(direction) as setup:
        first, last = good(64, 0xA1), good(100, 0xA2)
        bad = BAD_DESCRIPTORS[case](setup)
        setup.publish([first, bad, last])
        batch = received(setup)
        assert batch.frames() == [first.payload, last.payload]
        counters = setup.victim.counters
        assert (counters.rx_frames, counters.rx_errors, counters.ring_errors) == (2, 1, 0)
        assert setup.victim.error is None
        # the slots went back to the hostile side and the link keeps working
        setup.publish([good(70, 0xA3)])
        assert received(setup).frames() == [bytes([0xA3]) * 70]
        setup.victim_endpoint.service(0)
        assert setup.victim_endpoint.sessions  # no disconnect


def test_a_frame_ending_exactly_at_the_region_end_is_read_and_one_byte_more_is_not() -> None:
    """The server's bound is exact: offset + length == region size is inside (§5.6). (A
    client's bound is the buffer it posted: see the capacity cases below.)"""
    with hostile_pair("c2s") as setup:
        index, size = region_size(setup)
        last_bytes = bytes(range(60))
        setup.hostile.regions[index].array[size - 60 :] = np.frombuffer(last_bytes, np.uint8)
        setup.publish(
            [
                Slot(offset=size - 60, length=60),
                Slot(offset=size - 60, length=61),
                Slot(offset=size - 59, length=60),
            ]
        )
        assert received(setup).frames() == [last_bytes]
        assert setup.victim.counters.rx_errors == 2


@pytest.mark.parametrize("direction", DIRECTIONS)
def test_the_ethernet_limit_is_9216_bytes_per_frame(direction: str) -> None:
    """Fact sheet §5.6: VPP drops a descriptor with `length > 9216` in Ethernet mode
    (`ETHERNET_MAX_PACKET_BYTES`, node.c `memif_validate_desc_data`). The reference applies
    the limit to the whole frame, which covers that rule: one descriptor over 9216 is
    dropped (BAD_DESCRIPTORS above), and so is a chain of buffers adding up to 9217."""
    with hostile_pair(direction) as setup:
        capacity = BUFFER
        fragments = -(-9216 // capacity)  # 36 slots of 256: exactly 9216
        fit = [Slot(bytes([i]) * capacity, flags=NEXT) for i in range(fragments)]
        fit[-1] = Slot(fit[-1].payload, flags=0)
        setup.publish(fit)
        batch = received(setup)
        assert batch.lengths.tolist() == [9216]
        assert batch.frames()[0] == b"".join(slot.payload for slot in fit)
        if direction == "s2c-zero-copy":
            setup.victim.release_received()  # post the slots again before they are refilled
        over = [*fit[:-1], Slot(fit[-1].payload, flags=NEXT), Slot(b"\x01", flags=0)]
        setup.publish(over)  # 9217 bytes in 37 slots
        assert len(received(setup)) == 0
        assert setup.victim.counters.rx_errors == 1
        assert setup.victim.error is None


@pytest.mark.parametrize("direction", ["s2c", "s2c-zero-copy"])
@pytest.mark.parametrize("change", ["offset-inside-the-region", "region", "length-over-capacity"])
def test_a_server_cannot_move_or_grow_the_buffer_a_client_posted(
    direction: str, change: str
) -> None:
    """A server writes length and flags only (§5.2); a slot naming another buffer, even one
    inside the region, or longer than the buffer posted there, drops its frame."""
    with hostile_pair(direction) as setup:
        view = setup.hostile.tx[0].view
        other = int(view.offset_column[(setup.cursor + 5) & view.mask])  # a real buffer
        bad = {
            "offset-inside-the-region": Slot(b"\x07" * 60, offset=other),
            "region": Slot(b"\x07" * 60, region=1 - int(view.region_column[setup.cursor])),
            "length-over-capacity": Slot(b"\x07" * 60, length=BUFFER + 1),
        }[change]
        setup.publish([good(60, 1), bad, good(60, 2)])
        assert received(setup).frames() == [b"\x01" * 60, b"\x02" * 60]
        assert setup.victim.counters.rx_errors == 1


# ------------------------------------------------------------------ broken rings: DISCONNECT


def disconnected_with(
    setup: Setup, pattern: str, to: ServerEndpoint | ClientEndpoint | None = None
) -> None:
    """Poll until the hostile side (or `to`) got a DISCONNECT whose reason matches `pattern`."""
    endpoint = setup.hostile_endpoint if to is None else to
    setup.poll(lambda: endpoint.last_disconnect is not None)
    seen = endpoint.last_disconnect
    assert seen is not None and seen.by_peer, seen
    assert re.search(pattern, seen.reason), seen.reason


def assert_stopped(link: Link, *, rx: bool) -> None:
    counters = link.counters
    assert counters.ring_errors == 1
    assert (counters.rx_errors if rx else counters.tx_errors) == 1
    assert link.error is not None
    assert len(link.receive()) == 0  # a stopped link takes nothing more


def jump(beyond: int) -> Callable[[Setup], None]:
    """The hostile index moves a whole ring and `beyond` slots past the receiver's cursor."""
    return lambda setup: setup.set_index(setup.cursor + RING + beyond)


def endless_chain(setup: Setup) -> None:
    """NEXT on every slot of a full ring: no frame can ever end (§5.5)."""
    setup.publish([Slot(b"\x05" * 60, flags=NEXT) for _ in range(RING)])


def backwards(back: int) -> Callable[[Setup], None]:
    """Three frames go through, then the hostile index moves `back` slots back (§5.1)."""

    def move(setup: Setup) -> None:
        setup.publish([good(60, i) for i in range(3)])
        assert len(received(setup)) == 3
        setup.set_index(setup.cursor - back)

    return move


BROKEN_RINGS: dict[str, tuple[Callable[[Setup], None], str]] = {
    "index-jumps-a-ring-and-1": (jump(1), "{index} moved 65 slots from 0, 64 at most"),
    "index-jumps-a-ring-and-2": (jump(2), "{index} moved 66 slots"),
    "index-jumps-a-ring-and-1000": (jump(1000), "{index} moved 1064 slots"),
    "chain-that-never-ends": (endless_chain, "a chain fills the whole ring and never ends"),
    "index-moves-back-1": (backwards(1), "{index} moved backwards from 3 to 2"),
    "index-moves-back-3": (backwards(3), "{index} moved backwards from 3 to 0"),
}


@pytest.mark.parametrize("case", list(BROKEN_RINGS))
@pytest.mark.parametrize("direction", DIRECTIONS)
def test_a_broken_ring_stops_the_link_and_disconnects(direction: str, case: str) -> None:
    """The client's head and the server's tail only move forward, at most a ring ahead
    (§5.1); a ring full of one open chain never delivers (§5.5)."""
    breaks, reason = BROKEN_RINGS[case]
    with hostile_pair(direction) as setup:
        breaks(setup)
        assert len(received(setup)) == 0
        assert_stopped(setup.victim, rx=True)
        disconnected_with(setup, re.escape(reason.format(index=setup.index_name)))


@pytest.mark.parametrize("direction", DIRECTIONS)
def test_a_full_ring_is_not_a_jump(direction: str) -> None:
    with hostile_pair(direction) as setup:
        setup.publish([good(60, i) for i in range(RING)])
        assert len(received(setup)) == RING
        assert setup.victim.error is None


@pytest.mark.parametrize("direction", DIRECTIONS)
def test_an_open_chain_waits_and_is_counted_once(direction: str) -> None:
    """NEXT up to the published index but room left: wait for the rest (§5.5)."""
    with hostile_pair(direction) as setup:
        setup.publish([Slot(b"\x05" * 60, flags=NEXT) for _ in range(RING - 1)])
        assert len(received(setup)) == 0
        assert len(received(setup)) == 0
        assert setup.victim.counters.rx_open_chains == 1
        assert setup.victim.error is None
        setup.publish([Slot(b"\x06" * 4)])
        assert received(setup).lengths.tolist() == [60 * (RING - 1) + 4]


def test_a_server_filling_slots_a_zero_copy_client_still_holds_disconnects() -> None:
    """A zero-copy client keeps the slots of its last receive until the next one; a tail
    past the buffers it posted means the server wrote into slots it was still reading."""
    with hostile_pair("s2c-zero-copy") as setup:
        setup.publish([good(60, i) for i in range(RING)])
        assert len(received(setup)) == RING  # held: nothing is posted now
        setup.publish([good(60, 0xEE)])
        assert len(received(setup)) == 0
        assert_stopped(setup.victim, rx=True)
        disconnected_with(setup, r"S2C ring 0: tail moved 1 slots from 64, 0 at most")


def test_the_server_moving_its_c2s_tail_backwards_stops_the_client() -> None:
    """Tail moving backwards, as the client transmitting on C2S sees it."""
    with hostile_pair("c2s") as setup:
        client, server = setup.pair.client_link, setup.pair.server_link
        assert client.transmit(PacketBatch.repeat(b"\x09" * 60, 5)) == 5
        assert len(server.receive()) == 5
        assert client.tx_space() == RING
        server.rx[0].view.tail = 2
        assert client.transmit(PacketBatch.repeat(b"\x09" * 60, 1)) == 0
        assert_stopped(client, rx=False)
        disconnected_with(setup, "C2S ring 0: tail moved backwards from 5 to 2", setup.pair.server)


def test_the_server_moving_its_c2s_tail_past_the_clients_head_stops_the_client() -> None:
    with hostile_pair("c2s") as setup:
        client = setup.pair.client_link
        assert client.transmit(PacketBatch.repeat(b"\x09" * 60, 2)) == 2
        setup.pair.server_link.rx[0].view.tail = 3  # one slot the client never filled
        assert client.transmit(PacketBatch.repeat(b"\x09" * 60, 1)) == 0
        assert_stopped(client, rx=False)
        assert client.error is not None and "C2S ring 0: tail moved 3 slots" in client.error


@pytest.mark.parametrize("move", ["backwards", "jump"])
def test_the_client_moving_its_s2c_head_backwards_or_too_far_stops_the_server(move: str) -> None:
    """What the server sees of the buffers its client posts on S2C (§5.4)."""
    with hostile_pair("s2c") as setup:
        server, client = setup.pair.server_link, setup.pair.client_link
        assert server.tx_space() == RING  # the client posted every buffer
        view = client.rx[0].view
        view.head = RING - 4 if move == "backwards" else 2 * RING + 1
        assert server.transmit(PacketBatch.repeat(b"\x09" * 60, 1)) == 0
        assert_stopped(server, rx=False)
        expected = "moved backwards from 64 to 60" if move == "backwards" else "moved 65 slots"
        disconnected_with(setup, f"S2C ring 0: head {expected}", setup.pair.client)


POSTED = {
    "region-index-out-of-range": {"region": 5},
    "offset-past-the-region": {"offset": "end"},
    "offset-plus-length-overflows-u32": {"offset": U32 - 0xF},
    "zero-length": {"length": 0},
}


@pytest.mark.parametrize("case", list(POSTED))
def test_a_bad_buffer_posted_for_the_server_stops_it_without_a_write_outside(case: str) -> None:
    """The client posts S2C buffers; the server must not write where a bad one points."""
    with hostile_pair("s2c") as setup:
        server, client = setup.pair.server_link, setup.pair.client_link
        view = client.rx[0].view
        change = POSTED[case]
        if "region" in change:
            view.region_column[1] = change["region"]
        if "offset" in change:
            offset = change["offset"]
            view.offset_column[1] = client.regions[0].size - 8 if offset == "end" else offset
        if "length" in change:
            view.length_column[1] = change["length"]
        assert server.transmit(PacketBatch.repeat(b"\x0b" * 60, 3)) == 0
        assert_stopped(server, rx=False)
        disconnected_with(setup, "outside the announced regions|length 0", setup.pair.client)


# ------------------------------------------------------------------ cookies at connect


def test_a_wrong_cookie_is_refused_by_the_server_at_connect(tmp_path: Path) -> None:
    path = str(tmp_path / "m.sock")
    server = ServerEndpoint(path, [InterfaceConfig()])
    client = ClientEndpoint(path, InterfaceConfig(faults=frozenset({Fault.WRONG_COOKIE})))
    try:
        client.connect()
        deadline = time.monotonic() + DEADLINE
        while (client.session is not None or server.sessions) and time.monotonic() < deadline:
            server.service(0.002)
            client.service(0.002)
        assert client.last_disconnect is not None
        assert client.last_disconnect.reason == "Wrong cookie on C2S ring 0"
        assert server.link(0) is None and server.sessions == []
    finally:
        client.close()
        server.close()


def test_a_cookie_the_server_overwrote_is_refused_by_the_client_at_connected(
    tmp_path: Path,
) -> None:
    """DPDK's client checks every ring's cookie when CONNECTED arrives (§3.5); so do we."""
    path = str(tmp_path / "m.sock")
    server = ServerEndpoint(path, [InterfaceConfig()])
    client = ClientEndpoint(path, InterfaceConfig())
    try:
        client.connect()
        deadline = time.monotonic() + DEADLINE
        while server.link(0) is None:  # the server has mapped and sent CONNECTED...
            assert time.monotonic() < deadline
            client.service(0.002)
            server.service(0.002)
        link = server.link(0)
        assert link is not None
        link.tx[0].view.cookie = 0xDEADBEEF  # ...and scribbles on the S2C cookie first
        while (client.session is not None or server.sessions) and time.monotonic() < deadline:
            client.service(0.002)
            server.service(0.002)
        assert client.link is None
        assert client.last_disconnect is not None
        assert client.last_disconnect.reason == "Wrong cookie on S2C ring 0"
        assert server.sessions == []
    finally:
        client.close()
        server.close()
