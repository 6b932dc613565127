"""FD.io VPP as a harness peer: MemifSpec -> startup.conf and CLI, status from `show memif`.

One `vpp` process per peer, in its own runtime directory under the peer's workdir, driven
through `vppctl`. The spec becomes one memif socket (id 1) and one memif interface
(`memif1/<interface id>`); the activity decides what else is configured:

- ECHO: an IPv4 address from 198.18.0.0/15 (server .1/24, client .2/24); VPP answers ARP
  and ICMP echo itself. The echo responder lives in ping_plugin.so (src/plugins/ping/ping.c
  registers `ip4-icmp-echo-request` for ICMP4_echo_request), so that plugin is enabled too.
- IDLE, SINK: the interface is up and nothing else; VPP counts what arrives (and, having
  nowhere to send it, counts it as dropped too).
- FORWARD: `set interface l2 xconnect memif1/N memif1/N`, the interface cross-connected to
  itself, so every received frame goes back out unchanged (testpmd's io mode, no MAC swap).
- SOURCE: a packet-generator stream out of the interface, enabled once the link is up.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import re
import shutil
import stat
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Final

from harness.peers.base import (
    Activity,
    MemifSpec,
    PacingUnsupported,
    Peer,
    PeerCounters,
    PeerCrashed,
    PeerError,
    PeerStatus,
    Role,
)
from harness.peers.reasons import DisconnectReason, normalise
from harness.peers.vpp import (
    ABSTRACT_PREFIX,
    BENCHMARK_NETWORK,
    MemifInterfaceInfo,
    VppAvailability,
    VppError,
    VppInterfaceAddress,
    VppInterfaceStats,
    VppMemifInterface,
    VppMemifMode,
    VppMemifSetup,
    VppMemifSocket,
    VppParseError,
    VppProcess,
    VppRole,
    VppStartupConfig,
    VppStartupError,
    VppUnsupportedError,
    find_vpp,
)
from harness.topology.numa import Placement

SOCKET_ID: Final = 1
"""The memif socket id every VppPeer registers (VPP names the interface memif1/<id>)."""
MEMIF_PLUGIN: Final = "memif_plugin.so"
PING_PLUGIN: Final = "ping_plugin.so"
ECHO_ADDRESSES: Final[Mapping[Role, str]] = {
    Role.SERVER: "198.18.0.1/24",
    Role.CLIENT: "198.18.0.2/24",
}
"""The address VPP answers ARP and ping on, per role (RFC 2544 benchmarking range)."""
SOURCE_MACS: Final[Mapping[Role, str]] = {
    Role.SERVER: "02:fe:c6:12:00:01",
    Role.CLIENT: "02:fe:c6:12:00:02",
}
"""Source MAC of generated frames, per role (locally administered; 0xc6 0x12 = 198.18)."""
STREAM_NAME: Final = "memif-harness-tx"
PG_HEADER_BYTES: Final = 14 + 20 + 8
"""Ethernet + IPv4 + UDP headers: pg refuses a size below its header size."""

_TEARDOWN_TIMEOUT: Final = 2.0
_EXITED_RE: Final = re.compile(r"vpp exited with -?\d+ during start-up")
_MAC_RE: Final = re.compile(r"(?:[0-9a-f]{2}:){5}[0-9a-f]{2}")
_NAME_RE: Final = re.compile(r"[A-Za-z0-9_.-]+")
_INTERFACE_RE: Final = re.compile(r"[A-Za-z][\w./:-]*")


# --------------------------------------------------------------------------- packet generator


@dataclass(frozen=True)
class VppPacketStream:
    """A VPP packet-generator stream of UDP/IPv4 frames out of one interface.

    `cli()` renders `packet-generator new name N [limit L] [rate R] size S-S node IF-output
    tx-interface IF data { IP4: SRC-MAC -> DST-MAC UDP: SRC-IP -> DST-IP UDP: SP -> DP
    incrementing K }` on one line, as src/vnet/pg/cli.c (new_stream) parses it; a stream is
    created disabled and runs after `packet-generator enable-stream N`.

    Attributes:
        name: Stream name (`enable-stream`/`delete` take it).
        interface: VPP interface to transmit on, e.g. "memif1/0".
        frame_size: Bytes per frame, Ethernet header included, FCS excluded.
        src_mac: Ethernet source address.
        dst_mac: Ethernet destination address (broadcast: every receiver takes it).
        src_ip: IPv4 source, inside 198.18.0.0/15.
        dst_ip: IPv4 destination, inside 198.18.0.0/15.
        src_port: UDP source port.
        dst_port: UDP destination port.
        limit: Frames to send, 0 for no limit (pg's default; input.c checks `limit > 0`).
        rate: Frames per second, None for as fast as VPP can.
    """

    name: str
    interface: str
    frame_size: int = 64
    src_mac: str = SOURCE_MACS[Role.SERVER]
    dst_mac: str = "ff:ff:ff:ff:ff:ff"
    src_ip: str = "198.18.0.1"
    dst_ip: str = "198.18.0.2"
    src_port: int = 1234
    dst_port: int = 2345
    limit: int = 0
    rate: float | None = None

    def __post_init__(self) -> None:
        if _NAME_RE.fullmatch(self.name) is None:
            raise ValueError(f"stream name {self.name!r}: letters, digits, '_', '.', '-' only")
        if _INTERFACE_RE.fullmatch(self.interface) is None:
            raise ValueError(f"interface name {self.interface!r} is not a VPP interface name")
        if not PG_HEADER_BYTES <= self.frame_size <= 0xFFFF:
            raise ValueError(
                f"frame_size {self.frame_size} not in {PG_HEADER_BYTES}..65535 (pg needs room "
                "for the Ethernet, IPv4 and UDP headers)"
            )
        for what, mac in (("src_mac", self.src_mac), ("dst_mac", self.dst_mac)):
            if _MAC_RE.fullmatch(mac) is None:
                raise ValueError(f"{what} {mac!r} is not aa:bb:cc:dd:ee:ff (lower case)")
        for what, address in (("src_ip", self.src_ip), ("dst_ip", self.dst_ip)):
            try:
                parsed = ipaddress.IPv4Address(address)
            except ValueError:
                raise ValueError(f"{what} {address!r} is not an IPv4 address") from None
            if parsed not in BENCHMARK_NETWORK:
                raise ValueError(f"{what} {address} is outside {BENCHMARK_NETWORK}")
        for what, port in (("src_port", self.src_port), ("dst_port", self.dst_port)):
            if not 0 <= port <= 0xFFFF:
                raise ValueError(f"{what} {port} not in 0..65535")
        if self.limit < 0:
            raise ValueError(f"limit {self.limit} must be >= 0 (0: no limit)")
        if self.rate is not None and self.rate <= 0:
            raise ValueError(f"rate {self.rate} must be positive (None: as fast as possible)")

    @property
    def payload_bytes(self) -> int:
        """UDP payload bytes that fill the frame."""
        return self.frame_size - PG_HEADER_BYTES

    def cli(self) -> str:
        """The `packet-generator new ...` command (one line, for vppctl)."""
        words = ["packet-generator new", f"name {self.name}"]
        if self.limit:
            words.append(f"limit {self.limit}")
        if self.rate is not None:
            words.append(f"rate {self.rate:g}")
        words += [
            f"size {self.frame_size}-{self.frame_size}",
            f"node {self.interface}-output",
            f"tx-interface {self.interface}",
        ]
        data = [
            f"IP4: {self.src_mac} -> {self.dst_mac}",
            f"UDP: {self.src_ip} -> {self.dst_ip}",
            f"UDP: {self.src_port} -> {self.dst_port}",
        ]
        if self.payload_bytes:
            data.append(f"incrementing {self.payload_bytes}")
        words.append("data { " + " ".join(data) + " }")
        return " ".join(words)

    def enable_cli(self) -> str:
        """The command that starts the stream."""
        return f"packet-generator enable-stream {self.name}"

    def disable_cli(self) -> str:
        """The command that stops the stream."""
        return f"packet-generator disable-stream {self.name}"


# --------------------------------------------------------------------------- spec -> VPP


def memif_setup(spec: MemifSpec) -> VppMemifSetup:
    """The sockets, interface and address VPP needs for a spec.

    Args:
        spec: The interface the scenario asks for.

    Returns:
        Socket id 1 (the spec's path, or `abstract:NAME`), one memif interface, and for
        ECHO the role's address from 198.18.0.0/15.

    Raises:
        ValueError: VPP cannot express the spec (relative path, secret with spaces, ...).
    """
    if spec.interrupt:  # VPP can (set interface rx-mode ... interrupt): not mapped yet
        raise ValueError("interrupt mode is not mapped to VPP's rx-mode yet")
    if spec.rate is not None or spec.seconds is not None or spec.trials:
        raise PacingUnsupported(
            "the VPP adapter's packet generator stream is not paced or time-bound yet"
        )
    if spec.iface is not None:
        raise ValueError("the VPP adapter does not bridge memif to a kernel interface yet")
    filename = f"{ABSTRACT_PREFIX}{spec.socket_path}" if spec.abstract else spec.socket_path
    role = VppRole.MASTER if spec.role is Role.SERVER else VppRole.SLAVE
    # The slave asks for the rings; a VPP master offers fixed maxima in HELLO (socket.c,
    # memif_msg_enq_hello), so its own queue counts stay at VPP's default.
    queues = spec.queues if role is VppRole.SLAVE else 1
    interface = VppMemifInterface(
        id=spec.interface_id,
        socket_id=SOCKET_ID,
        role=role,
        ring_size=1 << spec.log2_ring_size,
        buffer_size=spec.buffer_size,
        rx_queues=queues,
        tx_queues=queues,
        secret=spec.secret,
        mode=VppMemifMode(spec.mode) if spec.mode != "punt-inject" else _punt_inject(),
        no_zero_copy=not spec.zero_copy,
    )
    addresses: tuple[VppInterfaceAddress, ...] = ()
    if spec.activity is Activity.ECHO:
        addresses = (VppInterfaceAddress(interface.name, ECHO_ADDRESSES[spec.role]),)
    return VppMemifSetup(
        sockets=(VppMemifSocket(SOCKET_ID, filename),),
        interfaces=(interface,),
        addresses=addresses,
    )


def _punt_inject() -> VppMemifMode:
    raise PeerError("VPP's CLI cannot create a punt-inject memif interface")


def packet_stream(spec: MemifSpec, interface: str) -> VppPacketStream | None:
    """The packet-generator stream for a SOURCE spec, None for any other activity."""
    if spec.activity is not Activity.SOURCE:
        return None
    peer_role = Role.CLIENT if spec.role is Role.SERVER else Role.SERVER
    return VppPacketStream(
        name=STREAM_NAME,
        interface=interface,
        frame_size=spec.frame_size,
        src_mac=SOURCE_MACS[spec.role],
        src_ip=ECHO_ADDRESSES[spec.role].split("/")[0],
        dst_ip=ECHO_ADDRESSES[peer_role].split("/")[0],
    )


def activity_commands(spec: MemifSpec, interface: str) -> tuple[str, ...]:
    """CLI commands, after the memif setup, that make VPP do the spec's activity."""
    if spec.activity is Activity.FORWARD:
        return (f"set interface l2 xconnect {interface} {interface}",)
    stream = packet_stream(spec, interface)
    return () if stream is None else (stream.cli(),)


def plugins_for(spec: MemifSpec) -> tuple[str, ...]:
    """Plugins to enable (all others stay disabled)."""
    if spec.activity is Activity.ECHO:
        return (MEMIF_PLUGIN, PING_PLUGIN)
    return (MEMIF_PLUGIN,)


def disconnect_text(info: MemifInterfaceInfo) -> str | None:
    """The reason worth reporting from a `show memif` block.

    VPP shows `local-disc-reason` (why it disconnected) and `remote-disc-reason` (what the
    peer sent in DISCONNECT); both are cleared when the interface connects again. When VPP
    only answered the peer's DISCONNECT ("disconnect received"), the peer's text is the
    real reason.

    Args:
        info: The interface's block.

    Returns:
        The reason text, or None if VPP shows none.
    """
    local = info.local_disconnect_reason or None
    remote = info.remote_disconnect_reason or None
    if remote is not None and normalise(local) is DisconnectReason.DISCONNECT_RECEIVED:
        return remote
    return local or remote


def peer_counters(stats: VppInterfaceStats | None) -> PeerCounters:
    """`show interface` counters as PeerCounters: drops (and rx-error) count as rx errors."""
    if stats is None:
        return PeerCounters()
    return PeerCounters(
        rx_frames=stats.rx_packets,
        rx_bytes=stats.rx_bytes,
        tx_frames=stats.tx_packets,
        tx_bytes=stats.tx_bytes,
        rx_errors=stats.drops + stats.counter("rx-error"),
        tx_errors=stats.counter("tx-error"),
    )


# --------------------------------------------------------------------------- the peer


class VppPeer(Peer):
    """A local `vpp` process with one memif interface, configured through vppctl."""

    kind = "vpp"

    def __init__(
        self,
        spec: MemifSpec,
        workdir: Path,
        *,
        cpu: int | None = None,
        placement: Placement | None = None,
        vpp_bin: str | None = None,
        search_path: str | None = None,
        api_prefix: str | None = None,
        env: Mapping[str, str] | None = None,
        startup_timeout: float = 30.0,
        command_timeout: float = 10.0,
        poll_interval: float = 0.1,
    ) -> None:
        """Find VPP and prepare (not start) the peer.

        Args:
            spec: The interface to create.
            workdir: Directory that gets the peer's runtime directory `vpp-<role>` (with
                startup.conf, logs and the CLI socket).
            cpu: CPU for VPP's main thread (`cpu { main-core }`), which also polls memif.
            placement: NUMA placement; its first CPU is the main core.
            vpp_bin: vpp executable (default: `vpp` on PATH); vppctl is looked for next to
                it, then on PATH.
            search_path: PATH to search instead of the process's.
            api_prefix: Shared-memory API segment prefix, unique per VPP on the host
                (default: a random one).
            env: Environment of the vpp process (default: inherited).
            startup_timeout: Seconds until VPP's CLI must answer.
            command_timeout: Seconds each vppctl command may take.
            poll_interval: Seconds between polls of the CLI.

        Raises:
            PeerError: No usable VPP (the message says why and how to get one), or the
                spec cannot be expressed in VPP's CLI, or it needs a newer VPP.
        """
        super().__init__(spec, workdir, cpu=cpu, placement=placement)
        self.availability = self._find(vpp_bin, search_path)
        assert self.availability.vpp_bin is not None
        assert self.availability.vppctl_bin is not None
        self.vpp_bin = self.availability.vpp_bin
        self.poll_interval = poll_interval
        try:
            self.setup = memif_setup(spec)
            self.interface = self.setup.interfaces[0].name
            self.stream = packet_stream(spec, self.interface)
            self.extra_commands = activity_commands(spec, self.interface)
            self.config = VppStartupConfig(
                runtime_dir=Path(workdir) / f"vpp-{spec.role.value}",
                api_segment_prefix=api_prefix or f"memif-harness-{uuid.uuid4().hex[:10]}",
                main_core=cpu,
                plugins=plugins_for(spec),
            )
            self.setup.check_version(self.availability.version)
        except (ValueError, VppUnsupportedError) as exc:
            raise PeerError(f"vpp cannot run this spec: {exc}") from None
        self.process = VppProcess(
            self.config,
            vpp_bin=str(self.vpp_bin),
            vppctl_bin=str(self.availability.vppctl_bin),
            startup_timeout=startup_timeout,
            command_timeout=command_timeout,
            poll_interval=poll_interval,
            env=env,
        )
        self._started = False
        self._stopped = False
        self._stopped_by_us = False
        self._stream_enabled = False
        self._configured = False
        self._created_runtime_dir = False
        self._socket_existed = False
        self._returncode: int | None = None
        self._final_logs: str | None = None
        self._last_status = PeerStatus(link_up=False, counters=PeerCounters(), running=False)

    @staticmethod
    def _find(vpp_bin: str | None, search_path: str | None) -> VppAvailability:
        availability = find_vpp(vpp_bin, search_path=search_path)
        if not availability.available or availability.vpp_bin is None:
            raise PeerError(str(availability))
        return availability

    def commands(self) -> tuple[str, ...]:
        """Every CLI command start() sends after VPP answers, in order."""
        return (*self.setup.commands(), *self.extra_commands)

    # ----- lifecycle

    def start(self) -> None:
        """Start VPP, then configure the socket, the interface and the activity.

        Raises:
            PeerError: VPP is gone, did not come up, or refused the configuration (VPP is
                stopped and its files removed; the error carries the log tail).
            PeerCrashed: VPP died by a signal during start-up.
        """
        if self._started or self._stopped:
            raise PeerError("this VppPeer was already started or stopped")
        if not os.access(self.vpp_bin, os.X_OK):
            self._find(str(self.vpp_bin), None)
        self._started = True
        socket_path = Path(self.spec.socket_path)
        self._socket_existed = not self.spec.abstract and os.path.lexists(socket_path)
        self._created_runtime_dir = not self.config.runtime_dir.exists()
        try:
            self.process.start()
        except VppStartupError as exc:
            self._stopped = True
            # Unless VPP exited by itself, VppProcess stopped it (time-out): no crash then.
            self._stopped_by_us = _EXITED_RE.match(exc.summary) is None
            self._returncode = self.process.stop(keep_files=True)
            self._final_logs = exc.log_tail
            self._remove_files()
            if self.crashed:
                raise PeerCrashed(
                    f"vpp crashed during start-up: {exc.summary}", exc.log_tail
                ) from None
            raise PeerError(f"vpp did not start: {exc.summary}", exc.log_tail) from None
        try:
            self.setup.check_version(self.process.version)
            self._configured = True
            for command in self.commands():
                self.process.vppctl.run(command)
        except (VppError, VppUnsupportedError) as exc:
            summary = exc.summary if isinstance(exc, VppError) else str(exc)
            tail = self.process.log_tail()
            self.stop()
            raise PeerError(f"vpp refused the memif setup: {summary}", tail) from None

    def wait_for_link(self, timeout: float) -> bool:
        """Poll `show memif` until the interface shows "connected"; then start a SOURCE.

        Returns:
            True once connected; False after `timeout` seconds or if VPP is not running.

        Raises:
            PeerError: VPP runs but its CLI stopped answering.
        """
        deadline = time.monotonic() + timeout
        while True:
            if not self.process.running:
                return False
            try:
                info = self._memif_info()
            except (VppError, VppParseError) as exc:
                if not self.process.running:
                    return False
                raise self._error("vpp stopped answering", exc) from None
            if info.connected:
                self._start_stream()
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(self.poll_interval)

    def _start_stream(self) -> None:
        if self.stream is None or self._stream_enabled:
            return
        try:
            self.process.vppctl.run(self.stream.enable_cli())
        except VppError as exc:
            raise self._error("vpp did not start its packet generator", exc) from None
        self._stream_enabled = True

    def status(self) -> PeerStatus:
        """Link state and reason from `show memif`, counters from `show interface`.

        When VPP is not running, the last status read, with link down and running False.

        Raises:
            PeerCrashed: VPP died by a signal nobody sent it.
            PeerError: VPP runs but did not answer, or the interface is missing.
        """
        if not self.process.running:
            if self.crashed:
                raise PeerCrashed("vpp crashed", self._tail())
            return replace(self._last_status, link_up=False, running=False)
        try:
            info = self._memif_info()
            stats = self.process.show_interface().get(self.interface)
        except (VppError, VppParseError) as exc:
            raise self._error("vpp stopped answering", exc) from None
        text = disconnect_text(info)
        self._last_status = PeerStatus(
            link_up=info.connected,
            counters=peer_counters(stats),
            disconnect=normalise(text) if text else None,
            disconnect_text=text,
            running=True,
        )
        return self._last_status

    def logs(self) -> str:
        """VPP's console output and its log file (startup config, CLI commands)."""
        if self._final_logs is not None:
            return self._final_logs
        return self._read_logs()

    def version(self) -> str:
        """`show version` of the running VPP, else the version its executable carries."""
        if self.process.running:
            try:
                return f"VPP {self.process.vppctl.show_version().version}"
            except (VppError, VppParseError) as exc:
                raise self._error("vpp did not answer `show version`", exc) from None
        known = self.process.version or self.availability.version
        return f"VPP {known}" if known is not None else "VPP (version unknown)"

    def stop(self) -> None:
        """Delete the interface (VPP sends DISCONNECT), stop VPP, remove its files.

        Removes the runtime directory (if this peer made it) and the server's socket file
        (if VPP made it). Safe to call twice.
        """
        if self._stopped or not self._started:
            self._stopped = True
            return
        self._stopped = True
        if self.process.running:
            for command in self.setup.teardown_commands() if self._configured else ():
                with contextlib.suppress(VppError):
                    self.process.vppctl.run(command, timeout=_TEARDOWN_TIMEOUT, check=False)
            self._stopped_by_us = True
        self._returncode = self.process.stop(keep_files=True)
        self._final_logs = self._read_logs()
        self._remove_files()

    @property
    def crashed(self) -> bool:
        """Whether VPP died by a signal nobody sent it.

        VPP catches SIGSEGV, SIGBUS, SIGILL, SIGFPE and SIGABRT, logs them and calls
        os_exit(1), which aborts: a VPP crash ends with SIGABRT.
        """
        code = self._exit_code()
        return code is not None and code < 0 and not self._stopped_by_us

    # ----- helpers

    def _memif_info(self) -> MemifInterfaceInfo:
        try:
            return self.process.show_memif().interface(self.interface)
        except KeyError:
            raise PeerError(
                f"vpp shows no interface {self.interface} in `show memif` (deleted?)",
                self._tail(),
            ) from None

    def _exit_code(self) -> int | None:
        if self._returncode is None and self._started and not self.process.running:
            # The process has exited, so stop() only collects its return code.
            self._returncode = self.process.stop(keep_files=True)
        return self._returncode

    def _error(self, message: str, exc: BaseException) -> PeerError:
        summary = exc.summary if isinstance(exc, VppError) else str(exc)
        if self.crashed:
            return PeerCrashed(f"vpp crashed: {message}", self._tail())
        return PeerError(f"{message}: {summary}", self._tail())

    def _tail(self) -> str:
        if self._final_logs is not None:
            return "\n".join(self._final_logs.splitlines()[-40:])
        return self.process.log_tail()

    def _read_logs(self) -> str:
        parts = []
        for path in (self.process.console_log, self.config.log_file):
            assert path is not None
            try:
                text = path.read_text(errors="replace").replace("\r", "")
            except OSError:
                continue
            if text.strip():
                parts.append(f"[{path.name}]\n{text.rstrip()}")
        return "\n".join(parts)

    def _remove_files(self) -> None:
        self.process.stop()  # already exited: this only removes the files it made
        if self._created_runtime_dir:
            shutil.rmtree(self.config.runtime_dir, ignore_errors=True)
        if self.spec.role is Role.SERVER and not self.spec.abstract and not self._socket_existed:
            path = Path(self.spec.socket_path)
            with contextlib.suppress(OSError):
                if stat.S_ISSOCK(path.lstat().st_mode):
                    path.unlink()
