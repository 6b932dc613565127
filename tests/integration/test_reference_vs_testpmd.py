"""The reference implementation against real DPDK testpmd (Debian dpdk-dev 22.11), both roles.

Each test runs testpmd pinned to CPU 0 and memif-ref (or the in-process reference) pinned
to CPU 1, over a filesystem socket in a private directory.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from harness.peers.testpmd import (
    MemifRole,
    PortStats,
    TestpmdError,
    TestpmdMemifPort,
    TestpmdProcess,
)
from reference_impl import frames
from reference_impl.endpoint import ClientEndpoint
from reference_impl.protocol import InterfaceConfig
from reference_impl.ring import PacketBatch
from tests.integration.conftest import MemifRef, TestpmdFactory

pytestmark = [pytest.mark.testpmd, pytest.mark.integration]

SERVER, CLIENT = MemifRole.SERVER, MemifRole.CLIENT


def port(role: MemifRole, sock: Path, **options: object) -> TestpmdMemifPort:
    """A testpmd memif port on `sock` (filesystem socket)."""
    return TestpmdMemifPort(role=role, socket_path=sock, **options)  # type: ignore[arg-type]


def ref_args(role: str, sock: Path, *options: str) -> list[str]:
    """Common memif-ref arguments: role, socket, a bounded timeout, JSON output."""
    return [role, "--socket", str(sock), "--timeout", "20", "--json", *options]


def wait_socket(path: Path, timeout: float = 10.0) -> None:
    """Poll until a server socket file exists."""
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.02)


# ------------------------------------------------------------------ ping / icmpecho


def test_reference_client_pings_testpmd_server(
    testpmd: TestpmdFactory, memif_ref: type[MemifRef], socket_dir: Path
) -> None:
    sock = socket_dir / "m.sock"
    tp = testpmd.start(port(SERVER, sock), forward_mode="icmpecho")
    tp.start_forwarding()
    code, report, err = memif_ref(*ref_args("client", sock, "ping", "--count", "100")).result()
    assert code == 0, err
    assert report["result"]["replies"] == 100
    assert report["peer_name"].startswith("DPDK 22.11")
    assert report["peer_if_name"] == "net_memif0"
    assert report["negotiated"] == {
        "c2s_rings": 1,
        "s2c_rings": 1,
        "ring_size": 1024,
        "buffer_size": 2048,
    }


def test_reference_server_pings_testpmd_client(
    testpmd: TestpmdFactory, memif_ref: type[MemifRef], socket_dir: Path
) -> None:
    sock = socket_dir / "m.sock"
    ref = memif_ref(*ref_args("server", sock, "ping", "--count", "100"))
    wait_socket(sock)
    tp = testpmd.start(port(CLIENT, sock), forward_mode="icmpecho")
    tp.wait_for_link(0)
    tp.start_forwarding()
    code, report, err = ref.result()
    assert code == 0, err
    assert report["result"]["replies"] == 100
    assert report["peer_name"].startswith("DPDK 22.11")


# ------------------------------------------------------------------ txonly -> sink


@pytest.mark.parametrize("size", [64, 1024])
def test_testpmd_client_txonly_to_reference_server_sink(
    testpmd: TestpmdFactory, memif_ref: type[MemifRef], socket_dir: Path, size: int
) -> None:
    sock = socket_dir / "m.sock"
    ref = memif_ref(*ref_args("server", sock, "sink", "--count", "20000"))
    wait_socket(sock)
    tp = testpmd.start(port(CLIENT, sock), forward_mode="txonly", txpkts=str(size))
    tp.wait_for_link(0)
    tp.start_forwarding()
    code, report, err = ref.result()
    counters = report["counters"]
    assert code == 0, err
    assert counters["rx_frames"] >= 20000
    assert counters["rx_bytes"] == size * counters["rx_frames"]
    assert counters["rx_errors"] == 0
    assert counters["rx_chained"] == 0


def test_testpmd_server_txonly_to_reference_client_sink(
    testpmd: TestpmdFactory, memif_ref: type[MemifRef], socket_dir: Path
) -> None:
    sock = socket_dir / "m.sock"
    tp = testpmd.start(port(SERVER, sock), forward_mode="txonly", txpkts="64")
    tp.start_forwarding()
    code, report, err = memif_ref(*ref_args("client", sock, "sink", "--count", "20000")).result()
    counters = report["counters"]
    assert code == 0, err
    assert counters["rx_frames"] >= 20000
    assert counters["rx_bytes"] == 64 * counters["rx_frames"]
    assert counters["rx_errors"] == 0


# ------------------------------------------------------------------ chained descriptors


def test_testpmd_bsize_256_sends_chained_1024_byte_frames_to_reference_server(
    testpmd: TestpmdFactory, memif_ref: type[MemifRef], socket_dir: Path
) -> None:
    sock = socket_dir / "m.sock"
    ref = memif_ref(*ref_args("server", sock, "sink", "--count", "5000"))
    wait_socket(sock)
    tp = testpmd.start(port(CLIENT, sock, bsize=256), forward_mode="txonly", txpkts="1024")
    tp.wait_for_link(0)
    tp.start_forwarding()
    code, report, err = ref.result()
    counters = report["counters"]
    assert code == 0, err
    assert counters["rx_frames"] >= 5000
    assert counters["rx_bytes"] == 1024 * counters["rx_frames"]  # every frame whole
    assert counters["rx_chained"] == counters["rx_frames"]  # 4 descriptors each
    assert counters["rx_errors"] == 0


def test_testpmd_server_chains_1024_byte_frames_into_reference_client_256_byte_buffers(
    testpmd: TestpmdFactory, memif_ref: type[MemifRef], socket_dir: Path
) -> None:
    sock = socket_dir / "m.sock"
    tp = testpmd.start(port(SERVER, sock), forward_mode="txonly", txpkts="1024")
    tp.start_forwarding()
    code, report, err = memif_ref(
        *ref_args("client", sock, "--bsize", "256", "sink", "--count", "5000")
    ).result()
    counters = report["counters"]
    assert code == 0, err
    assert counters["rx_frames"] >= 5000
    assert counters["rx_bytes"] == 1024 * counters["rx_frames"]
    assert counters["rx_chained"] == counters["rx_frames"]
    assert counters["rx_errors"] == 0


def test_reference_client_bsize_256_sends_1500_byte_frames_to_testpmd(
    testpmd: TestpmdFactory, memif_ref: type[MemifRef], socket_dir: Path
) -> None:
    """memif-ref source: every 1500-byte frame leaves as a 6-descriptor chain."""
    sock = socket_dir / "m.sock"
    tp = testpmd.start(port(SERVER, sock), forward_mode="rxonly")
    tp.start_forwarding()
    count = 2000
    args = ("--bsize", "256", "source", "--count", str(count), "--size", "1500")
    code, report, err = memif_ref(*ref_args("client", sock, *args)).result()
    assert code == 0, err
    assert report["counters"]["tx_frames"] == count
    assert report["counters"]["tx_chained"] == count
    assert report["counters"]["tx_bytes"] == 1500 * count


def test_testpmd_counts_chained_1500_byte_frames_from_reference_client_exactly(
    testpmd: TestpmdFactory, socket_dir: Path, pinned_to_reference_cpu: None
) -> None:
    """Steps: in-process reference client with 256-byte buffers sends 1500-byte frames to a
    testpmd server in rxonly. Verify: testpmd counts each frame once with its exact length
    (stats are read while the link is up: testpmd resets them at disconnect)."""
    sock = socket_dir / "m.sock"
    tp = testpmd.start(port(SERVER, sock), forward_mode="rxonly")
    tp.start_forwarding()
    client = ClientEndpoint(str(sock), InterfaceConfig(buffer_size=256))
    try:
        client.connect()
        assert client.wait_until(lambda: client.link is not None, 10.0)
        link = client.link
        assert link is not None
        frame = frames.udp_frame(
            1500,
            frames.parse_mac("02:fe:00:00:00:02"),
            frames.BROADCAST_MAC,
            frames.benchmark_ip("198.18.0.2"),
            frames.benchmark_ip("198.18.0.1"),
        )
        sent = 0
        deadline = time.monotonic() + 10.0
        while sent < 1000 and time.monotonic() < deadline:
            sent += link.transmit(PacketBatch.repeat(frame, min(100, 1000 - sent)))
            client.service(0.001)
        assert sent == 1000
        stats = _poll_stats(tp, lambda s: s.rx_packets >= 1000)
        assert stats.rx_packets == 1000
        assert stats.rx_bytes == 1500 * 1000
        assert link.counters.tx_chained == 1000
        tp.stop_forwarding()  # quiesce testpmd before its peer leaves (DPDK 22.11 crash)
    finally:
        client.close()


def _poll_stats(tp: TestpmdProcess, done: Callable[[PortStats], bool]) -> PortStats:
    deadline = time.monotonic() + 10.0
    while True:
        stats = tp.port_stats(0)
        if done(stats) or time.monotonic() > deadline:
            return stats
        time.sleep(0.05)


@pytest.mark.parametrize("size", [1500, 9000])
def test_chained_frames_round_trip_byte_for_byte_through_testpmd_macswap(
    testpmd: TestpmdFactory, socket_dir: Path, pinned_to_reference_cpu: None, size: int
) -> None:
    """Steps: reference client (bsize 256 / 2048) sends distinct frames; testpmd macswaps
    them back. Verify: every frame returns whole, payload identical, MACs swapped."""
    sock = socket_dir / "m.sock"
    bsize = 256 if size == 1500 else 2048
    tp = testpmd.start(port(SERVER, sock), forward_mode="macswap")
    tp.start_forwarding()
    client = ClientEndpoint(str(sock), InterfaceConfig(buffer_size=bsize))
    try:
        client.connect()
        assert client.wait_until(lambda: client.link is not None, 10.0)
        link = client.link
        assert link is not None
        rng = np.random.default_rng(size)
        src, dst = frames.parse_mac("02:fe:00:00:00:02"), frames.parse_mac("02:fe:00:00:00:01")
        sent = [
            dst + src + b"\x88\xb5" + rng.integers(0, 256, size - 14, dtype=np.uint8).tobytes()
            for _ in range(64)
        ]
        assert link.transmit(PacketBatch.from_frames(sent)) == len(sent)
        received: list[bytes] = []
        deadline = time.monotonic() + 10.0
        while len(received) < len(sent) and time.monotonic() < deadline:
            batch = link.receive()
            received.extend(batch.frames())
            client.service(0.001)
        assert len(received) == len(sent)
        for out, back in zip(sent, received, strict=True):
            assert len(back) == size
            assert back[:6] == out[6:12] and back[6:12] == out[:6]
            assert back[12:] == out[12:]
        assert link.counters.rx_chained == len(sent)
        assert link.counters.rx_errors == 0
        tp.stop_forwarding()  # quiesce testpmd before its peer leaves (DPDK 22.11 crash)
    finally:
        client.close()


# ------------------------------------------------------------------ secrets


def test_matching_secrets_connect(
    testpmd: TestpmdFactory, memif_ref: type[MemifRef], socket_dir: Path
) -> None:
    sock = socket_dir / "m.sock"
    tp = testpmd.start(port(SERVER, sock, secret="s3cret"), forward_mode="icmpecho")
    tp.start_forwarding()
    code, report, err = memif_ref(
        *ref_args("client", sock, "--secret", "s3cret", "ping", "--count", "10")
    ).result()
    assert code == 0, err
    assert report["result"]["replies"] == 10


@pytest.mark.parametrize(
    ("client_secret", "reason"), [("wrong", "Incorrect secret"), (None, "Secret required")]
)
def test_testpmd_server_refuses_bad_secret(
    testpmd: TestpmdFactory,
    memif_ref: type[MemifRef],
    socket_dir: Path,
    client_secret: str | None,
    reason: str,
) -> None:
    sock = socket_dir / "m.sock"
    testpmd.start(port(SERVER, sock, secret="s3cret"), forward_mode="icmpecho")
    secret = ["--secret", client_secret] if client_secret else []
    code, report, err = memif_ref(
        *ref_args("client", sock, *secret, "ping", "--count", "1")
    ).result()
    assert code == 2
    assert report["disconnect_reason"] == reason
    assert f"handshake refused: {reason}" in err
    assert report["link_up"] is False


@pytest.mark.parametrize(
    ("client_secret", "reason"), [("wrong", "Incorrect secret"), (None, "Secret required")]
)
def test_reference_server_refuses_testpmd_with_bad_secret(
    testpmd: TestpmdFactory,
    memif_ref: type[MemifRef],
    socket_dir: Path,
    client_secret: str | None,
    reason: str,
) -> None:
    sock = socket_dir / "m.sock"
    ref = memif_ref(
        "server", "--socket", str(sock), "--secret", "s3cret", "--timeout", "4", "--json", "sink"
    )
    wait_socket(sock)
    options = {"secret": client_secret} if client_secret else {}
    tp = testpmd.start(port(CLIENT, sock, **options), forward_mode="rxonly")
    code, report, _ = ref.result()
    assert code == 2
    assert reason in report["refusals"]
    assert report["link_up"] is False
    assert tp.port_info(0).link_status is False


# ------------------------------------------------------------------ negotiation


def test_ring_size_and_counts_are_the_minimum_of_both_sides(
    testpmd: TestpmdFactory, memif_ref: type[MemifRef], socket_dir: Path
) -> None:
    """Steps: reference server with 2 queues and rsize 8; testpmd client with 2 queues and
    rsize 10. Verify: 2 rings each way of 256 slots, traffic on them."""
    sock = socket_dir / "m.sock"
    ref = memif_ref(
        *ref_args("server", sock, "--queues", "2", "--rsize", "8", "sink", "--seconds", "2")
    )
    wait_socket(sock)
    tp = testpmd.start(port(CLIENT, sock), forward_mode="txonly", rxq=2, txq=2)
    tp.wait_for_link(0)
    tp.start_forwarding()
    code, report, err = ref.result()
    assert code == 0, err
    assert report["negotiated"]["c2s_rings"] == 2
    assert report["negotiated"]["s2c_rings"] == 2
    assert report["negotiated"]["ring_size"] == 256
    assert report["counters"]["rx_frames"] > 0
    assert report["counters"]["rx_errors"] == 0


def test_testpmd_client_with_more_queues_than_negotiated_rings_is_caught(
    testpmd: TestpmdFactory, memif_ref: type[MemifRef], socket_dir: Path
) -> None:
    """Steps: reference server advertises 2 rings each way; testpmd client has 4 queues.
    DPDK 22.11 negotiates 2 rings but still transmits on queues 2 and 3, whose ring
    pointers were never set up (they alias ring 0), so ring 0's head goes wild.
    Verify: the reference survives, counts the error, and disconnects with a reason."""
    sock = socket_dir / "m.sock"
    ref = memif_ref(*ref_args("server", sock, "--queues", "2", "sink", "--seconds", "2"))
    wait_socket(sock)
    tp = testpmd.start(port(CLIENT, sock), forward_mode="txonly", rxq=4, txq=4)
    tp.wait_for_link(0)
    tp.start_forwarding()
    code, report, err = ref.result()
    assert code == 0, err
    assert report["negotiated"]["c2s_rings"] == 2
    assert report["counters"]["rx_errors"] >= 1
    assert report["disconnect_reason"]
    assert report["disconnected_by_peer"] is False


def test_testpmd_server_refuses_more_rings_than_its_queues(
    testpmd: TestpmdFactory, memif_ref: type[MemifRef], socket_dir: Path
) -> None:
    sock = socket_dir / "m.sock"
    testpmd.start(port(SERVER, sock), forward_mode="rxonly")
    code, report, _ = memif_ref(
        *ref_args("client", sock, "--queues", "2", "sink", "--count", "1")
    ).result()
    assert code == 2
    assert report["disconnect_reason"] == "Invalid ring index"


def test_reference_client_ring_size_follows_its_own_config_under_testpmd(
    testpmd: TestpmdFactory, memif_ref: type[MemifRef], socket_dir: Path
) -> None:
    sock = socket_dir / "m.sock"
    tp = testpmd.start(port(SERVER, sock), forward_mode="icmpecho")
    tp.start_forwarding()
    code, report, err = memif_ref(
        *ref_args("client", sock, "--rsize", "12", "ping", "--count", "5")
    ).result()
    assert code == 0, err
    assert report["negotiated"]["ring_size"] == 4096  # testpmd advertises log2 14


# ------------------------------------------------------------------ abstract sockets


def test_abstract_socket_reference_client_to_testpmd_server(
    testpmd: TestpmdFactory, memif_ref: type[MemifRef], socket_dir: Path
) -> None:
    """DPDK >= 21.08 and memif-ref both use the exact-length abstract name."""
    name = f"memif-it-{socket_dir.name}"
    tp = testpmd.start(port(SERVER, Path(name), socket_abstract=True), forward_mode="icmpecho")
    tp.start_forwarding()
    code, report, err = memif_ref(
        "client", "--socket", name, "--abstract", "--timeout", "20", "--json",
        "ping", "--count", "10",
    ).result()  # fmt: skip
    assert code == 0, err
    assert report["result"]["replies"] == 10


def test_abstract_socket_testpmd_client_to_reference_server(
    testpmd: TestpmdFactory, memif_ref: type[MemifRef], socket_dir: Path
) -> None:
    name = f"memif-it-{socket_dir.name}"
    ref = memif_ref(
        "server", "--socket", name, "--abstract", "--timeout", "20", "--json",
        "sink", "--count", "1000",
    )  # fmt: skip
    tp_port = port(CLIENT, Path(name), socket_abstract=True)
    deadline = time.monotonic() + 10
    while True:  # the abstract name has no file to wait for: retry the start instead
        try:
            tp = testpmd.start(tp_port, forward_mode="txonly")
            break
        except TestpmdError:
            assert time.monotonic() < deadline, "testpmd never reached the abstract socket"
    tp.wait_for_link(0)
    tp.start_forwarding()
    code, report, err = ref.result()
    assert code == 0, err
    assert report["counters"]["rx_frames"] >= 1000
