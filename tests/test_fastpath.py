"""The burst fast paths (reference_impl.fastpath) through a real Link pair: copies of one
frame onto a ring, unchained frames and their stamp windows off it, and the fall-backs to
the general producer and consumer whenever the fast paths' assumptions do not hold."""

from __future__ import annotations

import time

import numpy as np
import pytest

from reference_impl import fastpath
from reference_impl.faults import Fault
from reference_impl.ring import PacketBatch
from tests.test_link import BUFFER, RING, frames_of, memif_pair


def template(size: int, seed: int = 0) -> np.ndarray:
    return np.frombuffer(frames_of([size], seed)[0], dtype=np.uint8)


def numbered(rows: np.ndarray, index: int) -> None:
    """A FrameFill: byte 20 of each frame is its position in the burst."""
    rows[:, 20] = (np.arange(rows.shape[0]) + index) & 0xFF


def expected(frame: np.ndarray, count: int, first: int = 0) -> list[bytes]:
    rows = np.tile(frame, (count, 1))
    rows[:, 20] = (np.arange(count) + first) & 0xFF
    return [row.tobytes() for row in rows]


@pytest.mark.parametrize("sender", ["client", "server"])
def test_copies_arrive_byte_for_byte_across_the_ring_wrap(sender: str) -> None:
    """A client writes its own buffers; a server those its client posted."""
    frame = template(100, seed=len(sender))
    with memif_pair() as pair:
        links = (pair.client_link, pair.server_link)
        source, target = links if sender == "client" else links[::-1]
        assert source.transmit_copies(frame, 50, fill=numbered) == 50
        assert target.receive().frames() == expected(frame, 50)
        # the next burst wraps the ring: two runs, numbered on from the first
        assert source.transmit_copies(frame, RING, fill=numbered) == RING
        assert target.receive().frames() == expected(frame, RING)
        assert (source.counters.tx_frames, source.counters.tx_bytes) == (50 + RING, 100 * 114)


def test_client_copies_stop_at_the_free_slots() -> None:
    frame = template(64)
    with memif_pair() as pair:
        assert pair.client_link.transmit_copies(frame, 10 * RING) == RING
        assert pair.client_link.transmit_copies(frame, 1) == 0
        assert len(pair.server_link.receive(copy=False)) == RING


class _Recorder:
    """A FrameRecorder that keeps how many frames it saw (a pcap writer, for one)."""

    needs_bytes = True

    def __init__(self) -> None:
        self.frames = 0

    def record(self, batch: PacketBatch) -> None:
        self.frames += len(batch)


def test_recorded_copies_are_built_only_for_the_free_slots() -> None:
    """With a recorder the copies are built in a batch first: a source's huge frame bound
    (10**12) must not become a 58 TiB array (a memif-ref client with --pcap died of it)."""
    frame = template(64)
    with memif_pair() as pair:
        recorder = _Recorder()
        pair.client_link.recorder = recorder
        assert pair.client_link.transmit_copies(frame, 10**12, fill=numbered) == RING
        assert pair.client_link.transmit_copies(frame, 10**12) == 0
        assert recorder.frames == RING
        assert pair.server_link.receive().frames() == expected(frame, RING)


def test_frames_longer_than_a_buffer_go_the_general_way_as_chains() -> None:
    frame = template(3 * BUFFER - 10)
    with memif_pair() as pair:
        assert pair.client_link.transmit_copies(frame, 4, fill=numbered) == 4
        got = pair.server_link.receive()
        assert got.frames() == expected(frame, 4)
        assert got.segments is not None and got.segments.tolist() == [3] * 4


def test_a_faulty_link_takes_the_general_path_and_keeps_its_fault() -> None:
    frame = template(64)
    with memif_pair() as pair:
        pair.client_link.faults = frozenset({Fault.STALE_NEXT})
        view = pair.client_link.tx[0].view
        view.flags_column[:] = 1  # a stale NEXT left over: the fault ORs instead of assigning
        assert pair.client_link.transmit_copies(frame, 3) == 3
        assert view.flags_column[:3].tolist() == [1, 1, 1]


def test_receive_window_reads_each_frames_bytes_in_place() -> None:
    frame = template(64, seed=2)
    with memif_pair() as pair:
        pair.client_link.transmit_copies(frame, 30, fill=numbered)
        before = time.monotonic_ns()
        batch, windows, seen_ns = pair.server_link.receive_window(0, 18, 6)
        assert before <= seen_ns <= time.monotonic_ns()
        assert batch.data.size == 0  # nothing copied out but the windows
        assert batch.lengths.tolist() == [64] * 30
        want = np.array([np.frombuffer(f, np.uint8)[18:24] for f in expected(frame, 30)])
        assert np.array_equal(windows, want)
        assert pair.server_link.counters.rx_frames == 30


def test_receive_window_zero_fills_frames_too_short_for_it() -> None:
    frames = frames_of([64, 20, 64, 3 * BUFFER], seed=9)  # a short frame and a chain
    with memif_pair() as pair:
        pair.client_link.transmit(PacketBatch.from_frames(frames))
        batch, windows, _ = pair.server_link.receive_window(0, 16, 8)
        assert batch.lengths.tolist() == [64, 20, 64, 3 * BUFFER]
        assert windows[1].tolist() == [0] * 8
        for row in (0, 2, 3):
            assert windows[row].tobytes() == frames[row][16:24]


def test_unchained_consumer_defers_to_the_general_one() -> None:
    with memif_pair() as pair:
        pair.client_link.transmit(PacketBatch.from_frames(frames_of([3 * BUFFER], seed=1)))
        queue = pair.server_link.rx[0]
        args = (queue.view, pair.server_link.regions, queue.cursor, queue.view.head)
        assert fastpath.consume_unchained(*args, copy=True) is None  # a chain
    with memif_pair() as pair:
        pair.client_link.transmit(PacketBatch.from_frames(frames_of([64, 64], seed=1)))
        queue = pair.server_link.rx[0]
        args = (queue.view, pair.server_link.regions, queue.cursor, queue.view.head)
        taken = fastpath.consume_unchained(*args, copy=True)
        assert taken is not None and taken[0].slots == 2
        assert fastpath.consume_unchained(*args, copy=True, max_frame=63) is None
        queue.view.region_column[1] = 7  # no such region: a frame to drop
        assert fastpath.consume_unchained(*args, copy=True) is None
        assert len(pair.server_link.receive()) == 1
        assert pair.server_link.counters.rx_errors == 1


def test_frame_windows_of_a_batch() -> None:
    frames = frames_of([10, 30, 25], seed=3)
    windows = fastpath.frame_windows(PacketBatch.from_frames(frames), 20, 8)
    assert windows.shape == (3, 8)
    assert windows[0].tolist() == [0] * 8 and windows[2].tolist() == [0] * 8
    assert windows[1].tobytes() == frames[1][20:28]
