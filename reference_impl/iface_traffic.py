"""memif-ref iface-source / iface-sink: stamped traffic on an interface, through TPACKET_V2.

    memif-ref iface-source --iface IF --size S --count N --seconds T [--rate PPS]
                           [--src-mac M --dst-mac M --src-ip A --dst-ip A] [--json]
    memif-ref iface-sink --iface IF --seconds T [--count N] [--ready FILE]
                         [--stop-file FILE [--drain S]] [--json]

IF is a veth end or TAP in this process's network namespace. The source sends stamped
copies of one UDP frame (reference_impl.stamps), paced or as fast as the TX ring drains;
the sink counts what arrives and reads the stamps (latency, sequence gaps). Both stop by
themselves after their frames or seconds; the sink also `--drain` seconds after its
`--stop-file` appears (a benchmark creates it when the generator is done, so a slow
generator start cannot cut off the last frames). Exit 0 on success, 1 otherwise; with --json
one JSON object on stdout: {"action", "iface", "result": {facts}, "exit_code"}.
"""

from __future__ import annotations

import argparse
import json
import select
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from reference_impl import frames, stamps, tpacket, traffic, traffic_args
from reference_impl.fastpath import frame_windows

COMMANDS = ("iface-source", "iface-sink")
EXIT_OK = 0
EXIT_ERROR = 1
RX_BURST = 4096  # frames taken off the RX ring at most per call
IDLE_WAIT = 0.01  # seconds the sink waits for the socket at a time while nothing arrives
DRAIN_WAIT = 1.0  # seconds the source waits for the kernel to send its last frames
STOP_FILE_POLL = 0.01  # seconds between two looks of the sink for its stop file
DEFAULT_DRAIN = 0.5  # seconds the sink keeps counting after its stop file appeared
DEFAULT_SRC_MAC = "02:fe:00:00:00:01"
DEFAULT_DST_MAC = "ff:ff:ff:ff:ff:ff"


class _Parser(argparse.ArgumentParser):
    """argparse that exits 1 on bad usage, as memif-ref does."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        raise SystemExit(EXIT_ERROR)


def build_parser() -> argparse.ArgumentParser:
    """The parser of both commands (the first word picks one)."""
    parser = _Parser(prog="memif-ref", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    source = sub.add_parser("iface-source", help="send stamped UDP frames out of an interface")
    source.add_argument("--iface", required=True, help="interface (veth end, TAP)")
    source.add_argument("--size", type=traffic_args.stamped_size, required=True)
    source.add_argument("--count", type=traffic_args.positive_int, required=True)
    source.add_argument("--seconds", type=traffic_args.seconds, required=True)
    source.add_argument(
        "--rate",
        type=traffic_args.rate,
        help="frames per second; a frame the TX ring has no room for waits up to "
        f"{traffic.LATENESS_SHARE * 100:g}%% of --seconds ({traffic.MAX_LATENESS * 1000:g} ms at "
        "most), then counts as unsent (default: as fast as the ring drains)",
    )
    source.add_argument("--src-mac", type=traffic_args.mac, default=DEFAULT_SRC_MAC)
    source.add_argument("--dst-mac", type=traffic_args.mac, default=DEFAULT_DST_MAC)
    source.add_argument(
        "--src-ip", type=traffic_args.benchmark_ip, default=frames.DEFAULT_SERVER_IP
    )
    source.add_argument(
        "--dst-ip", type=traffic_args.benchmark_ip, default=frames.DEFAULT_CLIENT_IP
    )
    source.add_argument("--json", action="store_true", help="print one JSON object at exit")
    sink = sub.add_parser("iface-sink", help="count frames arriving on an interface")
    sink.add_argument("--iface", required=True, help="interface (veth end, TAP)")
    sink.add_argument("--seconds", type=traffic_args.seconds, required=True)
    sink.add_argument("--count", type=traffic_args.positive_int, help="stop after this many")
    sink.add_argument("--ready", type=Path, help="create this file once the sink listens")
    sink.add_argument("--stop-file", type=Path, help="stop --drain seconds after this file appears")
    sink.add_argument(
        "--drain",
        type=traffic_args.seconds,
        default=DEFAULT_DRAIN,
        help=f"seconds to keep counting after the stop file appeared (default {DEFAULT_DRAIN})",
    )
    sink.add_argument("--json", action="store_true", help="print one JSON object at exit")
    return parser


def send(args: argparse.Namespace) -> dict[str, Any]:
    """iface-source: the generator's facts (sent, unsent, offered, tx_pps, elapsed, ...)."""
    frame = frames.udp_frame(args.size, args.src_mac, args.dst_mac, args.src_ip, args.dst_ip)
    lateness = traffic.max_lateness(args.seconds)
    generator = traffic.Generator(frame, count=args.count, rate=args.rate, max_lateness=lateness)
    with tpacket.TpacketPort(args.iface) as port:
        if args.size > port.tx_capacity:
            raise ValueError(
                f"--size {args.size}: {args.iface} takes frames of {port.tx_capacity} bytes at most"
            )
        # the schedule, not a condition, makes a paced source wait: nothing to poll
        traffic.transmit_window(generator, args.seconds, lambda: port, _sleep)
        stopped = generator.last_sent if generator.last_sent is not None else time.monotonic()
        drained = _drain(port, time.monotonic() + DRAIN_WAIT)
        facts = generator.facts(stopped)
        facts.update(drained=drained, iface_counters=port.statistics())
    return {"ok": True, "stopped_by": "count" if generator.done else "duration", **facts}


def _sleep(seconds: float) -> None:
    """A paced source's wait for its next frame (unpaced, 0: retry at once)."""
    if seconds > 0:
        time.sleep(seconds)


def _drain(port: tpacket.TpacketPort, until: float) -> bool:
    """Poll (bounded) until the kernel has sent every queued TX slot."""
    while port.tx_pending():
        if time.monotonic() >= until:
            return False
        select.select([], [], [], 0.001)  # TX completion raises no event to wait on
    return True


def receive(args: argparse.Namespace) -> dict[str, Any]:
    """iface-sink: received, stamped, rx_pps, latency, sequence gaps, interface counters."""
    receiver = traffic.StampReceiver()
    with tpacket.TpacketPort(args.iface) as port:
        if args.ready is not None:
            args.ready.write_text("listening\n")
        end = time.monotonic() + args.seconds
        stopped_by = "duration"
        look = 0.0  # when to look for the stop file next
        while (now := time.monotonic()) < end:
            if args.stop_file is not None and now >= look:
                look = now + STOP_FILE_POLL
                if args.stop_file.exists() and now + args.drain < end:
                    end, stopped_by = now + args.drain, "stop-file"
            batch = port.receive(RX_BURST)
            seen_ns = time.monotonic_ns()  # after the ring was read: never before arrival
            if not len(batch):
                select.select([port], [], [], min(IDLE_WAIT, end - now))
                continue
            windows = frame_windows(batch, stamps.STAMP_OFFSET, stamps.STAMP_SIZE)
            receiver.add(windows, now, seen_ns)
            if args.count is not None and receiver.received >= args.count:
                stopped_by = "count"
                break
        facts = receiver.facts()
        facts["iface_counters"] = port.statistics()
    ok = args.count is None or receiver.received >= args.count
    return {"ok": ok, "stopped_by": stopped_by, **facts}


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str]) -> int:
    """Run `memif-ref iface-source ...` or `memif-ref iface-sink ...`; returns the exit code."""
    args = build_parser().parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupt)
    report: dict[str, Any] = {"action": args.command, "iface": args.iface}
    try:
        result = send(args) if args.command == "iface-source" else receive(args)
    except (OSError, frames.FrameError, ValueError) as exc:
        report["error"] = str(exc)
        code = EXIT_ERROR
    except KeyboardInterrupt:
        report["error"] = "interrupted"
        code = EXIT_ERROR
    else:
        report["result"] = result
        code = EXIT_OK if result["ok"] else EXIT_ERROR
    report["exit_code"] = code
    if args.json:
        print(json.dumps(report, sort_keys=True))
    elif "error" in report:
        print(f"memif-ref: {args.command}: {report['error']}", file=sys.stderr)
    else:
        print(f"{args.command} {args.iface}: {report['result']}")
    if "error" in report and args.json:
        print(f"memif-ref: {args.command}: {report['error']}", file=sys.stderr)
    return code


__all__ = ["COMMANDS", "build_parser", "main", "receive", "send"]
