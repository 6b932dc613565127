"""Zero-copy: the reference client's in-place datapath, and a server facing zero-copy layouts.

A zero-copy client keeps its rings in region 0 and its buffers in region 1 (fact sheet
§4.6); the application writes frames straight into those buffers (`Link.tx_buffers`,
`Link.publish`) and reads received frames where they landed (`Link.receive_in_place`),
giving the buffers back on its next receive. The server side reads region, offset and
length from every descriptor every time, so DPDK's zero-copy client (buffers at arbitrary
offsets of hugepage regions >= 1, descriptors left zero until the first burst) works, and
its layout report names no false violation.
"""

from __future__ import annotations

import contextlib
import json
import mmap
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from harness.peers.base import MemifSpec, Role
from harness.peers.reference import memif_ref_argv
from reference_impl import inspect_layout
from reference_impl.endpoint import ClientEndpoint, ServerEndpoint
from reference_impl.layout import BufferPlacement, CopyLayout
from reference_impl.memory import Region, huge_page_size
from reference_impl.protocol import InterfaceConfig
from reference_impl.ring import PacketBatch, RingError, RingView
from reference_impl.wire import COOKIE, AddRing, AddRingFlag, RingType
from tests.test_link import Pair as LinkPair

DEADLINE = 5.0
LOG2 = 6
RING = 1 << LOG2
BUFFER = 256


class Pair(LinkPair):
    """test_link's connected pair, polled until a condition holds."""

    def poll(self, condition: Callable[[], bool]) -> None:
        deadline = time.monotonic() + DEADLINE
        while not condition():
            assert time.monotonic() < deadline, "the pair did not reach the expected state"
            self.server.service(0.005)
            self.client.service(0.005)


@contextlib.contextmanager
def zero_copy_pair(*, buffer_size: int = BUFFER, zero_copy: bool = True) -> Iterator[Pair]:
    directory = tempfile.mkdtemp(prefix="memif-zc")
    path = os.path.join(directory, "m.sock")
    server = ServerEndpoint(path, [InterfaceConfig(id=0, log2_ring_size=LOG2)])
    client = ClientEndpoint(
        path,
        InterfaceConfig(id=0, log2_ring_size=LOG2, buffer_size=buffer_size),
        zero_copy=zero_copy,
    )
    pair = Pair(server, client)
    try:
        client.connect()
        pair.poll(lambda: client.connected and server.link(0) is not None)
        yield pair
    finally:
        client.close()
        deadline = time.monotonic() + DEADLINE
        while server.link(0) is not None and time.monotonic() < deadline:
            server.service(0.01)
        server.close()
        shutil.rmtree(directory, ignore_errors=True)


def server_receives(pair: Pair, received: list[bytes], count: int) -> None:
    """Drain the server's RX ring into `received` until it holds `count` frames."""
    deadline = time.monotonic() + DEADLINE
    while len(received) < count:
        assert time.monotonic() < deadline, f"{len(received)} of {count} frames arrived"
        received += pair.server_link.receive().frames()
        pair.server.service(0.001)


def frames_of(lengths: list[int], seed: int = 0) -> list[bytes]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, n, dtype=np.uint8).tobytes() for n in lengths]


# ------------------------------------------------------------------ layout


def test_zero_copy_client_puts_buffers_in_region_1_and_the_server_sees_no_violation() -> None:
    with zero_copy_pair() as pair:
        link = pair.client_link
        assert pair.client.placement is BufferPlacement.SEPARATE
        assert len(link.regions) == 2
        assert link.regions[0].size == 2 * (128 + 16 * RING)  # rings only
        for queue in (*link.tx, *link.rx):
            assert set(queue.view.region_column.tolist()) == {1}
        report = pair.server.peer_layouts[0]
        assert report.violations == ()
        assert report.zero_copy is True
        assert report.buffer_regions == (1,)
        assert report.unposted_slots == 0


def test_copy_client_is_not_a_zero_copy_layout() -> None:
    with zero_copy_pair(zero_copy=False) as pair:
        report = pair.server.peer_layouts[0]
        assert report.zero_copy is False and report.buffer_regions == (0,)
        assert pair.client_link.zero_copy is False


# ------------------------------------------------------------------ transmit in place


def test_frames_written_in_place_reach_the_server_byte_for_byte() -> None:
    sent = frames_of([60, 64, 200, BUFFER, 1])
    with zero_copy_pair() as pair:
        link = pair.client_link
        rows = link.tx_buffers(len(sent))
        assert rows.shape == (len(sent), BUFFER)
        assert np.shares_memory(rows, link.regions[1].array)  # the shared buffers themselves
        for row, frame in zip(rows, sent, strict=True):
            row[: len(frame)] = np.frombuffer(frame, dtype=np.uint8)
        assert link.publish([len(f) for f in sent]) == len(sent)
        assert link.tx[0].view.head == len(sent)
        assert set(link.tx[0].view.region_column[: len(sent)].tolist()) == {1}
        received: list[bytes] = []
        server_receives(pair, received, len(sent))
        assert received == sent
        assert link.counters.tx_frames == len(sent)
        assert link.counters.tx_bytes == sum(map(len, sent))


def test_tx_buffers_stop_at_the_ring_end_and_when_the_ring_is_full() -> None:
    with zero_copy_pair() as pair:
        link = pair.client_link
        rows = link.tx_buffers(RING - 2)
        rows[:, :60] = 7
        link.publish(np.full(RING - 2, 60))
        assert link.tx_buffers(10).shape[0] == 2  # no wrap: the ring ends after 2 slots
        link.publish([60, 60])
        assert link.tx_buffers(10).shape[0] == 0  # full until the server consumes
        pair.poll(lambda: len(pair.server_link.receive(copy=False)) > 0)
        assert link.tx_buffers(10).shape[0] > 0  # wrapped to slot 0


@pytest.mark.parametrize("lengths", [[0], [BUFFER + 1], [60] * (RING + 1)])
def test_publish_refuses_what_does_not_fit(lengths: list[int]) -> None:
    with zero_copy_pair() as pair:
        link = pair.client_link
        link.tx_buffers(RING)
        with pytest.raises(ValueError):
            link.publish(lengths)
        assert link.tx[0].view.head == 0  # nothing went out


def test_server_cannot_use_the_in_place_api() -> None:
    with zero_copy_pair() as pair:
        with pytest.raises(RingError):
            pair.server_link.tx_buffers(1)
        with pytest.raises(RingError):
            pair.server_link.receive_in_place()


# ------------------------------------------------------------------ receive in place


def test_received_frames_are_views_held_until_the_next_receive() -> None:
    sent = frames_of([60, 100, 256])
    with zero_copy_pair() as pair:
        link = pair.client_link
        s2c = link.rx[0].view
        assert pair.server_link.transmit(PacketBatch.from_frames(sent)) == len(sent)
        got = link.receive_in_place()
        assert len(got) == len(sent) and got.slots == len(sent)
        views = [got.frame_views(i)[0] for i in range(len(got))]
        assert all(np.shares_memory(view, link.regions[1].array) for view in views)
        assert [v.tobytes() for v in views] == sent
        assert s2c.head == RING  # the 3 slots are still ours: not posted again yet
        assert link.counters.rx_frames == 3
        again = link.receive_in_place()  # gives the 3 buffers back first
        assert len(again) == 0
        assert s2c.head == RING + len(sent)


def test_release_received_gives_the_buffers_back_at_once() -> None:
    with zero_copy_pair() as pair:
        link = pair.client_link
        pair.server_link.transmit(PacketBatch.from_frames(frames_of([64, 64])))
        link.receive_in_place()
        link.release_received()
        assert link.rx[0].view.head == RING + 2


def test_receive_copies_out_of_the_views_and_keeps_laps_going() -> None:
    with zero_copy_pair() as pair:
        link = pair.client_link
        total: list[bytes] = []
        expected: list[bytes] = []
        for lap in range(5):  # 5 x 40 frames over a 64-slot ring: held slots come back
            frames = frames_of([60 + lap] * 40, seed=lap)
            expected += frames
            sent = 0
            deadline = time.monotonic() + DEADLINE
            while sent < len(frames) and time.monotonic() < deadline:
                sent += pair.server_link.transmit(PacketBatch.from_frames(frames[sent:]))
                total += link.receive().frames()
            assert sent == len(frames)
        total += link.receive().frames()
        assert total == expected


def test_chained_frames_come_as_several_views() -> None:
    sent = frames_of([BUFFER * 2 + 10])
    with zero_copy_pair() as pair:
        pair.server_link.transmit(PacketBatch.from_frames(sent))
        got = pair.client_link.receive_in_place()
        assert len(got) == 1 and got.segments.tolist() == [3]
        assert [len(v) for v in got.frame_views(0)] == [BUFFER, BUFFER, 10]
        assert got.frames() == sent
        copied = got.batch()
        assert copied.frames() == sent and copied.segments is not None
        assert not np.shares_memory(copied.data, pair.client_link.regions[1].array)
        assert got.batch(copy=False).data.size == 0
        assert pair.client_link.counters.rx_chained == 1


def test_a_descriptor_moved_by_the_server_drops_its_frame() -> None:
    with zero_copy_pair() as pair:
        link = pair.client_link
        pair.server_link.transmit(PacketBatch.from_frames(frames_of([64, 64])))
        s2c = pair.server_link.tx[0].view
        s2c.offset_column[0] += BUFFER  # §5.2: servers never change region or offset
        got = link.receive_in_place()
        assert len(got) == 1 and got.slots == 2
        assert link.counters.rx_errors == 1


# ------------------------------------------------------------------ server side


def test_server_reads_region_and_offset_from_every_descriptor_every_time() -> None:
    """Like DPDK's zero-copy client: region 1 at arbitrary offsets, different every lap."""
    with zero_copy_pair() as pair:
        client, server = pair.client_link, pair.server_link
        c2s = client.tx[0].view
        area = client.regions[1].array
        rng = np.random.default_rng(5)
        received: list[bytes] = []
        expected: list[bytes] = []
        for lap in range(3):
            frames = frames_of([60 + 7 * k for k in range(8)], seed=lap)
            offsets = rng.choice(area.size // 512, size=len(frames), replace=False) * 512 + 3
            slot = c2s.head
            for k, (frame, offset) in enumerate(zip(frames, offsets, strict=True)):
                area[offset : offset + len(frame)] = np.frombuffer(frame, dtype=np.uint8)
                index = (slot + k) & c2s.mask
                c2s.region_column[index] = 1
                c2s.offset_column[index] = offset
                c2s.length_column[index] = len(frame)
                c2s.flags_column[index] = 0
            c2s.head = slot + len(frames)
            expected += frames
            server_receives(pair, received, len(expected))
        assert received == expected
        assert server.counters.rx_errors == 0


def _dpdk_zero_copy_memory(
    extra_regions: int = 1,
) -> tuple[list[Region], list[tuple[AddRing, RingView]]]:
    """Region 0 with two rings whose descriptors are left zero (DPDK memif_init_rings
    skips them in zero-copy mode), then buffer regions."""
    stride = 128 + 16 * RING
    regions = [Region.create("zc rings", 2 * stride)]
    regions += [Region.create(f"zc pool {i}", 1 << 20) for i in range(extra_regions)]
    rings = []
    for position, ring_type in enumerate((RingType.C2S, RingType.S2C)):
        view = RingView(regions[0], position * stride, LOG2)
        view.cookie = COOKIE
        flags = int(AddRingFlag.C2S) if ring_type is RingType.C2S else 0
        rings.append((AddRing(flags, 0, 0, position * stride, LOG2), view))
    return regions, rings


def test_dpdk_zero_copy_layout_is_reported_without_false_violations() -> None:
    regions, rings = _dpdk_zero_copy_memory(extra_regions=2)
    try:
        report = inspect_layout.inspect(regions, rings)
        assert report.violations == ()
        assert report.zero_copy is True
        assert report.unposted_slots == 2 * RING
        assert report.buffer_regions == (1, 2)
        assert report.buffer_size is None
        assert report.as_dict()["zero_copy"] is True
        # Posted descriptors are still checked: one outside its region is named.
        rings[0][1].region_column[0] = 1
        rings[0][1].offset_column[0] = (1 << 20) - 10
        rings[0][1].length_column[0] = 2048
        report = inspect_layout.inspect(regions, rings)
        assert report.buffer_regions == (1,)
        assert len(report.violations) == 1 and "C2S ring 0 slot 0" in report.violations[0]
    finally:
        for _, view in rings:
            view.release()
        for region in regions:
            region.close()


def test_zero_descriptors_in_a_copy_layout_are_still_violations() -> None:
    shape = CopyLayout(1, 1, LOG2, 256)
    regions = [Region.create("copy", shape.region_sizes()[0])]
    views = [RingView(regions[0], shape.ring_offset(t, i), LOG2) for t, i in shape.rings()]
    try:
        for view in views:
            view.cookie = COOKIE
        rings = [
            (AddRing(int(AddRingFlag.C2S) if t is RingType.C2S else 0, i, 0,
                     shape.ring_offset(t, i), LOG2), view)
            for (t, i), view in zip(shape.rings(), views, strict=True)
        ]  # fmt: skip
        report = inspect_layout.inspect(regions, rings)
        assert report.zero_copy is False
        assert any("length 0" in violation for violation in report.violations)
    finally:
        for view in views:
            view.release()
        regions[0].close()


# ------------------------------------------------------------------ hugepage regions


def _hugetlb_memfd(size: int) -> int:
    try:
        fd = os.memfd_create("memif-test huge", os.MFD_HUGETLB | os.MFD_CLOEXEC)
    except OSError as exc:
        pytest.skip(f"no MFD_HUGETLB here: {exc}")
    try:
        os.ftruncate(fd, size)
    except OSError as exc:
        os.close(fd)
        pytest.skip(f"no free hugepages: {exc}")
    return fd


def test_hugetlbfs_region_is_mapped_in_whole_huge_pages() -> None:
    fd = _hugetlb_memfd(4 << 20)
    page = huge_page_size(fd)
    assert page > mmap.PAGESIZE
    region = Region(fd, 3 * page // 2)  # announced size not a multiple of the huge page
    try:
        assert region.mapped_size == 2 * page
        assert region.size == region.array.size == 3 * page // 2
        region.array[-1] = 9
        with pytest.raises(IndexError):
            region.bytes_view(region.size - 1, 2)
    finally:
        region.close()
    assert not _fd_is_open(fd)


def test_memfd_region_is_mapped_at_its_exact_size() -> None:
    region = Region.create("memif-test small", 33024)
    try:
        assert huge_page_size(region.fd) == 0
        assert region.mapped_size == region.size == region.array.size == 33024
    finally:
        region.close()


def _fd_is_open(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError:
        return False
    return True


# ------------------------------------------------------------------ memif-ref and its adapter

MEMIF_REF = [sys.executable, "-m", "reference_impl.cli"]


@pytest.fixture
def sock() -> Iterator[Path]:
    directory = Path(tempfile.mkdtemp(prefix="memif-zc-cli-"))
    yield directory / "m.sock"
    shutil.rmtree(directory, ignore_errors=True)


def test_memif_ref_zero_copy_client_round_trip_through_a_forwarding_server(sock: Path) -> None:
    status = sock.with_name("server.json")
    server = subprocess.Popen(
        [*MEMIF_REF, "server", "--socket", str(sock), "--timeout", "20", "--once",
         "--status", str(status), "--json", "forward"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 10
        while not sock.exists():
            assert time.monotonic() < deadline and server.poll() is None
            time.sleep(0.02)
        client = subprocess.run(
            [*MEMIF_REF, "client", "--socket", str(sock), "--zero-copy", "--bsize", "512",
             "--timeout", "20", "--json", "check", "--count", "300", "--sizes", "64,1500",
             "--no-hold"],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert client.returncode == 0, client.stderr
        report = json.loads(client.stdout)
        assert report["result"]["matched"] == 300
        assert report["counters"]["rx_chained"] >= 150  # 1500 bytes over 512-byte buffers
        _out, err = server.communicate(timeout=30)
        assert server.returncode == 0, err
        layout = json.loads(status.read_text())["peer_layout"]
        assert layout["zero_copy"] is True and layout["buffer_regions"] == [1]
        assert layout["violations"] == []
    finally:
        if server.poll() is None:
            server.kill()
            server.communicate()


def test_memif_ref_server_refuses_zero_copy(sock: Path) -> None:
    result = subprocess.run(
        [*MEMIF_REF, "server", "--socket", str(sock), "--zero-copy", "sink"],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert result.returncode == 1
    assert "--zero-copy is a client mode" in result.stderr


def test_reference_adapter_maps_zero_copy_to_the_client_option(tmp_path: Path) -> None:
    client = MemifSpec(Role.CLIENT, str(tmp_path / "m.sock"), zero_copy=True)
    argv = memif_ref_argv(client, tmp_path / "s.json")
    assert "--zero-copy" in argv and argv.index("--zero-copy") < argv.index("responder")
    server = MemifSpec(Role.SERVER, str(tmp_path / "m.sock"), zero_copy=True)
    assert "--zero-copy" not in memif_ref_argv(server, tmp_path / "s.json")
