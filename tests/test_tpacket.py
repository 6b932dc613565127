"""TPACKET_V2 rings (reference_impl.tpacket): geometry, then real frames over a veth pair
inside a run-labelled namespace this module creates and deletes (root needed)."""

from __future__ import annotations

import os
import struct
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from harness.topology import netns as tn
from harness.topology.labels import RunLabel
from reference_impl import tpacket
from reference_impl.forward import SocketPort
from reference_impl.ring import PacketBatch
from reference_impl.tpacket import TpacketPort

ETHERTYPE_LOCAL = 0x88B5  # IEEE 802 local experimental: no host stack looks at these
DST, SRC = bytes.fromhex("02fe000000b0"), bytes.fromhex("02fe000000a0")

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (CAP_NET_ADMIN)")

# --------------------------------------------------------------------------- layout


def test_header_layout_matches_the_kernel() -> None:
    assert tpacket.TPACKET2_HDR.itemsize == 32
    fields = tpacket.TPACKET2_HDR.fields
    assert fields is not None
    offsets = {name: fields[name][1] for name in fields}
    assert offsets == {
        "status": 0, "len": 4, "snaplen": 8, "mac": 12, "net": 14, "sec": 16,
        "nsec": 20, "vlan_tci": 24, "vlan_tpid": 26, "padding": 28,
    }  # fmt: skip
    assert tpacket.TPACKET2_HDRLEN == 52
    assert tpacket.TX_DATA_OFFSET == 32
    assert tpacket.RX_HEADROOM == 80  # a plain Ethernet frame lands at tp_mac 66
    slot = tpacket.slot_dtype(2048)
    assert slot.itemsize == 2048 and slot.fields is not None
    assert slot.fields["snaplen"][1] == 8


@pytest.mark.parametrize(
    ("max_frame", "frames", "frame_size", "frame_count", "block_size"),
    [
        (1518, 4096, 2048, 4096, 4096),
        (1518, 100, 2048, 128, 4096),
        (1518, 1, 2048, 2, 4096),  # at least one block's worth
        (9018, 64, 16384, 64, 16384),
        (60, 8, 256, 16, 4096),
    ],
)
def test_ring_geometry(
    max_frame: int, frames: int, frame_size: int, frame_count: int, block_size: int
) -> None:
    geometry = tpacket.ring_geometry(max_frame, frames, page_size=4096)
    assert (geometry.frame_size, geometry.frame_count, geometry.block_size) == (
        frame_size,
        frame_count,
        block_size,
    )
    assert geometry.block_size % geometry.frame_size == 0
    assert geometry.frame_size >= tpacket.RX_HEADROOM + max_frame
    assert geometry.block_count * geometry.block_size == geometry.size
    block, blocks, size, count = struct.unpack("=IIII", geometry.request())
    assert (block, blocks, size, count) == (
        block_size,
        geometry.block_count,
        frame_size,
        frame_count,
    )


def test_ring_geometry_refuses_nonsense() -> None:
    with pytest.raises(ValueError):
        tpacket.ring_geometry(0, 10)
    with pytest.raises(ValueError):
        tpacket.ring_geometry(1500, 0)


# --------------------------------------------------------------------------- real veth


@dataclass
class VethInNetns:
    netns: str
    a: str
    b: str


@pytest.fixture
def veth() -> Iterator[VethInNetns]:
    """A veth pair, both ends in a run-labelled namespace, removed afterwards."""
    with tn.Topology(RunLabel.new()) as topo:
        netns = topo.add_netns("tp")
        pair = topo.add_veth("a", "b", netns=netns, peer_netns=netns)
        yield VethInNetns(netns, pair.name, pair.peer)


def frame(sequence: int, size: int) -> bytes:
    """A numbered frame of `size` bytes with a byte pattern that depends on both."""
    header = DST + SRC + struct.pack("!HII", ETHERTYPE_LOCAL, sequence, size)
    body = bytes((sequence * 7 + i) & 0xFF for i in range(size - len(header)))
    return header + body


def open_in(netns: str, ifname: str, **options: int) -> TpacketPort:
    return tn.run_in_netns(netns, TpacketPort, ifname, **options)


def collect(port: tpacket.TpacketPort | SocketPort, want: int, seconds: float = 3.0) -> list[bytes]:
    """Receive until `want` frames came or `seconds` passed."""
    got: list[bytes] = []
    deadline = time.monotonic() + seconds
    while len(got) < want and time.monotonic() < deadline:
        batch = port.receive(256)
        if len(batch):
            got.extend(batch.frames())
        else:
            time.sleep(0.001)
    return got


def send_all(
    port: tpacket.TpacketPort | SocketPort, batch: PacketBatch, seconds: float = 3.0
) -> None:
    deadline = time.monotonic() + seconds
    rest: PacketBatch | None = batch
    while rest is not None and len(rest):
        taken = port.transmit(rest)
        if taken >= len(rest):
            return
        begin = int(rest.lengths[:taken].sum())
        rest = PacketBatch(rest.data[begin:], rest.lengths[taken:])
        assert time.monotonic() < deadline, "TX ring never drained"
        time.sleep(0.0005)


@pytest.mark.integration
@needs_root
def test_frames_cross_a_veth_both_ways_byte_for_byte(veth: VethInNetns) -> None:
    sizes = [60, 61, 64, 127, 128, 500, 1000, 1513, 1514]
    with open_in(veth.netns, veth.a) as a, open_in(veth.netns, veth.b) as b:
        assert a.mtu == 1500 and a.max_frame == 1514
        sent = [frame(i, sizes[i % len(sizes)]) for i in range(300)]
        send_all(a, PacketBatch.from_frames(sent))
        assert collect(b, len(sent)) == sent
        back = [frame(1000 + i, 64) for i in range(300)]
        send_all(b, PacketBatch.from_frames(back))
        assert collect(a, len(back)) == back
        stats_a, stats_b = a.statistics(), b.statistics()
    assert stats_a["tx_frames"] == len(sent) and stats_b["rx_frames"] == len(sent)
    assert stats_b["tx_frames"] == len(back) and stats_a["rx_frames"] == len(back)
    assert stats_b["rx_kernel_drops"] == stats_a["rx_kernel_drops"] == 0
    assert stats_b["rx_bytes"] == sum(map(len, sent))


@pytest.mark.integration
@needs_root
def test_small_rings_wrap_many_times_in_order(veth: VethInNetns) -> None:
    with (
        open_in(veth.netns, veth.a, tx_frames=32) as a,
        open_in(veth.netns, veth.b, rx_frames=32) as b,
    ):
        assert a.tx_geometry.frame_count == 32 and b.rx_geometry.frame_count == 32
        sequence = 0
        for burst in (1, 7, 20, 31, 32, 25, 13, 3, 30, 29):  # cursors land everywhere
            uniform = burst % 2 == 0
            sent = [frame(sequence + i, 64 if uniform else 60 + i * 11) for i in range(burst)]
            sequence += burst
            send_all(a, PacketBatch.from_frames(sent))
            assert collect(b, burst) == sent
        assert collect(b, 1, 0.05) == []


@pytest.mark.integration
@needs_root
def test_jumbo_frames_need_big_slots(veth: VethInNetns) -> None:
    for ifname in (veth.a, veth.b):
        with tn.iproute(veth.netns) as ipr:
            ipr.link("set", index=ipr.link_lookup(ifname=ifname)[0], mtu=9000)
    with open_in(veth.netns, veth.a) as a, open_in(veth.netns, veth.b) as b:
        assert a.rx_geometry.frame_size == 16384 and a.tx_capacity >= 9014
        sent = [frame(i, size) for i, size in enumerate((9014, 64, 4000, 9014, 1514))]
        send_all(a, PacketBatch.from_frames(sent))
        assert collect(b, len(sent)) == sent


@pytest.mark.integration
@needs_root
def test_oversize_frames_are_dropped_and_counted(veth: VethInNetns) -> None:
    with open_in(veth.netns, veth.a) as a, open_in(veth.netns, veth.b) as b:
        sent = [frame(0, 100), frame(1, 1600), frame(2, 100)]
        assert a.transmit(PacketBatch.from_frames(sent)) == 3  # taken, one of them dropped
        assert collect(b, 2) == [sent[0], sent[2]]
        assert a.statistics()["tx_oversize"] == 1


@pytest.mark.integration
@needs_root
def test_a_full_rx_ring_drops_in_the_kernel_and_says_so(veth: VethInNetns) -> None:
    with open_in(veth.netns, veth.a) as a, open_in(veth.netns, veth.b, rx_frames=16) as b:
        send_all(a, PacketBatch.from_frames([frame(i, 64) for i in range(100)]))
        deadline = time.monotonic() + 2.0
        while a.tx_pending() and time.monotonic() < deadline:
            time.sleep(0.001)
        got = collect(b, 100, seconds=0.3)
        assert got == [frame(i, 64) for i in range(16)]
        assert b.statistics()["rx_kernel_drops"] == 100 - 16


@pytest.mark.integration
@needs_root
def test_the_socket_baseline_moves_the_same_frames(veth: VethInNetns) -> None:
    ports = [tn.run_in_netns(veth.netns, SocketPort, name) for name in (veth.a, veth.b)]
    try:
        sent = [frame(i, (60, 1514, 333)[i % 3]) for i in range(100)]
        send_all(ports[0], PacketBatch.from_frames(sent))
        assert collect(ports[1], len(sent)) == sent
        assert ports[0].statistics()["tx_frames"] == 100
    finally:
        for port in ports:
            port.close()


@needs_root
def test_a_missing_interface_is_an_error() -> None:
    label = RunLabel.new()
    with pytest.raises(tpacket.TpacketError, match="No such device"):
        TpacketPort(label.link("none"))
    with pytest.raises(tpacket.TpacketError):
        SocketPort(label.link("none"))
