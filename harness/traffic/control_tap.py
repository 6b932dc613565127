"""A control-channel tap: relays memif control messages (and their fds) and records them.

The client under test connects to the tap's front socket; for every connection the tap
connects to the real server and relays each datagram, with its SCM_RIGHTS fds, both
ways, unchanged. Every message is decoded with the reference codec into a trace entry:
{"direction": "c2s"|"s2c", "type", "time", "fields", "fds", "connection"}. Both sockets
may be filesystem paths or abstract names (the path spelled after a leading NUL).
"""

from __future__ import annotations

import array
import contextlib
import dataclasses
import os
import selectors
import socket
import threading
import time
from pathlib import Path
from typing import Any

from reference_impl import wire

_MAX_FDS = 4
_DATAGRAM = 4096  # read more than 128 so a peer's oversized message is relayed as sent


@dataclasses.dataclass
class _Pair:
    client: socket.socket
    server: socket.socket
    number: int


def decode(datagram: bytes) -> tuple[str, dict[str, Any]]:
    """Message type name and fields, or what was wrong with the datagram."""
    try:
        message = wire.unpack(datagram)
    except wire.WireError as exc:
        return "MALFORMED", {"error": str(exc), "bytes": datagram[:32].hex()}
    fields = dataclasses.asdict(message)  # type: ignore[call-overload]
    return message.TYPE.name, fields


class ControlTap:
    """Relay between memif clients (front) and a memif server (back), recording a trace."""

    def __init__(self, front: Path, back: Path, *, abstract: bool = False) -> None:
        """Listen on `front`; each accepted client is relayed to the server at `back`.

        Args:
            front: Where clients connect.
            back: Where the server listens.
            abstract: Both are abstract socket names (no file is created for `front`).
        """
        self.front = front
        self.back = back
        self.abstract = abstract
        self.trace: list[dict[str, Any]] = []
        self.error: str | None = None
        """Why the relay thread died, if it did (the tap's own failure)."""
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self._listener.bind(self._address(front))
        self._listener.listen(8)
        self._listener.setblocking(False)
        self._pairs: list[_Pair] = []
        self._started = time.monotonic()
        self._thread = threading.Thread(target=self._run, name="memif-control-tap", daemon=True)

    def start(self) -> ControlTap:
        """Start relaying in a background thread."""
        self._thread.start()
        return self

    def stop(self) -> list[dict[str, Any]]:
        """Stop, close every socket, remove the front socket file; returns the trace."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5.0)
            if self._thread.is_alive() and self.error is None:
                self.error = "the relay thread did not stop within 5 s"
        for pair in self._pairs:
            pair.client.close()
            pair.server.close()
        self._listener.close()
        if not self.abstract:
            with contextlib.suppress(FileNotFoundError):
                self.front.unlink()
        return self.snapshot()

    def _address(self, path: Path) -> str:
        return "\0" + str(path) if self.abstract else str(path)

    def snapshot(self) -> list[dict[str, Any]]:
        """A copy of the trace so far."""
        with self._lock:
            return list(self.trace)

    def __enter__(self) -> ControlTap:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ relay loop

    def _run(self) -> None:
        selector = selectors.DefaultSelector()
        selector.register(self._listener, selectors.EVENT_READ, None)
        try:
            while not self._stop.is_set():
                for key, _ in selector.select(0.05):
                    if key.data is None:
                        self._accept(selector)
                    else:
                        pair, direction = key.data
                        self._relay(selector, pair, direction)
        except Exception as exc:  # the tap broke: its owner reports a harness error
            self.error = f"{type(exc).__name__}: {exc}"
        finally:
            selector.close()

    def _accept(self, selector: selectors.BaseSelector) -> None:
        try:
            client, _ = self._listener.accept()
        except BlockingIOError:
            return
        server = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            server.connect(self._address(self.back))
        except OSError as exc:
            self._record("tap", "CONNECT_FAILED", {"error": str(exc)}, 0, len(self._pairs))
            client.close()
            server.close()
            return
        pair = _Pair(client, server, len(self._pairs))
        self._pairs.append(pair)
        selector.register(client, selectors.EVENT_READ, (pair, "c2s"))
        selector.register(server, selectors.EVENT_READ, (pair, "s2c"))

    def _relay(self, selector: selectors.BaseSelector, pair: _Pair, direction: str) -> None:
        source, target = (
            (pair.client, pair.server) if direction == "c2s" else (pair.server, pair.client)
        )
        try:
            data, ancillary, _, _ = source.recvmsg(_DATAGRAM, socket.CMSG_SPACE(_MAX_FDS * 4))
        except OSError:
            data, ancillary = b"", []
        fds: list[int] = []
        for level, kind, payload in ancillary:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds.extend(array.array("i", payload[: len(payload) - len(payload) % 4]))
        if not data and not fds:  # EOF: close both sides, as the peer would see it
            self._record(direction, "CLOSE", {}, 0, pair.number)
            for sock in (pair.client, pair.server):
                with contextlib.suppress(KeyError, ValueError):
                    selector.unregister(sock)
                sock.close()
            return
        kind_name, fields = decode(data)
        self._record(direction, kind_name, fields, len(fds), pair.number)
        try:
            rights = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))] if fds else []
            target.sendmsg([data], rights)
        except OSError as exc:
            self._record(direction, "RELAY_FAILED", {"error": str(exc)}, 0, pair.number)
        finally:
            for fd in fds:
                os.close(fd)

    def _record(
        self, direction: str, kind: str, fields: dict[str, Any], fds: int, connection: int
    ) -> None:
        entry = {
            "direction": direction,
            "type": kind,
            "time": round(time.monotonic() - self._started, 6),
            "fields": fields,
            "fds": fds,
            "connection": connection,
        }
        with self._lock:
            self.trace.append(entry)
