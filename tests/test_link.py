"""Tests of reference_impl.link over a real client/server pair in one process.

A `ServerEndpoint` and a `ClientEndpoint` talk over a SEQPACKET socket in a private
directory; both are serviced from the test until the link is up (polled with a
deadline, never slept for). The two `Link`s then map the same memfd memory.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence

import numpy as np
import pytest

from reference_impl.endpoint import ClientEndpoint, ServerEndpoint
from reference_impl.layout import BufferPlacement
from reference_impl.link import Link
from reference_impl.memory import drain_eventfd
from reference_impl.protocol import InterfaceConfig
from reference_impl.ring import PacketBatch, RingError
from reference_impl.wire import RingFlag

DEADLINE = 5.0
RING = 64  # log2 6
BUFFER = 256
NEXT = 1


@dataclasses.dataclass
class Pair:
    """A connected server/client pair and their links."""

    server: ServerEndpoint
    client: ClientEndpoint

    @property
    def server_link(self) -> Link:
        link = self.server.link(0)
        assert link is not None
        return link

    @property
    def client_link(self) -> Link:
        assert self.client.link is not None
        return self.client.link


def _poll(condition: Callable[[], bool], *endpoints: ServerEndpoint | ClientEndpoint) -> None:
    """Service every endpoint until `condition()` holds; fail after DEADLINE seconds."""
    deadline = time.monotonic() + DEADLINE
    while not condition():
        assert time.monotonic() < deadline, "memif pair did not reach the expected state"
        for endpoint in endpoints:
            endpoint.service(0.01)


@contextlib.contextmanager
def memif_pair(
    *,
    c2s_rings: int = 1,
    s2c_rings: int = 1,
    log2_ring_size: int = 6,
    buffer_size: int = BUFFER,
    client_polling: bool = True,
    server_polling: bool = True,
    cache_line: int = 64,
    placement: BufferPlacement = BufferPlacement.REGION0,
) -> Iterator[Pair]:
    """Connect a client to a server over a socket in a fresh private directory."""
    directory = tempfile.mkdtemp(prefix="memif-t")
    path = os.path.join(directory, "m.sock")
    server = ServerEndpoint(
        path,
        [InterfaceConfig(id=0, secret="s3", c2s_rings=8, s2c_rings=8, log2_ring_size=14)],
        cache_line=cache_line,
        polling=server_polling,
    )
    client = ClientEndpoint(
        path,
        InterfaceConfig(
            id=0,
            secret="s3",
            c2s_rings=c2s_rings,
            s2c_rings=s2c_rings,
            log2_ring_size=log2_ring_size,
            buffer_size=buffer_size,
        ),
        cache_line=cache_line,
        placement=placement,
        polling=client_polling,
    )
    try:
        client.connect()
        _poll(lambda: client.connected and server.link(0) is not None, server, client)
        yield Pair(server, client)
    finally:
        client.close()
        _poll(lambda: server.link(0) is None, server)
        server.close()
        shutil.rmtree(directory, ignore_errors=True)


def frames_of(lengths: Sequence[int], seed: int = 0) -> list[bytes]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, n, dtype=np.uint8).tobytes() for n in lengths]


def slots_for(lengths: Sequence[int], capacity: int) -> int:
    return sum(math.ceil(n / capacity) for n in lengths)


# ------------------------------------------------------------------ traffic and counters


LENGTHS = [60, 256, 257, 1000, 64, 1514, 2048]


def test_client_to_server_traffic_and_counters() -> None:
    frames = frames_of(LENGTHS, seed=1)
    with memif_pair() as pair:
        assert pair.client_link.transmit(PacketBatch.from_frames(frames)) == len(frames)
        got = pair.server_link.receive()
        assert got.frames() == frames
        assert got.segments is not None
        assert list(got.segments) == [math.ceil(n / BUFFER) for n in LENGTHS]
        chained = sum(n > BUFFER for n in LENGTHS)
        tx, rx = pair.client_link.counters, pair.server_link.counters
        assert (tx.tx_frames, tx.tx_bytes, tx.tx_chained) == (7, sum(LENGTHS), chained)
        assert (rx.rx_frames, rx.rx_bytes, rx.rx_chained, rx.rx_errors) == (
            7,
            sum(LENGTHS),
            chained,
            0,
        )
        assert (tx.rx_frames, rx.tx_frames) == (0, 0)
        assert len(pair.server_link.receive()) == 0  # nothing twice


def test_server_to_client_traffic_and_counters() -> None:
    frames = frames_of(LENGTHS, seed=2)
    with memif_pair() as pair:
        assert pair.server_link.transmit(PacketBatch.from_frames(frames)) == len(frames)
        got = pair.client_link.receive()
        assert got.frames() == frames
        chained = sum(n > BUFFER for n in LENGTHS)
        tx, rx = pair.server_link.counters, pair.client_link.counters
        assert (tx.tx_frames, tx.tx_bytes, tx.tx_chained) == (7, sum(LENGTHS), chained)
        assert (rx.rx_frames, rx.rx_bytes, rx.rx_chained) == (7, sum(LENGTHS), chained)


def test_many_laps_both_directions() -> None:
    """Indices wrap the ring many times; every frame arrives once, in order."""
    with memif_pair(log2_ring_size=3) as pair:
        sent_c: list[bytes] = []
        sent_s: list[bytes] = []
        got_c: list[bytes] = []
        got_s: list[bytes] = []
        for lap in range(40):
            frames = frames_of([40 + lap, 300, 17], seed=lap)
            n = pair.client_link.transmit(PacketBatch.from_frames(frames))
            sent_c += frames[:n]
            got_s += pair.server_link.receive().frames()
            n = pair.server_link.transmit(PacketBatch.from_frames(frames))
            sent_s += frames[:n]
            got_c += pair.client_link.receive().frames()
        assert got_s == sent_c and len(sent_c) == 120
        assert got_c == sent_s and len(sent_s) == 120


def test_multi_queue_traffic_stays_on_its_queue() -> None:
    with memif_pair(c2s_rings=3, s2c_rings=2) as pair:
        assert (len(pair.client_link.tx), len(pair.client_link.rx)) == (3, 2)
        assert (len(pair.server_link.rx), len(pair.server_link.tx)) == (3, 2)
        frames = frames_of([100, 600], seed=3)
        assert pair.client_link.transmit(PacketBatch.from_frames(frames), queue=2) == 2
        assert len(pair.server_link.receive(0)) == 0
        assert len(pair.server_link.receive(1)) == 0
        assert pair.server_link.receive(2).frames() == frames
        assert pair.server_link.transmit(PacketBatch.from_frames(frames), queue=1) == 2
        assert len(pair.client_link.receive(0)) == 0
        assert pair.client_link.receive(1).frames() == frames


def test_oversized_frame_is_counted_as_error_by_ethernet_receiver() -> None:
    frames = frames_of([100, 10000, 9216, 60], seed=4)
    with memif_pair(buffer_size=2048) as pair:
        assert pair.client_link.transmit(PacketBatch.from_frames(frames)) == 4
        got = pair.server_link.receive()
        assert got.frames() == [frames[0], frames[2], frames[3]]
        counters = pair.server_link.counters
        assert (counters.rx_frames, counters.rx_errors) == (3, 1)
        assert pair.client_link.tx_space() == RING  # the dropped slots were released too


@pytest.mark.parametrize(
    ("cache_line", "placement"),
    [(128, BufferPlacement.REGION0), (64, BufferPlacement.SEPARATE)],
)
def test_other_geometries_carry_traffic(cache_line: int, placement: BufferPlacement) -> None:
    frames = frames_of([60, 700, 256], seed=5)
    with memif_pair(cache_line=cache_line, placement=placement) as pair:
        expected_region = 1 if placement is BufferPlacement.SEPARATE else 0
        assert set(pair.client_link.rx[0].view.region_column.tolist()) == {expected_region}
        assert len(pair.server_link.regions) == (2 if expected_region else 1)
        assert pair.client_link.transmit(PacketBatch.from_frames(frames)) == 3
        assert pair.server_link.receive().frames() == frames
        assert pair.server_link.transmit(PacketBatch.from_frames(frames)) == 3
        assert pair.client_link.receive().frames() == frames


# ------------------------------------------------------------------ ring ownership


@pytest.mark.parametrize("polling", [True, False])
def test_mask_int_on_receivers_rx_rings(polling: bool) -> None:
    with memif_pair(client_polling=polling, server_polling=polling) as pair:
        expected = int(RingFlag.MASK_INT) if polling else 0
        for link in (pair.client_link, pair.server_link):
            assert [q.view.flags for q in link.rx] == [expected]
            # each side's TX ring is the other's RX ring: it sees the peer's choice
            assert [q.view.flags for q in link.tx] == [expected]
            assert all(q.view.interrupts_masked is polling for q in link.rx)


def test_mask_int_is_per_receiver() -> None:
    with memif_pair(client_polling=True, server_polling=False) as pair:
        assert pair.client_link.rx[0].view.flags == int(RingFlag.MASK_INT)
        assert pair.server_link.rx[0].view.flags == 0


def test_client_posts_every_s2c_buffer_at_connect_and_reposts_consumed_ones() -> None:
    with memif_pair() as pair:
        s2c = pair.client_link.rx[0].view
        assert (s2c.head, s2c.tail) == (RING, 0)
        assert s2c.length_column.tolist() == [BUFFER] * RING
        assert not s2c.flags_column.any()
        assert pair.server_link.tx_space() == RING
        c2s = pair.client_link.tx[0].view
        assert (c2s.head, c2s.tail) == (0, 0)

        lengths = [700, 60, 300]  # 3 + 1 + 2 slots
        used = slots_for(lengths, BUFFER)
        assert pair.server_link.transmit(PacketBatch.from_frames(frames_of(lengths))) == 3
        assert s2c.tail == used
        assert pair.server_link.tx_space() == RING - used
        assert s2c.flags_column[:used].tolist() == [NEXT, NEXT, 0, 0, NEXT, 0]
        assert len(pair.client_link.receive()) == 3
        assert (s2c.head, s2c.tail) == (RING + used, used)
        assert pair.server_link.tx_space() == RING
        # the consumed slots were re-posted empty with the full capacity
        assert s2c.length_column.tolist() == [BUFFER] * RING
        assert not s2c.flags_column.any()


def test_client_repost_restores_region_and_offset() -> None:
    """Re-posting rewrites region/offset from the client's layout (a peer cannot redirect)."""
    with memif_pair() as pair:
        s2c = pair.client_link.rx[0].view
        offsets = s2c.offset_column.copy()
        assert pair.server_link.transmit(PacketBatch.from_frames([b"x" * 60])) == 1
        s2c.offset_column[0] = 12345  # a misbehaving server scribbles on a filled slot
        s2c.region_column[0] = 3
        got = pair.client_link.receive()
        assert (len(got), pair.client_link.counters.rx_errors) == (0, 1)  # region 3: dropped
        assert s2c.offset_column.tolist() == offsets.tolist()
        assert not s2c.region_column.any()


def test_tx_space_accounting_client() -> None:
    with memif_pair() as pair:
        client, server = pair.client_link, pair.server_link
        assert client.tx_space() == RING
        assert client.transmit(PacketBatch.from_frames(frames_of([1000] * 10))) == 10
        assert client.tx_space() == RING - 40
        # 24 slots left: six more 4-slot frames fit, the seventh does not
        assert client.transmit(PacketBatch.from_frames(frames_of([1000] * 7))) == 6
        assert client.tx_space() == 0
        assert client.transmit(PacketBatch.from_frames(frames_of([60]))) == 0
        assert client.tx[0].view.head == RING
        assert len(server.receive()) == 16
        assert client.tx_space() == RING
        assert client.tx[0].view.tail == RING


def test_tx_space_accounting_server() -> None:
    with memif_pair() as pair:
        client, server = pair.client_link, pair.server_link
        assert server.transmit(PacketBatch.from_frames(frames_of([500] * 30))) == 30  # 2 each
        assert server.tx_space() == RING - 60
        assert server.transmit(PacketBatch.from_frames(frames_of([256] * 30))) == 4
        assert server.tx_space() == 0
        assert server.transmit(PacketBatch.from_frames(frames_of([1]))) == 0
        assert len(client.receive()) == 34
        assert server.tx_space() == RING


def test_tx_space_rejects_impossible_peer_indices() -> None:
    with memif_pair() as pair:
        # the server claims to have consumed more than the client produced
        pair.server_link.rx[0].view.tail = 5
        with pytest.raises(RingError):
            pair.client_link.tx_space()
        pair.server_link.rx[0].view.tail = 0
        assert pair.client_link.tx_space() == RING
        # the client claims to have posted more buffers than the ring holds
        pair.client_link.rx[0].view.head = RING + 1
        with pytest.raises(RingError):
            pair.server_link.tx_space()


# ------------------------------------------------------------------ server TX capacity


def test_server_tx_uses_the_capacity_the_client_posted() -> None:
    with memif_pair() as pair:
        s2c = pair.client_link.rx[0].view
        s2c.length_column[:] = 100  # the client posted 100-byte buffers
        frames = frames_of([250, 100, 101], seed=6)
        assert pair.server_link.transmit(PacketBatch.from_frames(frames)) == 3
        assert s2c.length_column[:6].tolist() == [100, 100, 50, 100, 100, 1]
        assert s2c.flags_column[:6].tolist() == [NEXT, NEXT, 0, 0, NEXT, 0]
        got = pair.client_link.receive()
        assert got.frames() == frames
        assert got.segments is not None
        assert got.segments.tolist() == [3, 1, 2]
        assert pair.server_link.counters.tx_chained == 2
        assert pair.client_link.counters.rx_chained == 2


def test_server_tx_never_exceeds_the_smallest_posted_buffer() -> None:
    with memif_pair() as pair:
        s2c = pair.client_link.rx[0].view
        s2c.length_column[10] = 64  # one small buffer anywhere in the posted window
        frames = frames_of([200], seed=7)
        assert pair.server_link.transmit(PacketBatch.from_frames(frames)) == 1
        assert s2c.length_column[:4].tolist() == [64, 64, 64, 8]
        assert pair.client_link.receive().frames() == frames


# ------------------------------------------------------------------ interrupts


def test_server_signals_client_only_when_client_unmasked() -> None:
    with memif_pair(client_polling=False) as pair:
        fd = pair.client_link.rx_eventfds[0]
        assert drain_eventfd(fd) == 0
        assert pair.server_link.transmit(PacketBatch.from_frames([b"a" * 60])) == 1
        assert drain_eventfd(fd) == 1
        assert pair.server_link.transmit(PacketBatch.from_frames([b"b" * 60, b"c" * 60])) == 2
        assert pair.server_link.transmit(PacketBatch.from_frames([b"d" * 60])) == 1
        assert drain_eventfd(fd) == 2  # one write per burst, not per frame
        pair.client_link.rx[0].view.flags = int(RingFlag.MASK_INT)
        assert pair.server_link.transmit(PacketBatch.from_frames([b"e" * 60])) == 1
        assert drain_eventfd(fd) == 0


def test_client_signals_server_only_when_server_unmasked() -> None:
    with memif_pair(server_polling=False) as pair:
        fd = pair.server_link.rx_eventfds[0]
        assert pair.client_link.transmit(PacketBatch.from_frames([b"a" * 60])) == 1
        assert drain_eventfd(fd) == 1
        pair.server_link.rx[0].view.flags = int(RingFlag.MASK_INT)
        assert pair.client_link.transmit(PacketBatch.from_frames([b"a" * 60])) == 1
        assert drain_eventfd(fd) == 0


def test_no_signal_when_polling_or_nothing_sent() -> None:
    with memif_pair() as pair:
        s_fd = pair.server_link.rx_eventfds[0]
        c_fd = pair.client_link.rx_eventfds[0]
        assert pair.client_link.transmit(PacketBatch.from_frames([b"a" * 60])) == 1
        assert pair.server_link.transmit(PacketBatch.from_frames([b"a" * 60])) == 1
        assert (drain_eventfd(s_fd), drain_eventfd(c_fd)) == (0, 0)
    with memif_pair(client_polling=False, server_polling=False) as pair:
        s_fd = pair.server_link.rx_eventfds[0]
        assert pair.client_link.transmit(PacketBatch.empty()) == 0
        assert drain_eventfd(s_fd) == 0


def test_clear_interrupts_drains_rx_eventfds() -> None:
    with memif_pair(client_polling=False) as pair:
        assert pair.server_link.transmit(PacketBatch.from_frames([b"a" * 60])) == 1
        pair.client_link.clear_interrupts()
        assert drain_eventfd(pair.client_link.rx_eventfds[0]) == 0


# ------------------------------------------------------------------ teardown


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_pair_teardown_releases_every_fd() -> None:
    before = _open_fds()
    with memif_pair(c2s_rings=2, s2c_rings=2, placement=BufferPlacement.SEPARATE) as pair:
        assert pair.client_link.transmit(PacketBatch.from_frames([b"z" * 600])) == 1
        assert _open_fds() > before
    assert _open_fds() == before
