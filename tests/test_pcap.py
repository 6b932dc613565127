"""reference_impl.pcap: classic pcap records written per burst, read back with scapy; and a
link that records every burst it sends and receives."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
from scapy.utils import rdpcap

from reference_impl import pcap
from reference_impl.ring import PacketBatch
from tests.test_link import memif_pair


def frames_of(lengths: list[int], seed: int = 0) -> list[bytes]:
    generator = np.random.default_rng(seed)
    return [generator.integers(0, 256, size, dtype=np.uint8).tobytes() for size in lengths]


def test_bursts_read_back_with_scapy(tmp_path: Path) -> None:
    first, second = frames_of([60, 1514, 64, 9000], seed=1), frames_of([128], seed=2)
    path = tmp_path / "f.pcap"
    with pcap.PcapWriter(path) as writer:
        writer.record(PacketBatch.from_frames(first), timestamp=1_700_000_000.123456)
        writer.record(PacketBatch.empty(), timestamp=1_700_000_001.0)
        writer.record(PacketBatch.from_frames(second), timestamp=1_700_000_002.5)
    packets = rdpcap(str(path))
    assert [bytes(packet) for packet in packets] == first + second
    assert [float(packet.time) for packet in packets] == pytest.approx(
        [1_700_000_000.123456] * 4 + [1_700_000_002.5], abs=1e-6
    )
    assert (writer.seen, writer.written, writer.not_written) == (5, 5, 0)
    magic, major, minor, _, _, snaplen, linktype = pcap.GLOBAL_HEADER.unpack(path.read_bytes()[:24])
    assert (magic, major, minor, snaplen, linktype) == (0xA1B2C3D4, 2, 4, pcap.SNAPLEN, 1)


def test_limit_counts_frames_beyond_it_without_writing_them(tmp_path: Path) -> None:
    frames = frames_of([70, 80, 90], seed=3)
    path = tmp_path / "f.pcap"
    with pcap.PcapWriter(path, limit=4) as writer:
        writer.record(PacketBatch.from_frames(frames))
        assert writer.needs_bytes
        writer.record(PacketBatch.from_frames(frames))
        assert not writer.needs_bytes
        writer.record(PacketBatch.from_frames(frames))
    assert (writer.seen, writer.written, writer.not_written) == (9, 4, 5)
    assert [bytes(packet) for packet in rdpcap(str(path))] == frames + frames[:1]


def test_frames_longer_than_snaplen_keep_their_head_and_real_length(tmp_path: Path) -> None:
    frames = frames_of([100, 300, 50, 257], seed=4)
    path = tmp_path / "f.pcap"
    with pcap.PcapWriter(path, snaplen=256) as writer:
        writer.record(PacketBatch.from_frames(frames))
    packets = rdpcap(str(path))
    assert [bytes(packet) for packet in packets] == [frame[:256] for frame in frames]
    assert [packet.wirelen for packet in packets] == [100, 300, 50, 257]


def test_records_are_header_then_bytes_per_frame() -> None:
    frames = [b"\x01" * 3, b"\x02" * 5]
    raw = pcap.records(PacketBatch.from_frames(frames), timestamp=10.5)
    assert raw == (
        struct.pack("<IIII", 10, 500_000, 3, 3)
        + frames[0]
        + struct.pack("<IIII", 10, 500_000, 5, 5)
        + frames[1]
    )
    assert pcap.records(PacketBatch.empty(), timestamp=1.0) == b""


def test_a_header_only_file_exists_before_any_frame(tmp_path: Path) -> None:
    path = tmp_path / "f.pcap"
    writer = pcap.PcapWriter(path)
    assert path.stat().st_size == 24  # readable even if the process dies now
    writer.close()
    writer.close()
    assert len(rdpcap(str(path))) == 0


class Recorder:
    """Collects the bursts a link hands over, and says whether it wants their bytes."""

    def __init__(self, needs_bytes: bool = True) -> None:
        self.needs_bytes = needs_bytes
        self.bursts: list[list[bytes]] = []
        self.lengths: list[list[int]] = []

    def record(self, batch: PacketBatch) -> None:
        self.lengths.append([int(n) for n in batch.lengths])
        if self.needs_bytes:
            self.bursts.append(batch.frames())


def test_link_records_every_burst_it_sends_and_receives() -> None:
    frames = frames_of([60, 700, 1500], seed=5)  # 700 and 1500 are chained (256-byte buffers)
    with memif_pair() as pair:
        client, server = Recorder(), Recorder()
        pair.client_link.recorder = client
        pair.server_link.recorder = server
        assert pair.client_link.transmit(PacketBatch.from_frames(frames)) == 3
        # copy=False would drop the bytes: a recorder that wants them gets them anyway
        assert len(pair.server_link.receive(copy=False)) == 3
        assert pair.server_link.transmit(PacketBatch.from_frames(frames[1:])) == 2
        assert pair.client_link.receive().frames() == frames[1:]
    assert client.bursts == [frames, frames[1:]]  # sent, then received: in order
    assert server.bursts == [frames, frames[1:]]  # received, then sent


def test_link_without_bytes_needed_keeps_a_counting_receive_cheap() -> None:
    with memif_pair() as pair:
        receiver = Recorder(needs_bytes=False)
        pair.server_link.recorder = receiver
        pair.client_link.transmit(PacketBatch.from_frames(frames_of([64, 64], seed=6)))
        batch = pair.server_link.receive(copy=False)
    assert batch.data.size == 0
    assert receiver.lengths == [[64, 64]]


def test_link_records_only_the_frames_that_fit_the_ring() -> None:
    frames = frames_of([60] * 100, seed=7)
    with memif_pair(log2_ring_size=6) as pair:
        client = Recorder()
        pair.client_link.recorder = client
        assert pair.client_link.transmit(PacketBatch.from_frames(frames)) == 64
    assert client.bursts == [frames[:64]]
