"""Benchmark: the reference datapath against testpmd, three cases in one run.

Per frame size: reference client `source` -> testpmd server rxonly, testpmd client txonly
-> testpmd server rxonly, and reference client `source` -> reference server `sink` (the
reference's frames carry their stamps, and its sink reads them). Transmitters run on CPU 1,
receivers on CPU 0, all in the same run, so the ratios are meaningful on a noisy host.
A testpmd receiver's rate is what its port counters show while the link is up; the
reference sink's is read from its status file (counters and the time they were written).

    python -m harness.bench_reference [--sizes 64,1024] [--seconds 3] [--repeat 3]

With --repeat N the three cases run N times, interleaved, and each rate printed is the
median of its N samples (with their range): a burst of other load hits one sample, not
the result.
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
from typing import Any

from harness.peers.testpmd import MemifRole, TestpmdConfig, TestpmdMemifPort, TestpmdProcess

RECEIVER_CPU = 0
SENDER_CPU = 1
WARMUP_SECONDS = 1.0


@dataclasses.dataclass(frozen=True)
class Rate:
    """One measured transmitter -> receiver pair at one frame size."""

    sender: str
    frame_size: int
    rx_pps: float
    rx_gbps: float
    receiver: str = "testpmd"
    latency: dict[str, Any] | None = None  # the reference sink's, over its whole run
    trial: int = 0  # which repetition of the run it belongs to


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


def _memif_ref(cpu: int, *args: str) -> list[str]:
    """argv of memif-ref pinned to `cpu`."""
    return ["taskset", "-c", str(cpu), sys.executable, "-m", "reference_impl.cli", *args]


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
        argv = _memif_ref(
            SENDER_CPU, "client", "--socket", str(sock), "--timeout", str(budget), "--json",
            "source", "--count", str(10**10), "--size", str(size),
        )  # fmt: skip
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


def _sink_counter(status: Path) -> tuple[int, float] | None:
    """(frames received, when the status file was written) of a memif-ref sink."""
    try:
        written = status.stat().st_mtime
        counters = json.loads(status.read_text()).get("counters") or {}
    except (OSError, ValueError):
        return None  # not written yet, or replaced between stat and read
    return int(counters.get("rx_frames", 0)), written


def _wait_sink_counting(status: Path, sink: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while (read := _sink_counter(status)) is None or read[0] == 0:
        if sink.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError("no traffic reached the reference sink")
        time.sleep(0.05)


def _rate_over(status: Path, seconds: float) -> float:
    """Frames per second the sink counted over `seconds` (two status files apart)."""
    first = _sink_counter(status)
    time.sleep(seconds)  # the measured interval itself
    last = _sink_counter(status)
    if first is None or last is None or last[1] <= first[1]:
        raise RuntimeError("the reference sink stopped writing its status")
    return (last[0] - first[0]) / (last[1] - first[1])


def measure_reference_pair(size: int, seconds: float, workdir: Path) -> Rate:
    """The reference client (memif-ref source) transmitting to a reference server sink."""
    sock = workdir / f"ref-{uuid.uuid4().hex[:6]}.sock"
    status = workdir / f"{sock.stem}.status"
    budget = WARMUP_SECONDS + seconds + 2.0  # the source's own bound
    sink = subprocess.Popen(
        _memif_ref(
            RECEIVER_CPU, "server", "--socket", str(sock), "--timeout", str(budget + 15.0),
            "--once", "--json", "--status", str(status), "sink",
        ),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    sender = None
    try:
        deadline = time.monotonic() + 10.0
        while not sock.exists():
            if sink.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the reference sink did not start listening")
            time.sleep(0.02)
        sender = subprocess.Popen(
            _memif_ref(
                SENDER_CPU, "client", "--socket", str(sock), "--timeout", str(budget + 10.0),
                "--json", "source", "--count", str(10**10), "--size", str(size),
                "--seconds", str(budget),
            ),
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )  # fmt: skip
        _wait_sink_counting(status, sink, 15.0)
        time.sleep(WARMUP_SECONDS)  # a warm-up interval, as for testpmd
        pps = _rate_over(status, seconds)
        sender.communicate(timeout=budget + 15.0)
        out, _ = sink.communicate(timeout=30.0)
        result = json.loads(out.decode().strip().splitlines()[-1]).get("result", {})
    finally:
        for process in (sender, sink):
            if process is not None and process.poll() is None:
                process.kill()
                process.communicate()
    gbps = pps * size * 8 / 1e9
    return Rate("reference", size, pps, gbps, receiver="reference", latency=result.get("latency"))


def run(sizes: Sequence[int], seconds: float, binary: str, repeat: int = 1) -> list[Rate]:
    """Measure the three pairs at every size, `repeat` times interleaved, in one run."""
    workdir = Path(tempfile.mkdtemp(prefix="memif-bench-"))
    try:
        rates = []
        for trial in range(repeat):
            for size in sizes:
                for rate in (
                    measure_reference(size, seconds, workdir, binary),
                    measure_testpmd(size, seconds, workdir, binary),
                    measure_reference_pair(size, seconds, workdir),
                ):
                    rates.append(dataclasses.replace(rate, trial=trial))
        return rates
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _samples(rates: Sequence[Rate], sender: str, receiver: str, size: int) -> list[Rate]:
    """Every repetition's sample of one case."""
    return [r for r in rates if (r.sender, r.receiver, r.frame_size) == (sender, receiver, size)]


def _median(rates: Sequence[Rate], sender: str, receiver: str, size: int) -> Rate:
    """The sample with the median rate of one case (the lower middle one of an even count)."""
    samples = sorted(_samples(rates, sender, receiver, size), key=lambda rate: rate.rx_pps)
    return samples[(len(samples) - 1) // 2]


def _ratio(rates: Sequence[Rate], sender: str, receiver: str, size: int) -> float:
    """Median over the trials of (sender -> receiver) / (testpmd -> testpmd) of that trial."""

    def rate_of(trial: int, pair: tuple[str, str]) -> float:
        return next(
            r.rx_pps
            for r in rates
            if (r.trial, r.sender, r.receiver, r.frame_size) == (trial, *pair, size)
        )

    ratios = sorted(
        rate_of(trial, (sender, receiver)) / rate_of(trial, ("testpmd", "testpmd"))
        for trial in sorted({r.trial for r in rates})
        if rate_of(trial, ("testpmd", "testpmd"))
    )
    return ratios[(len(ratios) - 1) // 2] if ratios else float("nan")


def _spread(rates: Sequence[Rate], sample: Rate) -> str:
    same = [
        r.rx_pps / 1e6 for r in _samples(rates, sample.sender, sample.receiver, sample.frame_size)
    ]
    return f"{min(same):.2f}-{max(same):.2f}" if len(same) > 1 else ""


def main(argv: Sequence[str] | None = None) -> int:
    """Print the three rates and their ratios to testpmd -> testpmd per frame size."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="64,1024", help="frame sizes, comma separated")
    parser.add_argument("--seconds", type=float, default=3.0, help="measurement per case")
    parser.add_argument(
        "--repeat", type=int, default=1, help="run the cases this many times (medians)"
    )
    parser.add_argument("--testpmd", default="dpdk-testpmd")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    sizes = [int(size) for size in args.sizes.split(",")]
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    rates = run(sizes, args.seconds, args.testpmd, args.repeat)
    if args.json:
        print(json.dumps([dataclasses.asdict(rate) for rate in rates]))
        return 0
    print(
        f"{'size':>5} {'ref->testpmd':>12} {'testpmd->testpmd':>16} {'ratio':>6} "
        f"{'ref->ref':>9} {'ratio':>6}  ref->ref latency p50/p99 us"
    )
    nan = float("nan")
    for size in sizes:
        ref = _median(rates, "reference", "testpmd", size)
        tpm = _median(rates, "testpmd", "testpmd", size)
        pair = _median(rates, "reference", "reference", size)
        ratio = _ratio(rates, "reference", "testpmd", size)
        pair_ratio = _ratio(rates, "reference", "reference", size)
        latency = pair.latency or {}
        print(
            f"{size:>5} {ref.rx_pps / 1e6:>12.3f} {tpm.rx_pps / 1e6:>16.3f} {ratio:>6.3f} "
            f"{pair.rx_pps / 1e6:>9.3f} {pair_ratio:>6.3f}  "
            f"{latency.get('p50_us', nan):.1f}/{latency.get('p99_us', nan):.1f}"
        )
        if args.repeat > 1:
            print(
                f"{'':>5} {_spread(rates, ref):>12} {_spread(rates, tpm):>16} {'':>6} "
                f"{_spread(rates, pair):>9}   (range of {args.repeat} samples)"
            )
    print(
        "(Mpps"
        + (f", medians of {args.repeat} runs" if args.repeat > 1 else "")
        + "; ratios to testpmd->testpmd of the same run"
        + (", their medians" if args.repeat > 1 else "")
        + "; receivers on CPU 0, transmitters on CPU 1)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
