"""Benchmark: frames per second through `memif-ref forward --iface` (veth -> memif -> veth).

    generator netns --veth--> memif-ref server forward --iface (CPU 1)
        --memif--> testpmd client, io between memif and net_af_packet (CPU 0)
        --veth--> sink netns (counted by its interface counters)

The generator is a TPACKET_V2 transmitter in this process (pinned to CPU 0, beside testpmd)
sending UDP frames to a MAC nobody has, so the sink's stack drops them after counting. Each
frame size is measured with the forwarder's TPACKET ring port and with its per-frame
socket baseline, in the same run. Every traffic loop is bounded in packets and seconds;
addresses are 198.18.1.0/24; everything is run-labelled and removed at the end.

    python -m harness.bench_forwarder [--sizes 64,1024] [--seconds 3] [--max-packets N]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from harness.peers.testpmd import (
    MemifRole,
    TestpmdAfPacketPort,
    TestpmdConfig,
    TestpmdMemifPort,
    TestpmdProcess,
)
from harness.topology import netns as tn
from harness.topology.labels import registered_run
from reference_impl import forward, frames
from reference_impl.ring import PacketBatch
from reference_impl.tpacket import TpacketPort

TESTPMD_CPU = 0
FORWARDER_CPU = 1
GENERATOR_CPU = 0
WARMUP_SECONDS = 0.5
NOBODY_MAC = bytes.fromhex("02fe000000ee")
GENERATOR_ADDRESS, SINK_ADDRESS = "198.18.1.1/24", "198.18.1.2/24"
BURST = 256


@dataclasses.dataclass(frozen=True)
class Sample:
    """One measured forwarder configuration at one frame size."""

    io: str
    frame_size: int
    offered_pps: float  # what the generator put on its veth
    forwarded_pps: float  # what the reference moved from its NIC onto memif
    delivered_pps: float  # what reached the sink's interface
    forwarder_rx_drops: int | None  # frames its NIC-side RX ring had no room for
    capacity_pps: float | None  # frames it moved per second of busy (non-idle) rounds
    seconds: float


def _status_tx(path: Path) -> int:
    """memif frames the reference transmitted so far, from its --status file."""
    try:
        status = json.loads(path.read_text())
    except (OSError, ValueError):
        return 0
    return int((status.get("counters") or {}).get("tx_frames", 0))


def _wait_status(path: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if json.loads(path.read_text()).get("link_up"):
                return
        except (OSError, ValueError):
            pass
        if time.monotonic() > deadline:
            raise RuntimeError("the reference forwarder's link never came up")
        time.sleep(0.05)


def _generate(port: TpacketPort, batch: PacketBatch, until: float, budget: int) -> int:
    """Transmit `batch` again and again until `until` or `budget` frames; frames sent."""
    sent = 0
    while sent < budget and time.monotonic() < until:
        want = min(len(batch), budget - sent)
        sent += port.transmit(batch if want == len(batch) else batch.head(want))
    return sent


def measure(
    hosts: tuple[tn.NicHost, tn.NicHost],
    workdir: Path,
    io: str,
    size: int,
    seconds: float,
    max_packets: int,
    binary: str,
) -> Sample:
    """One forwarder configuration (`io`) at one frame size."""
    generator, sink = hosts
    sock = workdir / f"m-{uuid.uuid4().hex[:6]}.sock"
    status = workdir / f"status-{io}-{size}.json"
    budget = seconds + WARMUP_SECONDS + 30.0
    argv = [
        "taskset", "-c", str(FORWARDER_CPU), sys.executable, "-m", "reference_impl.cli",
        "server", "--socket", str(sock), "--timeout", str(budget), "--once", "--json",
        "--status", str(status), "forward", "--iface", generator.nic_if, "--iface-io", io,
    ]  # fmt: skip
    forwarder = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    prefix = f"memif-bench-fwd-{uuid.uuid4().hex[:8]}"
    config = TestpmdConfig(
        ports=(
            TestpmdMemifPort(role=MemifRole.CLIENT, socket_path=sock),
            TestpmdAfPacketPort(iface=sink.nic_if, framecnt=2048),
        ),
        file_prefix=prefix,
        cpu=TESTPMD_CPU,
        forward_mode="io",
    )
    report: dict[str, Any] = {}
    try:
        deadline = time.monotonic() + 10.0
        while not sock.exists():
            if forwarder.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"memif-ref did not listen: {forwarder.communicate()[1]}")
            time.sleep(0.02)
        with TestpmdProcess(config, workdir / f"{prefix}.log", binary=binary) as tp:
            tp.wait_for_link(0, timeout=15.0)
            tp.start_forwarding()
            _wait_status(status, 10.0)
            port: TpacketPort = tn.run_in_netns(generator.netns, TpacketPort, generator.host_if)
            try:
                source_mac = frames.parse_mac(tn.get_mac(generator.host_if, generator.netns))
                frame = frames.udp_frame(
                    size,
                    source_mac,
                    NOBODY_MAC,
                    generator.address.ip.packed,
                    sink.address.ip.packed,
                )
                batch = PacketBatch.repeat(frame, BURST)
                start = time.monotonic()
                _generate(port, batch, start + WARMUP_SECONDS, max_packets)
                sink_before = tn.link_counters(sink.host_if, sink.netns).get("rx_packets", 0)
                forwarded_before = _status_tx(status)
                window_start = time.monotonic()
                sent = _generate(port, batch, window_start + seconds, max_packets)
                elapsed = time.monotonic() - window_start
                time.sleep(0.3)  # status file throttle; in-flight frames land
                sink_after = tn.link_counters(sink.host_if, sink.netns).get("rx_packets", 0)
                forwarded_after = _status_tx(status)
            finally:
                port.close()
            tp.stop_forwarding()
        out, _ = forwarder.communicate(timeout=30)
        lines = [line for line in out.splitlines() if line.strip()]
        report = json.loads(lines[-1]) if lines else {}
    finally:
        if forwarder.poll() is None:
            forwarder.kill()
            forwarder.communicate()
    result = report.get("result") or {}
    counters = result.get("iface_counters") or {}
    return Sample(
        io=io,
        frame_size=size,
        offered_pps=sent / elapsed,
        forwarded_pps=(forwarded_after - forwarded_before) / elapsed,
        delivered_pps=(sink_after - sink_before) / elapsed,
        forwarder_rx_drops=counters.get("rx_kernel_drops"),
        capacity_pps=result.get("capacity_pps"),
        seconds=elapsed,
    )


@dataclasses.dataclass(frozen=True)
class PortSample:
    """The NIC side alone: draining a pre-filled receive queue, and sending a burst."""

    io: str
    frame_size: int
    rx_pps: float  # receive() over frames already queued (no kernel delivery in the time)
    tx_pps: float  # transmit() until the frames are handed over (veth delivery included)


DRAIN_FRAMES = 3000


def measure_port(generator: tn.NicHost, io: str, size: int) -> PortSample:
    """Time the forwarder's NIC-side port alone: queue DRAIN_FRAMES frames, then drain them."""
    source_mac = frames.parse_mac(tn.get_mac(generator.host_if, generator.netns))
    frame = frames.udp_frame(size, source_mac, NOBODY_MAC, bytes(4), bytes(4))
    batch = PacketBatch.repeat(frame, DRAIN_FRAMES)
    receiver = forward.open_port(generator.nic_if, forward.PortIO(io))
    sender = forward.open_port(generator.nic_if, forward.PortIO(io))
    feeder: TpacketPort = tn.run_in_netns(generator.netns, TpacketPort, generator.host_if)
    try:
        sent, deadline = 0, time.monotonic() + 5.0
        while sent < DRAIN_FRAMES and time.monotonic() < deadline:
            sent += feeder.transmit(batch.head(DRAIN_FRAMES - sent))
        while feeder.tx_pending() and time.monotonic() < deadline:
            time.sleep(0.001)
        got, busy = 0, 0.0
        while got < DRAIN_FRAMES and time.monotonic() < deadline:
            started = time.perf_counter()
            taken = len(receiver.receive(BURST))
            if not taken:
                break
            busy += time.perf_counter() - started
            got += taken
        sent, started = 0, time.perf_counter()
        while sent < DRAIN_FRAMES and time.monotonic() < deadline:
            sent += sender.transmit(batch.head(min(BURST, DRAIN_FRAMES - sent)))
        tx_seconds = time.perf_counter() - started
    finally:
        feeder.close()
        receiver.close()
        sender.close()
    return PortSample(io, size, got / busy if busy else 0.0, sent / tx_seconds)


def run(
    sizes: Sequence[int], ios: Sequence[str], seconds: float, max_packets: int, binary: str
) -> tuple[list[Sample], list[PortSample]]:
    """Build the topology once, then measure every (size, io) in it; remove it all."""
    os.sched_setaffinity(0, {GENERATOR_CPU})
    samples = []
    ports = []
    with registered_run() as label, tn.Topology(label) as topo:
        generator = topo.add_nic_host("bgen", "bg0", "bga", GENERATOR_ADDRESS)
        sink = topo.add_nic_host("bsink", "bs0", "bsb", SINK_ADDRESS)
        workdir = topo.add_socket_dir("bench")
        for size in sizes:
            for io in ios:
                samples.append(
                    measure((generator, sink), workdir, io, size, seconds, max_packets, binary)
                )
                ports.append(measure_port(generator, io, size))
    return samples, ports


def main(argv: Sequence[str] | None = None) -> int:
    """Print one row per (frame size, forwarder I/O)."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--sizes", default="64,1024", help="frame sizes, comma separated")
    parser.add_argument("--io", default="tpacket,socket", help="forwarder I/O kinds to measure")
    parser.add_argument("--seconds", type=float, default=3.0, help="measurement per case")
    parser.add_argument(
        "--max-packets", type=int, default=20_000_000, help="generator bound per case"
    )
    parser.add_argument("--testpmd", default="dpdk-testpmd")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    sizes = [int(size) for size in args.sizes.split(",")]
    ios = args.io.split(",")
    samples, ports = run(sizes, ios, args.seconds, args.max_packets, args.testpmd)
    if args.json:
        rows = [dataclasses.asdict(sample) for sample in samples]
        rows += [dataclasses.asdict(port) for port in ports]
        print(json.dumps(rows))
        return 0
    print(
        f"{'size':>5} {'forwarder io':>12} {'offered Mpps':>13} {'forwarded Mpps':>15} "
        f"{'delivered Mpps':>15} {'fwd rx drops':>13} {'fwd capacity Mpps':>18}"
    )
    for s in samples:
        drops = "?" if s.forwarder_rx_drops is None else str(s.forwarder_rx_drops)
        capacity = "?" if s.capacity_pps is None else f"{s.capacity_pps / 1e6:.3f}"
        print(
            f"{s.frame_size:>5} {s.io:>12} {s.offered_pps / 1e6:>13.3f} "
            f"{s.forwarded_pps / 1e6:>15.3f} {s.delivered_pps / 1e6:>15.3f} {drops:>13} "
            f"{capacity:>18}"
        )
    print(f"\nNIC side alone ({DRAIN_FRAMES} frames, CPU {GENERATOR_CPU}):")
    print(f"{'size':>5} {'io':>12} {'receive Mpps':>13} {'transmit Mpps':>14}")
    for p in ports:
        print(f"{p.frame_size:>5} {p.io:>12} {p.rx_pps / 1e6:>13.3f} {p.tx_pps / 1e6:>14.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
