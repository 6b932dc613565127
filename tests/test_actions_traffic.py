"""memif-ref's stamped `source` (paced or not) and `sink` actions over an in-process memif
pair (tests.test_link), and the command-line checks of their arguments."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from reference_impl import actions, frames, stamps, traffic
from reference_impl.link import Link
from reference_impl.ring import PacketBatch
from tests.test_cli import finish, sock, start
from tests.test_link import Pair, memif_pair

__all__ = ["sock"]

ADDRESSES = actions.Addresses(
    frames.parse_mac("02:fe:00:00:00:02"),
    frames.benchmark_ip("198.18.0.2"),
    frames.benchmark_ip("198.18.0.1"),
)


class ClientDriver:
    """The pair's client link as a LinkDriver; with `drain`, every look at the link first
    lets the server (the peer) take what arrived and read its stamps."""

    def __init__(self, pair: Pair, *, drain: bool) -> None:
        self.pair = pair
        self.drain = drain
        self.peer = traffic.StampReceiver()

    def current_link(self) -> Link | None:
        if self.drain:
            self.take()
        return self.pair.client_link

    def take(self) -> None:
        batch, windows, seen_ns = self.pair.server_link.receive_window(
            0, stamps.STAMP_OFFSET, stamps.STAMP_SIZE
        )
        if len(batch):
            self.peer.add(windows, time.monotonic(), seen_ns)

    def service(self, timeout: float) -> None:
        self.pair.client.service(timeout)

    def publish(self, facts: dict[str, Any]) -> None:
        pass


class ServerDriver:
    """The pair's server link as a LinkDriver."""

    def __init__(self, pair: Pair) -> None:
        self.pair = pair

    def current_link(self) -> Link | None:
        return self.pair.server_link

    def service(self, timeout: float) -> None:
        self.pair.server.service(timeout)

    def publish(self, facts: dict[str, Any]) -> None:
        pass


def test_paced_source_keeps_its_rate_and_numbers_every_frame() -> None:
    with memif_pair(log2_ring_size=10, buffer_size=2048) as pair:
        driver = ClientDriver(pair, drain=True)
        result = actions.source(
            driver, ADDRESSES, time.monotonic() + 10, count=3000, size=64, rate=20_000.0
        )
        driver.take()
    facts = result.facts
    assert result.ok and result.stopped_by == "count"
    assert (facts["sent"], facts["unsent"], facts["offered"]) == (3000, 0, 3000)
    assert facts["tx_pps"] == pytest.approx(20_000, rel=0.05)
    assert facts["elapsed"] == pytest.approx(2999 / 20_000, rel=0.05)
    received = driver.peer.facts()
    assert (received["received"], received["stamped"], received["sequence_gaps"]) == (3000, 3000, 0)
    # the peer saw them spread over the run at the rate, not in one burst at the end
    assert received["rx_pps"] == pytest.approx(20_000, rel=0.1)


def test_paced_source_counts_frames_without_room_as_unsent() -> None:
    with memif_pair(log2_ring_size=6) as pair:  # 64 slots, and nobody takes them
        driver = ClientDriver(pair, drain=False)
        result = actions.source(
            driver, ADDRESSES, time.monotonic() + 0.5, count=2000, size=64, rate=1e6
        )
    facts = result.facts
    assert result.stopped_by == "count"
    assert (facts["sent"], facts["unsent"], facts["offered"]) == (64, 2000 - 64, 2000)
    assert facts["drained"] is False


def test_unpaced_source_stops_after_its_seconds() -> None:
    with memif_pair(log2_ring_size=8, buffer_size=2048) as pair:
        driver = ClientDriver(pair, drain=True)
        started = time.monotonic()
        result = actions.source(
            driver, ADDRESSES, started + 10, count=10**12, size=128, seconds=0.3
        )
        driver.take()
        took = time.monotonic() - started
    facts = result.facts
    assert result.ok and result.stopped_by == "duration"
    assert 0.3 <= took < 2.0 and facts["elapsed"] == pytest.approx(0.3, abs=0.05)
    assert facts["sent"] > 1000 and facts["unsent"] == 0 and facts["rate"] is None
    received = driver.peer.facts()
    assert received["received"] == received["stamped"] == facts["sent"]
    assert received["sequence_gaps"] == 0 and received["sequence_disorder"] == 0


def test_chained_frames_carry_their_stamp_too() -> None:
    with memif_pair(log2_ring_size=8) as pair:  # 256-byte buffers: 1500 bytes is a chain
        driver = ClientDriver(pair, drain=True)
        result = actions.source(driver, ADDRESSES, time.monotonic() + 10, count=500, size=1500)
        driver.take()
    assert result.facts["sent"] == 500
    received = driver.peer.facts()
    assert (received["stamped"], received["sequence_gaps"]) == (500, 0)


def test_sink_reads_latency_and_gaps_and_counts_unstamped_frames() -> None:
    with memif_pair(log2_ring_size=8, buffer_size=2048) as pair:
        client = pair.client_link
        writer = stamps.StampWriter(
            frames.udp_frame(64, ADDRESSES.mac, frames.BROADCAST_MAC, ADDRESSES.ip, ADDRESSES.ip)
        )
        assert client.transmit_copies(
            writer.template_at(time.monotonic_ns()), 100, fill=writer.fill
        )
        writer.advance(100 + 5)  # numbers 100..104 never sent: five gaps
        assert client.transmit_copies(writer.template_at(time.monotonic_ns()), 50, fill=writer.fill)
        arp = frames.arp_request(ADDRESSES.mac, ADDRESSES.ip, ADDRESSES.peer_ip)
        assert client.transmit(PacketBatch.from_frames([arp] * 3)) == 3
        result = actions.sink(ServerDriver(pair), time.monotonic() + 10, count=153, seconds=None)
    facts = result.facts
    assert result.ok and result.stopped_by == "count"
    assert (facts["received"], facts["stamped"], facts["sequence_gaps"]) == (153, 150, 5)
    latency = facts["latency"]
    assert 0 < latency["samples"] <= 150
    assert 0 < latency["min_us"] <= latency["p50_us"] <= latency["max_us"] < 10e6


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--rate", "0"], "rate 0 must be above 0"),
        (["--rate", "fast"], "rate 'fast' is not a number"),
        (["--rate", "inf"], "rate inf must be above 0"),
        (["--size", "61"], "frame size 61 must be 62..9216 bytes"),
        (["--seconds", "-1"], "-1 seconds must be above 0"),
        (["--dst", "10.0.0.1"], "10.0.0.1 is outside 198.18.0.0/15"),
    ],
)
def test_bad_source_arguments_are_clear_errors(
    sock: Path, arguments: list[str], message: str
) -> None:
    process = start("client", "--socket", str(sock), "source", "--count", "10", *arguments)
    _, err = process.communicate(timeout=30)
    assert process.returncode == 1
    assert message in err


def test_a_source_against_a_sink_reports_stamps_end_to_end(sock: Path) -> None:
    """Steps: memif-ref server sink; memif-ref client source, paced, 2000 frames.
    Verify: every frame is sent, received and stamped, none missing, with a latency."""
    common = ["--socket", str(sock), "--timeout", "20", "--json"]
    server = start("server", *common, "--once", "sink", "--count", "2000")
    deadline = time.monotonic() + 10
    while not sock.exists():
        assert time.monotonic() < deadline and server.poll() is None
        time.sleep(0.02)
    source = start("client", *common, "source", "--count", "2000", "--rate", "50000")
    code, report, err = finish(source)
    assert code == 0, err
    result = report["result"]
    assert (result["sent"], result["unsent"], result["offered"]) == (2000, 0, 2000)
    assert result["tx_pps"] > 0 and result["elapsed"] > 0
    code, report, err = finish(server)
    assert code == 0, err
    result = report["result"]
    assert (result["received"], result["stamped"], result["sequence_gaps"]) == (2000, 2000, 0)
    assert result["latency"]["samples"] > 0 and result["rx_pps"] > 0
