"""A classic libpcap writer for the frames a link moves (LINKTYPE_ETHERNET, microseconds).

Frames are written per burst: the record headers of a whole `PacketBatch` are one numpy
structured array and are interleaved with the frame bytes by two vectorised assignments.
"""

from __future__ import annotations

import struct
import time
from pathlib import Path
from typing import BinaryIO, Final

import numpy as np

from reference_impl.ring import PacketBatch

MAGIC_MICROSECONDS: Final = 0xA1B2C3D4
VERSION_MAJOR: Final = 2
VERSION_MINOR: Final = 4
LINKTYPE_ETHERNET: Final = 1
SNAPLEN: Final = 262144  # tcpdump's default; longer frames are cut (orig_len keeps the size)
DEFAULT_LIMIT: Final = 10000

GLOBAL_HEADER: Final = struct.Struct("<IHHiIII")
RECORD_HEADER_SIZE: Final = 16
_RECORD_HEADER = np.dtype(
    [("seconds", "<u4"), ("microseconds", "<u4"), ("captured", "<u4"), ("length", "<u4")]
)
assert _RECORD_HEADER.itemsize == RECORD_HEADER_SIZE


def global_header(snaplen: int = SNAPLEN, linktype: int = LINKTYPE_ETHERNET) -> bytes:
    """The 24-byte file header (little endian, microsecond timestamps, no time zone)."""
    return GLOBAL_HEADER.pack(
        MAGIC_MICROSECONDS, VERSION_MAJOR, VERSION_MINOR, 0, 0, snaplen, linktype
    )


def records(batch: PacketBatch, timestamp: float, snaplen: int = SNAPLEN) -> bytes:
    """The pcap records (header + captured bytes) of every frame of `batch`.

    Every frame of the burst gets the same timestamp. Frames longer than `snaplen` keep
    their first `snaplen` bytes and their real length in the header.
    """
    count = len(batch)
    if count == 0:
        return b""
    lengths = batch.lengths
    captured = np.minimum(lengths, snaplen)
    total = int(lengths.sum())
    data = batch.data[:total]
    if int(captured.sum()) != total:  # cut frames: keep each one's head
        frame_of_byte = np.repeat(np.arange(count), lengths)
        offset_in_frame = np.arange(total) - np.repeat(batch.starts, lengths)
        data = data[offset_in_frame < captured[frame_of_byte]]
    headers = np.empty(count, dtype=_RECORD_HEADER)
    seconds = int(timestamp)
    headers["seconds"] = seconds
    headers["microseconds"] = min(int((timestamp - seconds) * 1_000_000), 999_999)
    headers["captured"] = captured
    headers["length"] = lengths
    out = np.empty(count * RECORD_HEADER_SIZE + data.size, dtype=np.uint8)
    record_starts = np.zeros(count, dtype=np.int64)
    np.cumsum(captured[:-1] + RECORD_HEADER_SIZE, out=record_starts[1:])
    header_bytes = record_starts[:, None] + np.arange(RECORD_HEADER_SIZE)
    is_data = np.ones(out.size, dtype=bool)
    is_data[header_bytes] = False
    out[header_bytes] = headers.view(np.uint8).reshape(count, RECORD_HEADER_SIZE)
    out[is_data] = data
    return out.tobytes()


class PcapWriter:
    """Appends bursts of frames to a pcap file, up to `limit` frames; counts the rest.

    The file is flushed after every burst that wrote frames, so what a killed process
    captured stays readable.
    """

    def __init__(self, path: str | Path, *, limit: int = DEFAULT_LIMIT, snaplen: int = SNAPLEN):
        """Create (truncate) `path` and write the file header.

        Args:
            path: The pcap file.
            limit: Frames written at most; later frames are only counted.
            snaplen: Bytes kept of each frame.
        """
        if limit < 0:
            raise ValueError(f"pcap limit {limit} must not be negative")
        self.path = Path(path)
        self.limit = limit
        self.snaplen = snaplen
        self.seen = 0
        self.written = 0
        # The writer owns the stream for its lifetime; close() ends it.
        self._stream: BinaryIO | None = open(self.path, "wb")  # noqa: SIM115
        self._stream.write(global_header(snaplen))
        self._stream.flush()

    def record(self, batch: PacketBatch, timestamp: float | None = None) -> None:
        """Write the frames of one burst (all of it, or what is left below the limit)."""
        count = len(batch)
        self.seen += count
        room = self.limit - self.written
        if room <= 0 or count == 0 or self._stream is None:
            return
        kept = batch if count <= room else batch.head(room)
        when = time.time() if timestamp is None else timestamp
        self._stream.write(records(kept, when, self.snaplen))
        self._stream.flush()
        self.written += len(kept)

    @property
    def needs_bytes(self) -> bool:
        """Whether frames are still written (past the limit only counts matter)."""
        return self.written < self.limit and self._stream is not None

    @property
    def not_written(self) -> int:
        """Frames seen beyond the limit."""
        return self.seen - self.written

    def close(self) -> None:
        """Close the file (safe to call twice)."""
        if self._stream is not None:
            self._stream.close()
            self._stream = None

    def __enter__(self) -> PcapWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
