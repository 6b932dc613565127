"""Benchmark: reference client TX vs testpmd client TX into a testpmd server in rxonly.

Both transmitters run on CPU 1 and the receiving testpmd on CPU 0, in the same run, so the
ratio is meaningful on a noisy host. The rate is what the receiving testpmd counts while
the link is up (its counters reset at disconnect).

    python -m harness.bench_reference [--sizes 64,1024] [--seconds 3]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from harness.peers.testpmd import MemifRole, TestpmdConfig, TestpmdMemifPort, TestpmdProcess

RECEIVER_CPU = 0
SENDER_CPU = 1
WARMUP_SECONDS = 1.0


@dataclasses.dataclass(frozen=True)
class Rate:
    """One measured transmitter at one frame size."""

    sender: str
    frame_size: int
    rx_pps: float
    rx_gbps: float


@contextmanager
def _receiver(workdir: Path, binary: str) -> Iterator[tuple[TestpmdProcess, Path]]:
    sock = workdir / f"rx-{uuid.uuid4().hex[:6]}.sock"
    prefix = f"bench-rx-{uuid.uuid4().hex[:8]}"
    config = TestpmdConfig(
        ports=(TestpmdMemifPort(role=MemifRole.SERVER, socket_path=sock),),
        file_prefix=prefix,
        cpu=RECEIVER_CPU,
        forward_mode="rxonly",
    )
    process = TestpmdProcess(config, workdir / f"{prefix}.log", binary=binary).start()
    try:
        process.start_forwarding()
        yield process, sock
    finally:
        process.stop()


def _measure(receiver: TestpmdProcess, seconds: float) -> tuple[float, float]:
    receiver.wait_for_link(0, timeout=15.0)
    deadline = time.monotonic() + 10.0
    while receiver.port_stats(0).rx_packets == 0:  # traffic has started
        if time.monotonic() > deadline:
            raise RuntimeError("no traffic reached the receiver")
        time.sleep(0.05)
    receiver.measure_rates(0, WARMUP_SECONDS)
    rates = receiver.measure_rates(0, seconds)
    return rates.rx_pps, rates.rx_bps / 1e9


def measure_reference(size: int, seconds: float, workdir: Path, binary: str) -> Rate:
    """The reference client (memif-ref source) transmitting to testpmd rxonly."""
    with _receiver(workdir, binary) as (receiver, sock):
        budget = WARMUP_SECONDS + seconds + 15.0
        argv = [
            "taskset", "-c", str(SENDER_CPU), sys.executable, "-m", "reference_impl.cli",
            "client", "--socket", str(sock), "--timeout", str(budget), "--json",
            "source", "--count", str(10**10), "--size", str(size),
        ]  # fmt: skip
        sender = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            pps, gbps = _measure(receiver, seconds)
        finally:
            sender.kill()
            sender.communicate()
    return Rate("reference", size, pps, gbps)


def measure_testpmd(size: int, seconds: float, workdir: Path, binary: str) -> Rate:
    """A testpmd client in txonly transmitting to testpmd rxonly."""
    with _receiver(workdir, binary) as (receiver, sock):
        prefix = f"bench-tx-{uuid.uuid4().hex[:8]}"
        config = TestpmdConfig(
            ports=(TestpmdMemifPort(role=MemifRole.CLIENT, socket_path=sock),),
            file_prefix=prefix,
            cpu=SENDER_CPU,
            forward_mode="txonly",
            txpkts=str(size),
        )
        with TestpmdProcess(config, workdir / f"{prefix}.log", binary=binary) as sender:
            sender.wait_for_link(0)
            sender.start_forwarding()
            pps, gbps = _measure(receiver, seconds)
    return Rate("testpmd", size, pps, gbps)


def run(sizes: Sequence[int], seconds: float, binary: str) -> list[Rate]:
    """Measure both transmitters at every size, in one run."""
    workdir = Path(tempfile.mkdtemp(prefix="memif-bench-"))
    try:
        rates = []
        for size in sizes:
            rates.append(measure_reference(size, seconds, workdir, binary))
            rates.append(measure_testpmd(size, seconds, workdir, binary))
        return rates
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def main(argv: Sequence[str] | None = None) -> int:
    """Print both rates and their ratio per frame size."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="64,1024", help="frame sizes, comma separated")
    parser.add_argument("--seconds", type=float, default=3.0, help="measurement per case")
    parser.add_argument("--testpmd", default="dpdk-testpmd")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    sizes = [int(size) for size in args.sizes.split(",")]
    rates = run(sizes, args.seconds, args.testpmd)
    if args.json:
        print(json.dumps([dataclasses.asdict(rate) for rate in rates]))
        return 0
    print(f"{'size':>6} {'reference Mpps':>15} {'testpmd Mpps':>13} {'ratio':>6}")
    for size in sizes:
        ref = next(r for r in rates if r.sender == "reference" and r.frame_size == size)
        tpm = next(r for r in rates if r.sender == "testpmd" and r.frame_size == size)
        ratio = ref.rx_pps / tpm.rx_pps if tpm.rx_pps else float("nan")
        print(f"{size:>6} {ref.rx_pps / 1e6:>15.3f} {tpm.rx_pps / 1e6:>13.3f} {ratio:>6.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
