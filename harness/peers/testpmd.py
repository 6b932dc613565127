"""DPDK dpdk-testpmd as a memif peer: its command line, its interactive prompt, and its output."""

from __future__ import annotations

import abc
import codecs
import contextlib
import enum
import os
import re
import select
import shutil
import signal
import stat
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Final, Self

from harness.errors import LogTailError
from harness.masking import mask_text
from harness.topology.hugepages import hugepages_available, hugetlbfs_mounts
from reference_impl.wire import SECRET_SIZE

PROMPT: Final = "testpmd> "
"""The interactive prompt; every command's output ends with it."""

DEFAULT_BINARY: Final = "dpdk-testpmd"
LINE_BUFFER_WRAPPER: Final = ("stdbuf", "-oL", "-eL")
"""testpmd's stdout is a pipe, so glibc block-buffers it while the prompt is written with
write(2): without line buffering command output arrives after the prompt that follows it."""

MEMIF_MAX_LOG2_RING_SIZE: Final = 14
MEMIF_SECRET_MAX_LEN: Final = SECRET_SIZE - 1  # the 24-byte field keeps its NUL
UNIX_SOCKET_PATH_MAX: Final = 107  # sizeof(sockaddr_un.sun_path) - 1 for the NUL
_FILE_PREFIX_RE: Final = re.compile(r"[A-Za-z0-9_-]{1,48}")
_LOG_TAIL_LINES: Final = 40


# --------------------------------------------------------------------------- errors


class TestpmdError(LogTailError):
    """A testpmd process failed to do what the harness asked; carries the tail of its log."""

    __test__ = False  # not a pytest test class, despite the name
    log_label = "testpmd log"


class TestpmdStartupError(TestpmdError):
    """testpmd exited, timed out or failed to create its ports during start-up."""


class TestpmdTimeoutError(TestpmdError):
    """testpmd did not answer (prompt, link up, exit) within the allowed time."""


class TestpmdExitedError(TestpmdError):
    """testpmd exited while the harness was driving it.

    Attributes:
        returncode: The process's return code (negative: killed by that signal).
        crashed: True if it was killed by a signal the harness did not send (a peer crash).
    """

    def __init__(self, message: str, returncode: int | None, crashed: bool, log_tail: str) -> None:
        self.returncode = returncode
        self.crashed = crashed
        super().__init__(message, log_tail)


class TestpmdCommandError(TestpmdError):
    """testpmd rejected a command or answered in a way the harness does not understand."""


class TestpmdParseError(ValueError):
    """A field expected in testpmd output was not found."""

    __test__ = False


# --------------------------------------------------------------------------- configuration


class MemifRole(enum.StrEnum):
    """memif role, spelled as DPDK 22.11 devargs want it (older DPDK: master/slave)."""

    SERVER = "server"
    CLIENT = "client"


def _reject_devarg_separators(name: str, value: str) -> None:
    if any(char in value for char in ",= \t\n"):
        raise ValueError(f"{name} {value!r} must not contain ',', '=' or whitespace (devargs)")


@dataclass(frozen=True)
class TestpmdMemifPort:
    """One net_memif virtual device of a testpmd instance.

    Attributes:
        role: Server (listens on the socket, owns no regions) or client (connects, owns regions).
        socket_path: Control socket path; a filesystem path unless socket_abstract is set.
        id: memif interface id, must match the peer's.
        secret: Shared secret (at most 24 characters), or None for no secret.
        rsize: log2 of the ring size (10 -> 1024 descriptors).
        bsize: Packet buffer size in bytes.
        zero_copy: Client zero-copy mode (needs --single-file-segments; added by TestpmdConfig).
        mac: MAC address of the port, or None for a random one.
        socket_abstract: Bind/connect an abstract socket (DPDK's default); False by default here.
    """

    __test__ = False

    role: MemifRole
    socket_path: str | Path
    id: int = 0
    secret: str | None = None
    rsize: int = 10
    bsize: int = 2048
    zero_copy: bool = False
    mac: str | None = None
    socket_abstract: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "role", MemifRole(self.role))
        path = str(self.socket_path)
        if not path:
            raise ValueError("socket_path must not be empty")
        _reject_devarg_separators("socket_path", path)
        if len(path.encode()) > UNIX_SOCKET_PATH_MAX:
            raise ValueError(
                f"socket_path is {len(path.encode())} bytes; a unix socket path holds at most "
                f"{UNIX_SOCKET_PATH_MAX}: {path}"
            )
        if self.id < 0 or self.id > 0xFFFFFFFF:
            raise ValueError(f"id {self.id} is not a 32-bit unsigned integer")
        if self.secret is not None:
            _reject_devarg_separators("secret", self.secret)
            if len(self.secret.encode()) > MEMIF_SECRET_MAX_LEN:
                raise ValueError(
                    f"secret longer than {MEMIF_SECRET_MAX_LEN} bytes (a peer would read "
                    "it cut short)"
                )
        if not 1 <= self.rsize <= MEMIF_MAX_LOG2_RING_SIZE:
            raise ValueError(f"rsize (log2 ring size) {self.rsize} not in 1..14")
        if self.bsize <= 0:
            raise ValueError(f"bsize {self.bsize} must be positive")
        if self.mac is not None and not re.fullmatch(
            r"(?:[0-9A-Fa-f]{2}:){5}[0-9A-Fa-f]{2}", self.mac
        ):
            raise ValueError(f"mac {self.mac!r} is not aa:bb:cc:dd:ee:ff")

    def vdev_arg(self, index: int) -> str:
        """Build the `--vdev` value for this port.

        Args:
            index: Device index within the testpmd instance (net_memif<index>).

        Returns:
            For example `net_memif0,role=server,id=0,socket=/run/m.sock,socket-abstract=no,
            rsize=10,bsize=2048`, then `secret=`, `zero-copy=yes` and `mac=` when set.
        """
        parts = [
            f"net_memif{index}",
            f"role={self.role.value}",
            f"id={self.id}",
            f"socket={self.socket_path}",
            f"socket-abstract={'yes' if self.socket_abstract else 'no'}",
            f"rsize={self.rsize}",
            f"bsize={self.bsize}",
        ]
        if self.secret is not None:
            parts.append(f"secret={self.secret}")
        if self.zero_copy:
            parts.append("zero-copy=yes")
        if self.mac is not None:
            parts.append(f"mac={self.mac}")
        return ",".join(parts)


_IFNAME_RE: Final = re.compile(r"[A-Za-z0-9_.-]{1,15}")


@dataclass(frozen=True)
class TestpmdAfPacketPort:
    """One net_af_packet virtual device: a testpmd port on a kernel interface (veth, TAP).

    The interface must be in testpmd's network namespace. testpmd puts its ports in
    promiscuous mode, so the interface sees every frame. The frames testpmd takes from a
    veth whose peer end belongs to a host carry that host's unfilled checksums unless TX
    checksum offload is off on the host's end (DESIGN.md, field notes).

    Attributes:
        iface: Interface name.
        qpairs: RX/TX queue pairs.
        qdisc_bypass: Send straight to the driver (PACKET_QDISC_BYPASS).
        framecnt: TPACKET ring slots per queue, or None for DPDK's default (512).
    """

    __test__ = False

    iface: str
    qpairs: int = 1
    qdisc_bypass: bool = True
    framecnt: int | None = None

    def __post_init__(self) -> None:
        if not _IFNAME_RE.fullmatch(self.iface):
            raise ValueError(f"iface {self.iface!r} is not an interface name")
        if self.qpairs < 1:
            raise ValueError("qpairs must be >= 1")
        if self.framecnt is not None and self.framecnt < 1:
            raise ValueError("framecnt must be >= 1")

    def vdev_arg(self, index: int) -> str:
        """Build the `--vdev` value, e.g. `net_af_packet1,iface=veth0,qpairs=1,qdisc_bypass=1`.

        Args:
            index: Device index within the testpmd instance.
        """
        parts = [
            f"net_af_packet{index}",
            f"iface={self.iface}",
            f"qpairs={self.qpairs}",
            f"qdisc_bypass={int(self.qdisc_bypass)}",
        ]
        if self.framecnt is not None:
            parts.append(f"framecnt={self.framecnt}")
        return ",".join(parts)


TestpmdPort = TestpmdMemifPort | TestpmdAfPacketPort
"""A port of a testpmd instance: memif, or a kernel interface through AF_PACKET."""


@dataclass(frozen=True)
class TestpmdConfig:
    """Everything that goes on one testpmd command line.

    Attributes:
        ports: memif (and af_packet) ports, in port-id order; `forward_mode="io"` with a
            memif and an af_packet port bridges the two.
        file_prefix: EAL --file-prefix, unique per instance (derive it from the run id); names
            the runtime directory /var/run/dpdk/<file_prefix> and hugepage files.
        cpu: CPU that all lcores of this instance are pinned to (`--lcores 0@cpu,1@cpu`).
        hugepages: Use hugetlbfs; False runs with `--no-huge -m memory_mb`.
        lcore_map: --lcores map from a NUMA placement (overrides `cpu`).
        memory_mb: EAL memory with --no-huge.
        total_num_mbufs: mbuf pool size; None lets testpmd size it (~155k mbufs, ~340 MB,
            seconds of start-up without hugepages).
        forward_mode: testpmd forwarding mode: io, rxonly, txonly, icmpecho, macswap, ...
        rxq: RX queues per port.
        txq: TX queues per port.
        burst: Packets per burst, or None for testpmd's default (32).
        txpkts: Segment lengths of txonly frames, e.g. "64" or "1024" (sum = frame size).
        nb_cores: Forwarding cores; lcores 0..nb_cores are all pinned to `cpu`.
        no_flush_rx: Keep RX queues' contents at `start` (testpmd flushes them by default).
        interactive: Run with `-i` and drive the prompt.
        auto_start: Start forwarding at once (`--auto-start`).
        tx_first: Send a first burst when forwarding starts (loopbacks need one): `--tx-first`
            without -i (testpmd refuses it with -i), `start tx_first` in start_forwarding().
        stats_period: Print port statistics every N seconds (non-interactive mode).
        extra_eal_args: More EAL arguments, placed before `--`.
        extra_args: More testpmd arguments, placed after `--`.
    """

    __test__ = False

    ports: tuple[TestpmdPort, ...]
    file_prefix: str
    cpu: int = 0
    lcore_map: str | None = None
    hugepages: bool = False
    memory_mb: int = 512
    total_num_mbufs: int | None = 16384
    forward_mode: str = "io"
    rxq: int = 1
    txq: int = 1
    burst: int | None = None
    txpkts: str | None = None
    nb_cores: int = 1
    no_flush_rx: bool = False
    interactive: bool = True
    auto_start: bool = False
    tx_first: bool = False
    stats_period: int | None = None
    extra_eal_args: tuple[str, ...] = ()
    extra_args: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "ports", tuple(self.ports))
        object.__setattr__(self, "extra_eal_args", tuple(self.extra_eal_args))
        object.__setattr__(self, "extra_args", tuple(self.extra_args))
        if not _FILE_PREFIX_RE.fullmatch(self.file_prefix):
            raise ValueError(
                f"file_prefix {self.file_prefix!r} must be 1-48 characters of [A-Za-z0-9_-]"
            )
        if self.cpu < 0:
            raise ValueError(f"cpu {self.cpu} must be >= 0")
        if self.nb_cores < 1:
            raise ValueError("nb_cores must be >= 1")
        if self.rxq < 1 or self.txq < 1:
            raise ValueError("rxq and txq must be >= 1")
        if self.txpkts is not None and not re.fullmatch(r"\d+(?:,\d+)*", self.txpkts):
            raise ValueError(f"txpkts {self.txpkts!r} must be comma-separated lengths, e.g. '64'")
        if not re.fullmatch(r"[a-z0-9-]+", self.forward_mode):
            raise ValueError(f"forward_mode {self.forward_mode!r} is not a testpmd mode name")

    @property
    def zero_copy(self) -> bool:
        """True if any port asks for zero-copy."""
        return any(port.zero_copy for port in self.memif_ports)

    @property
    def memif_ports(self) -> tuple[TestpmdMemifPort, ...]:
        """The memif ports among `ports`."""
        return tuple(port for port in self.ports if isinstance(port, TestpmdMemifPort))

    @property
    def lcores(self) -> str:
        """The --lcores map: the main lcore and every forwarding lcore on `cpu`.

        A NUMA placement's own map (`lcore_map`) wins when given.
        """
        if self.lcore_map is not None:
            return self.lcore_map
        return ",".join(f"{lcore}@{self.cpu}" for lcore in range(self.nb_cores + 1))

    def eal_args(self) -> list[str]:
        """EAL arguments (before `--`)."""
        args = ["--lcores", self.lcores, "--file-prefix", self.file_prefix, "--no-pci"]
        if not self.hugepages:
            args += ["--no-huge", "-m", str(self.memory_mb)]
        if self.zero_copy:
            # memif zero-copy shares EAL memory by fd: one file (or memfd with --no-huge)
            # per memseg list. Without it the vdev probe fails ("multi-file segments").
            args.append("--single-file-segments")
        args += [f"--vdev={port.vdev_arg(index)}" for index, port in enumerate(self.ports)]
        args += self.extra_eal_args
        return args

    def app_args(self) -> list[str]:
        """testpmd application arguments (after `--`)."""
        args: list[str] = []
        if self.interactive:
            args.append("-i")
        if self.auto_start:
            args.append("--auto-start")
        if self.tx_first and not self.interactive:
            # testpmd: "--tx-first cannot be used on interactive mode"; start_forwarding()
            # sends `start tx_first` instead.
            args.append("--tx-first")
        args += [
            f"--forward-mode={self.forward_mode}",
            f"--nb-cores={self.nb_cores}",
            f"--rxq={self.rxq}",
            f"--txq={self.txq}",
        ]
        if self.burst is not None:
            args.append(f"--burst={self.burst}")
        if self.txpkts is not None:
            args.append(f"--txpkts={self.txpkts}")
        if self.total_num_mbufs is not None:
            args.append(f"--total-num-mbufs={self.total_num_mbufs}")
        if self.no_flush_rx:
            args.append("--no-flush-rx")
        if self.stats_period is not None:
            args.append(f"--stats-period={self.stats_period}")
        args += self.extra_args
        return args

    def argv(self, binary: str = DEFAULT_BINARY) -> list[str]:
        """Build the full command line (no shell involved).

        Args:
            binary: testpmd executable name or path.

        Returns:
            `[binary, *eal_args, "--", *app_args]`.
        """
        return [binary, *self.eal_args(), "--", *self.app_args()]


# --------------------------------------------------------------------------- parsed output


@dataclass(frozen=True)
class PortStats:
    """`show port stats <port>`: the NIC counters of one port.

    Rates are since the previous `show port stats` of that port (0 on the first call).
    """

    port_id: int
    rx_packets: int
    rx_missed: int
    rx_bytes: int
    rx_errors: int
    rx_nombuf: int
    tx_packets: int
    tx_errors: int
    tx_bytes: int
    rx_pps: int
    tx_pps: int
    rx_bps: int | None = None
    tx_bps: int | None = None


@dataclass(frozen=True)
class PortInfo:
    """`show port info <port>`: identity and link state of one port."""

    port_id: int
    link_status: bool
    link_speed: str
    mac: str
    driver_name: str
    device_name: str | None = None
    devargs: str | None = None
    link_duplex: str | None = None
    mtu: int | None = None
    promiscuous: bool | None = None
    rx_queues: int | None = None
    tx_queues: int | None = None


@dataclass(frozen=True)
class ForwardCounters:
    """One block of `stop` / `show fwd stats all` output (a port, or the accumulated total)."""

    rx_packets: int
    rx_dropped: int
    rx_total: int
    tx_packets: int
    tx_dropped: int
    tx_total: int


@dataclass(frozen=True)
class ForwardStats:
    """Forward statistics printed by `stop`: per port, and accumulated over all ports."""

    ports: Mapping[int, ForwardCounters]
    total: ForwardCounters


@dataclass(frozen=True)
class PortRates:
    """Packet and bit rates of a port, computed from two counter reads."""

    port_id: int
    seconds: float
    rx_packets: int
    tx_packets: int
    rx_pps: float
    tx_pps: float
    rx_bps: float
    tx_bps: float


def _int(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern + r"\s*(-?\d+)")


_PORT_STATS_HEADER: Final = re.compile(r"#+ NIC statistics for port (\d+)\s+#+")
_PORT_STATS_FIELDS: Final[dict[str, re.Pattern[str]]] = {
    "rx_packets": _int(r"RX-packets:"),
    "rx_missed": _int(r"RX-missed:"),
    "rx_bytes": _int(r"RX-bytes:"),
    "rx_errors": _int(r"RX-errors:"),
    "rx_nombuf": _int(r"RX-nombuf:"),
    "tx_packets": _int(r"TX-packets:"),
    "tx_errors": _int(r"TX-errors:"),
    "tx_bytes": _int(r"TX-bytes:"),
    "rx_pps": _int(r"Rx-pps:"),
    "tx_pps": _int(r"Tx-pps:"),
    "rx_bps": _int(r"Rx-bps:"),
    "tx_bps": _int(r"Tx-bps:"),
}
_PORT_STATS_OPTIONAL: Final = frozenset({"rx_bps", "tx_bps"})

_PORT_INFO_HEADER: Final = re.compile(r"\*+ Infos for port (\d+)\s+\*+")
_PORT_INFO_FIELDS: Final[dict[str, re.Pattern[str]]] = {
    "link_status": re.compile(r"^Link status: (up|down)\s*$", re.M),
    "link_speed": re.compile(r"^Link speed: (.+?)\s*$", re.M),
    "mac": re.compile(r"^MAC address: ([0-9A-Fa-f]{2}(?::[0-9A-Fa-f]{2}){5})\s*$", re.M),
    "driver_name": re.compile(r"^Driver name: (\S+)\s*$", re.M),
    "device_name": re.compile(r"^Device name: (\S+)\s*$", re.M),
    "devargs": re.compile(r"^Devargs: (\S*)\s*$", re.M),
    "link_duplex": re.compile(r"^Link duplex: (\S+)\s*$", re.M),
    "mtu": re.compile(r"^MTU: (\d+)\s*$", re.M),
    "promiscuous": re.compile(r"^Promiscuous mode: (enabled|disabled)\s*$", re.M),
    "rx_queues": re.compile(r"^Current number of RX queues: (\d+)\s*$", re.M),
    "tx_queues": re.compile(r"^Current number of TX queues: (\d+)\s*$", re.M),
}
_PORT_INFO_REQUIRED: Final = frozenset({"link_status", "link_speed", "mac", "driver_name"})

_FORWARD_PORT_HEADER: Final = re.compile(r"-+ Forward statistics for port (\d+)\s+-+")
_FORWARD_TOTAL_HEADER: Final = re.compile(r"\++ Accumulated forward statistics for all ports\s*\++")
_FORWARD_FIELDS: Final[dict[str, re.Pattern[str]]] = {
    "rx_packets": _int(r"RX-packets:"),
    "rx_dropped": _int(r"RX-dropped:"),
    "rx_total": _int(r"RX-total:"),
    "tx_packets": _int(r"TX-packets:"),
    "tx_dropped": _int(r"TX-dropped:"),
    "tx_total": _int(r"TX-total:"),
}
_ANY_BLOCK_HEADER: Final = re.compile(
    "|".join(
        p.pattern
        for p in (
            _PORT_STATS_HEADER,
            _PORT_INFO_HEADER,
            _FORWARD_PORT_HEADER,
            _FORWARD_TOTAL_HEADER,
        )
    )
)

_VERSION_RE: Final = re.compile(r"RTE Version: 'DPDK ([0-9][0-9A-Za-z.\-_+]*)'")
_VDEV_PROBE_FAILED_RE: Final = re.compile(r"failed to initialize (\S+) device")
_PORT_CREATED_RE: Final = re.compile(r"^Port (\d+): [0-9A-Fa-f]{2}(?::[0-9A-Fa-f]{2}){5}\s*$", re.M)
_EAL_CAUSE_RE: Final = re.compile(r"Cause: (.+)")
_DRIVER_FAILURE_RE: Final = re.compile(
    r"^(?:\w+\(\)|EAL): (?:FATAL: )?(?:Failed|failed|Cannot|cannot|No free) .+$", re.M
)
"""A driver's own account of a failure (memif_socket_create(): Failed to setup socket ...)."""


def _blocks(header: re.Pattern[str], text: str) -> Iterator[tuple[re.Match[str], str]]:
    """Yield (header match, body) for each block that starts with `header`.

    A body runs to the next block header of any known kind, or to the end of text.
    """
    for match in header.finditer(text):
        following = _ANY_BLOCK_HEADER.search(text, match.end())
        yield match, text[match.end() : following.start() if following else len(text)]


def _extract(
    fields: Mapping[str, re.Pattern[str]],
    body: str,
    required: frozenset[str] | None,
    what: str,
) -> dict[str, str]:
    values: dict[str, str] = {}
    for name, pattern in fields.items():
        match = pattern.search(body)
        if match is not None:
            values[name] = match.group(1)
        elif required is None or name in required:
            raise TestpmdParseError(f"{what}: field {name} ({pattern.pattern!r}) not found")
    return values


def parse_all_port_stats(text: str) -> dict[int, PortStats]:
    """Parse every port block of `show port stats <port|all>` output.

    Args:
        text: Command output.

    Returns:
        Port id -> PortStats, in output order.

    Raises:
        TestpmdParseError: No block, or a block misses a field.
    """
    result: dict[int, PortStats] = {}
    for header, body in _blocks(_PORT_STATS_HEADER, text):
        port_id = int(header.group(1))
        optional = frozenset(_PORT_STATS_FIELDS) - _PORT_STATS_OPTIONAL
        values = _extract(_PORT_STATS_FIELDS, body, optional, f"port stats of port {port_id}")
        result[port_id] = PortStats(port_id=port_id, **{k: int(v) for k, v in values.items()})
    if not result:
        raise TestpmdParseError(f"no 'NIC statistics for port' block in: {text[:200]!r}")
    return result


def parse_port_stats(text: str) -> PortStats:
    """Parse `show port stats <port>` output (the first port block).

    Args:
        text: Command output.

    Returns:
        The port's counters.

    Raises:
        TestpmdParseError: No statistics block, or a counter is missing.
    """
    return next(iter(parse_all_port_stats(text).values()))


def parse_port_info(text: str) -> PortInfo:
    """Parse `show port info <port>` output.

    Args:
        text: Command output.

    Returns:
        The port's identity and link state.

    Raises:
        TestpmdParseError: No info block, or link status, speed, MAC or driver is missing.
    """
    header = _PORT_INFO_HEADER.search(text)
    if header is None:
        raise TestpmdParseError(f"no 'Infos for port' block in: {text[:200]!r}")
    port_id = int(header.group(1))
    body = text[header.end() :]
    following = _PORT_INFO_HEADER.search(body)
    if following is not None:
        body = body[: following.start()]
    values = _extract(_PORT_INFO_FIELDS, body, _PORT_INFO_REQUIRED, f"port info of port {port_id}")
    return PortInfo(
        port_id=port_id,
        link_status=values["link_status"] == "up",
        link_speed=values["link_speed"],
        mac=values["mac"].upper(),
        driver_name=values["driver_name"],
        device_name=values.get("device_name"),
        devargs=values.get("devargs"),
        link_duplex=values.get("link_duplex"),
        mtu=int(values["mtu"]) if "mtu" in values else None,
        promiscuous=values["promiscuous"] == "enabled" if "promiscuous" in values else None,
        rx_queues=int(values["rx_queues"]) if "rx_queues" in values else None,
        tx_queues=int(values["tx_queues"]) if "tx_queues" in values else None,
    )


def _forward_counters(body: str, what: str) -> ForwardCounters:
    values = _extract(_FORWARD_FIELDS, body, None, what)
    return ForwardCounters(**{k: int(v) for k, v in values.items()})


def parse_forward_stats(text: str) -> ForwardStats:
    """Parse the forward statistics printed by `stop` (or `show fwd stats all`).

    Args:
        text: Command output.

    Returns:
        Per-port counters and the accumulated totals.

    Raises:
        TestpmdParseError: The accumulated block is missing (e.g. "Packet forwarding not
            started"), or a counter is missing.
    """
    ports = {
        int(header.group(1)): _forward_counters(body, f"forward stats of port {header.group(1)}")
        for header, body in _blocks(_FORWARD_PORT_HEADER, text)
    }
    totals = list(_blocks(_FORWARD_TOTAL_HEADER, text))
    if not totals:
        raise TestpmdParseError(f"no accumulated forward statistics in: {text[:200]!r}")
    return ForwardStats(ports=ports, total=_forward_counters(totals[0][1], "accumulated"))


def parse_version(text: str) -> str:
    """Extract the DPDK version from EAL's `RTE Version: 'DPDK 22.11.11'` line.

    Args:
        text: testpmd output of a run with `-v`.

    Returns:
        The version number, e.g. "22.11.11".

    Raises:
        TestpmdParseError: No version line.
    """
    match = _VERSION_RE.search(text)
    if match is None:
        raise TestpmdParseError(f"no \"RTE Version: 'DPDK ...'\" line in: {text[:300]!r}")
    return match.group(1)


def version(binary: str = DEFAULT_BINARY, timeout: float = 15.0) -> str:
    """Ask testpmd for its DPDK version.

    Runs `<binary> -v -h`: `-v` makes EAL print the version, `-h` makes it exit right after
    option parsing, so nothing is initialised and no runtime directory is created.

    Args:
        binary: testpmd executable name or path.
        timeout: Seconds to wait for it.

    Returns:
        The version number, e.g. "22.11.11".

    Raises:
        TestpmdError: The binary is missing, hangs, or prints no version.
    """
    try:
        done = subprocess.run(
            [binary, "-v", "-h"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            timeout=timeout,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        raise TestpmdError(f"cannot run {binary} -v -h: {error}") from error
    output = done.stdout.decode(errors="replace")
    try:
        return parse_version(output)
    except TestpmdParseError as error:
        raise TestpmdError(f"{binary} -v -h printed no version", _tail(output)) from error


# --------------------------------------------------------------------------- host helpers


def runtime_dir(file_prefix: str) -> Path:
    """Where EAL keeps the runtime files of an instance (as eal_create_runtime_dir does).

    Args:
        file_prefix: The instance's --file-prefix.

    Returns:
        /var/run/dpdk/<prefix> for root, else $XDG_RUNTIME_DIR (or /tmp)/dpdk/<prefix>.
    """
    if os.geteuid() == 0:
        base = Path("/var/run")
    else:
        base = Path(os.environ.get("XDG_RUNTIME_DIR", "/tmp"))
    return base / "dpdk" / file_prefix


def _tail(text: str, lines: int = _LOG_TAIL_LINES) -> str:
    return "\n".join(text.replace("\r", "").splitlines()[-lines:])


_SALIENT_LINE_RE: Final = re.compile(
    r"^(?!\s{4}).*(?:error|fatal|fail|cause:|unrecognized|invalid|cannot|segmentation"
    r"|n't support|not supported).*$",
    re.I | re.M,
)


def salient_lines(text: str, limit: int = 12) -> list[str]:
    """Pick the lines of testpmd output that explain a failure (errors, EAL cause).

    testpmd answers a bad option with its whole usage text, which pushes the one useful
    line out of any log tail; this finds it.

    Args:
        text: testpmd output.
        limit: Most lines returned.

    Returns:
        Distinct error-looking lines, in order of appearance.
    """
    found: dict[str, None] = {}
    for match in _SALIENT_LINE_RE.finditer(text.replace("\r", "")):
        found.setdefault(match.group(0).strip(), None)
    return list(found)[:limit]


# --------------------------------------------------------------------------- transports


class TestpmdTransport(abc.ABC):
    """Where one testpmd runs: start it, exchange text with its console, watch and end it.

    TestpmdProcess drives the prompt through this and nothing else, so the same driver
    serves a local process (PipeTransport) and a container (ContainerTransport in
    harness.peers.testpmd_container). Exit statuses follow subprocess.Popen: negative when
    the program was killed by that signal.
    """

    __test__ = False

    @abc.abstractmethod
    def start(self, argv: Sequence[str]) -> None:
        """Start `argv` (no shell) with stdin kept open and stdout+stderr merged.

        Raises:
            TestpmdStartupError: It could not be started at all.
        """

    @abc.abstractmethod
    def read(self, timeout: float) -> str | None:
        """Output that is pending or arrives within `timeout` seconds (0: do not wait).

        Returns:
            The text ("" if nothing arrived in time), or None once the output has ended.
        """

    @abc.abstractmethod
    def write(self, text: str) -> None:
        """Write `text` to the program's stdin.

        Raises:
            BrokenPipeError: The program's stdin is closed (it exited).
        """

    @abc.abstractmethod
    def poll(self) -> int | None:
        """The exit status, or None while it runs."""

    @abc.abstractmethod
    def wait(self, timeout: float) -> int | None:
        """Wait up to `timeout` seconds for the exit; the exit status, or None if still running."""

    @abc.abstractmethod
    def send_signal(self, sig: signal.Signals) -> None:
        """Send `sig` to what this transport started, and to nothing else."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release the streams and whatever holds the program (safe to call twice)."""

    @property
    @abc.abstractmethod
    def pid(self) -> int | None:
        """A host process id of the program (or of its init), None if not running here."""

    def program_exists(self, name: str) -> bool:
        """Whether `name` can be run where this transport runs things (default: assume so)."""
        return True


class PipeTransport(TestpmdTransport):
    """testpmd as a local process in its own session (process group), driven through pipes.

    stdin is a pipe kept open (testpmd quits at stdin EOF); stdout and stderr are merged
    into one pipe read with select().
    """

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        """Prepare the transport.

        Args:
            env: Environment for the process (default: inherited).
        """
        self.env = dict(env) if env is not None else None
        self._proc: subprocess.Popen[bytes] | None = None
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def start(self, argv: Sequence[str]) -> None:
        """Start `argv` in a new session."""
        try:
            self._proc = subprocess.Popen(
                list(argv),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env=self.env,
            )
        except OSError as error:
            raise TestpmdStartupError(f"cannot run {argv[0]}: {error}") from error

    def read(self, timeout: float) -> str | None:
        """Read what the pipe holds within `timeout`."""
        if self._proc is None or self._proc.stdout is None or self._proc.stdout.closed:
            return None
        fd = self._proc.stdout.fileno()
        readable, _, _ = select.select([fd], [], [], max(timeout, 0.0))
        if not readable:
            return ""
        data = os.read(fd, 65536)
        if not data:
            return None
        return self._decoder.decode(data)

    def write(self, text: str) -> None:
        """Write to stdin and flush."""
        if self._proc is None or self._proc.stdin is None:
            raise BrokenPipeError("testpmd has no stdin")
        self._proc.stdin.write(text.encode())
        self._proc.stdin.flush()

    def poll(self) -> int | None:
        """Popen.poll() (it reaps)."""
        return self._proc.poll() if self._proc is not None else None

    def wait(self, timeout: float) -> int | None:
        """Popen.wait() bounded by `timeout`."""
        if self._proc is None:
            return None
        try:
            return self._proc.wait(max(timeout, 0.0))
        except subprocess.TimeoutExpired:
            return None

    def send_signal(self, sig: signal.Signals) -> None:
        """Signal the process group this transport started."""
        proc = self._proc
        # poll() reaps; until we reap it the process (or its zombie) holds the group id,
        # so the group we signal is the one we started.
        if proc is None or proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)

    def close(self) -> None:
        """Close stdin and stdout (the process, if still running, keeps running)."""
        if self._proc is None:
            return
        for stream in (self._proc.stdin, self._proc.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()

    @property
    def pid(self) -> int | None:
        """Process id (also the process group id)."""
        return self._proc.pid if self._proc is not None else None

    def program_exists(self, name: str) -> bool:
        """Whether `name` is on PATH."""
        return shutil.which(name) is not None


# --------------------------------------------------------------------------- the process


class TestpmdProcess:
    """One running testpmd, driven through its interactive prompt.

    Where it runs is its transport's business: by default (PipeTransport) a local process
    in its own session (process group), with stdin a pipe the driver keeps open (testpmd
    quits at stdin EOF) and stdout+stderr merged into one pipe; or a container
    (harness.peers.testpmd_container.ContainerTransport). The driver copies the output to
    `log_path` as it reads. Output is only read when the driver is called (commands, waits,
    stop): a long idle period with `stats_period` set can fill the pipe and stall testpmd's
    main lcore (forwarding lcores keep running).

    Use as a context manager, or call start() and stop().
    """

    __test__ = False

    def __init__(
        self,
        config: TestpmdConfig,
        log_path: str | Path,
        *,
        binary: str = DEFAULT_BINARY,
        startup_timeout: float = 30.0,
        line_buffer_wrapper: tuple[str, ...] = LINE_BUFFER_WRAPPER,
        env: Mapping[str, str] | None = None,
        transport: TestpmdTransport | None = None,
    ) -> None:
        """Prepare (but do not start) a testpmd process.

        Args:
            config: Command-line configuration.
            log_path: File that receives all of testpmd's output.
            binary: testpmd executable name or path.
            startup_timeout: Seconds allowed until the first prompt.
            line_buffer_wrapper: Command prefix that line-buffers testpmd's stdout; needed
                in interactive mode so command output precedes the next prompt.
            env: Environment for the process (default: inherited); local transport only.
            transport: Where testpmd runs; a local PipeTransport(env) if None.
        """
        self.config = config
        self.log_path = Path(log_path)
        self.binary = binary
        self.startup_timeout = startup_timeout
        self.line_buffer_wrapper = line_buffer_wrapper
        self.env = dict(env) if env is not None else None
        self.transport = transport if transport is not None else PipeTransport(self.env)
        self._started = False
        self._log_file: IO[bytes] | None = None
        self._output = ""
        self._consumed = 0
        self._eof = False
        self._owed_prompts = 0
        self._signals_sent: set[int] = set()
        self._preexisting_sockets: set[Path] = set()
        self._cleaned = False

    # ----- lifecycle

    @property
    def argv(self) -> list[str]:
        """The command line that start() runs, wrapper included."""
        return [*self.line_buffer_wrapper, *self.config.argv(self.binary)]

    @property
    def pid(self) -> int | None:
        """Process id (for a local process also the process group id), or None before start()."""
        return self.transport.pid if self._started else None

    @property
    def running(self) -> bool:
        """True while the process has not exited."""
        return self._started and self.transport.poll() is None

    @property
    def returncode(self) -> int | None:
        """Exit status: None while running, negative when killed by a signal."""
        return self.transport.poll() if self._started else None

    @property
    def crashed(self) -> bool:
        """True if the process was killed by a signal the driver did not send (e.g. SIGSEGV)."""
        code = self.returncode
        return code is not None and code < 0 and -code not in self._signals_sent

    def start(self) -> Self:
        """Start testpmd and wait until it is ready (first prompt, all ports created).

        Returns:
            self.

        Raises:
            TestpmdStartupError: It could not be run, exited, timed out, or failed to create a
                memif port (testpmd carries on without a port whose vdev probe failed).
        """
        if self._started:
            raise TestpmdError("start() called twice")
        for wrapper_binary in self.line_buffer_wrapper[:1]:
            if not self.transport.program_exists(wrapper_binary):
                raise TestpmdStartupError(
                    f"{wrapper_binary} not found: it line-buffers testpmd's output (coreutils)"
                )
        self._preexisting_sockets = {
            Path(port.socket_path)
            for port in self.config.memif_ports
            if not port.socket_abstract and os.path.lexists(port.socket_path)
        }
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log_file = self.log_path.open("wb")
        self._log_file.write(("$ " + mask_text(" ".join(self.argv)) + "\n").encode())
        try:
            self.transport.start(self.argv)
        except BaseException:
            self._close_log()
            self.transport.close()
            raise
        self._started = True
        try:
            self._wait_ready()
        except BaseException:
            self.stop(graceful=False)
            raise
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.startup_timeout
        ready: Callable[[str], int] = (
            _find_prompt if self.config.interactive else _find_noninteractive_ready
        )
        end = self._read_until(ready, deadline)
        if end < 0:
            if self._eof:
                self._wait_exit(5.0)
                key_lines = "".join(f"\n  {line}" for line in salient_lines(self.log_text()))
                raise TestpmdStartupError(
                    f"testpmd exited during start-up (return code {self.returncode})"
                    + self._eal_cause()
                    + key_lines,
                    self.log_tail(),
                )
            raise TestpmdTimeoutError(
                f"testpmd not ready after {self.startup_timeout:.0f} s", self.log_tail()
            )
        startup = self._take(end)
        failed = _VDEV_PROBE_FAILED_RE.findall(startup)
        created = {int(port) for port in _PORT_CREATED_RE.findall(startup)}
        if failed or len(created) < len(self.config.ports):
            raise TestpmdStartupError(
                f"testpmd created ports {sorted(created)} of {len(self.config.ports)}"
                + (f"; vdev probe failed for {', '.join(failed)}" if failed else ""),
                self.log_tail(),
            )

    def _eal_cause(self) -> str:
        """EAL's exit cause, and the first driver failure before it (testpmd goes on without
        a port whose probe failed, so its own cause is often a later consequence)."""
        text = self.log_text()
        match = _EAL_CAUSE_RE.search(text)
        driver = _DRIVER_FAILURE_RE.search(text)
        cause = f": {match.group(1).strip()}" if match else ""
        return cause + (f"; {driver.group(0).strip()}" if driver else "")

    def quit(self, timeout: float = 15.0) -> int | None:
        """Send `quit` and wait for testpmd to exit (it closes ports and removes its socket).

        Args:
            timeout: Seconds to wait for the exit.

        Returns:
            The return code, or None if it is still running after `timeout`.
        """
        if not self.running:
            return self.returncode
        with contextlib.suppress(OSError, ValueError):
            self._write("quit\n")
        return self._wait_exit(timeout)

    def stop(
        self, graceful: bool = True, quit_timeout: float = 10.0, term_timeout: float = 5.0
    ) -> int | None:
        """Stop testpmd and remove what it left behind. Safe to call more than once.

        Sends `quit` (if graceful and interactive), then SIGTERM and after `term_timeout`
        SIGKILL to the process group it started, and only to that. Then removes the EAL
        runtime directory, hugepage files with its prefix, and server sockets it created.

        Args:
            graceful: Try `quit` at the prompt first.
            quit_timeout: Seconds allowed for `quit`.
            term_timeout: Seconds between SIGTERM and SIGKILL.

        Returns:
            The return code (None if never started).
        """
        if not self._started:
            self._close_log()
            return None
        if self.running and graceful and self.config.interactive:
            self.quit(quit_timeout)
        for sig, wait in ((signal.SIGTERM, term_timeout), (signal.SIGKILL, 10.0)):
            if not self.running:
                break
            self._signal_group(sig)
            self._wait_exit(wait)
        self._drain(0.0)
        self.transport.close()
        if not self.running:
            self._cleanup_files()
        self._close_log()
        return self.returncode

    def _signal_group(self, sig: signal.Signals) -> None:
        if not self.running:
            return
        self._signals_sent.add(int(sig))
        self.transport.send_signal(sig)

    def _cleanup_files(self) -> None:
        if self._cleaned:
            return
        self._cleaned = True
        shutil.rmtree(runtime_dir(self.config.file_prefix), ignore_errors=True)
        for mount in hugetlbfs_mounts():
            for leftover in mount.glob(f"{self.config.file_prefix}map_*"):
                with contextlib.suppress(OSError):
                    leftover.unlink()
        for port in self.config.memif_ports:
            path = Path(port.socket_path)
            if port.role is not MemifRole.SERVER or port.socket_abstract:
                continue
            if path in self._preexisting_sockets:
                continue
            with contextlib.suppress(OSError):
                if stat.S_ISSOCK(path.lstat().st_mode):
                    path.unlink()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    # ----- output plumbing

    def log_text(self) -> str:
        """All output so far (reads what is pending without waiting)."""
        self._drain(0.0)
        return self._output.replace("\r", "")

    def log_tail(self, lines: int = _LOG_TAIL_LINES) -> str:
        """The last `lines` lines of output."""
        return _tail(self.log_text(), lines)

    def _close_log(self) -> None:
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def _read_chunk(self, timeout: float) -> bool:
        """Read what is available within `timeout`; False on EOF or nothing read."""
        if self._eof or not self._started:
            return False
        text = self.transport.read(max(timeout, 0.0))
        if text is None:
            self._eof = True
            return False
        if not text:
            return False
        self._output += text
        if self._log_file is not None:
            self._log_file.write(text.encode())
            self._log_file.flush()
        return True

    def _drain(self, timeout: float) -> None:
        """Read until nothing arrives for `timeout` seconds (0: only what is pending)."""
        with contextlib.suppress(OSError, ValueError):
            while self._read_chunk(timeout):
                pass

    def _pending(self) -> str:
        return self._output[self._consumed :]

    def _read_until(self, find: Callable[[str], int], deadline: float) -> int:
        """Read until find(pending text) >= 0 or the deadline or EOF; return find's result."""
        while True:
            end = find(self._pending())
            if end >= 0 or self._eof:
                return end
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return -1
            self._read_chunk(remaining)

    def _take(self, end: int) -> str:
        """Consume `end` characters of pending text and return them."""
        text = self._pending()[:end]
        self._consumed += len(text)
        return text

    def _wait_exit(self, timeout: float) -> int | None:
        if not self._started:
            return None
        deadline = time.monotonic() + timeout
        while self.transport.poll() is None and not self._eof and time.monotonic() < deadline:
            self._read_chunk(min(0.2, deadline - time.monotonic()))
        return self.transport.wait(max(deadline - time.monotonic(), 0.0))

    def _write(self, text: str) -> None:
        if not self._started:
            raise TestpmdError("testpmd is not started")
        self.transport.write(text)

    def _exited_error(self, doing: str) -> TestpmdExitedError:
        self._wait_exit(5.0)
        code = self.returncode
        if code is not None and code < 0:
            how = f"killed by {signal.Signals(-code).name}"
        else:
            how = f"return code {code}"
        verdict = " (peer crash)" if self.crashed else ""
        return TestpmdExitedError(
            f"testpmd exited while {doing}: {how}{verdict}", code, self.crashed, self.log_tail()
        )

    def wait_output(self, pattern: str | re.Pattern[str], timeout: float) -> re.Match[str]:
        """Wait until unsolicited output (e.g. an event message) matches `pattern`.

        Args:
            pattern: Regular expression searched in output not yet returned by a command.
            timeout: Seconds to wait.

        Returns:
            The match; output up to its end is consumed.

        Raises:
            TestpmdTimeoutError: No match in time.
            TestpmdExitedError: testpmd exited first.
        """
        regex = re.compile(pattern)
        found: list[re.Match[str]] = []

        def find(text: str) -> int:
            match = regex.search(text)
            if match is None:
                return -1
            found.append(match)
            return match.end()

        end = self._read_until(find, time.monotonic() + timeout)
        if end < 0:
            if self._eof:
                raise self._exited_error(f"waiting for {regex.pattern!r}")
            raise TestpmdTimeoutError(f"no {regex.pattern!r} within {timeout} s", self.log_tail())
        self._take(end)
        return found[-1]

    # ----- commands

    def command(self, text: str, timeout: float = 10.0) -> str:
        """Send one command line and return its output, up to the next prompt.

        Output that arrived unsolicited before the command (events, periodic stats), and the
        late output of an earlier command that timed out, is skipped; it stays in the log.

        Args:
            text: The command, without newline.
            timeout: Seconds to wait for the prompt.

        Returns:
            The output without the echoed command line and without the prompt ("\\r" removed).

        Raises:
            TestpmdTimeoutError: No prompt within `timeout`.
            TestpmdExitedError: testpmd exited (crashed, or quit) before the prompt.
        """
        if "\n" in text or "\r" in text:
            raise ValueError("one command line at a time")
        if not self.config.interactive:
            raise TestpmdCommandError("command() needs an interactive testpmd (-i)")
        deadline = time.monotonic() + timeout
        find_prompt = _find_prompt
        self._drain(0.0)
        while self._owed_prompts:  # an earlier command timed out: skip its late output
            end = self._read_until(find_prompt, deadline)
            if end < 0:
                if self._eof:
                    raise self._exited_error(f"before command {text!r}")
                raise TestpmdTimeoutError(
                    f"testpmd still busy with an earlier command; {text!r} not sent",
                    self.log_tail(),
                )
            self._take(end)
            self._owed_prompts -= 1
        if self._eof or not self.running:
            raise self._exited_error(f"before command {text!r}")
        self._consumed = len(self._output)
        try:
            self._write(text + "\n")
        except (BrokenPipeError, ValueError) as error:
            raise self._exited_error(f"sending {text!r}") from error
        self._owed_prompts = 1
        end = self._read_until(find_prompt, deadline)
        if end < 0:
            if self._eof:
                raise self._exited_error(f"running {text!r}")
            raise TestpmdTimeoutError(f"no prompt {timeout} s after {text!r}", self.log_tail())
        self._owed_prompts = 0
        output = _strip_prompt(self._take(end)).replace("\r", "")
        first, newline, rest = output.partition("\n")
        return rest if newline and first.strip() == text.strip() else output

    def start_forwarding(self, tx_first: bool | None = None, timeout: float = 10.0) -> str:
        """`start` (or `start tx_first`) packet forwarding. Note: start flushes RX queues
        unless the config sets no_flush_rx.

        Args:
            tx_first: Send one burst first; default from the config.
            timeout: Seconds to wait for the prompt.

        Returns:
            testpmd's description of the forwarding setup.

        Raises:
            TestpmdCommandError: testpmd refused (e.g. "Packet forwarding already started").
        """
        first = self.config.tx_first if tx_first is None else tx_first
        output = self.command("start tx_first" if first else "start", timeout)
        if "packet forwarding - ports=" not in output:
            raise TestpmdCommandError(f"start failed: {output.strip()!r}", self.log_tail())
        return output

    def stop_forwarding(self, timeout: float = 10.0) -> ForwardStats:
        """`stop` packet forwarding and return the forward statistics it prints.

        Stop while the peer is still connected: DPDK 22.11's memif counters restart from 0
        when the peer disconnects, so `stop` then shows 0 (or, if `start` saw non-zero
        counters, a wrapped difference).

        Args:
            timeout: Seconds to wait for the prompt.

        Returns:
            Per-port and accumulated forward counters.

        Raises:
            TestpmdCommandError: Forwarding was not started, or the output is not understood.
        """
        output = self.command("stop", timeout)
        try:
            return parse_forward_stats(output)
        except TestpmdParseError as error:
            raise TestpmdCommandError(f"stop: {output.strip()!r}", self.log_tail()) from error

    def port_stats(self, port: int, timeout: float = 10.0) -> PortStats:
        """`show port stats <port>`.

        Args:
            port: Port id.
            timeout: Seconds to wait for the prompt.

        Returns:
            The port's counters.
        """
        output = self.command(f"show port stats {port}", timeout)
        try:
            return parse_port_stats(output)
        except TestpmdParseError as error:
            raise TestpmdCommandError(f"port stats {port}: {output.strip()!r}") from error

    def port_info(self, port: int, timeout: float = 10.0) -> PortInfo:
        """`show port info <port>`.

        Args:
            port: Port id.
            timeout: Seconds to wait for the prompt.

        Returns:
            The port's identity and link state.
        """
        output = self.command(f"show port info {port}", timeout)
        try:
            return parse_port_info(output)
        except TestpmdParseError as error:
            raise TestpmdCommandError(f"port info {port}: {output.strip()!r}") from error

    def wait_for_link(self, port: int, timeout: float = 10.0, interval: float = 0.05) -> PortInfo:
        """Poll `show port info` until the port's link is up.

        Between polls it waits on testpmd's output (returning early on any event message),
        never longer than `interval`.

        Args:
            port: Port id.
            timeout: Seconds before giving up.
            interval: Longest pause between polls.

        Returns:
            The port info that showed the link up.

        Raises:
            TestpmdTimeoutError: Link still down after `timeout`.
        """
        deadline = time.monotonic() + timeout
        while True:
            info = self.port_info(port, timeout=max(deadline - time.monotonic(), 1.0))
            if info.link_status:
                return info
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TestpmdTimeoutError(
                    f"port {port} link still down after {timeout} s", self.log_tail()
                )
            self._read_chunk(min(interval, remaining))

    def set_fwd(self, mode: str, timeout: float = 10.0) -> None:
        """`set fwd <mode>`.

        Args:
            mode: Forwarding mode (io, rxonly, txonly, icmpecho, macswap, ...).
            timeout: Seconds to wait for the prompt.

        Raises:
            TestpmdCommandError: testpmd did not confirm the mode.
        """
        output = self.command(f"set fwd {mode}", timeout)
        if f"Set {mode} packet forwarding mode" not in output:
            raise TestpmdCommandError(f"set fwd {mode}: {output.strip()!r}")

    def clear_stats(self, timeout: float = 10.0) -> None:
        """`clear port stats all` (forward statistics are reset by every `start`).

        Args:
            timeout: Seconds to wait for the prompt.
        """
        output = self.command("clear port stats all", timeout)
        if "cleared" not in output:
            raise TestpmdCommandError(f"clear port stats all: {output.strip()!r}")

    def measure_rates(self, port: int, seconds: float) -> PortRates:
        """Measure a port's rates from two counter reads `seconds` apart.

        Reads testpmd's output while it waits, so periodic output cannot block it.

        Args:
            port: Port id.
            seconds: Measurement interval.

        Returns:
            Packets and rates over the measured interval (from the counters, not testpmd's
            own "since last show" rates).
        """
        before = self.port_stats(port)
        started = time.monotonic()
        deadline = started + seconds
        while (remaining := deadline - time.monotonic()) > 0:
            if not self._read_chunk(remaining) and self._eof:
                raise self._exited_error("measuring rates")
        after = self.port_stats(port)
        elapsed = time.monotonic() - started
        rx = after.rx_packets - before.rx_packets
        tx = after.tx_packets - before.tx_packets
        return PortRates(
            port_id=port,
            seconds=elapsed,
            rx_packets=rx,
            tx_packets=tx,
            rx_pps=rx / elapsed,
            tx_pps=tx / elapsed,
            rx_bps=8 * (after.rx_bytes - before.rx_bytes) / elapsed,
            tx_bps=8 * (after.tx_bytes - before.tx_bytes) / elapsed,
        )


_ASYNC_LINE: Final = r"(?:(?:[A-Z][A-Z_]*: )?[A-Za-z_]\w*\(\): [^\n]*\n|\n?Port \d+: [^\n]*\n)"
"""A line another testpmd thread (DPDK's interrupt thread) may print in the middle of the
prompt: a driver log line ("memif_msg_send_from_queue(): Sent msg type 7.", with a log type
first in DPDK >= 24.03: "MEMIF: memif_msg_...(): ...") or an event."""

_PROMPT_RE: Final = re.compile(f"(?:{_ASYNC_LINE})*".join(re.escape(char) for char in PROMPT))
"""The prompt, also when asynchronous lines were written between its characters."""


def _find_prompt(text: str) -> int:
    """End of the first prompt in `text` (split by asynchronous log lines or not), or -1."""
    match = _PROMPT_RE.search(text)
    return -1 if match is None else match.end()


def _strip_prompt(text: str) -> str:
    """`text` (ending with a prompt) without that prompt and the lines written into it."""
    for match in _PROMPT_RE.finditer(text):
        if match.end() == len(text):
            return text[: match.start()]
    return text


_NONINTERACTIVE_READY: Final = re.compile(r"Press enter to exit|packet forwarding - ports=\d+")


def _find_noninteractive_ready(text: str) -> int:
    match = _NONINTERACTIVE_READY.search(text)
    return -1 if match is None else match.end()


__all__ = [
    "DEFAULT_BINARY",
    "PROMPT",
    "ForwardCounters",
    "ForwardStats",
    "MemifRole",
    "PipeTransport",
    "PortInfo",
    "PortRates",
    "PortStats",
    "TestpmdAfPacketPort",
    "TestpmdCommandError",
    "TestpmdConfig",
    "TestpmdError",
    "TestpmdExitedError",
    "TestpmdMemifPort",
    "TestpmdParseError",
    "TestpmdPort",
    "TestpmdProcess",
    "TestpmdStartupError",
    "TestpmdTimeoutError",
    "TestpmdTransport",
    "hugepages_available",
    "hugetlbfs_mounts",
    "parse_all_port_stats",
    "parse_forward_stats",
    "parse_port_info",
    "parse_port_stats",
    "parse_version",
    "runtime_dir",
    "salient_lines",
    "version",
]
