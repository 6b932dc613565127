#!/usr/bin/env python3
"""Capture memif control-channel byte vectors from a real DPDK ``dpdk-testpmd``.

Writes three JSON fixture files (default: next to this script):

* ``testpmd_client_handshake.json`` - testpmd is the memif CLIENT; this script is a minimal raw
  server that sends HELLO, ACKs INIT/ADD_REGION/ADD_RING, checks the ring cookies in the region
  testpmd passed and answers CONNECT with CONNECTED.  Also records the shared-memory layout.
* ``testpmd_server_handshake.json`` - testpmd is the memif SERVER; this script is a raw client
  that builds a copy-mode region (memfd, rings C2S then S2C then buffers) and connects.
* ``testpmd_server_refusals.json`` - the exact DISCONNECT datagram testpmd (server) sends for
  each kind of bad client input.

The script is deliberately self-contained (``struct`` + ``socket`` + ``os.memfd_create`` +
``mmap``) and does not import the project's reference implementation, so the captured bytes are
an independent oracle for the wire codec.  Every message is stored as the hex string of its
exact datagram bytes together with the number of fds that travelled with it.

Usage (from the repository root)::

    .venv/bin/python tests/vectors/capture_testpmd.py [--testpmd PATH] [--out-dir DIR]

Linux only; needs permission to run testpmd with ``--no-huge`` (root in the CI image).
"""

from __future__ import annotations

import argparse
import contextlib
import enum
import fcntl
import json
import mmap
import os
import re
import shlex
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any, NamedTuple

HERE = Path(__file__).resolve().parent
DEFAULT_TESTPMD = "/usr/bin/dpdk-testpmd"
GENERATOR = "tests/vectors/capture_testpmd.py"
REGENERATE = ".venv/bin/python tests/vectors/capture_testpmd.py"

# --------------------------------------------------------------------------------------------
# memif wire constants (fact sheet sections 2 and 4)
# --------------------------------------------------------------------------------------------
MSG_SIZE = 128
MEMIF_COOKIE = 0x03E31F20
MEMIF_VERSION = 0x0200
CACHE_LINE = 64  # RTE_CACHE_LINE_SIZE of an x86-64 DPDK build
DESC_SIZE = 16
ADD_RING_FLAG_C2S = 1
RING_FLAG_MASK_INT = 1
RING_C2S = 0
RING_S2C = 1
DIRECTION_NAMES = {RING_C2S: "C2S", RING_S2C: "S2C"}

HELLO_FMT = "<32sHHHHHB"  # name, min_ver, max_ver, max_region, max_s2c(m2s), max_c2s(s2m), log2
INIT_FMT = "<HIB24s32s"  # version, id, mode, secret, name
ADD_REGION_FMT = "<HQ"  # index, size
ADD_RING_FMT = "<HHHIBH"  # flags, index, region, offset, log2_ring_size, private_hdr_size
NAME_FMT = "<32s"  # CONNECT / CONNECTED if_name
DISCONNECT_FMT = "<HI96s"  # type, code, reason (decoded from byte 0)
RING_HEAD_FMT = "<IHH"  # cookie, flags, head (tail is a u16 at CACHE_LINE)
DESC_FMT = "<HHIII"  # flags, region, length, offset, metadata

# Values written into ring headers by this script right before the peer runs its connect
# routine, so that zeroing / flag setting done by testpmd is observable afterwards.
POISON_HEAD = 0x5A5A
POISON_TAIL = 0xA5A5
# flags poison uses an unused bit: afterwards 1 = "flags = MASK_INT", 3 = "|=", 2 = untouched
POISON_FLAGS = 0x0002

STEP_TIMEOUT = 20.0  # seconds for any single socket / process step
MBUFS = "--total-num-mbufs=4096"  # default pool (155456 mbufs) does not fit into -m 256
MEMIF_LOG = "--log-level=pmd.net.memif:debug"  # per-message memif PMD log lines


class MsgType(enum.IntEnum):
    """memif_msg_type_t."""

    NONE = 0
    ACK = 1
    HELLO = 2
    INIT = 3
    ADD_REGION = 4
    ADD_RING = 5
    CONNECT = 6
    CONNECTED = 7
    DISCONNECT = 8


PAYLOAD_SIZES = {
    MsgType.ACK: 0,
    MsgType.HELLO: 43,
    MsgType.INIT: 63,
    MsgType.ADD_REGION: 10,
    MsgType.ADD_RING: 13,
    MsgType.CONNECT: 32,
    MsgType.CONNECTED: 32,
    MsgType.DISCONNECT: 100,
}


class CaptureError(RuntimeError):
    """The peer did not behave as the capture sequence requires."""


class GlobalTimeout(BaseException):
    """The --timeout budget ran out (BaseException so no step-level handler swallows it)."""


# --------------------------------------------------------------------------------------------
# message builders / decoder
# --------------------------------------------------------------------------------------------
def build_msg(msg_type: int, payload: bytes = b"") -> bytes:
    """Return a 128-byte control message: u16 type at 0, payload at 2, zero padding."""
    data = struct.pack("<H", msg_type) + payload
    if len(data) > MSG_SIZE:
        raise ValueError("payload too long")
    return data.ljust(MSG_SIZE, b"\0")


def build_hello(
    name: bytes = b"capture",
    *,
    min_version: int = MEMIF_VERSION,
    max_version: int = MEMIF_VERSION,
    max_region: int = 255,
    max_s2c_ring: int = 255,
    max_c2s_ring: int = 255,
    max_log2_ring_size: int = 14,
) -> bytes:
    """HELLO (server -> client)."""
    payload = struct.pack(
        HELLO_FMT,
        name,
        min_version,
        max_version,
        max_region,
        max_s2c_ring,
        max_c2s_ring,
        max_log2_ring_size,
    )
    return build_msg(MsgType.HELLO, payload)


def build_init(
    *,
    version: int = MEMIF_VERSION,
    interface_id: int = 0,
    mode: int = 0,
    secret: bytes = b"",
    name: bytes = b"capture",
) -> bytes:
    """INIT (client -> server)."""
    return build_msg(MsgType.INIT, struct.pack(INIT_FMT, version, interface_id, mode, secret, name))


def build_add_region(index: int, size: int) -> bytes:
    """ADD_REGION (client -> server); the region fd travels with it."""
    return build_msg(MsgType.ADD_REGION, struct.pack(ADD_REGION_FMT, index, size))


def build_add_ring(
    direction: int, index: int, region: int, offset: int, log2_ring_size: int
) -> bytes:
    """ADD_RING (client -> server); the ring's eventfd travels with it."""
    flags = ADD_RING_FLAG_C2S if direction == RING_C2S else 0
    payload = struct.pack(ADD_RING_FMT, flags, index, region, offset, log2_ring_size, 0)
    return build_msg(MsgType.ADD_RING, payload)


def build_disconnect(reason: bytes, code: int = 0) -> bytes:
    """DISCONNECT (either direction)."""
    return build_msg(MsgType.DISCONNECT, struct.pack("<I96s", code, reason))


def build_named(msg_type: MsgType, name: bytes) -> bytes:
    """CONNECT or CONNECTED carrying an interface name."""
    return build_msg(msg_type, struct.pack(NAME_FMT, name))


def cstr(raw: bytes) -> str:
    """Decode a NUL-terminated fixed-size string field."""
    return raw.split(b"\0", 1)[0].decode("ascii", "backslashreplace")


def type_name(msg_type: int) -> str:
    """Symbolic message-type name, or UNKNOWN(n)."""
    try:
        return MsgType(msg_type).name
    except ValueError:
        return f"UNKNOWN({msg_type})"


def decode_msg(data: bytes) -> dict[str, Any]:
    """Decode one datagram into its fields (only fully for 128-byte messages)."""
    if len(data) < 2:
        return {"type": None}
    (msg_type,) = struct.unpack_from("<H", data)
    out: dict[str, Any] = {"type": type_name(msg_type)}
    if len(data) != MSG_SIZE:
        return out
    if msg_type == MsgType.HELLO:
        name, min_v, max_v, max_region, max_s2c, max_c2s, max_log2 = struct.unpack_from(
            HELLO_FMT, data, 2
        )
        out.update(
            name=cstr(name),
            min_version=min_v,
            max_version=max_v,
            max_region=max_region,
            max_s2c_ring=max_s2c,
            max_c2s_ring=max_c2s,
            max_log2_ring_size=max_log2,
        )
    elif msg_type == MsgType.INIT:
        version, iid, mode, secret, name = struct.unpack_from(INIT_FMT, data, 2)
        out.update(version=version, id=iid, mode=mode, secret=cstr(secret), name=cstr(name))
    elif msg_type == MsgType.ADD_REGION:
        index, size = struct.unpack_from(ADD_REGION_FMT, data, 2)
        out.update(index=index, size=size)
    elif msg_type == MsgType.ADD_RING:
        flags, index, region, offset, log2, priv = struct.unpack_from(ADD_RING_FMT, data, 2)
        out.update(
            flags=flags,
            direction="C2S" if flags & ADD_RING_FLAG_C2S else "S2C",
            index=index,
            region=region,
            offset=offset,
            log2_ring_size=log2,
            private_hdr_size=priv,
        )
    elif msg_type in (MsgType.CONNECT, MsgType.CONNECTED):
        out["if_name"] = cstr(struct.unpack_from(NAME_FMT, data, 2)[0])
    elif msg_type == MsgType.DISCONNECT:
        _, code, reason = struct.unpack_from(DISCONNECT_FMT, data)
        out.update(code=code, reason=cstr(reason))
    if msg_type in PAYLOAD_SIZES:
        out["padding_all_zero"] = not any(data[2 + PAYLOAD_SIZES[MsgType(msg_type)] :])
    return out


# --------------------------------------------------------------------------------------------
# shared-memory layout helpers
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Layout:
    """Copy-mode single-region layout as produced by a DPDK client (fact sheet 4.4)."""

    n_c2s: int
    n_s2c: int
    log2_ring_size: int
    buffer_size: int
    cache_line: int = CACHE_LINE

    @property
    def ring_slots(self) -> int:
        return 1 << self.log2_ring_size

    @property
    def ring_bytes(self) -> int:
        return 2 * self.cache_line + DESC_SIZE * self.ring_slots

    @property
    def buffer_offset(self) -> int:
        return (self.n_c2s + self.n_s2c) * self.ring_bytes

    @property
    def region_size(self) -> int:
        return self.buffer_offset + self.buffer_size * self.ring_slots * (self.n_c2s + self.n_s2c)

    def ring_offset(self, direction: int, index: int) -> int:
        """Byte offset of ring ``index`` of ``direction`` inside region 0."""
        return (index + (self.n_c2s if direction == RING_S2C else 0)) * self.ring_bytes

    def buffer_for(self, direction: int, index: int, slot: int) -> int:
        """Initial buffer offset of ``slot`` in the given ring."""
        ring_global = index + (self.n_c2s if direction == RING_S2C else 0)
        return self.buffer_offset + (ring_global * self.ring_slots + slot) * self.buffer_size

    def rings(self) -> Iterator[tuple[int, int]]:
        """(direction, index) in ADD_RING order: all C2S, then all S2C."""
        for index in range(self.n_c2s):
            yield RING_C2S, index
        for index in range(self.n_s2c):
            yield RING_S2C, index

    def describe(self) -> dict[str, Any]:
        return {
            "cache_line": self.cache_line,
            "ring_bytes": self.ring_bytes,
            "buffer_offset": self.buffer_offset,
            "region_size": self.region_size,
            "ring_offsets": {
                f"{DIRECTION_NAMES[d]}[{i}]": self.ring_offset(d, i) for d, i in self.rings()
            },
        }


def read_ring_header(buf: mmap.mmap, offset: int) -> dict[str, Any]:
    """cookie/flags/head at the ring start, tail one cache line later."""
    cookie, flags, head = struct.unpack_from(RING_HEAD_FMT, buf, offset)
    (tail,) = struct.unpack_from("<H", buf, offset + CACHE_LINE)
    return {
        "cookie": f"0x{cookie:08x}",
        "cookie_ok": cookie == MEMIF_COOKIE,
        "flags": flags,
        "head": head,
        "tail": tail,
    }


def write_ring_header(buf: mmap.mmap, offset: int, flags: int, head: int, tail: int) -> None:
    """Overwrite flags/head/tail of a ring header (cookie untouched)."""
    struct.pack_into("<HH", buf, offset + 4, flags, head)
    struct.pack_into("<H", buf, offset + CACHE_LINE, tail)


def read_descriptors(
    buf: mmap.mmap, ring_offset: int, slots: Sequence[int]
) -> list[dict[str, Any]]:
    """Decode the given descriptor slots of a ring."""
    out = []
    for slot in slots:
        flags, region, length, offset, metadata = struct.unpack_from(
            DESC_FMT, buf, ring_offset + 2 * CACHE_LINE + DESC_SIZE * slot
        )
        out.append(
            {
                "slot": slot,
                "flags": flags,
                "region": region,
                "length": length,
                "offset": offset,
                "metadata": metadata,
            }
        )
    return out


def fd_info(fd: int) -> dict[str, Any]:
    """What kind of fd testpmd passed us: link target, size and (for memfds) seals."""
    info: dict[str, Any] = {"target": os.readlink(f"/proc/self/fd/{fd}")}
    info["st_size"] = os.fstat(fd).st_size
    try:
        seals = fcntl.fcntl(fd, fcntl.F_GET_SEALS)
    except OSError:
        return info
    names = [n for bit, n in ((1, "SEAL"), (2, "SHRINK"), (4, "GROW"), (8, "WRITE")) if seals & bit]
    info["seals"] = names
    return info


class ClientMemory:
    """Copy-mode memory owned by a raw client: one sealed memfd region plus one eventfd per ring."""

    def __init__(self, layout: Layout) -> None:
        self.layout = layout
        self.fd = os.memfd_create("memif_region_0", os.MFD_ALLOW_SEALING | os.MFD_CLOEXEC)
        os.ftruncate(self.fd, layout.region_size)
        fcntl.fcntl(self.fd, fcntl.F_ADD_SEALS, fcntl.F_SEAL_SHRINK)
        self.buf = mmap.mmap(
            self.fd, layout.region_size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE
        )
        self.eventfds = {
            ring: os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC) for ring in layout.rings()
        }
        self._init_rings()

    def _init_rings(self) -> None:
        """Cookie at 0, head/tail/flags 0, descriptors pointing at each slot's buffer."""
        lay = self.layout
        for direction, index in lay.rings():
            off = lay.ring_offset(direction, index)
            struct.pack_into(RING_HEAD_FMT, self.buf, off, MEMIF_COOKIE, 0, 0)
            struct.pack_into("<H", self.buf, off + CACHE_LINE, 0)
            for slot in range(lay.ring_slots):
                struct.pack_into(
                    DESC_FMT,
                    self.buf,
                    off + 2 * CACHE_LINE + DESC_SIZE * slot,
                    0,
                    0,
                    lay.buffer_size,
                    lay.buffer_for(direction, index, slot),
                    0,
                )

    def headers(self) -> dict[str, Any]:
        """Current ring headers keyed like ``C2S[0]``."""
        return {
            f"{DIRECTION_NAMES[d]}[{i}]": read_ring_header(self.buf, self.layout.ring_offset(d, i))
            for d, i in self.layout.rings()
        }

    def poison(self) -> None:
        """Write recognisable flags/head/tail into every ring header."""
        for direction, index in self.layout.rings():
            write_ring_header(
                self.buf,
                self.layout.ring_offset(direction, index),
                POISON_FLAGS,
                POISON_HEAD,
                POISON_TAIL,
            )

    def close(self) -> None:
        self.buf.close()
        os.close(self.fd)
        for efd in self.eventfds.values():
            os.close(efd)


# --------------------------------------------------------------------------------------------
# control channel with recording
# --------------------------------------------------------------------------------------------
class Datagram(NamedTuple):
    data: bytes
    fds: list[int]
    truncated: bool


class Channel:
    """A SOCK_SEQPACKET control connection to testpmd that records every datagram."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.transcript: list[dict[str, Any]] = []
        self.received_fds: list[int] = []
        self.eof = False

    def __enter__(self) -> Channel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.sock.close()
        for fd in self.received_fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        self.received_fds.clear()

    def _record(self, direction: str, data: bytes, nfds: int, description: str) -> dict[str, Any]:
        entry = {
            "direction": direction,
            "type": decode_msg(data)["type"],
            "length": len(data),
            "nfds": nfds,
            "hex": data.hex(),
            "description": description,
            "decoded": decode_msg(data),
        }
        self.transcript.append(entry)
        return entry

    def send(self, data: bytes, description: str, fd: int | None = None) -> None:
        """Send one datagram (optionally with one SCM_RIGHTS fd) and record it."""
        self._record("to_testpmd", data, 0 if fd is None else 1, description)
        if fd is None:
            self.sock.sendmsg([data])
        else:
            socket.send_fds(self.sock, [data], [fd])

    def recv(self, description: str = "", timeout: float = STEP_TIMEOUT) -> Datagram | None:
        """Receive and record one datagram; None on EOF.  Raises TimeoutError."""
        self.sock.settimeout(timeout)
        data, fds, flags, _ = socket.recv_fds(self.sock, 4096, 8)
        if not data and not fds:
            self.eof = True
            return None
        self.received_fds.extend(fds)
        what = description or f"{decode_msg(data)['type']} from testpmd"
        self._record("from_testpmd", data, len(fds), what)
        return Datagram(data, list(fds), bool(flags & socket.MSG_TRUNC))

    def expect(self, msg_type: MsgType, description: str = "") -> Datagram:
        """Receive one datagram and insist on its type."""
        dgram = self.recv(description)
        if dgram is None:
            raise CaptureError(f"EOF while waiting for {msg_type.name}")
        got = decode_msg(dgram.data)
        if got["type"] != msg_type.name:
            raise CaptureError(f"expected {msg_type.name}, got {got}")
        return dgram

    def drain_until_eof(self, timeout: float) -> bool:
        """Record everything until EOF; True if the peer closed within ``timeout``."""
        deadline = time.monotonic() + timeout
        while not self.eof:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            try:
                self.recv(timeout=remaining)
            except TimeoutError:
                return False
            except ConnectionResetError:
                self.eof = True
        return True


def connect_client(path: Path) -> socket.socket:
    """Connect a SOCK_SEQPACKET client socket to a filesystem path."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    sock.settimeout(STEP_TIMEOUT)
    sock.connect(str(path))
    return sock


# --------------------------------------------------------------------------------------------
# testpmd process management
# --------------------------------------------------------------------------------------------
_STARTED: list[Testpmd] = []


class Testpmd:
    """One ``dpdk-testpmd -i`` with a single memif vdev; always killed and cleaned up on exit."""

    def __init__(
        self, binary: str, vdev: str, workdir: Path, label: str, app_args: Sequence[str] = ()
    ) -> None:
        self.prefix = f"memifvec{os.getpid()}{label}"
        self.workdir = workdir
        self.log_path = workdir / f"testpmd-{label}.log"
        self.argv = [
            binary,
            "--no-pci",
            "--no-huge",
            "-m",
            "256",
            f"--file-prefix={self.prefix}",
            "--lcores=0@0,1@0",
            MEMIF_LOG,
            f"--vdev={vdev}",
            "--",
            "-i",
            MBUFS,
            *app_args,
        ]
        self.proc: subprocess.Popen[bytes] | None = None
        self.exit_code: int | None = None
        self._log: Any = None

    # -- lifecycle -------------------------------------------------------------------------
    def __enter__(self) -> Testpmd:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def start(self) -> None:
        """Launch with stdin a pipe (testpmd quits on stdin EOF) and a line-buffered log."""
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in close()
        stdbuf = shutil.which("stdbuf")
        cmd = [stdbuf, "-oL", "-eL", *self.argv] if stdbuf else list(self.argv)
        self.proc = subprocess.Popen(
            cmd,
            stdin=subprocess.PIPE,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        _STARTED.append(self)

    def command(self, line: str) -> None:
        """Type one command into the interactive prompt."""
        if self.proc is None or self.proc.stdin is None or self.proc.poll() is not None:
            raise CaptureError(f"testpmd not running; cannot type {line!r}")
        self.proc.stdin.write(line.encode() + b"\n")
        self.proc.stdin.flush()

    def wait_exit(self, timeout: float) -> int | None:
        """Wait for the process to exit on its own; returns the exit code or None."""
        if self.proc is None:
            return self.exit_code
        try:
            self.exit_code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None
        return self.exit_code

    def close(self) -> None:
        """quit -> stdin EOF -> SIGTERM -> SIGKILL; then remove the EAL runtime dir."""
        proc = self.proc
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(CaptureError, OSError):
                self.command("quit")
            if proc.stdin is not None:
                with contextlib.suppress(OSError):
                    proc.stdin.close()
            if self.wait_exit(STEP_TIMEOUT) is None:
                for sig in (signal.SIGTERM, signal.SIGKILL):
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(proc.pid, sig)
                    if self.wait_exit(5.0) is not None:
                        break
        if proc is not None:
            self.exit_code = proc.returncode
            if proc.stdin is not None:
                with contextlib.suppress(OSError):
                    proc.stdin.close()
        if self._log is not None:
            self._log.close()
            self._log = None
        shutil.rmtree(self.runtime_dir(), ignore_errors=True)

    def runtime_dir(self) -> Path:
        """EAL runtime directory for our --file-prefix (same rule as eal_create_runtime_dir)."""
        base = "/var/run" if os.getuid() == 0 else os.environ.get("XDG_RUNTIME_DIR", "/tmp")
        return Path(base) / "dpdk" / self.prefix

    # -- log helpers -----------------------------------------------------------------------
    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_offset(self) -> int:
        return len(self.log_text())

    def memif_log_lines(self, since: int = 0) -> list[str]:
        """memif-related log lines (temp paths normalised) written after offset ``since``."""
        lines = [
            self.normalise(ln).removeprefix("testpmd> ")
            for ln in self.log_text()[since:].splitlines()
        ]
        return [ln for ln in lines if "memif" in ln.lower()]

    def wait_for_log(self, pattern: str, timeout: float = STEP_TIMEOUT) -> None:
        """Poll the log until ``pattern`` (regex) appears."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if re.search(pattern, self.log_text()):
                return
            if self.proc is not None and self.proc.poll() is not None:
                raise CaptureError(f"testpmd exited early:\n{self.log_text()[-2000:]}")
            time.sleep(0.1)
        raise CaptureError(f"timeout waiting for {pattern!r} in testpmd log")

    def normalise(self, text: str) -> str:
        return text.replace(str(self.workdir), "<tmpdir>").replace(self.prefix, "<prefix>")

    def cmdline(self) -> str:
        """Shell-quoted command line with the temp dir and file prefix as placeholders."""
        return self.normalise(shlex.join(self.argv))


def memif_vdev(role: str, sock_path: Path, extra: str = "") -> str:
    """--vdev value for net_memif0 on a filesystem socket."""
    return f"net_memif0,role={role},id=0{extra},socket={sock_path},socket-abstract=no"


@contextlib.contextmanager
def workspace() -> Iterator[Path]:
    """A private temp dir for sockets and logs, removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="memifvec-") as tmp:
        yield Path(tmp)


def dpkg_version() -> str | None:
    """Installed Debian package version of dpdk, if dpkg is available."""
    try:
        res = subprocess.run(
            ["dpkg-query", "-W", "-f=${Version}", "dpdk"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return res.stdout.strip() or None


# --------------------------------------------------------------------------------------------
# capture 1: testpmd as client, raw server here
# --------------------------------------------------------------------------------------------
@dataclass
class AnnouncedRing:
    direction: int
    index: int
    region: int
    offset: int
    log2_ring_size: int

    @property
    def key(self) -> str:
        return f"{DIRECTION_NAMES[self.direction]}[{self.index}]"


@dataclass
class RawServer:
    """Minimal memif server: HELLO, ACK everything, CONNECTED after checking cookies."""

    ch: Channel
    region_sizes: dict[int, int] = field(default_factory=dict)
    region_fds: dict[int, int] = field(default_factory=dict)
    fd_infos: list[dict[str, Any]] = field(default_factory=list)
    rings: list[AnnouncedRing] = field(default_factory=list)
    maps: dict[int, mmap.mmap] = field(default_factory=dict)
    init: dict[str, Any] = field(default_factory=dict)

    def close(self) -> None:
        for buf in self.maps.values():
            buf.close()

    def handshake(self) -> None:
        """Run the server side until CONNECT has been received (CONNECTED not yet sent)."""
        self.ch.send(build_hello(), "HELLO from capture server (hand-built)")
        while True:
            dgram = self.ch.recv()
            if dgram is None:
                raise CaptureError("testpmd closed the socket during the handshake")
            msg = decode_msg(dgram.data)
            kind = msg["type"]
            for fd in dgram.fds:
                self.fd_infos.append({"message": kind, **fd_info(fd)})
            if kind == "CONNECT":
                return
            if kind == "INIT":
                self.init = msg
            elif kind == "ADD_REGION":
                self.region_sizes[msg["index"]] = msg["size"]
                if dgram.fds:
                    self.region_fds[msg["index"]] = dgram.fds[0]
            elif kind == "ADD_RING":
                direction = RING_C2S if msg["flags"] & ADD_RING_FLAG_C2S else RING_S2C
                self.rings.append(
                    AnnouncedRing(
                        direction, msg["index"], msg["region"], msg["offset"], msg["log2_ring_size"]
                    )
                )
            else:
                raise CaptureError(f"unexpected message during handshake: {msg}")
            self.ch.send(build_msg(MsgType.ACK), f"ACK for {kind}")

    def map_regions(self) -> None:
        """mmap every announced region with the size from ADD_REGION."""
        for index, size in self.region_sizes.items():
            self.maps[index] = mmap.mmap(
                self.region_fds[index], size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE
            )

    def headers(self) -> dict[str, Any]:
        return {r.key: read_ring_header(self.maps[r.region], r.offset) for r in self.rings}

    def check_cookies(self) -> None:
        bad = [k for k, h in self.headers().items() if not h["cookie_ok"]]
        if bad:
            raise CaptureError(f"wrong cookie on rings {bad}")

    def descriptors(self) -> dict[str, Any]:
        out = {}
        for ring in self.rings:
            last = (1 << ring.log2_ring_size) - 1
            out[ring.key] = read_descriptors(
                self.maps[ring.region], ring.offset, [0, 1, 2, 3, last]
            )
        return out

    def poison(self) -> None:
        for ring in self.rings:
            write_ring_header(
                self.maps[ring.region], ring.offset, POISON_FLAGS, POISON_HEAD, POISON_TAIL
            )


def layout_report(
    server: RawServer, n_c2s: int, n_s2c: int, log2: int, bsize: int
) -> dict[str, Any]:
    """Observed layout next to the fact-sheet formula (section 4.4/4.5)."""
    expected = Layout(n_c2s, n_s2c, log2, bsize)
    observed_offsets = {r.key: r.offset for r in server.rings}
    checks = {
        "region_size": server.region_sizes.get(0) == expected.region_size,
        "ring_offsets": observed_offsets == expected.describe()["ring_offsets"],
        "descriptors": all(
            d["region"] == 0
            and d["length"] == bsize
            and d["offset"] == expected.buffer_for(ring.direction, ring.index, d["slot"])
            for ring in server.rings
            for d in server.descriptors()[ring.key]
        ),
    }
    return {
        "observed": {
            "regions": {str(k): v for k, v in server.region_sizes.items()},
            "rings": [
                {
                    "ring": r.key,
                    "region": r.region,
                    "offset": r.offset,
                    "log2_ring_size": r.log2_ring_size,
                }
                for r in server.rings
            ],
        },
        "fact_sheet_formula": {
            "n_c2s": n_c2s,
            "n_s2c": n_s2c,
            "log2_ring_size": log2,
            "buffer_size": bsize,
            **expected.describe(),
        },
        "matches_fact_sheet": checks,
    }


def capture_testpmd_client(
    binary: str,
    label: str,
    title: str,
    vdev_extra: str,
    app_args: Sequence[str],
    n_queues: int,
    server_disconnects: bool = False,
) -> dict[str, Any]:
    """testpmd (client) connects to our raw server; record handshake, layout and teardown.

    The teardown is either ``quit`` typed into testpmd, or (``server_disconnects``) a
    DISCONNECT sent by our server first, to see whether testpmd answers it.
    """
    log2, bsize = 10, 2048
    with contextlib.ExitStack() as stack:
        workdir = stack.enter_context(workspace())
        sock_path = workdir / "memif.sock"
        listener = stack.enter_context(socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET))
        listener.bind(str(sock_path))
        listener.listen(1)
        vdev = memif_vdev("client", sock_path, f",rsize={log2},bsize={bsize}{vdev_extra}")
        tp = stack.enter_context(Testpmd(binary, vdev, workdir, label, app_args))
        listener.settimeout(STEP_TIMEOUT)
        conn, _ = listener.accept()
        ch = stack.enter_context(Channel(conn))
        server = RawServer(ch)
        stack.callback(server.close)

        server.handshake()
        server.map_regions()
        server.check_cookies()
        headers_at_connect = server.headers()
        descriptors = server.descriptors()
        server.poison()
        ch.send(build_named(MsgType.CONNECTED, b"capture"), "CONNECTED from capture server")
        tp.wait_for_log(r"testpmd> ")
        time.sleep(1.0)
        headers_after_connected = server.headers()
        tp.command("start")
        time.sleep(1.5)
        headers_after_start = server.headers()
        handshake_len = len(ch.transcript)

        if server_disconnects:
            ch.send(build_disconnect(b"capture server closing"), "DISCONNECT from capture server")
            closed = ch.drain_until_eof(5.0)
            time.sleep(0.5)
            tp.command("quit")
        else:
            tp.command("quit")
            closed = ch.drain_until_eof(STEP_TIMEOUT)
        exit_code = tp.wait_exit(STEP_TIMEOUT)
        teardown = ch.transcript[handshake_len:]
        return {
            "name": label,
            "description": title,
            "testpmd_cmdline": tp.cmdline(),
            "testpmd_commands_typed": ["start", "quit"],
            "teardown_trigger": "capture server sends DISCONNECT, then quit"
            if server_disconnects
            else "quit typed into testpmd",
            "transcript": ch.transcript[:handshake_len],
            "fds_received": server.fd_infos,
            "layout": layout_report(server, n_queues, n_queues, log2, bsize),
            "descriptors_at_connect": descriptors,
            "ring_headers": {
                "at_connect": headers_at_connect,
                "poison_written_before_connected": {
                    "flags": POISON_FLAGS,
                    "head": POISON_HEAD,
                    "tail": POISON_TAIL,
                },
                "after_connected": headers_after_connected,
                "after_start": headers_after_start,
            },
            "teardown": {
                "transcript": teardown,
                "socket_closed_by_testpmd": closed,
                "testpmd_sent_disconnect": any(
                    e["type"] == "DISCONNECT" and e["direction"] == "from_testpmd" for e in teardown
                ),
            },
            "testpmd_exit_code": exit_code,
            "testpmd_memif_log": tp.memif_log_lines(),
        }


def build_client_file(binary: str) -> dict[str, Any]:
    """testpmd_client_handshake.json."""
    captures = [
        capture_testpmd_client(
            binary,
            "client_1q",
            "testpmd client, id 0, rsize 10, bsize 2048, 1 queue each way",
            "",
            [],
            1,
        ),
        capture_testpmd_client(
            binary,
            "client_2q_secret",
            "testpmd client, id 0, rsize 10, bsize 2048, secret abc, 2 queues each way",
            ",secret=abc",
            ["--rxq=2", "--txq=2"],
            2,
        ),
        capture_testpmd_client(
            binary,
            "client_1q_server_disconnect",
            "as client_1q, but the capture server sends DISCONNECT after start",
            "",
            [],
            1,
            server_disconnects=True,
        ),
    ]
    init = next(e for e in captures[0]["transcript"] if e["type"] == "INIT")
    return file_header(
        init["decoded"]["name"],
        "DPDK testpmd as memif CLIENT connecting to a minimal raw server (this script). "
        "'transcript' lists every datagram in order in both directions; 'to_testpmd' entries "
        "are the hand-built server messages. Ring headers were poisoned (flags/head/tail) "
        "after CONNECT and before CONNECTED to make the client's own connect routine visible.",
        captures,
    )


# --------------------------------------------------------------------------------------------
# capture 2: testpmd as server, raw client here
# --------------------------------------------------------------------------------------------
def client_handshake(ch: Channel, mem: ClientMemory, init: bytes, *, poison: bool) -> None:
    """Send INIT, ADD_REGION, ADD_RINGs, CONNECT (each after the previous ACK)."""
    lay = mem.layout
    ch.send(init, "INIT from capture client")
    ch.expect(MsgType.ACK, "ACK for INIT")
    ch.send(build_add_region(0, lay.region_size), "ADD_REGION 0 with memfd", fd=mem.fd)
    ch.expect(MsgType.ACK, "ACK for ADD_REGION")
    for direction, index in lay.rings():
        name = f"{DIRECTION_NAMES[direction]}[{index}]"
        msg = build_add_ring(
            direction, index, 0, lay.ring_offset(direction, index), lay.log2_ring_size
        )
        ch.send(msg, f"ADD_RING {name} with eventfd", fd=mem.eventfds[(direction, index)])
        ch.expect(MsgType.ACK, f"ACK for ADD_RING {name}")
    if poison:
        mem.poison()
    ch.send(build_named(MsgType.CONNECT, b"capture0"), "CONNECT from capture client")
    ch.expect(MsgType.CONNECTED, "CONNECTED from testpmd")


def wait_server_ready(tp: Testpmd) -> None:
    """The server port must be started (else INIT gets 'ID not found')."""
    tp.wait_for_log(r"Checking link statuses|testpmd> ")


def capture_testpmd_server(binary: str) -> dict[str, Any]:
    """Our raw client connects to testpmd (server); record HELLO, ACKs, CONNECTED, teardown."""
    lay = Layout(1, 1, 10, 2048)
    with contextlib.ExitStack() as stack:
        workdir = stack.enter_context(workspace())
        sock_path = workdir / "memif.sock"
        tp = stack.enter_context(Testpmd(binary, memif_vdev("server", sock_path), workdir, "srv"))
        wait_server_ready(tp)
        mem = ClientMemory(lay)
        stack.callback(mem.close)
        ch = stack.enter_context(Channel(connect_client(sock_path)))
        hello = ch.expect(MsgType.HELLO, "HELLO from testpmd server")
        headers_initial = mem.headers()
        client_handshake(ch, mem, build_init(), poison=True)
        time.sleep(0.5)
        headers_after_connected = mem.headers()
        tp.wait_for_log(r"testpmd> ")
        tp.command("start")
        time.sleep(1.5)
        headers_after_start = mem.headers()
        handshake_len = len(ch.transcript)
        tp.command("quit")
        closed = ch.drain_until_eof(STEP_TIMEOUT)
        exit_code = tp.wait_exit(STEP_TIMEOUT)
        return {
            "name": "server_1q",
            "description": "testpmd server id 0; raw client with 1 C2S + 1 S2C ring, "
            "rsize 10, bsize 2048, region layout per fact sheet 4.4",
            "testpmd_cmdline": tp.cmdline(),
            "testpmd_commands_typed": ["start", "quit"],
            "hello": {
                "hex": hello.data.hex(),
                "length": len(hello.data),
                "nfds": len(hello.fds),
                "decoded": decode_msg(hello.data),
            },
            "transcript": ch.transcript[:handshake_len],
            "client_layout": lay.describe(),
            "ring_headers": {
                "initial_client_values": headers_initial,
                "poison_written_before_connect": {
                    "flags": POISON_FLAGS,
                    "head": POISON_HEAD,
                    "tail": POISON_TAIL,
                },
                "after_connected": headers_after_connected,
                "after_start": headers_after_start,
            },
            "teardown_trigger": "quit typed into testpmd",
            "teardown": {
                "transcript": ch.transcript[handshake_len:],
                "socket_closed_by_testpmd": closed,
                "testpmd_sent_disconnect": any(
                    e["type"] == "DISCONNECT" for e in ch.transcript[handshake_len:]
                ),
            },
            "testpmd_exit_code": exit_code,
            "testpmd_memif_log": tp.memif_log_lines(),
        }


def build_server_file(binary: str) -> dict[str, Any]:
    """testpmd_server_handshake.json."""
    capture = capture_testpmd_server(binary)
    return file_header(
        capture["hello"]["decoded"]["name"],
        "DPDK testpmd as memif SERVER; this script is a raw copy-mode client. 'transcript' "
        "lists every datagram in order in both directions. Ring headers were poisoned "
        "(flags/head/tail) right before CONNECT to make the server's connect routine visible.",
        [capture],
    )


# --------------------------------------------------------------------------------------------
# capture 3: refusals by testpmd as server
# --------------------------------------------------------------------------------------------
class Outgoing(NamedTuple):
    data: bytes
    fd: int | None
    description: str


Steps = Callable[[ClientMemory], list[Outgoing]]


def good_init(secret: bytes = b"") -> Outgoing:
    return Outgoing(build_init(secret=secret), None, "valid INIT")


def region0(mem: ClientMemory, index: int = 0, with_fd: bool = True) -> Outgoing:
    what = "with memfd" if with_fd else "WITHOUT fd"
    return Outgoing(
        build_add_region(index, mem.layout.region_size),
        mem.fd if with_fd else None,
        f"ADD_REGION index {index} {what}",
    )


def ring(mem: ClientMemory, direction: int, index: int, with_fd: bool = True) -> Outgoing:
    lay = mem.layout
    fd = mem.eventfds[(direction, 0)] if with_fd else None
    name = f"{DIRECTION_NAMES[direction]} index {index}"
    return Outgoing(
        build_add_ring(direction, index, 0, lay.ring_offset(direction, 0), lay.log2_ring_size),
        fd,
        f"ADD_RING {name} {'with eventfd' if with_fd else 'WITHOUT fd'}",
    )


@dataclass(frozen=True)
class RefusalCase:
    name: str
    description: str
    steps: Steps
    fact_sheet_reason: str | None  # None: the fact sheet expects the message to be accepted
    secret_server: bool = False
    extra: bool = False  # not in the original capture list; documents a fact-sheet inference


REFUSAL_CASES: list[RefusalCase] = [
    RefusalCase(
        "wrong_version",
        "INIT with version 0x0100",
        lambda m: [Outgoing(build_init(version=0x0100), None, "INIT version 0x0100")],
        "Incompatible memif version",
    ),
    RefusalCase(
        "unknown_id",
        "INIT for interface id 7 (server has only id 0)",
        lambda m: [Outgoing(build_init(interface_id=7), None, "INIT id 7")],
        "ID not found",
    ),
    RefusalCase(
        "mode_ip",
        "INIT with mode 1 (IP)",
        lambda m: [Outgoing(build_init(mode=1), None, "INIT mode IP")],
        "Only ethernet mode supported",
    ),
    RefusalCase(
        "secret_required",
        "server secret=s3cret, INIT without secret",
        lambda m: [Outgoing(build_init(), None, "INIT without secret")],
        "Secret required",
        secret_server=True,
    ),
    RefusalCase(
        "incorrect_secret",
        "server secret=s3cret, INIT with secret 'wrong'",
        lambda m: [Outgoing(build_init(secret=b"wrong"), None, "INIT secret 'wrong'")],
        "Incorrect secret",
        secret_server=True,
    ),
    RefusalCase(
        "invalid_region_index",
        "ADD_REGION index 1 as the first region",
        lambda m: [good_init(), region0(m, index=1)],
        "Invalid region index",
    ),
    RefusalCase(
        "missing_region_fd",
        "ADD_REGION index 0 sent without SCM_RIGHTS",
        lambda m: [good_init(), region0(m, with_fd=False)],
        "Missing region fd",
    ),
    RefusalCase(
        "invalid_ring_index",
        "ADD_RING C2S index 1 (server has 1 rx queue)",
        lambda m: [good_init(), region0(m), ring(m, RING_C2S, 1)],
        "Invalid ring index",
    ),
    RefusalCase(
        "missing_ring_fd",
        "ADD_RING C2S index 0 sent without SCM_RIGHTS",
        lambda m: [good_init(), region0(m), ring(m, RING_C2S, 0, with_fd=False)],
        "Missing interrupt fd",
    ),
    RefusalCase(
        "message_before_init",
        "ADD_REGION (with fd) as the first message",
        lambda m: [region0(m)],
        "Unexpected message",
    ),
    RefusalCase(
        "unknown_type_after_init",
        "message type 77 after a successful INIT",
        lambda m: [good_init(), Outgoing(build_msg(77), None, "type 77")],
        "Unknown message type",
    ),
    RefusalCase(
        "unknown_type_first",
        "message type 77 as the first message",
        lambda m: [Outgoing(build_msg(77), None, "type 77")],
        "Unexpected message",
        extra=True,
    ),
    RefusalCase(
        "invalid_size",
        "64-byte datagram (first half of a valid INIT) as first message",
        lambda m: [Outgoing(build_init()[:64], None, "64-byte datagram")],
        "Invalid message size",
    ),
    RefusalCase(
        "invalid_size_after_init",
        "64-byte datagram after a successful INIT",
        lambda m: [good_init(), Outgoing(build_init()[:64], None, "64-byte datagram")],
        "Invalid message size",
        extra=True,
    ),
    RefusalCase(
        "oversized_init_accepted",
        "256-byte datagram: valid INIT + 128 bytes of 0xee",
        lambda m: [Outgoing(build_init() + b"\xee" * 128, None, "256-byte INIT")],
        None,
        extra=True,
    ),
    RefusalCase(
        "secret_to_unsecured_server",
        "INIT with secret 'abc' to a server without secret",
        lambda m: [good_init(b"abc")],
        None,
        extra=True,
    ),
]


def summarise_outcome(ch: Channel) -> dict[str, Any]:
    """The DISCONNECT (if any) that testpmd sent, decoded as <HI96s."""
    disc = [
        e for e in ch.transcript if e["direction"] == "from_testpmd" and e["type"] == "DISCONNECT"
    ]
    if not disc:
        return {"disconnect": None, "observed_reason": None}
    raw = bytes.fromhex(disc[0]["hex"])
    msg_type, code, reason = struct.unpack_from(DISCONNECT_FMT, raw)
    return {
        "disconnect": {
            "hex": disc[0]["hex"],
            "length": len(raw),
            "nfds": disc[0]["nfds"],
            "type": msg_type,
            "code": code,
            "reason": cstr(reason),
        },
        "observed_reason": cstr(reason),
    }


def run_steps(ch: Channel, steps: list[Outgoing]) -> str:
    """Send steps one by one, each awaiting a reply; returns how the exchange ended."""
    for step in steps:
        try:
            ch.send(step.data, step.description, fd=step.fd)
        except (BrokenPipeError, ConnectionResetError) as err:
            return f"send failed: {err.__class__.__name__}"
        try:
            reply = ch.recv()
        except TimeoutError:
            return "no reply (timeout)"
        except ConnectionResetError:
            return "connection reset"
        if reply is None:
            return "closed without reply"
        kind = decode_msg(reply.data)["type"]
        if kind != "ACK":
            return f"{kind} received"
    return "all steps ACKed"


def run_refusal_case(case: RefusalCase, tp: Testpmd, sock_path: Path) -> dict[str, Any]:
    """Connect a fresh raw client, play the case's steps, record the outcome."""
    mem = ClientMemory(Layout(1, 1, 10, 2048))
    log_from = tp.log_offset()
    try:
        with Channel(connect_client(sock_path)) as ch:
            ch.expect(MsgType.HELLO, "HELLO from testpmd server")
            ended = run_steps(ch, case.steps(mem))
            closed = ch.eof or ch.drain_until_eof(3.0)
            result = {
                "name": case.name,
                "description": case.description,
                "extra_case": case.extra,
                "server": "secret" if case.secret_server else "plain",
                "fact_sheet_reason": case.fact_sheet_reason,
                "exchange_ended": ended,
                **summarise_outcome(ch),
                "socket_closed_after": closed,
                "accepted": ended == "all steps ACKed",
                "transcript": ch.transcript,
            }
        time.sleep(0.3)  # let testpmd finish logging the teardown of this connection
        result["matches_fact_sheet"] = result["observed_reason"] == case.fact_sheet_reason
        result["testpmd_memif_log"] = tp.memif_log_lines(log_from)
        return result
    finally:
        mem.close()


def run_already_connected(tp: Testpmd, sock_path: Path) -> dict[str, Any]:
    """First client completes the handshake; a second one sends INIT for the same id."""
    mem1 = ClientMemory(Layout(1, 1, 10, 2048))
    log_from = tp.log_offset()
    try:
        with Channel(connect_client(sock_path)) as first:
            first.expect(MsgType.HELLO, "HELLO to first client")
            client_handshake(first, mem1, build_init(), poison=False)
            with Channel(connect_client(sock_path)) as ch:
                ch.expect(MsgType.HELLO, "HELLO to second client")
                ended = run_steps(
                    ch, [Outgoing(build_init(), None, "INIT id 0 from second client")]
                )
                closed = ch.eof or ch.drain_until_eof(3.0)
                result = {
                    "name": "already_connected",
                    "description": "second client sends INIT id 0 while a first client is "
                    "CONNECTED on id 0",
                    "extra_case": False,
                    "server": "plain",
                    "fact_sheet_reason": "Already connected",
                    "exchange_ended": ended,
                    **summarise_outcome(ch),
                    "socket_closed_after": closed,
                    "accepted": ended == "all steps ACKed",
                    "transcript": ch.transcript,
                    "first_client_transcript": list(first.transcript),
                }
            first_len = len(first.transcript)
            with contextlib.suppress(TimeoutError):
                first.recv(timeout=1.5)  # anything arriving here is recorded below
            result["first_connection_still_open"] = not first.eof
            result["first_client_after"] = first.transcript[first_len:]
        time.sleep(0.3)
        result["testpmd_memif_log"] = tp.memif_log_lines(log_from)
        result["matches_fact_sheet"] = result["observed_reason"] == "Already connected"
        return result
    finally:
        mem1.close()


def run_refusal_server(
    binary: str, secret: bool, cases: list[RefusalCase], already_connected: bool
) -> tuple[str, str, list[dict[str, Any]]]:
    """One testpmd server instance; play the given cases against it in order."""
    with workspace() as workdir:
        sock_path = workdir / "memif.sock"
        extra = ",secret=s3cret" if secret else ""
        label = "rsec" if secret else "rpln"
        with Testpmd(binary, memif_vdev("server", sock_path, extra), workdir, label) as tp:
            wait_server_ready(tp)
            hello_name = ""
            results = []
            for case in cases:
                log(f"  refusal case {case.name}")
                results.append(run_refusal_case(case, tp, sock_path))
                hello_name = results[-1]["transcript"][0]["decoded"]["name"]
                if tp.proc is not None and tp.proc.poll() is not None:
                    raise CaptureError(f"testpmd died during case {case.name}")
            if already_connected:
                log("  refusal case already_connected")
                results.append(run_already_connected(tp, sock_path))
            return tp.cmdline(), hello_name, results


def build_refusals_file(binary: str) -> dict[str, Any]:
    """testpmd_server_refusals.json."""
    plain = [c for c in REFUSAL_CASES if not c.secret_server]
    secret = [c for c in REFUSAL_CASES if c.secret_server]
    cmd_plain, version, res_plain = run_refusal_server(binary, False, plain, True)
    cmd_secret, _, res_secret = run_refusal_server(binary, True, secret, False)
    results = res_plain + res_secret
    order = [c.name for c in REFUSAL_CASES] + ["already_connected"]
    results.sort(key=lambda r: order.index(r["name"]))
    doc = file_header(
        version,
        "DPDK testpmd as memif SERVER refusing bad client input. Each case uses a fresh "
        "connection; 'transcript' holds every datagram in order (the server HELLO first). "
        "'disconnect' is the DISCONNECT datagram decoded as <HI96s (type, code, reason).",
        results,
    )
    doc["testpmd_cmdlines"] = {"plain": cmd_plain, "secret": cmd_secret}
    doc["observed_reasons"] = {r["name"]: r["observed_reason"] for r in results}
    return doc


# --------------------------------------------------------------------------------------------
# output
# --------------------------------------------------------------------------------------------
def file_header(
    dpdk_version: str, description: str, captures: list[dict[str, Any]]
) -> dict[str, Any]:
    """Common top-level fields of every vector file."""
    if not dpdk_version.startswith("DPDK 22.11."):
        log(f"warning: captured from {dpdk_version!r}, not DPDK 22.11.x")
    return {
        "description": description,
        "dpdk_version": dpdk_version,
        "dpdk_package_version": dpkg_version(),
        "generator": GENERATOR,
        "regenerate": REGENERATE,
        "conventions": {
            "hex": "exact datagram bytes as sent/received (normally 128)",
            "nfds": "number of SCM_RIGHTS fds that travelled with the datagram",
            "direction": "to_testpmd = sent by this script, from_testpmd = sent by testpmd",
            "cmdline_placeholders": "<tmpdir> = private temp dir, <prefix> = unique "
            "--file-prefix (memifvec<pid><label>)",
            "mbufs": f"{MBUFS} is added because the default mbuf pool does not fit in -m 256",
            "log_level": f"{MEMIF_LOG} only adds log lines ('testpmd_memif_log')",
            "cache_line": CACHE_LINE,
        },
        "captures": captures,
    }


def write_json(path: Path, doc: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2) + "\n")
    log(f"wrote {path}")


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def leftover_processes() -> list[str]:
    """Any process still running with one of our --file-prefix values (scan of /proc)."""
    marker = f"memifvec{os.getpid()}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if marker in cmdline and int(entry.name) != os.getpid():
            text = cmdline.replace(b"\0", b" ").decode(errors="replace")
            found.append(f"{entry.name}: {text}")
    return found


def _raise_timeout(signum: int, frame: FrameType | None) -> None:
    raise GlobalTimeout("global capture timeout")


def _raise_exit(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


BUILDERS: dict[str, tuple[str, Callable[[str], dict[str, Any]]]] = {
    "client": ("testpmd_client_handshake.json", build_client_file),
    "server": ("testpmd_server_handshake.json", build_server_file),
    "refusals": ("testpmd_server_refusals.json", build_refusals_file),
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--testpmd", default=DEFAULT_TESTPMD, help="dpdk-testpmd binary")
    parser.add_argument("--out-dir", type=Path, default=HERE, help="where to write the JSON")
    parser.add_argument(
        "--only",
        choices=sorted(BUILDERS),
        action="append",
        help="capture only this file (repeatable)",
    )
    parser.add_argument("--timeout", type=int, default=600, help="global timeout in seconds")
    args = parser.parse_args(argv)
    if not Path(args.testpmd).exists():
        parser.error(f"{args.testpmd} not found")

    signal.signal(signal.SIGALRM, _raise_timeout)
    signal.signal(signal.SIGTERM, _raise_exit)
    signal.alarm(args.timeout)
    try:
        for key in args.only or list(BUILDERS):
            filename, builder = BUILDERS[key]
            log(f"capturing {filename}")
            write_json(args.out_dir / filename, builder(args.testpmd))
    finally:
        signal.alarm(0)
        for tp in _STARTED:
            tp.close()
        leftovers = leftover_processes()
        if leftovers:
            log("ERROR: testpmd processes left behind:\n" + "\n".join(leftovers))
    return 1 if leftovers else 0


if __name__ == "__main__":
    sys.exit(main())
