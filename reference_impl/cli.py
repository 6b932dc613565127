"""memif-ref command line: run the reference server or client with one bounded action.

Exit codes: 0 success, 2 handshake refused (reason printed), 3 timeout, 1 otherwise.
With --json exactly one JSON object is printed on stdout at exit. The client's `attack`
action is the hostile client of the robustness suite (reference_impl.hostile). `memif-ref fuzz`
feeds raw datagrams to the reference control path (reference_impl.fuzz).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from reference_impl import (
    actions,
    endpoint,
    frames,
    fuzz,
    hostile,
    iface_traffic,
    pcap,
    protocol,
    traffic,
    traffic_args,
    wire,
)
from reference_impl import forward as forward_mod
from reference_impl.faults import Fault, parse_faults
from reference_impl.layout import BufferPlacement
from reference_impl.link import FrameRecorder, Link
from reference_impl.wire import MAX_LOG2_RING_SIZE, SECRET_SIZE, InterfaceMode

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_REFUSED = 2
EXIT_TIMEOUT = 3
STATUS_INTERVAL = 0.2  # seconds between status-file updates

DEFAULT_MACS = {"server": "02:fe:00:00:00:01", "client": "02:fe:00:00:00:02"}
DEFAULT_IPS = {"server": frames.DEFAULT_SERVER_IP, "client": frames.DEFAULT_CLIENT_IP}


class UsageError(Exception):
    """Bad command-line input."""


class _Parser(argparse.ArgumentParser):
    """argparse that exits 1 on bad usage, keeping 2 for "handshake refused"."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        raise SystemExit(EXIT_ERROR)


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text} must be positive")
    return value


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text} must not be negative")
    return value


def _sizes(text: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: comma-separated frame sizes") from None
    low, high = frames.CHECK_MIN_FRAME, wire.ETHERNET_MAX_FRAME
    if not sizes or not all(low <= size <= high for size in sizes):
        raise argparse.ArgumentTypeError(f"{text!r}: every size must be {low}..{high} bytes")
    return sizes


def build_parser() -> argparse.ArgumentParser:
    """The memif-ref argument parser."""
    parser = _Parser(
        prog="memif-ref",
        description="Pure-Python reference memif peer. Traffic on an interface instead of "
        "memif: memif-ref iface-source --help, memif-ref iface-sink --help.",
    )
    parser.add_argument("role", choices=["server", "client"])
    parser.add_argument("--socket", required=True, help="socket path (or abstract name)")
    parser.add_argument("--abstract", action="store_true", help="use an abstract socket name")
    parser.add_argument("--id", type=int, default=0, help="interface id (default 0)")
    parser.add_argument("--secret", default="", help="shared secret (at most 23 bytes)")
    parser.add_argument("--rsize", type=int, default=10, help="log2 ring size (1..14)")
    parser.add_argument("--bsize", type=_positive_int, default=2048, help="buffer size")
    parser.add_argument("--queues", type=_positive_int, default=1, help="queue pairs")
    parser.add_argument(
        "--mode",
        choices=[mode.name.lower().replace("_", "-") for mode in InterfaceMode],
        default="ethernet",
        help="interface mode (default ethernet)",
    )
    parser.add_argument("--mac", help="this side's MAC (default 02:fe:00:00:00:01/02)")
    parser.add_argument("--ip", help="this side's IPv4 in 198.18.0.0/15")
    parser.add_argument("--cache-line", type=int, default=64, choices=[64, 128])
    rx_mode = parser.add_mutually_exclusive_group()
    rx_mode.add_argument(
        "--interrupt",
        dest="interrupt",
        action="store_true",
        help="receive in interrupt mode: clear MASK_INT on our RX rings and sleep on their "
        "eventfds until the peer signals",
    )
    rx_mode.add_argument(
        "--poll",
        dest="interrupt",
        action="store_false",
        help="receive by polling (MASK_INT set: the peer does not signal); the default",
    )
    parser.add_argument(
        "--buffers",
        choices=[p.value for p in BufferPlacement],
        default=BufferPlacement.REGION0.value,
        help="client: buffers in region 0 (DPDK/VPP style) or a separate region (libmemif)",
    )
    parser.add_argument(
        "--zero-copy",
        action="store_true",
        help="client: buffers in region 1 apart from the rings (as zero-copy clients do); "
        "frames are received in place and their buffers given back on the next receive",
    )
    parser.add_argument("--timeout", type=float, default=30.0, help="overall bound, seconds")
    parser.add_argument("--json", action="store_true", help="print one JSON object at exit")
    parser.add_argument(
        "--once",
        action="store_true",
        help="server: end responder/sink when the first client leaves (default: serve the "
        "next client until the timeout or count)",
    )
    parser.add_argument(
        "--status", help="keep this file updated with link state and counters (JSON)"
    )
    parser.add_argument(
        "--pcap",
        metavar="FILE",
        help="write every frame sent and received, in order, to this pcap file "
        "(Ethernet, microsecond timestamps; pcap has no direction)",
    )
    parser.add_argument(
        "--pcap-limit",
        type=_non_negative_int,
        default=pcap.DEFAULT_LIMIT,
        metavar="N",
        help=f"frames written to --pcap at most; later ones are only counted "
        f"(default {pcap.DEFAULT_LIMIT})",
    )
    parser.add_argument(
        "--fault",
        action="append",
        default=[],
        choices=[fault.value for fault in Fault],
        help=argparse.SUPPRESS,  # test-only: deliberate misbehaviour (reference_impl.faults)
    )
    sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    sub.add_parser("responder", help="answer ARP and ICMP echo requests")
    forward = sub.add_parser(
        "forward",
        help="send every received frame back, or (--iface) bridge memif and an interface",
    )
    forward.add_argument(
        "--iface",
        metavar="IFNAME",
        help="L2 cross-connect: frames from memif go out of IFNAME (a veth end or TAP, in "
        "this process's network namespace) and frames arriving on IFNAME go out on memif",
    )
    forward.add_argument(
        "--iface-io",
        choices=[io.value for io in forward_mod.PortIO],
        default=forward_mod.PortIO.TPACKET.value,
        help="--iface: TPACKET_V2 rings (default) or one recv/send per frame (the baseline)",
    )
    forward.add_argument(
        "--count",
        type=_positive_int,
        help="--iface: stop after this many frames forwarded (both directions together)",
    )
    check = sub.add_parser(
        "check", help="send numbered frames and check each comes back byte for byte"
    )
    check.add_argument("--count", type=_positive_int, required=True)
    check.add_argument(
        "--sizes",
        type=_sizes,
        default=(64,),
        help="comma-separated frame sizes, used in turn (default 64)",
    )
    check.add_argument(
        "--window", type=_positive_int, default=32, help="frames in flight at most (default 32)"
    )
    check.add_argument(
        "--no-hold",
        dest="hold",
        action="store_false",
        help="exit when the check is over (default: keep the link up until --timeout)",
    )
    ping = sub.add_parser("ping", help="send ICMP echo requests and count replies")
    ping.add_argument("--count", type=_positive_int, required=True)
    ping.add_argument("--size", type=_positive_int, default=64)
    ping.add_argument("--dst", help="peer IPv4 (default: the other role's default)")
    ping.add_argument("--interval", type=float, default=0.01)
    sink = sub.add_parser(
        "sink", help="count received frames; latency and sequence gaps from their stamps"
    )
    sink.add_argument("--count", type=_positive_int)
    sink.add_argument("--seconds", type=traffic_args.seconds)
    source = sub.add_parser(
        "source", help="transmit stamped UDP frames, paced (--rate) or as fast as the ring allows"
    )
    source.add_argument("--count", type=_positive_int, required=True, help="frames at most")
    source.add_argument(
        "--size", type=traffic_args.stamped_size, default=64, help="frame bytes (default 64)"
    )
    source.add_argument("--dst", help="peer IPv4 (default: the other role's default)")
    source.add_argument(
        "--rate",
        type=traffic_args.rate,
        help="frames per second; a frame the ring has no room for waits up to "
        f"{traffic.LATENESS_SHARE * 100:g}%% of --seconds ({traffic.MAX_LATENESS * 1000:g} ms at "
        "most), then counts as unsent (default: as fast as the ring allows)",
    )
    source.add_argument("--seconds", type=traffic_args.seconds, help="stop after this long")
    source.add_argument(
        "--trials",
        metavar="PLAN",
        help="benchmark mode: transmit in the trials this JSON file asks for, one by one "
        '({"id": N, "rate": FPS or null, "seconds": S}; {"stop": true} ends), keeping the '
        "link up between them; --count bounds each trial; results in the --status file",
    )
    attack = sub.add_parser(
        "attack",
        help="client: break one protocol rule on purpose and report the server's answer",
        description="Hostile client (reference_impl.hostile): "
        + "; ".join(f"{a.value}: {hostile.DESCRIPTIONS[a]}" for a in hostile.Attack),
    )
    attack.add_argument("name", choices=[a.value for a in hostile.Attack], metavar="NAME")
    attack.add_argument(
        "--settle",
        type=float,
        default=hostile.DEFAULT_SETTLE,
        help=f"seconds to wait for the server's answer (default {hostile.DEFAULT_SETTLE:g})",
    )
    attack.add_argument(
        "--descriptors",
        type=_positive_int,
        default=hostile.DEFAULT_DESCRIPTORS,
        help="bogus descriptors a descriptor attack publishes "
        f"(default {hostile.DEFAULT_DESCRIPTORS})",
    )
    attack.add_argument(
        "--traffic-seconds",
        type=float,
        default=hostile.DEFAULT_TRAFFIC_SECONDS,
        help="close-mid-traffic: seconds of traffic before the connection is dropped "
        f"(default {hostile.DEFAULT_TRAFFIC_SECONDS:g})",
    )
    return parser


class _Driver:
    """Adapts either endpoint to the actions' LinkDriver."""

    def __init__(
        self,
        ep: endpoint.ServerEndpoint | endpoint.ClientEndpoint,
        if_id: int,
        status_path: str | None = None,
        recorder: FrameRecorder | None = None,
    ) -> None:
        self.endpoint = ep
        self.if_id = if_id
        self.status_path = status_path
        self.recorder = recorder
        self._next_status = 0.0
        self.was_up = False
        self.refusals: list[str] = []
        self.disconnect: protocol.Disconnected | None = None
        self.last_link: Link | None = None
        self.action_facts: dict[str, Any] = {}
        self.link_facts: dict[str, Any] = {
            "negotiated": None,
            "peer_name": None,
            "peer_if_name": None,
        }
        self.peer_rx_mode: str | None = None

    def current_link(self) -> Link | None:
        if isinstance(self.endpoint, endpoint.ServerEndpoint):
            link = self.endpoint.link(self.if_id)
        else:
            link = self.endpoint.link
        if link is not None and link is not self.last_link:
            self.was_up = True
            self.last_link = link
            link.recorder = self.recorder
            self.link_facts = self._describe(link)
        return link

    def _describe(self, link: Link) -> dict[str, Any]:
        """Negotiated parameters and peer names, taken while the link is up."""
        session = next((s for s in self.endpoint.sessions if s.link is link), None)
        client = link.role is protocol.Role.CLIENT
        c2s, s2c = (link.tx, link.rx) if client else (link.rx, link.tx)
        first = (c2s or s2c)[0].view if (c2s or s2c) else None
        posted = int(s2c[0].view.length_column[0]) if s2c and not client else None
        return {
            "negotiated": {
                "c2s_rings": len(c2s),
                "s2c_rings": len(s2c),
                "ring_size": first.size if first else None,
                # The server never learns the client's buffer size; report what it posted.
                "buffer_size": link.buffer_size if client else posted,
            },
            "peer_name": session.protocol.peer_name if session else None,
            "peer_if_name": session.protocol.peer_if_name if session else None,
        }

    def _peer_layout(self) -> dict[str, Any] | None:
        """Server: the layout of the last client seen at CONNECT (checked against §4)."""
        if not isinstance(self.endpoint, endpoint.ServerEndpoint):
            return None
        report = self.endpoint.peer_layouts.get(self.if_id)
        return report.as_dict() if report is not None else None

    def write_status(self, *, force: bool = False) -> None:
        """Publish link state and counters to the status file (atomically, throttled)."""
        now = time.monotonic()
        if self.status_path is None or (now < self._next_status and not force):
            return
        self._next_status = now + STATUS_INTERVAL
        link = self.current_link()
        counted = link or self.last_link
        status = {
            "time": now,  # CLOCK_MONOTONIC: when these counters were read (host-wide clock)
            "link_up": link is not None,
            "was_up": self.was_up,
            "counters": counted.counters.as_dict() if counted else None,
            "disconnect_reason": self.disconnect.reason if self.disconnect else None,
            "refusals": self.refusals,
            **self.link_facts,
            **self.action_facts,
            "peer_layout": self._peer_layout(),
            **self.rx_modes(),
        }
        temporary = f"{self.status_path}.tmp"
        with open(temporary, "w") as stream:
            json.dump(status, stream)
        os.replace(temporary, self.status_path)

    def rx_modes(self) -> dict[str, str | None]:
        """How this side receives ("poll" or "interrupt") and how the peer last did.

        The peer's mode is its MASK_INT on the rings we transmit on (fact sheet §6), read
        while the link is up: "poll" (set on all), "interrupt" (on none) or "mixed".
        """
        link = self.current_link()
        if link is not None and link.tx:
            masked = [queue.view.interrupts_masked for queue in link.tx]
            self.peer_rx_mode = "poll" if all(masked) else "mixed" if any(masked) else "interrupt"
        counted = link or self.last_link
        polling = counted.polling if counted is not None else self.endpoint.polling
        return {"rx_mode": "poll" if polling else "interrupt", "peer_rx_mode": self.peer_rx_mode}

    def count_pending_interrupts(self) -> None:
        """Read (and count) interrupts still pending on an interrupt-mode link's RX rings.

        A receiver its peer kept busy never had to wait, so it may not have read them yet.
        """
        link = self.current_link()
        if link is None or link.polling:
            return
        for queue in range(len(link.rx)):
            with contextlib.suppress(OSError):
                link.acknowledge_interrupt(queue)

    def publish(self, facts: dict[str, Any]) -> None:
        self.action_facts.update(facts)
        self.write_status(force=True)

    def service(self, timeout: float) -> None:
        self.write_status()
        self.rx_modes()  # keep the peer's last mode even without a status file
        for session, event in self.endpoint.service(timeout):
            if isinstance(event, protocol.Disconnected):
                if not session.protocol.was_connected:
                    self.refusals.append(event.reason)
                self.disconnect = event


def _config(args: argparse.Namespace) -> protocol.InterfaceConfig:
    if not 1 <= args.rsize <= MAX_LOG2_RING_SIZE:
        raise UsageError(f"--rsize {args.rsize}: must be 1..{MAX_LOG2_RING_SIZE}")
    secret_bytes = len(args.secret.encode("utf-8", "surrogateescape"))
    if secret_bytes > SECRET_SIZE - 1:
        raise UsageError(
            f"--secret is {secret_bytes} bytes; the memif secret field holds at most "
            f"{SECRET_SIZE - 1} (plus its NUL)"
        )
    try:
        return protocol.InterfaceConfig(
            id=args.id,
            secret=args.secret,
            faults=parse_faults(args.fault),
            mode=InterfaceMode[args.mode.upper().replace("-", "_")],
            if_name=f"memif-ref-{args.role}",
            c2s_rings=args.queues,
            s2c_rings=args.queues,
            log2_ring_size=args.rsize,
            buffer_size=args.bsize,
        )
    except ValueError as exc:
        raise UsageError(str(exc)) from exc


def _addresses(args: argparse.Namespace) -> actions.Addresses:
    other = "client" if args.role == "server" else "server"
    try:
        mac = frames.parse_mac(args.mac or DEFAULT_MACS[args.role])
        ip = frames.benchmark_ip(args.ip or DEFAULT_IPS[args.role])
        peer = frames.benchmark_ip(getattr(args, "dst", None) or DEFAULT_IPS[other])
    except frames.FrameError as exc:
        raise UsageError(str(exc)) from exc
    return actions.Addresses(mac, ip, peer)


def _make_endpoint(
    args: argparse.Namespace, config: protocol.InterfaceConfig
) -> endpoint.ServerEndpoint | endpoint.ClientEndpoint:
    if args.role == "server":
        if args.zero_copy:
            raise UsageError(
                "--zero-copy is a client mode: a server maps whatever memory its client "
                "announces (zero-copy clients included)"
            )
        return endpoint.ServerEndpoint(
            args.socket,
            [config],
            abstract=args.abstract,
            cache_line=args.cache_line,
            polling=not args.interrupt,
        )
    return endpoint.ClientEndpoint(
        args.socket,
        config,
        abstract=args.abstract,
        cache_line=args.cache_line,
        placement=BufferPlacement(args.buffers),
        polling=not args.interrupt,
        zero_copy=args.zero_copy,
    )


def _connect_client(ep: endpoint.ClientEndpoint, deadline: float) -> None:
    """Connect, retrying while the server is not there yet (bounded by the deadline)."""
    while True:
        try:
            ep.connect()
            return
        except endpoint.EndpointError:
            if time.monotonic() + 0.05 >= deadline:
                raise
            time.sleep(0.05)  # nothing to poll: the listener does not exist yet


def _wait_for_link(driver: _Driver, deadline: float, client: bool) -> int | None:
    """Returns an exit code if the link never came up, else None."""
    while driver.current_link() is None:
        if client and driver.refusals:
            return EXIT_REFUSED
        if client and driver.endpoint.sessions == []:
            return EXIT_ERROR
        left = deadline - time.monotonic()
        if left <= 0:
            return EXIT_REFUSED if driver.refusals else EXIT_TIMEOUT
        driver.service(min(left, 0.05))
    return None


def run(args: argparse.Namespace) -> tuple[int, dict[str, Any]]:
    """Run one memif-ref invocation; returns (exit code, JSON report)."""
    deadline = time.monotonic() + args.timeout
    report: dict[str, Any] = {"role": args.role, "action": args.action, "socket": args.socket}
    config = _config(args)
    addresses = _addresses(args)
    capture = _open_pcap(args)
    ep = _make_endpoint(args, config)
    driver = _Driver(ep, config.id, args.status, capture)
    code = EXIT_ERROR
    try:
        if isinstance(ep, endpoint.ClientEndpoint):
            _connect_client(ep, deadline)
            _notice(f"connected to {args.socket}")
        else:
            _notice(f"listening on {args.socket}")
        failed = _wait_for_link(driver, deadline, isinstance(ep, endpoint.ClientEndpoint))
        if failed is not None:
            code = failed
        else:
            _notice(f"link up: peer {driver.link_facts['peer_name']!r}")
            result = _run_action(args, driver, addresses, deadline)
            report["result"] = result_as_dict(result)
            if result.ok:
                code = EXIT_OK
            elif result.stopped_by == "deadline":
                code = EXIT_TIMEOUT
            else:
                code = EXIT_ERROR
    except endpoint.EndpointError as exc:
        report["error"] = str(exc)
        code = EXIT_ERROR
    finally:
        link = driver.last_link
        driver.count_pending_interrupts()
        report["link_up"] = driver.was_up
        report["state"] = "up" if driver.current_link() is not None else "down"
        report.update(driver.link_facts)
        report["counters"] = link.counters.as_dict() if link else None
        report.update(driver.rx_modes())
        ep.close()
        reason = driver.disconnect.reason if driver.disconnect else None
        if code == EXIT_REFUSED and driver.refusals:
            reason = driver.refusals[-1]
        report["disconnect_reason"] = reason
        report["disconnected_by_peer"] = driver.disconnect.by_peer if driver.disconnect else None
        report["refusals"] = driver.refusals
        driver.write_status(force=True)
        if capture is not None:
            capture.close()
            report["pcap"] = {"frames": capture.seen, "written": capture.written}
            _notice(
                f"pcap {args.pcap}: {capture.written} of {capture.seen} frames written"
                + (f" (--pcap-limit {capture.limit})" if capture.not_written else "")
            )
    report["exit_code"] = code
    return code, report


def _open_pcap(args: argparse.Namespace) -> pcap.PcapWriter | None:
    if args.pcap is None:
        return None
    try:
        return pcap.PcapWriter(args.pcap, limit=args.pcap_limit)
    except OSError as exc:
        raise UsageError(f"--pcap {args.pcap}: {exc.strerror or exc}") from exc


def _notice(text: str) -> None:
    """A progress line on stderr (stdout is kept for the one JSON object)."""
    print(f"memif-ref: {text}", file=sys.stderr, flush=True)


def result_as_dict(result: actions.ActionResult) -> dict[str, Any]:
    """Action result as a JSON-ready dict."""
    return {"ok": result.ok, "stopped_by": result.stopped_by, **result.facts}


def _run_action(
    args: argparse.Namespace, driver: _Driver, addresses: actions.Addresses, deadline: float
) -> actions.ActionResult:
    serve = args.role == "server" and not args.once
    if args.action == "responder":
        return actions.respond(driver, addresses, deadline, keep_serving=serve)
    if args.action == "ping":
        return actions.ping(
            driver, addresses, deadline, count=args.count, size=args.size, interval=args.interval
        )
    if args.action == "sink":
        return actions.sink(
            driver, deadline, count=args.count, seconds=args.seconds, keep_serving=serve
        )
    if args.action == "forward" and args.iface is not None:
        return _bridge(args, driver, deadline, serve)
    if args.action == "forward":
        return actions.forward(driver, deadline, keep_serving=serve)
    if args.action == "check":
        return actions.check(
            driver,
            addresses,
            deadline,
            count=args.count,
            sizes=args.sizes,
            window=args.window,
            hold=args.hold,
        )
    if args.trials is not None:
        if args.rate is not None or args.seconds is not None:
            raise UsageError("source --trials takes rate and duration from the plan, not options")
        return actions.trial_source(
            driver,
            addresses,
            deadline,
            size=args.size,
            plan_path=Path(args.trials),
            max_frames=args.count,
        )
    return actions.source(
        driver,
        addresses,
        deadline,
        count=args.count,
        size=args.size,
        rate=args.rate,
        seconds=args.seconds,
    )


def _bridge(
    args: argparse.Namespace, driver: _Driver, deadline: float, serve: bool
) -> actions.ActionResult:
    """`forward --iface`: cross-connect the link and an interface (reference_impl.forward)."""
    if args.mode != "ethernet":
        raise UsageError(f"forward --iface needs --mode ethernet, not {args.mode}")
    try:
        port = forward_mod.open_port(args.iface, forward_mod.PortIO(args.iface_io))
    except OSError as exc:
        return actions.ActionResult(False, "error", {"error": str(exc), "iface": args.iface})
    _notice(f"bridging memif and {args.iface} ({args.iface_io})")
    try:
        return forward_mod.bridge(driver, port, deadline, count=args.count, keep_serving=serve)
    finally:
        port.close()


def _print_human(code: int, report: dict[str, Any]) -> None:
    out = sys.stdout if code == EXIT_OK else sys.stderr
    if report.get("error"):
        print(f"memif-ref: {report['error']}", file=sys.stderr)
    if code == EXIT_TIMEOUT and not report.get("link_up"):
        print("memif-ref: timed out waiting for the link", file=sys.stderr)
    if report.get("negotiated"):
        print(f"link: {report['negotiated']} peer={report['peer_name']!r}", file=out)
    if report.get("result"):
        print(f"{report['action']}: {report['result']}", file=out)
    if report.get("counters"):
        print(f"counters: {report['counters']}", file=out)
    if report.get("disconnect_reason") and code != EXIT_REFUSED:
        print(f"disconnect: {report['disconnect_reason']}", file=out)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `memif-ref`."""
    words = list(sys.argv[1:] if argv is None else argv)
    if words[:1] == ["fuzz"]:  # the control-path fuzzer (reference_impl.fuzz)
        return fuzz.main(words[1:])
    if words and words[0] in iface_traffic.COMMANDS:
        return iface_traffic.main(words)
    args = build_parser().parse_args(words)
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        code, report = _attack(args) if args.action == "attack" else run(args)
    except UsageError as exc:
        print(f"memif-ref: error: {exc}", file=sys.stderr)
        code, report = EXIT_ERROR, {"error": str(exc), "exit_code": EXIT_ERROR}
    except KeyboardInterrupt:
        code, report = EXIT_ERROR, {"error": "interrupted", "exit_code": EXIT_ERROR}
    if code == EXIT_REFUSED:
        reason = report.get("disconnect_reason")
        print(f"memif-ref: handshake refused: {reason}", file=sys.stderr)
    if args.json:
        print(json.dumps(report, sort_keys=True))
    elif args.action == "attack":
        _print_attack(report)
    else:
        _print_human(code, report)
    return code


def _attack(args: argparse.Namespace) -> tuple[int, dict[str, Any]]:
    """`memif-ref client ... attack NAME`: exit 0 once the attack was carried out (whatever
    the server answered), 1 if it could not be."""
    if args.role != "client":
        raise UsageError("attack: only a client attacks (memif-ref client --socket S attack ...)")
    _config(args)  # the same checks of --id and --secret as for a correct client
    target = hostile.Target(args.socket, args.abstract, args.id, args.secret)
    _notice(f"attack {args.name} on {args.socket}")
    result = hostile.run_attack(
        hostile.Attack(args.name),
        target,
        timeout=args.timeout,
        settle=args.settle,
        descriptors=args.descriptors,
        traffic_seconds=args.traffic_seconds,
    )
    report = result.as_dict()
    code = EXIT_ERROR if result.error else EXIT_OK
    report["exit_code"] = code
    return code, report


def _print_attack(report: dict[str, Any]) -> None:
    if "attack" not in report:  # a usage error, already printed
        return
    if report.get("error"):
        print(f"memif-ref: attack not carried out: {report['error']}", file=sys.stderr)
        return
    print(f"attack {report['attack']}: {report['description']}")
    print(f"sent: {'; '.join(report['sent'])}")
    print(f"received: {', '.join(report['received']) or 'nothing'}")
    reason = f" ({report['disconnect_reason']!r})" if report.get("disconnect_reason") else ""
    print(f"answer: {report['answer']}{reason}")


if __name__ == "__main__":
    raise SystemExit(main())
