"""FD.io VPP as a memif peer: its startup.conf and CLI commands, vppctl, the process, its output."""

from __future__ import annotations

import contextlib
import enum
import ipaddress
import json
import os
import re
import shutil
import signal
import stat
import subprocess
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType, TracebackType
from typing import IO, Final, Self

from harness.errors import LogTailError
from harness.peers.reasons import DisconnectReason, normalise
from reference_impl.wire import SECRET_SIZE

DEFAULT_VPP_BINARY: Final = "vpp"
DEFAULT_VPPCTL_BINARY: Final = "vppctl"
HOW_TO_GET_VPP: Final = "install VPP from fd.io packages or pass --vpp-bin / --vpp-image"

ABSTRACT_PREFIX: Final = "abstract:"
ABSTRACT_SOCKET_MIN_VERSION: Final = (23, 6)
"""memif takes `abstract:` socket filenames from VPP 23.06 (085757bb493, fact sheet §1.2)."""

MEMIF_SECRET_MAX_LEN: Final = SECRET_SIZE - 1  # the 24-byte field keeps its NUL
VPP_MAX_RING_SIZE: Final = 32768  # cli.c: "maximum ring size is 32768"
VPP_MAX_QUEUES: Final = 255  # cli.c: "rx queue must be between 1 - 255"
UNIX_SOCKET_PATH_MAX: Final = 107  # sizeof(sockaddr_un.sun_path) - 1 for the NUL
VPP_ABSTRACT_NAME_MAX: Final = 105  # vppinfra rejects name + NUL longer than sun_path - 2
BENCHMARK_NETWORK: Final = ipaddress.IPv4Network("198.18.0.0/15")
"""The only addresses the harness may configure (RFC 2544 benchmarking range, DESIGN.md §5)."""

_LOG_TAIL_LINES: Final = 40
_VERSION_SCAN_CHUNK: Final = 1 << 20
_VERSION_SCAN_LIMIT: Final = 512 << 20
_CONFIG_TOKEN_RE: Final = re.compile(r"[^\s{}#]+")
_MAC_RE: Final = re.compile(r"(?:[0-9A-Fa-f]{2}:){5}[0-9A-Fa-f]{2}")
_INTERFACE_NAME_RE: Final = re.compile(r"[A-Za-z][\w./:-]*")
_API_PREFIX_RE: Final = re.compile(r"[A-Za-z0-9_-]{1,64}")
_PLUGIN_RE: Final = re.compile(r"[A-Za-z0-9_.-]+\.so")


# --------------------------------------------------------------------------- errors


class VppError(LogTailError):
    """A VPP process or vppctl did not do what the harness asked; carries the tail of its log."""

    log_label = "vpp log"


class VppStartupError(VppError):
    """VPP exited, or its CLI did not answer, during start-up."""


class VppTimeoutError(VppError):
    """vppctl or VPP did not answer within the allowed time."""


class VppctlError(VppError):
    """vppctl itself failed (could not connect, exited non-zero)."""


class VppCommandError(VppError):
    """VPP's CLI rejected a command ("<command path>: <message>").

    Attributes:
        command: The command line sent.
        message: VPP's error text without the command path.
        output: The whole output.
    """

    def __init__(self, command: str, message: str, output: str) -> None:
        self.command = command
        self.message = message
        self.output = output
        super().__init__(f"VPP rejected {command!r}: {message}")


class VppUnsupportedError(ValueError):
    """The configuration needs a VPP feature the (known) VPP version does not have."""


class VppParseError(ValueError):
    """VPP output did not have the expected shape."""


# --------------------------------------------------------------------------- versions


_VERSION_TEXT_RE: Final = re.compile(
    r"^v?(?P<major>\d+)\.(?P<minor>\d+)(?:\.(?P<patch>\d+))?(?:[-~+].*)?$"
)
_SHOW_VERSION_RE: Final = re.compile(
    r"^vpp v(?P<version>\S+) built by (?P<user>\S+) on (?P<host>\S+) at (?P<date>.+?)\s*$", re.M
)
_EMBEDDED_VERSION_RE: Final = re.compile(rb"vpp v(\d+\.\d+[0-9A-Za-z.~_+-]*) built by ")


@dataclass(frozen=True)
class VppVersion:
    """A VPP release as VPP_BUILD_VER spells it, e.g. "24.02-release" or "19.04.4-rc0~4-g8f2ac2b".

    Attributes:
        text: The full version text, without a leading "v".
        major: Release year (two digits).
        minor: Release month.
        patch: Maintenance release number (0 when absent).
    """

    text: str
    major: int
    minor: int
    patch: int = 0

    @classmethod
    def parse(cls, text: str) -> VppVersion:
        """Parse a version text.

        Args:
            text: For example "v23.10-release", "21.01-rc0~395-g80ac72894~b2".

        Returns:
            The version.

        Raises:
            VppParseError: The text does not start with <major>.<minor>.
        """
        cleaned = text.strip()
        match = _VERSION_TEXT_RE.match(cleaned)
        if match is None:
            raise VppParseError(f"not a VPP version: {text!r}")
        return cls(
            text=cleaned.removeprefix("v"),
            major=int(match["major"]),
            minor=int(match["minor"]),
            patch=int(match["patch"] or 0),
        )

    @property
    def release(self) -> tuple[int, int, int]:
        """(major, minor, patch), for comparisons."""
        return (self.major, self.minor, self.patch)

    def at_least(self, major: int, minor: int) -> bool:
        """True if this is release major.minor or later (any rc/dev build of it counts)."""
        return (self.major, self.minor) >= (major, minor)

    @property
    def supports_abstract_sockets(self) -> bool:
        """True if memif accepts `abstract:` socket filenames (VPP >= 23.06)."""
        return self.at_least(*ABSTRACT_SOCKET_MIN_VERSION)

    def __str__(self) -> str:
        return self.text


@dataclass(frozen=True)
class VppShowVersion:
    """`show version`: "vpp v<version> built by <user> on <host> at <date>"."""

    version: VppVersion
    built_by: str
    built_on: str
    built_at: str


def parse_show_version(text: str) -> VppShowVersion:
    """Parse `show version` output.

    Args:
        text: Command output.

    Returns:
        The version and build facts.

    Raises:
        VppParseError: No "vpp v... built by ... on ... at ..." line.
    """
    match = _SHOW_VERSION_RE.search(text.replace("\r", ""))
    if match is None:
        raise VppParseError(f"no 'vpp v... built by' line in: {text[:200]!r}")
    return VppShowVersion(
        version=VppVersion.parse(match["version"]),
        built_by=match["user"],
        built_on=match["host"],
        built_at=match["date"],
    )


def embedded_version(binary: str | Path, limit: int = _VERSION_SCAN_LIMIT) -> VppVersion | None:
    """Read the version VPP's executable carries, without running it.

    `src/vpp/app/version.c` builds "vpp v<VER> built by <user> on <host> at <date>" as one
    string literal, so it sits whole in the executable (it is what `show version` prints).
    VPP has no `--version` option (src/vpp/vnet/main.c reads `-c <file>` and otherwise takes its
    arguments as startup configuration), so the harness does not run it to ask.

    Args:
        binary: Path of the `vpp` executable (or of a wrapper script that contains the line).
        limit: Most bytes scanned.

    Returns:
        The version, or None if no version string was found or the file cannot be read.
    """
    overlap = 256
    tail = b""
    scanned = 0
    try:
        with open(binary, "rb") as handle:
            while scanned < limit:
                chunk = handle.read(_VERSION_SCAN_CHUNK)
                if not chunk:
                    return None
                scanned += len(chunk)
                match = _EMBEDDED_VERSION_RE.search(tail + chunk)
                if match is not None:
                    return VppVersion.parse(match.group(1).decode("ascii"))
                tail = chunk[-overlap:]
    except (OSError, VppParseError):
        return None
    return None


# --------------------------------------------------------------------------- configuration


class VppRole(enum.StrEnum):
    """memif role as VPP's CLI spells it; the harness's server/client map to master/slave."""

    MASTER = "master"
    SLAVE = "slave"

    @classmethod
    def from_harness(cls, role: str) -> VppRole:
        """Map a harness role (server/client, or VPP's own master/slave) to VPP's keyword.

        Args:
            role: "server", "client", "master" or "slave" (case-insensitive).

        Returns:
            MASTER for server/master, SLAVE for client/slave.

        Raises:
            ValueError: Any other role.
        """
        mapping = {
            "server": cls.MASTER,
            "master": cls.MASTER,
            "client": cls.SLAVE,
            "slave": cls.SLAVE,
        }
        try:
            return mapping[str(role).lower()]
        except KeyError:
            raise ValueError(f"unknown memif role {role!r} (server|client|master|slave)") from None

    @property
    def harness_role(self) -> str:
        """The harness's name for this role: "server" or "client"."""
        return "server" if self is VppRole.MASTER else "client"


class VppMemifMode(enum.StrEnum):
    """memif interface mode (VPP also has punt-inject, which its CLI cannot create)."""

    ETHERNET = "ethernet"
    IP = "ip"


def _check_token(what: str, value: str) -> None:
    """VPP's CLI reads `%s` up to whitespace; startup.conf also splits on it and on { } #."""
    if not value or _CONFIG_TOKEN_RE.fullmatch(value) is None:
        raise ValueError(f"{what} {value!r} must be non-empty, without whitespace, '{{', '}}', '#'")


def _check_u32(what: str, value: int, low: int = 0, high: int = 0xFFFFFFFF) -> None:
    if not low <= value <= high:
        raise ValueError(f"{what} {value} not in {low}..{high}")


@dataclass(frozen=True)
class VppMemifSocket:
    """A memif socket file registered with `create memif socket id N filename F`.

    Attributes:
        socket_id: VPP's id for it, 1 .. 2^32-2 (0 is VPP's built-in `memif.sock` in its
            runtime directory and cannot be created or changed).
        filename: Absolute filesystem path, or `abstract:NAME` with optional
            `,netns_name=X` / `,netns_pid=N` (VPP >= 23.06 only).
    """

    socket_id: int
    filename: str

    def __post_init__(self) -> None:
        if self.socket_id == 0:
            raise ValueError(
                "socket id 0 is VPP's built-in default socket (<runtime-dir>/memif.sock); "
                "use an id from 1 to 4294967294"
            )
        _check_u32("socket id", self.socket_id, 1, 0xFFFFFFFE)
        _check_token("socket filename", self.filename)
        if self.is_abstract:
            name = self.abstract_name
            if not name:
                raise ValueError(f"abstract socket {self.filename!r} has an empty name")
            if len(name.encode()) > VPP_ABSTRACT_NAME_MAX:
                raise ValueError(
                    f"abstract socket name is {len(name.encode())} bytes; VPP accepts at most "
                    f"{VPP_ABSTRACT_NAME_MAX}"
                )
            for option in self.filename.split(",")[1:]:
                if not re.fullmatch(r"netns_name=\S+|netns_pid=\d+", option):
                    raise ValueError(
                        f"abstract socket option {option!r} is not netns_name=X or netns_pid=N"
                    )
            return
        if self.filename.startswith("@"):
            raise ValueError(
                f"VPP does not treat a leading '@' as abstract ({self.filename!r} would become "
                f"a file in its runtime directory): write abstract:{self.filename[1:]}"
            )
        if not self.filename.startswith("/"):
            raise ValueError(
                f"socket filename {self.filename!r} must be absolute (VPP would put a relative "
                "name under its runtime directory, out of the harness's sight)"
            )
        if len(self.filename.encode()) > UNIX_SOCKET_PATH_MAX:
            raise ValueError(
                f"socket path is {len(self.filename.encode())} bytes; a unix socket path holds "
                f"at most {UNIX_SOCKET_PATH_MAX}: {self.filename}"
            )

    @property
    def is_abstract(self) -> bool:
        """True for an `abstract:` (Linux abstract namespace) socket."""
        return self.filename.startswith(ABSTRACT_PREFIX)

    @property
    def abstract_name(self) -> str | None:
        """The abstract name (after `abstract:`, before any `,netns_...`), or None."""
        if not self.is_abstract:
            return None
        return self.filename.removeprefix(ABSTRACT_PREFIX).split(",", 1)[0]

    @property
    def address(self) -> str:
        """The address a Python peer binds or connects to ("\\0NAME" for abstract sockets)."""
        name = self.abstract_name
        return self.filename if name is None else "\0" + name

    def check_version(self, version: VppVersion | None) -> None:
        """Refuse an abstract socket on a VPP known to be older than 23.06.

        Args:
            version: The VPP version, or None when unknown (then nothing is refused).

        Raises:
            VppUnsupportedError: Abstract socket and a VPP older than 23.06.
        """
        if self.is_abstract and version is not None and not version.supports_abstract_sockets:
            major, minor = ABSTRACT_SOCKET_MIN_VERSION
            raise VppUnsupportedError(
                f"VPP {version} cannot use the abstract memif socket {self.filename!r}: VPP "
                f"accepts the abstract: prefix for memif sockets only from {major}.{minor:02d} "
                "(older releases turn it into a file under the runtime directory); use a "
                "filesystem socket path or a newer VPP"
            )

    def cli(self) -> str:
        """The command that registers this socket."""
        return f"create memif socket id {self.socket_id} filename {self.filename}"

    def delete_cli(self) -> str:
        """The command that removes this socket registration."""
        return f"delete memif socket id {self.socket_id}"


@dataclass(frozen=True)
class VppMemifInterface:
    """One memif interface, as `create interface memif` takes it.

    Attributes:
        id: memif interface id (must match the peer's), 0 .. 2^32-1.
        socket_id: VppMemifSocket id, or 0 for VPP's default socket.
        role: master (harness "server") or slave (harness "client").
        ring_size: Descriptors per ring, a power of two up to 32768 (VPP advertises at most
            2^14 in HELLO; larger values exercise fact sheet §9 item 19).
        buffer_size: Bytes per packet buffer (slave only; not negotiated).
        rx_queues: Receive queues (slave: number of M2S rings).
        tx_queues: Transmit queues (slave: number of S2M rings).
        secret: Shared secret, or None. VPP sends at most 23 characters, so a 24-character
            secret on a VPP master can never match.
        mode: ethernet or ip.
        no_zero_copy: Disable the slave's zero-copy mode (VPP's default for slaves is on).
        hw_addr: MAC address, or None for VPP's random 02:fe:xx:xx:xx:xx.
    """

    id: int
    socket_id: int
    role: VppRole
    ring_size: int = 1024
    buffer_size: int = 2048
    rx_queues: int = 1
    tx_queues: int = 1
    secret: str | None = None
    mode: VppMemifMode = VppMemifMode.ETHERNET
    no_zero_copy: bool = False
    hw_addr: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "role", VppRole.from_harness(self.role))
        object.__setattr__(self, "mode", VppMemifMode(self.mode))
        _check_u32("interface id", self.id)
        _check_u32("socket id", self.socket_id, 0, 0xFFFFFFFE)
        if self.ring_size < 1 or self.ring_size & (self.ring_size - 1):
            raise ValueError(
                f"ring_size {self.ring_size} is not a power of two (VPP: 'ring size must be "
                "power of 2')"
            )
        if self.ring_size > VPP_MAX_RING_SIZE:
            raise ValueError(f"ring_size {self.ring_size} above VPP's maximum {VPP_MAX_RING_SIZE}")
        if not 1 <= self.buffer_size <= 0xFFFF:
            raise ValueError(f"buffer_size {self.buffer_size} not in 1..65535")
        for what, count in (("rx_queues", self.rx_queues), ("tx_queues", self.tx_queues)):
            if not 1 <= count <= VPP_MAX_QUEUES:
                raise ValueError(f"{what} {count} not in 1..{VPP_MAX_QUEUES}")
        if self.secret is not None:
            _check_token("secret", self.secret)
            if len(self.secret.encode()) > MEMIF_SECRET_MAX_LEN:
                raise ValueError(
                    f"secret longer than {MEMIF_SECRET_MAX_LEN} bytes (a peer would read "
                    "it cut short)"
                )
        if self.hw_addr is not None and _MAC_RE.fullmatch(self.hw_addr) is None:
            raise ValueError(f"hw_addr {self.hw_addr!r} is not aa:bb:cc:dd:ee:ff")

    @property
    def name(self) -> str:
        """VPP's interface name: memif<socket-id>/<id>."""
        return f"memif{self.socket_id}/{self.id}"

    def cli(self) -> str:
        """The `create interface memif ...` command for this interface."""
        words = [
            "create interface memif",
            f"id {self.id}",
            f"socket-id {self.socket_id}",
            self.role.value,
        ]
        if self.secret is not None:
            words.append(f"secret {self.secret}")
        words += [
            f"rx-queues {self.rx_queues}",
            f"tx-queues {self.tx_queues}",
            f"ring-size {self.ring_size}",
            f"buffer-size {self.buffer_size}",
        ]
        if self.mode is VppMemifMode.IP:
            words.append("mode ip")
        if self.hw_addr is not None:
            words.append(f"hw-addr {self.hw_addr.lower()}")
        if self.no_zero_copy:
            words.append("no-zero-copy")
        return " ".join(words)

    def state_cli(self, up: bool = True) -> str:
        """The `set interface state` command for this interface."""
        return f"set interface state {self.name} {'up' if up else 'down'}"

    def delete_cli(self) -> str:
        """The command that deletes this interface."""
        return f"delete interface memif {self.name}"


@dataclass(frozen=True)
class VppInterfaceAddress:
    """An IPv4 address on a VPP interface, from 198.18.0.0/15 only.

    Attributes:
        interface: VPP interface name, e.g. "memif1/0".
        address: Address with prefix length, e.g. "198.18.0.1/24".
    """

    interface: str
    address: str

    def __post_init__(self) -> None:
        if _INTERFACE_NAME_RE.fullmatch(self.interface) is None:
            raise ValueError(f"interface name {self.interface!r} is not a VPP interface name")
        if "/" not in self.address:
            raise ValueError(f"address {self.address!r} needs a prefix length, e.g. /24")
        try:
            parsed = ipaddress.ip_interface(self.address)
        except ValueError as exc:
            raise ValueError(f"address {self.address!r} is not an IP address: {exc}") from None
        if not (
            isinstance(parsed, ipaddress.IPv4Interface)
            and parsed.network.subnet_of(BENCHMARK_NETWORK)
        ):
            raise ValueError(
                f"address {self.address} is outside {BENCHMARK_NETWORK}, the only range the "
                "harness may use (RFC 2544 benchmarking addresses)"
            )
        object.__setattr__(self, "address", str(parsed))

    def cli(self) -> str:
        """The `set interface ip address` command."""
        return f"set interface ip address {self.interface} {self.address}"


@dataclass(frozen=True)
class VppMemifSetup:
    """Everything the harness configures on one VPP: sockets, memif interfaces, addresses.

    Attributes:
        sockets: Socket files to register (socket id 0 needs none).
        interfaces: memif interfaces.
        addresses: IPv4 addresses (198.18.0.0/15) on those interfaces.
        admin_up: Set every interface up (a slave only connects once it is up).
    """

    sockets: tuple[VppMemifSocket, ...] = ()
    interfaces: tuple[VppMemifInterface, ...] = ()
    addresses: tuple[VppInterfaceAddress, ...] = ()
    admin_up: bool = True

    def __post_init__(self) -> None:
        for name in ("sockets", "interfaces", "addresses"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        socket_ids = [sock.socket_id for sock in self.sockets]
        if len(set(socket_ids)) != len(socket_ids):
            raise ValueError(f"duplicate socket ids in {socket_ids}")
        filenames = [sock.filename for sock in self.sockets]
        if len(set(filenames)) != len(filenames):
            raise ValueError(f"a socket filename is registered twice: {filenames}")
        roles: dict[int, VppRole] = {}
        names: set[str] = set()
        for iface in self.interfaces:
            if iface.socket_id != 0 and iface.socket_id not in socket_ids:
                raise ValueError(f"{iface.name}: socket id {iface.socket_id} is not in sockets")
            if iface.name in names:
                raise ValueError(f"interface {iface.name} (socket id, id) defined twice")
            names.add(iface.name)
            if roles.setdefault(iface.socket_id, iface.role) is not iface.role:
                raise ValueError(
                    f"socket id {iface.socket_id} has both master and slave interfaces (VPP: "
                    "'socket file cannot be used by both master and slave')"
                )
        for address in self.addresses:
            if address.interface not in names:
                raise ValueError(f"address {address.address} is on unknown {address.interface}")

    def check_version(self, version: VppVersion | None) -> None:
        """Refuse what the given VPP version cannot do (abstract sockets before 23.06).

        Args:
            version: VPP version, or None when unknown.

        Raises:
            VppUnsupportedError: A socket needs a newer VPP.
        """
        for sock in self.sockets:
            sock.check_version(version)

    def commands(self) -> tuple[str, ...]:
        """CLI commands that build this setup, in order."""
        commands = [sock.cli() for sock in self.sockets]
        commands += [iface.cli() for iface in self.interfaces]
        if self.admin_up:
            commands += [iface.state_cli(up=True) for iface in self.interfaces]
        commands += [address.cli() for address in self.addresses]
        return tuple(commands)

    def teardown_commands(self) -> tuple[str, ...]:
        """CLI commands that remove this setup (interfaces first, then sockets)."""
        commands = [iface.delete_cli() for iface in self.interfaces]
        commands += [sock.delete_cli() for sock in self.sockets]
        return tuple(commands)

    def cli_script(self) -> str:
        """The commands as a file for `unix { exec <file> }` (one per line)."""
        return "".join(f"{command}\n" for command in self.commands())


def _core_list(cores: Iterable[int]) -> str:
    """Render CPU ids as VPP's corelist: "1-3,5"."""
    ordered = sorted(set(cores))
    ranges: list[str] = []
    start = previous = ordered[0]
    for core in [*ordered[1:], None]:
        if core is not None and core == previous + 1:
            previous = core
            continue
        ranges.append(str(start) if start == previous else f"{start}-{previous}")
        if core is not None:
            start = previous = core
    return ",".join(ranges)


@dataclass(frozen=True)
class VppStartupConfig:
    """A VPP startup.conf for one harness-run VPP instance.

    Every path lives under `runtime_dir` unless given, so several instances never share a
    socket, and nothing needs /run/vpp.

    Attributes:
        runtime_dir: VPP's runtime directory (`unix { runtime-dir }`); holds the files below.
        cli_socket: CLI socket for vppctl (`unix { cli-listen }`); default runtime_dir/cli.sock.
        log_file: VPP's log of startup config and CLI commands (`unix { log }`); default
            runtime_dir/vpp.log.
        stats_socket: Stats segment socket (`statseg { socket-name }`); default
            runtime_dir/stats.sock (VPP's default, /run/vpp/stats.sock, is shared and root-only).
        api_segment_prefix: Shared-memory API segment prefix (`api-segment { prefix }`), unique
            per instance; None keeps VPP's default (only one instance per host then).
        main_core: CPU of the main thread (`cpu { main-core }`); None: VPP picks core 1.
        workers: Worker thread CPUs (`cpu { corelist-workers }`).
        buffers_per_numa: Buffers per NUMA node (`buffers { buffers-per-numa }`).
        buffers_page_size: Buffer memory page size (`buffers { page-size }`): "4K", "2M",
            "default" or "default-hugepage".
        full_coredump: Ask for full core dumps (`unix { full-coredump }`).
        nosyslog: Log errors to stderr instead of syslog (`unix { nosyslog }`).
        plugins: Plugins to enable; all others are disabled (`plugin default { disable }`).
        plugin_path: Plugin directory (`plugins { path }`), for VPP trees not installed.
        exec_file: CLI script run at start-up (`unix { exec }`).
    """

    runtime_dir: Path
    cli_socket: Path | None = None
    log_file: Path | None = None
    stats_socket: Path | None = None
    api_segment_prefix: str | None = None
    main_core: int | None = None
    workers: tuple[int, ...] = ()
    buffers_per_numa: int | None = None
    buffers_page_size: str | None = None
    full_coredump: bool = False
    nosyslog: bool = True
    plugins: tuple[str, ...] = ("memif_plugin.so",)
    plugin_path: Path | None = None
    exec_file: Path | None = None

    def __post_init__(self) -> None:
        runtime_dir = Path(self.runtime_dir)
        object.__setattr__(self, "runtime_dir", runtime_dir)
        defaults = {"cli_socket": "cli.sock", "log_file": "vpp.log", "stats_socket": "stats.sock"}
        for name, default in defaults.items():
            value = getattr(self, name)
            object.__setattr__(self, name, runtime_dir / default if value is None else Path(value))
        object.__setattr__(self, "workers", tuple(self.workers))
        object.__setattr__(self, "plugins", tuple(self.plugins))
        for name in ("runtime_dir", "cli_socket", "log_file", "stats_socket", "plugin_path"):
            self._check_path(name, getattr(self, name))
        self._check_path("exec_file", self.exec_file)
        for name in ("cli_socket", "stats_socket"):
            size = len(str(getattr(self, name)).encode())
            if size > UNIX_SOCKET_PATH_MAX:
                raise ValueError(f"{name} path is {size} bytes; at most {UNIX_SOCKET_PATH_MAX}")
        if self.api_segment_prefix is not None and not _API_PREFIX_RE.fullmatch(
            self.api_segment_prefix
        ):
            raise ValueError(f"api_segment_prefix {self.api_segment_prefix!r}: 1-64 [A-Za-z0-9_-]")
        if self.main_core is not None and self.main_core < 0:
            raise ValueError(f"main_core {self.main_core} must be >= 0")
        if any(core < 0 for core in self.workers) or len(set(self.workers)) != len(self.workers):
            raise ValueError(f"workers {self.workers} must be distinct CPU ids >= 0")
        if self.main_core is not None and self.main_core in self.workers:
            raise ValueError(f"main_core {self.main_core} is also a worker core")
        if self.buffers_per_numa is not None and self.buffers_per_numa <= 0:
            raise ValueError(f"buffers_per_numa {self.buffers_per_numa} must be positive")
        if self.buffers_page_size is not None and not re.fullmatch(
            r"\d+[KMG]|default|default-hugepage", self.buffers_page_size
        ):
            raise ValueError(f"buffers_page_size {self.buffers_page_size!r}: 4K, 2M, default, ...")
        for plugin in self.plugins:
            if _PLUGIN_RE.fullmatch(plugin) is None:
                raise ValueError(
                    f"plugin {plugin!r} is not a plugin file name like memif_plugin.so"
                )

    @staticmethod
    def _check_path(name: str, value: Path | None) -> None:
        if value is None:
            return
        if not value.is_absolute():
            raise ValueError(f"{name} {value} must be an absolute path")
        _check_token(name, str(value))

    def text(self) -> str:
        """Render startup.conf."""
        unix = ["nodaemon"]
        if self.nosyslog:
            unix.append("nosyslog")
        unix += [
            f"cli-listen {self.cli_socket}",
            f"log {self.log_file}",
            f"runtime-dir {self.runtime_dir}",
        ]
        if self.full_coredump:
            unix.append("full-coredump")
        if self.exec_file is not None:
            unix.append(f"exec {self.exec_file}")
        sections: list[tuple[str, list[str]]] = [("unix", unix)]
        if self.api_segment_prefix is not None:
            sections.append(("api-segment", [f"prefix {self.api_segment_prefix}"]))
        sections.append(("statseg", [f"socket-name {self.stats_socket}"]))
        cpu: list[str] = []
        if self.main_core is not None:
            cpu.append(f"main-core {self.main_core}")
        if self.workers:
            cpu.append(f"corelist-workers {_core_list(self.workers)}")
        if cpu:
            sections.append(("cpu", cpu))
        buffers: list[str] = []
        if self.buffers_per_numa is not None:
            buffers.append(f"buffers-per-numa {self.buffers_per_numa}")
        if self.buffers_page_size is not None:
            buffers.append(f"page-size {self.buffers_page_size}")
        if buffers:
            sections.append(("buffers", buffers))
        plugins = [] if self.plugin_path is None else [f"path {self.plugin_path}"]
        plugins.append("plugin default { disable }")
        plugins += [f"plugin {plugin} {{ enable }}" for plugin in self.plugins]
        sections.append(("plugins", plugins))
        return "".join(
            f"{name} {{\n" + "".join(f"  {line}\n" for line in lines) + "}\n"
            for name, lines in sections
        )


# --------------------------------------------------------------------------- CLI errors


_CLI_ERROR_RE: Final = re.compile(r"^(?P<path>[a-z][\w.-]*(?: [a-z][\w.-]*)*): (?P<message>.+)$")
_UNKNOWN_INPUT_RE: Final = re.compile(r"^unknown input `.*'\s*$")


def _is_command_path(path: str, command: str) -> bool:
    """True if `command` starts with the CLI path VPP printed (allowing abbreviated words)."""
    path_words, command_words = path.split(), command.split()
    if len(command_words) < len(path_words):
        return False
    return all(
        full.startswith(typed) for full, typed in zip(path_words, command_words, strict=False)
    )


def cli_error(command: str, output: str) -> str | None:
    """Find VPP's error message in a command's output.

    VPP answers a rejected command with "<command path>: <message>" (e.g.
    "set interface ip address: failed to add ...", "disable ip6: unknown input `loop0'"),
    and an unknown command with "unknown input `...'". Only the first non-empty line decides.

    Args:
        command: The command line that was sent.
        output: Its output.

    Returns:
        The error message, or None if the output is not an error.
    """
    for raw in output.replace("\r", "").splitlines():
        line = raw.strip()
        if not line:
            continue
        match = _CLI_ERROR_RE.match(line)
        if match is not None and _is_command_path(match["path"], command):
            return match["message"]
        if _UNKNOWN_INPUT_RE.match(line):
            return line
        return None
    return None


def _raise_cli_error(command: str, output: str) -> None:
    message = cli_error(command, output)
    if message is not None:
        raise VppCommandError(command, message, output)


# --------------------------------------------------------------------------- show memif


class RingDirection(enum.StrEnum):
    """A memif ring's direction as `show memif` labels it."""

    S2M = "slave-to-master"
    M2S = "master-to-slave"


@dataclass(frozen=True)
class MemifSocketEntry:
    """One line of the `sockets` table: "  1   yes (1)     /run/memif.sock".

    Attributes:
        socket_id: VPP's socket id.
        listener: True if VPP listens on it (master interfaces use it).
        interface_count: Interfaces using the listener ("yes (N)"); None when not a listener.
        filename: Socket path or `abstract:` name as VPP shows it.
    """

    socket_id: int
    listener: bool
    interface_count: int | None
    filename: str

    @property
    def is_abstract(self) -> bool:
        """True for an abstract-namespace socket."""
        return self.filename.startswith(ABSTRACT_PREFIX)


@dataclass(frozen=True)
class MemifRegion:
    """ "region <index> size <bytes> fd <fd>"."""

    index: int
    size: int
    fd: int


@dataclass(frozen=True)
class MemifRing:
    """One ring block of `show memif`.

    VPP prints the interface's TX queues first, then its RX queues. From 17.10 to ~18.01 the
    label came from the interface's role, not the ring (a master showed every ring as
    master-to-slave), so trust `direction` only for newer VPP.

    Attributes:
        direction: The printed label.
        index: Ring index within its direction.
        region: Region holding the ring.
        offset: Ring offset in the region.
        ring_size: Descriptors in the ring.
        int_fd: Interrupt eventfd (VPP's side).
        head: Ring head (unmasked u16), None if VPP has no ring mapped.
        tail: Ring tail (unmasked u16), None if VPP has no ring mapped.
        flags: Ring flags (bit 0: interrupts masked), None if no ring mapped.
        interrupts: Interrupts VPP received on it, None if no ring mapped.
    """

    direction: RingDirection
    index: int
    region: int
    offset: int
    ring_size: int
    int_fd: int
    head: int | None = None
    tail: int | None = None
    flags: int | None = None
    interrupts: int | None = None


@dataclass(frozen=True)
class MemifInterfaceInfo:
    """One `interface memifS/I` block of `show memif`.

    Attributes:
        name: Interface name, e.g. "memif1/0".
        id: memif id.
        mode: "ethernet", "ip", "punt-inject" (or VPP's "unknown mode (N)").
        flags: Words of the flags line: admin-up, slave, connecting, connected, deleting,
            zero-copy, ...
        listener_fd: Listener socket fd (0 or -1 when none).
        conn_fd: Connection socket fd (0 when not connected).
        num_s2m_rings: S2M rings in use (0 until connected).
        num_m2s_rings: M2S rings in use (0 until connected).
        buffer_size: Buffer size in use: a master shows 0 (the size is not negotiated).
        socket_id: Socket id (VPP >= 18.x); None in the older "file <path>" format.
        socket_filename: Socket file: from the old format's "file", else looked up in the
            sockets table (None if the table does not list the id).
        num_regions: Regions (VPP >= 18.x), None in the older format.
        remote_name: Peer's application name from HELLO/INIT, if connected once.
        remote_interface: Peer's interface name from CONNECT/CONNECTED.
        local_disconnect_reason: Reason VPP gave when it disconnected (`local-disc-reason`).
        remote_disconnect_reason: Reason the peer sent in DISCONNECT (`remote-disc-reason`).
        regions: Region lines.
        rings: Ring blocks in printed order (TX queues, then RX queues).
    """

    name: str
    id: int
    mode: str
    flags: frozenset[str]
    listener_fd: int
    conn_fd: int
    num_s2m_rings: int
    num_m2s_rings: int
    buffer_size: int
    socket_id: int | None = None
    socket_filename: str | None = None
    num_regions: int | None = None
    remote_name: str | None = None
    remote_interface: str | None = None
    local_disconnect_reason: str | None = None
    remote_disconnect_reason: str | None = None
    regions: tuple[MemifRegion, ...] = ()
    rings: tuple[MemifRing, ...] = ()

    @property
    def role(self) -> VppRole:
        """master or slave (from the "slave" flag)."""
        return VppRole.SLAVE if "slave" in self.flags else VppRole.MASTER

    @property
    def admin_up(self) -> bool:
        """True if the interface is administratively up."""
        return "admin-up" in self.flags

    @property
    def connected(self) -> bool:
        """True if the memif link is up (handshake completed)."""
        return "connected" in self.flags

    @property
    def connecting(self) -> bool:
        """True while a handshake is under way."""
        return "connecting" in self.flags

    @property
    def zero_copy(self) -> bool:
        """True if the (slave) interface runs zero-copy."""
        return "zero-copy" in self.flags

    @property
    def ring_size(self) -> int | None:
        """Ring size of the first ring, None when no rings exist (not connected)."""
        return self.rings[0].ring_size if self.rings else None

    @property
    def local_reason(self) -> DisconnectReason | None:
        """`local_disconnect_reason`, normalised."""
        text = self.local_disconnect_reason
        return None if text is None else normalise(text)

    @property
    def remote_reason(self) -> DisconnectReason | None:
        """`remote_disconnect_reason`, normalised."""
        text = self.remote_disconnect_reason
        return None if text is None else normalise(text)


@dataclass(frozen=True)
class MemifShow:
    """Parsed `show memif` output."""

    sockets: tuple[MemifSocketEntry, ...]
    interfaces: tuple[MemifInterfaceInfo, ...]

    def interface(self, name: str) -> MemifInterfaceInfo:
        """The block of interface `name`.

        Raises:
            KeyError: No such interface in the output.
        """
        for info in self.interfaces:
            if info.name == name:
                return info
        raise KeyError(f"{name} not in show memif (have {[i.name for i in self.interfaces]})")

    def socket(self, socket_id: int) -> MemifSocketEntry:
        """The sockets-table entry of `socket_id`.

        Raises:
            KeyError: No such socket id in the table.
        """
        for entry in self.sockets:
            if entry.socket_id == socket_id:
                return entry
        raise KeyError(f"socket id {socket_id} not in show memif")


_MEMIF_SOCKETS_RE: Final = re.compile(r"^\s*sockets\s*$")
_MEMIF_SOCKETS_HEADER_RE: Final = re.compile(r"^\s*id\s+listener\s+filename\s*$")
_MEMIF_SOCKET_RE: Final = re.compile(
    r"^\s*(?P<id>\d+)\s+(?P<listener>yes \((?P<count>\d+)\)|no)\s+(?P<filename>\S.*?)\s*$"
)
_MEMIF_INTERFACE_RE: Final = re.compile(r"^interface (?P<name>\S+)\s*$")
_MEMIF_FIELDS: Final[dict[str, re.Pattern[str]]] = {
    "remote_name": re.compile(r'^\s+remote-name "(?P<value>.*)"\s*$'),
    "remote_interface": re.compile(r'^\s+remote-interface "(?P<value>.*)"\s*$'),
    "socket_line": re.compile(
        r"^\s+socket-id (?P<socket_id>\d+) id (?P<id>\d+) mode (?P<mode>.+?)\s*$"
    ),
    "file_line": re.compile(r"^\s+id (?P<id>-?\d+) mode (?P<mode>\S+) file (?P<file>.+?)\s*$"),
    "flags": re.compile(r"^\s+flags(?P<flags>(?: \S+)*)\s*$"),
    "fds": re.compile(r"^\s+listener-fd (?P<listener>-?\d+) conn-fd (?P<conn>-?\d+)\s*$"),
    "counts": re.compile(
        r"^\s+num-s2m-rings (?P<s2m>\d+) num-m2s-rings (?P<m2s>\d+) buffer-size (?P<size>\d+)"
        r"(?: num-regions (?P<regions>\d+))?\s*$"
    ),
    "local_disc": re.compile(r'^\s+local-disc-reason "(?P<value>.*)"\s*$'),
    "remote_disc": re.compile(r'^\s+remote-disc-reason "(?P<value>.*)"\s*$'),
    "region": re.compile(r"^\s+region (?P<index>\d+) size (?P<size>\d+) fd (?P<fd>-?\d+)\s*$"),
    "ring": re.compile(
        r"^\s+(?P<direction>slave-to-master|master-to-slave) ring (?P<index>\d+):\s*$"
    ),
    "ring_place": re.compile(
        r"^\s+region (?P<region>\d+) offset (?P<offset>\d+) ring-size (?P<size>\d+)"
        r" int-fd (?P<fd>-?\d+)\s*$"
    ),
    "ring_state": re.compile(
        r"^\s+head (?P<head>\d+) tail (?P<tail>\d+) flags (?P<flags>0x[0-9A-Fa-f]+)"
        r" interrupts (?P<interrupts>\d+)\s*$"
    ),
}


@dataclass
class _InterfaceBuilder:
    name: str
    values: dict[str, object] = field(default_factory=dict)
    regions: list[MemifRegion] = field(default_factory=list)
    rings: list[dict[str, int | RingDirection]] = field(default_factory=list)

    def take(self, kind: str, match: re.Match[str]) -> None:
        values = self.values
        if kind in ("remote_name", "remote_interface"):
            values[kind] = match["value"]
        elif kind == "local_disc":
            values["local_disconnect_reason"] = match["value"]
        elif kind == "remote_disc":
            values["remote_disconnect_reason"] = match["value"]
        elif kind == "socket_line":
            values.update(socket_id=int(match["socket_id"]), id=int(match["id"]))
            values["mode"] = match["mode"]
        elif kind == "file_line":
            values.update(id=int(match["id"]), mode=match["mode"], socket_filename=match["file"])
        elif kind == "flags":
            values["flags"] = frozenset(match["flags"].split())
        elif kind == "fds":
            values.update(listener_fd=int(match["listener"]), conn_fd=int(match["conn"]))
        elif kind == "counts":
            values.update(
                num_s2m_rings=int(match["s2m"]),
                num_m2s_rings=int(match["m2s"]),
                buffer_size=int(match["size"]),
            )
            if match["regions"] is not None:
                values["num_regions"] = int(match["regions"])
        elif kind == "region":
            self.regions.append(
                MemifRegion(int(match["index"]), int(match["size"]), int(match["fd"]))
            )
        elif kind == "ring":
            self.rings.append(
                {"direction": RingDirection(match["direction"]), "index": int(match["index"])}
            )
        elif kind in ("ring_place", "ring_state"):
            if not self.rings:
                raise VppParseError(f"{self.name}: ring detail before any ring header")
            ring = self.rings[-1]
            if kind == "ring_place":
                ring.update(
                    region=int(match["region"]),
                    offset=int(match["offset"]),
                    ring_size=int(match["size"]),
                    int_fd=int(match["fd"]),
                )
            else:
                ring.update(
                    head=int(match["head"]),
                    tail=int(match["tail"]),
                    flags=int(match["flags"], 16),
                    interrupts=int(match["interrupts"]),
                )

    def build(self, sockets: Sequence[MemifSocketEntry]) -> MemifInterfaceInfo:
        required = ("id", "mode", "flags", "listener_fd", "conn_fd", "buffer_size")
        missing = [name for name in required if name not in self.values]
        if missing:
            raise VppParseError(f"show memif: {self.name} lacks {', '.join(missing)}")
        rings: list[MemifRing] = []
        for ring in self.rings:
            if "ring_size" not in ring:
                raise VppParseError(f"show memif: {self.name} ring {ring['index']} has no details")
            rings.append(MemifRing(**ring))  # type: ignore[arg-type]
        values = dict(self.values)
        socket_id = values.get("socket_id")
        if "socket_filename" not in values and socket_id is not None:
            values["socket_filename"] = next(
                (entry.filename for entry in sockets if entry.socket_id == socket_id), None
            )
        return MemifInterfaceInfo(
            name=self.name,
            regions=tuple(self.regions),
            rings=tuple(rings),
            **values,  # type: ignore[arg-type]
        )


def parse_show_memif(text: str) -> MemifShow:
    """Parse `show memif` output (VPP 17.10 to current formats).

    Handles the sockets table (VPP >= 18.x), interfaces in the "socket-id S id I" format and
    the older "id I mode M file F" format, disconnect reasons, regions and rings. Lines it
    does not know (the `descriptors` tables) are skipped.

    Args:
        text: Command output (no memif interface and no sockets table gives empty lists).

    Returns:
        The sockets table and interface blocks.

    Raises:
        VppCommandError: The output is a CLI error ("show memif: unknown input ...").
        VppParseError: An interface block misses a mandatory line, or the text is not
            `show memif` output at all.
    """
    text = text.replace("\r", "")
    _raise_cli_error("show memif", text)
    sockets: list[MemifSocketEntry] = []
    builders: list[_InterfaceBuilder] = []
    in_sockets = False
    for line in text.splitlines():
        if not line.strip():
            continue
        if _MEMIF_SOCKETS_RE.match(line):
            in_sockets = True
            continue
        started = _MEMIF_INTERFACE_RE.match(line.strip())
        if started is not None:
            in_sockets = False
            builders.append(_InterfaceBuilder(started["name"]))
            continue
        if in_sockets:
            if _MEMIF_SOCKETS_HEADER_RE.match(line):
                continue
            entry = _MEMIF_SOCKET_RE.match(line)
            if entry is None:
                raise VppParseError(f"show memif: unexpected line in sockets table: {line!r}")
            count = entry["count"]
            sockets.append(
                MemifSocketEntry(
                    socket_id=int(entry["id"]),
                    listener=entry["listener"] != "no",
                    interface_count=None if count is None else int(count),
                    filename=entry["filename"],
                )
            )
            continue
        if not builders:
            raise VppParseError(f"not show memif output: {line!r}")
        for kind, pattern in _MEMIF_FIELDS.items():
            match = pattern.match(line)
            if match is not None:
                builders[-1].take(kind, match)
                break
    return MemifShow(
        sockets=tuple(sockets), interfaces=tuple(builder.build(sockets) for builder in builders)
    )


# --------------------------------------------------------------------------- show interface


@dataclass(frozen=True)
class VppInterfaceStats:
    """One interface of `show interface`: name, index, admin state, MTUs and counters.

    VPP prints only non-zero counters, so a counter that is absent is 0.

    Attributes:
        name: Interface name.
        index: sw_if_index.
        state: Admin state as printed ("up", "down").
        mtu: (L3, IP4, IP6, MPLS) MTUs, None for VPP versions without the MTU column.
        counters: Counter name ("rx packets", "drops", "tx-error", ...) -> value.
    """

    name: str
    index: int
    state: str
    mtu: tuple[int, int, int, int] | None
    counters: Mapping[str, int]

    @property
    def admin_up(self) -> bool:
        """True if the interface is administratively up."""
        return self.state == "up"

    def counter(self, name: str) -> int:
        """A counter's value (0 when VPP did not print it)."""
        return self.counters.get(name, 0)

    @property
    def rx_packets(self) -> int:
        """Received packets."""
        return self.counter("rx packets")

    @property
    def rx_bytes(self) -> int:
        """Received bytes."""
        return self.counter("rx bytes")

    @property
    def tx_packets(self) -> int:
        """Transmitted packets."""
        return self.counter("tx packets")

    @property
    def tx_bytes(self) -> int:
        """Transmitted bytes."""
        return self.counter("tx bytes")

    @property
    def drops(self) -> int:
        """Packets dropped."""
        return self.counter("drops")


_SHOW_INTERFACE_HEADER_RE: Final = re.compile(r"^\s+Name\s+Idx\s+State\b")
_SHOW_INTERFACE_ROW_RE: Final = re.compile(
    r"^(?P<name>\S+)\s+(?P<index>\d+)\s+(?P<state>\S+)"
    r"(?:\s+(?P<mtu>\d+/\d+/\d+/\d+))?(?P<rest>.*)$"
)
_SHOW_INTERFACE_COUNTER_RE: Final = re.compile(
    r"^\s*(?P<name>[A-Za-z][\w-]*(?: [A-Za-z][\w-]*)*)\s+(?P<value>\d+)\s*$"
)


def parse_show_interface(text: str) -> dict[str, VppInterfaceStats]:
    """Parse `show interface` output.

    Args:
        text: Command output (with or without the MTU column of VPP >= 18.x).

    Returns:
        Interface name -> stats, in output order.

    Raises:
        VppCommandError: The output is a CLI error.
        VppParseError: No header line, or a line that is neither a row nor a counter.
    """
    text = text.replace("\r", "")
    _raise_cli_error("show interface", text)
    rows: list[tuple[re.Match[str], dict[str, int]]] = []
    seen_header = False
    for line in text.splitlines():
        if not line.strip():
            continue
        if _SHOW_INTERFACE_HEADER_RE.match(line):
            seen_header = True
            continue
        if not seen_header:
            raise VppParseError(f"show interface: no header before {line!r}")
        row = None if line[0].isspace() else _SHOW_INTERFACE_ROW_RE.match(line)
        rest = line
        if row is not None:
            rows.append((row, {}))
            rest = row["rest"]
        elif not rows:
            raise VppParseError(f"show interface: counter before any interface: {line!r}")
        if not rest.strip():
            continue
        counter = _SHOW_INTERFACE_COUNTER_RE.match(rest)
        if counter is None:
            raise VppParseError(f"show interface: cannot read {line!r}")
        rows[-1][1][counter["name"]] = int(counter["value"])
    if not seen_header:
        raise VppParseError(f"no 'Name Idx State' header in: {text[:200]!r}")
    result: dict[str, VppInterfaceStats] = {}
    for row, counters in rows:
        mtu = None if row["mtu"] is None else tuple(int(part) for part in row["mtu"].split("/"))
        result[row["name"]] = VppInterfaceStats(
            name=row["name"],
            index=int(row["index"]),
            state=row["state"],
            mtu=mtu,  # type: ignore[arg-type]
            counters=MappingProxyType(counters),
        )
    return result


# --------------------------------------------------------------------------- vppctl


class Vppctl:
    """Runs VPP CLI commands through `vppctl -s <cli socket> <command>`, one process each."""

    def __init__(
        self,
        cli_socket: str | Path,
        *,
        binary: str = DEFAULT_VPPCTL_BINARY,
        timeout: float = 10.0,
        command_prefix: Sequence[str] = (),
    ) -> None:
        """Prepare a driver.

        Args:
            cli_socket: VPP's CLI socket (`unix { cli-listen }`).
            binary: vppctl executable name or path.
            timeout: Seconds each command may take.
            command_prefix: Words put before vppctl, e.g. ("docker", "exec", "<container>") to
                drive a VPP inside a container.
        """
        self.cli_socket = Path(cli_socket)
        self.binary = binary
        self.timeout = timeout
        self.command_prefix = tuple(command_prefix)

    def argv(self, command: str) -> list[str]:
        """The command line that runs `command` (vppctl joins its arguments with spaces)."""
        return [*self.command_prefix, self.binary, "-s", str(self.cli_socket), command]

    def run(self, command: str, *, timeout: float | None = None, check: bool = True) -> str:
        """Run one CLI command.

        Args:
            command: The command, e.g. "show memif".
            timeout: Seconds to allow; default the driver's timeout.
            check: Raise VppCommandError if VPP rejects the command.

        Returns:
            The command's output (carriage returns removed).

        Raises:
            VppTimeoutError: vppctl did not finish in time.
            VppctlError: vppctl could not run or exited non-zero.
            VppCommandError: VPP rejected the command (with check).
        """
        limit = self.timeout if timeout is None else timeout
        try:
            done = subprocess.run(
                self.argv(command),
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=limit,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise VppTimeoutError(f"vppctl {command!r} did not finish within {limit} s") from None
        except OSError as exc:
            raise VppctlError(f"cannot run {self.binary}: {exc}") from None
        output = done.stdout.replace("\r", "")
        if done.returncode != 0:
            detail = (done.stderr.strip() or output.strip())[:500]
            raise VppctlError(f"vppctl {command!r} exited with {done.returncode}: {detail}")
        if check:
            _raise_cli_error(command, output)
        return output

    def show_version(self) -> VppShowVersion:
        """Run and parse `show version`."""
        return parse_show_version(self.run("show version"))

    def show_memif(self) -> MemifShow:
        """Run and parse `show memif`."""
        return parse_show_memif(self.run("show memif"))

    def show_interface(self) -> dict[str, VppInterfaceStats]:
        """Run and parse `show interface`."""
        return parse_show_interface(self.run("show interface"))

    def apply(self, setup: VppMemifSetup, version: VppVersion | None = None) -> list[str]:
        """Run every command of `setup`, after checking it against `version`.

        Args:
            setup: What to configure.
            version: The VPP version if known (abstract sockets need >= 23.06).

        Returns:
            Each command's output.

        Raises:
            VppUnsupportedError: The setup needs a newer VPP.
            VppCommandError: VPP rejected a command (later commands are not run).
        """
        setup.check_version(version)
        return [self.run(command) for command in setup.commands()]


# --------------------------------------------------------------------------- the process


def _tail_of(path: Path, lines: int) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.replace("\r", "").splitlines()[-lines:])


class VppProcess:
    """One `vpp -c startup.conf` run by the harness, in its own process group.

    Start-up writes startup.conf into the runtime directory, starts VPP with stdout and
    stderr in `console.log` there, then polls until the CLI socket exists and `show version`
    answers. stop() ends the process group (SIGTERM, then SIGKILL) and removes the files
    it made. Use as a context manager, or call start() and stop().
    """

    def __init__(
        self,
        config: VppStartupConfig,
        *,
        vpp_bin: str = DEFAULT_VPP_BINARY,
        vppctl_bin: str = DEFAULT_VPPCTL_BINARY,
        startup_timeout: float = 30.0,
        command_timeout: float = 10.0,
        poll_interval: float = 0.1,
        stop_timeout: float = 10.0,
        env: Mapping[str, str] | None = None,
    ) -> None:
        """Prepare (but do not start) a VPP process.

        Args:
            config: The startup configuration.
            vpp_bin: vpp executable name or path.
            vppctl_bin: vppctl executable name or path.
            startup_timeout: Seconds until the CLI must answer.
            command_timeout: Seconds each vppctl command may take.
            poll_interval: Seconds between readiness polls.
            stop_timeout: Default seconds between SIGTERM and SIGKILL in stop().
            env: Environment of the process (default: inherited).
        """
        self.config = config
        self.vpp_bin = vpp_bin
        self.startup_timeout = startup_timeout
        self.poll_interval = poll_interval
        self.stop_timeout = stop_timeout
        self.env = None if env is None else dict(env)
        assert config.cli_socket is not None  # filled in by VppStartupConfig.__post_init__
        self.vppctl = Vppctl(config.cli_socket, binary=vppctl_bin, timeout=command_timeout)
        self.version: VppVersion | None = None
        self.last_log_tail = ""
        self._proc: subprocess.Popen[bytes] | None = None
        self._console: IO[bytes] | None = None
        self._created_dir = False

    @property
    def startup_conf(self) -> Path:
        """Where startup.conf is written."""
        return self.config.runtime_dir / "startup.conf"

    @property
    def console_log(self) -> Path:
        """VPP's stdout and stderr."""
        return self.config.runtime_dir / "console.log"

    def argv(self) -> list[str]:
        """The command line."""
        return [self.vpp_bin, "-c", str(self.startup_conf)]

    @property
    def pid(self) -> int | None:
        """VPP's pid (also its process group id), None before start."""
        return None if self._proc is None else self._proc.pid

    @property
    def running(self) -> bool:
        """True while the process runs."""
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> Self:
        """Start VPP and wait until its CLI answers `show version`.

        Returns:
            self.

        Raises:
            VppStartupError: VPP could not be started, exited, or did not answer in time
                (the process is stopped and its files removed; the error has the log tail).
        """
        if self._proc is not None:
            raise VppError("this VppProcess was already started")
        runtime_dir = self.config.runtime_dir
        self._created_dir = not runtime_dir.exists()
        runtime_dir.mkdir(parents=True, exist_ok=True)
        for path in (self.config.cli_socket, self.config.stats_socket):
            assert path is not None
            if path.exists() and not stat.S_ISSOCK(path.stat().st_mode):
                raise VppStartupError(f"{path} exists and is not a socket")
            path.unlink(missing_ok=True)
        self.startup_conf.write_text(self.config.text())
        self._console = open(self.console_log, "wb")  # noqa: SIM115 (closed in stop)
        try:
            self._proc = subprocess.Popen(
                self.argv(),
                stdin=subprocess.DEVNULL,
                stdout=self._console,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env=self.env,
            )
        except OSError as exc:
            self._close_console()
            self._remove_files()
            raise VppStartupError(f"cannot start {self.vpp_bin}: {exc}") from None
        try:
            self._wait_ready()
        except VppStartupError as exc:
            self.stop()
            raise VppStartupError(exc.summary, self.last_log_tail) from None
        return self

    def _wait_ready(self) -> None:
        assert self._proc is not None
        deadline = time.monotonic() + self.startup_timeout
        last_problem = "the CLI socket did not appear"
        while True:
            returncode = self._proc.poll()
            if returncode is not None:
                raise VppStartupError(f"vpp exited with {returncode} during start-up")
            if self.config.cli_socket is not None and self.config.cli_socket.exists():
                remaining = max(0.1, deadline - time.monotonic())
                try:
                    output = self.vppctl.run(
                        "show version", timeout=min(remaining, self.vppctl.timeout)
                    )
                    self.version = parse_show_version(output).version
                    return
                except (VppError, VppParseError) as exc:
                    last_problem = f"`show version` did not answer yet ({exc})"
            if time.monotonic() >= deadline:
                raise VppStartupError(
                    f"vpp not ready within {self.startup_timeout} s: {last_problem}"
                )
            time.sleep(self.poll_interval)

    def log_tail(self, lines: int = _LOG_TAIL_LINES) -> str:
        """The last lines of VPP's console output and of its log file."""
        parts = []
        for path in (self.console_log, self.config.log_file):
            assert path is not None
            tail = _tail_of(path, lines)
            if tail:
                parts.append(f"[{path.name}]\n{tail}")
        return "\n".join(parts)

    def stop(self, timeout: float | None = None, *, keep_files: bool = False) -> int | None:
        """Stop VPP's process group and remove the files this process made.

        Args:
            timeout: Seconds to wait after SIGTERM before SIGKILL (default stop_timeout).
            keep_files: Keep startup.conf, logs and the runtime directory.

        Returns:
            VPP's return code (negative: killed by that signal), None if never started.
        """
        proc = self._proc
        if proc is None:
            return None
        limit = self.stop_timeout if timeout is None else timeout
        if proc.poll() is None:
            self._signal_group(signal.SIGTERM)
            try:
                proc.wait(limit)
            except subprocess.TimeoutExpired:
                self._signal_group(signal.SIGKILL)
                proc.wait(limit)
        self._close_console()
        self.last_log_tail = self.log_tail()
        if not keep_files:
            self._remove_files()
        return proc.returncode

    def _signal_group(self, sig: signal.Signals) -> None:
        assert self._proc is not None
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self._proc.pid, sig)

    def _close_console(self) -> None:
        if self._console is not None:
            self._console.close()
            self._console = None

    def _remove_files(self) -> None:
        config = self.config
        for path in (
            self.startup_conf,
            self.console_log,
            config.cli_socket,
            config.stats_socket,
            config.log_file,
        ):
            assert path is not None
            with contextlib.suppress(OSError):
                path.unlink(missing_ok=True)
        if self._created_dir:
            with contextlib.suppress(OSError):
                config.runtime_dir.rmdir()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def apply(self, setup: VppMemifSetup) -> list[str]:
        """Configure `setup` (checked against the running VPP's version).

        Raises:
            VppUnsupportedError: The setup needs a newer VPP.
            VppCommandError: VPP rejected a command.
        """
        return self.vppctl.apply(setup, self.version)

    def show_memif(self) -> MemifShow:
        """Run and parse `show memif`."""
        return self.vppctl.show_memif()

    def show_interface(self) -> dict[str, VppInterfaceStats]:
        """Run and parse `show interface`."""
        return self.vppctl.show_interface()

    def wait_connected(
        self, interface: str, timeout: float = 10.0, interval: float = 0.1
    ) -> MemifInterfaceInfo:
        """Poll `show memif` until `interface` shows the "connected" flag.

        Args:
            interface: memif interface name, e.g. "memif1/0".
            timeout: Seconds to wait.
            interval: Seconds between polls.

        Returns:
            The connected interface's block.

        Raises:
            VppTimeoutError: Not connected in time (the message has the last block).
        """
        deadline = time.monotonic() + timeout
        while True:
            info = self.show_memif().interface(interface)
            if info.connected:
                return info
            if time.monotonic() >= deadline:
                raise VppTimeoutError(
                    f"{interface} not connected within {timeout} s (flags "
                    f"{sorted(info.flags)}, local reason {info.local_disconnect_reason!r}, "
                    f"remote reason {info.remote_disconnect_reason!r})"
                )
            time.sleep(interval)


# --------------------------------------------------------------------------- availability


@dataclass(frozen=True)
class VppAvailability:
    """Whether a VPP can be run here, and how; str() gives the sentence for reports.

    Attributes:
        available: True if a VPP binary (with vppctl) or a local image was found.
        reason: Why not, when not available.
        how: How it was found, when available.
        version: VPP version if known.
        vpp_bin: The vpp executable.
        vppctl_bin: The vppctl executable.
        image: The container image.
    """

    available: bool
    reason: str | None = None
    how: str | None = None
    version: VppVersion | None = None
    vpp_bin: Path | None = None
    vppctl_bin: Path | None = None
    image: str | None = None

    def __bool__(self) -> bool:
        return self.available

    def __str__(self) -> str:
        if self.available:
            version = "version unknown" if self.version is None else f"VPP {self.version}"
            return f"available ({version}, {self.how})"
        return f"not available: {self.reason}; how to get one: {HOW_TO_GET_VPP}"


def _not_available(reason: str) -> VppAvailability:
    return VppAvailability(available=False, reason=reason)


def _resolve(binary: str, search_path: str | None) -> Path | None:
    if os.sep in binary:
        path = Path(binary)
        return path if path.is_file() and os.access(path, os.X_OK) else None
    found = shutil.which(binary, path=search_path)
    return None if found is None else Path(found)


def _find_binary(vpp_bin: str | None, search_path: str | None) -> VppAvailability:
    vpp = _resolve(vpp_bin or DEFAULT_VPP_BINARY, search_path)
    if vpp is None:
        if vpp_bin is not None:
            return _not_available(f"--vpp-bin {vpp_bin!r} is not an executable file")
        return _not_available("no `vpp` executable on PATH")
    sibling = vpp.parent / DEFAULT_VPPCTL_BINARY
    vppctl = sibling if sibling.is_file() and os.access(sibling, os.X_OK) else None
    vppctl = vppctl or _resolve(DEFAULT_VPPCTL_BINARY, search_path)
    if vppctl is None:
        return _not_available(f"found {vpp} but no `vppctl` next to it or on PATH")
    version = embedded_version(vpp)
    return VppAvailability(
        available=True,
        how=f"binary {vpp} with {vppctl}",
        version=version,
        vpp_bin=vpp,
        vppctl_bin=vppctl,
    )


def _find_image(
    image: str, search_path: str | None, docker_bin: str, timeout: float
) -> VppAvailability:
    docker = _resolve(docker_bin, search_path)
    if docker is None:
        return _not_available(f"--vpp-image {image!r} given but no `{docker_bin}` CLI found")
    try:
        done = subprocess.run(
            [str(docker), "image", "inspect", "--format", "{{json .Config.Labels}}", image],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return _not_available(f"`docker image inspect {image}` failed: {exc}")
    if done.returncode != 0:
        detail = (done.stderr.strip().splitlines() or ["no output"])[0]
        return _not_available(
            f"image {image!r} is not available locally (the harness never pulls; run "
            f"`docker pull {image}` yourself): {detail}"
        )
    version: VppVersion | None = None
    with contextlib.suppress(ValueError, AttributeError, TypeError, KeyError):
        labels = json.loads(done.stdout or "null") or {}
        version = VppVersion.parse(labels["org.opencontainers.image.version"])
    return VppAvailability(available=True, how=f"image {image}", version=version, image=image)


def find_vpp(
    vpp_bin: str | None = None,
    vpp_image: str | None = None,
    *,
    search_path: str | None = None,
    docker_bin: str = "docker",
    timeout: float = 10.0,
) -> VppAvailability:
    """Find a VPP the harness can run; never raises when there is none.

    Looks at `vpp_bin` if given, else at `vpp_image` if given, else for `vpp` on PATH. A
    binary also needs `vppctl` (next to it, or on PATH); its version is read from the
    executable (VPP cannot be asked without starting it). An image must already be present
    locally (nothing is pulled); its version comes from the `org.opencontainers.image.version`
    label when that holds a VPP version.

    Args:
        vpp_bin: `--vpp-bin`: vpp executable name or path.
        vpp_image: `--vpp-image`: container image with VPP.
        search_path: PATH to search instead of the process's PATH.
        docker_bin: docker CLI name or path.
        timeout: Seconds for `docker image inspect`.

    Returns:
        The availability; str() of it is "available (...)" or "not available: <reason>; how
        to get one: ...".
    """
    if vpp_bin is not None or vpp_image is None:
        return _find_binary(vpp_bin, search_path)
    return _find_image(vpp_image, search_path, docker_bin, timeout)
