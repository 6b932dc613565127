"""Interrupt mode of the reference against real DPDK testpmd 22.11, both roles (§6).

testpmd always polls: at connect it sets MASK_INT on the rings it receives on, so the
reference must never signal it, while testpmd signals the reference's unmasked rings.
testpmd runs pinned to CPU 0, the reference to CPU 1.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from harness.peers.testpmd import MemifRole, TestpmdMemifPort
from reference_impl import frames
from reference_impl.endpoint import ClientEndpoint
from reference_impl.protocol import InterfaceConfig
from reference_impl.ring import PacketBatch
from tests.integration.conftest import MemifRef, TestpmdFactory

pytestmark = [pytest.mark.testpmd, pytest.mark.integration]


def wait_socket(path: Path, timeout: float = 10.0) -> None:
    """Poll until a server socket file exists."""
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.02)


def assert_interrupt_receiver_of_a_polling_peer(report: dict[str, object]) -> None:
    """We received in interrupt mode, testpmd signalled us, we never signalled testpmd."""
    counters = report["counters"]
    assert isinstance(counters, dict)
    assert report["rx_mode"] == "interrupt"
    assert report["peer_rx_mode"] == "poll"  # testpmd set MASK_INT on its RX rings
    assert counters["rx_interrupts"] > 0
    assert counters["tx_interrupts"] == 0
    assert counters["rx_errors"] == 0


def test_testpmd_client_txonly_to_reference_interrupt_server_sink(
    testpmd: TestpmdFactory, memif_ref: type[MemifRef], socket_dir: Path
) -> None:
    """Steps: memif-ref server sink --interrupt; testpmd client txonly, 64-byte frames.
    Verify: at least 20000 frames, every one whole, woken by testpmd's interrupts."""
    sock = socket_dir / "m.sock"
    ref = memif_ref(
        "server", "--socket", str(sock), "--timeout", "20", "--json", "--interrupt",
        "sink", "--count", "20000",
    )  # fmt: skip
    wait_socket(sock)
    tp = testpmd.start(
        TestpmdMemifPort(role=MemifRole.CLIENT, socket_path=sock),
        forward_mode="txonly",
        txpkts="64",
    )
    tp.wait_for_link(0)
    tp.start_forwarding()
    code, report, err = ref.result()
    assert code == 0, err
    assert report["counters"]["rx_frames"] >= 20000
    assert report["counters"]["rx_bytes"] == 64 * report["counters"]["rx_frames"]
    assert_interrupt_receiver_of_a_polling_peer(report)


def test_testpmd_server_txonly_to_reference_interrupt_client_sink(
    testpmd: TestpmdFactory, memif_ref: type[MemifRef], socket_dir: Path
) -> None:
    sock = socket_dir / "m.sock"
    tp = testpmd.start(
        TestpmdMemifPort(role=MemifRole.SERVER, socket_path=sock),
        forward_mode="txonly",
        txpkts="64",
    )
    tp.start_forwarding()
    code, report, err = memif_ref(
        "client", "--socket", str(sock), "--timeout", "20", "--json", "--interrupt",
        "sink", "--count", "20000",
    ).result()  # fmt: skip
    assert code == 0, err
    assert report["counters"]["rx_frames"] >= 20000
    assert report["counters"]["rx_bytes"] == 64 * report["counters"]["rx_frames"]
    assert_interrupt_receiver_of_a_polling_peer(report)


FRAMES = 5000
WINDOW = 256  # frames in flight at most: the returns always fit the 1024-slot S2C ring


def test_reference_interrupt_client_exact_counts_both_ways_through_testpmd_server(
    testpmd: TestpmdFactory, socket_dir: Path, pinned_to_reference_cpu: None
) -> None:
    """Steps: in-process reference client in interrupt mode sends 5000 frames (at most 256
    in flight) to a testpmd server in macswap, and sleeps on its endpoint (control socket
    and RX eventfd) whenever it waits for returns. Verify: testpmd counts exactly 5000 in
    and 5000 out (read while the link is up); the reference gets exactly 5000 back, was
    woken by testpmd's interrupts, and never signalled testpmd, which masks its RX ring."""
    sock = socket_dir / "m.sock"
    tp = testpmd.start(
        TestpmdMemifPort(role=MemifRole.SERVER, socket_path=sock), forward_mode="macswap"
    )
    tp.start_forwarding()
    client = ClientEndpoint(str(sock), InterfaceConfig(), polling=False)
    try:
        client.connect()
        assert client.wait_until(lambda: client.link is not None, 10.0)
        link = client.link
        assert link is not None
        assert link.rx[0].view.flags == 0  # ours: interrupt mode
        frame = frames.udp_frame(
            128,
            frames.parse_mac("02:fe:00:00:00:02"),
            frames.BROADCAST_MAC,
            frames.benchmark_ip("198.18.0.2"),
            frames.benchmark_ip("198.18.0.1"),
        )
        sent = received = 0
        deadline = time.monotonic() + 20.0
        while received < FRAMES and time.monotonic() < deadline:
            room = min(64, FRAMES - sent, WINDOW - (sent - received))
            if room > 0:
                sent += link.transmit(PacketBatch.repeat(frame, room))
            waiting_for_returns = sent == FRAMES or sent - received >= WINDOW
            client.service(0.1 if waiting_for_returns else 0.0)
            received += len(link.receive(copy=False))
        assert (sent, received) == (FRAMES, FRAMES)
        stats = tp.port_stats(0)
        assert (stats.rx_packets, stats.tx_packets) == (FRAMES, FRAMES)
        assert link.tx[0].view.interrupts_masked  # testpmd polls its RX ring
        assert link.counters.tx_interrupts == 0
        assert link.counters.rx_interrupts > 0
        assert link.counters.rx_frames == FRAMES and link.counters.rx_errors == 0
        tp.stop_forwarding()  # quiesce testpmd before its peer leaves (DPDK 22.11 crash)
    finally:
        client.close()
