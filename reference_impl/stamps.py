"""The stamp generated UDP frames carry: its layout, and writing and reading it in bursts.

A stamp is the first `STAMP_SIZE` bytes of the UDP payload (frame offset `STAMP_OFFSET`):
a magic word, the frame's u64 sequence number and the u64 CLOCK_MONOTONIC time in
nanoseconds at which its burst was written, little-endian. It fits a 64-byte frame.
Writing: the magic and the burst's time live in the template, so one broadcast copy
puts them in every frame; only the sequence column is written per frame. Reading: a
sink gets an (n, STAMP_SIZE) array of the stamp bytes of n frames and views it with
`STAMP_DTYPE`, no loop per frame.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from reference_impl import frames

STAMP_DTYPE = np.dtype([("magic", "<u4"), ("sequence", "<u8"), ("time_ns", "<u8")])
"""The stamp, packed (20 bytes): declared once, used to write and to read."""
STAMP_SIZE = STAMP_DTYPE.itemsize
STAMP_MAGIC = 0x4D525354  # "TSRM" on the wire: no other frame of this project carries it
STAMP_OFFSET = frames.ETHERNET_HEADER + frames.IPV4_HEADER + frames.UDP_HEADER
"""Frame offset of the stamp: the first byte of the UDP payload (no IP options)."""
MIN_STAMPED_FRAME = STAMP_OFFSET + STAMP_SIZE
_SEQUENCE = STAMP_OFFSET + int(STAMP_DTYPE.fields["sequence"][1])  # type: ignore[index]
_TIME = STAMP_OFFSET + int(STAMP_DTYPE.fields["time_ns"][1])  # type: ignore[index]
assert STAMP_SIZE == 20 and MIN_STAMPED_FRAME <= 64

_U64 = np.dtype("<u8")
U8 = npt.NDArray[np.uint8]
U64 = npt.NDArray[np.uint64]
Mask = npt.NDArray[np.bool_]


class StampWriter:
    """Stamps copies of one UDP frame: numbered from 0 in the order they are sent."""

    def __init__(self, frame: bytes) -> None:
        """Take the frame every copy starts from (its stamp bytes are overwritten).

        Raises:
            frames.FrameError: the frame is too short to carry a stamp.
        """
        if len(frame) < MIN_STAMPED_FRAME:
            raise frames.FrameError(
                f"frame size {len(frame)} is below the {MIN_STAMPED_FRAME}-byte minimum of a "
                f"stamped UDP frame ({STAMP_OFFSET} bytes of headers and a {STAMP_SIZE}-byte "
                "stamp)"
            )
        self.template: U8 = np.frombuffer(frame, dtype=np.uint8).copy()
        stamp = self.template[STAMP_OFFSET:MIN_STAMPED_FRAME].view(STAMP_DTYPE)
        stamp["magic"] = STAMP_MAGIC
        stamp["sequence"] = 0
        self._time: U64 = self.template[_TIME : _TIME + 8].view(_U64)  # a plain u64: fast
        self._ramp: U64 = np.arange(0, dtype=np.uint64)
        self._numbers: U64 = np.empty(0, dtype=np.uint64)
        self.next_sequence = 0
        """Sequence number of the next frame sent."""

    def template_at(self, time_ns: int) -> U8:
        """The template with `time_ns` as the stamp time (the time its burst is written)."""
        self._time[0] = time_ns
        return self.template

    def fill(self, rows: U8, index: int) -> None:
        """Number the frames in `rows` (n, len): frame i gets next_sequence + index + i."""
        count = int(rows.shape[0])
        if self._ramp.size < count:
            self._ramp = np.arange(max(count, 2 * self._ramp.size), dtype=np.uint64)
            self._numbers = np.empty(self._ramp.size, dtype=np.uint64)
        numbers = self._numbers[:count]  # computed contiguous, then one strided copy: a
        np.add(self._ramp[:count], np.uint64(self.next_sequence + index), out=numbers)
        rows[:, _SEQUENCE : _SEQUENCE + 8].view(_U64)[:, 0] = numbers  # ufunc into it costs 3x

    def advance(self, sent: int) -> None:
        """`sent` frames went: the next burst continues after them."""
        self.next_sequence += sent


def read(windows: U8) -> tuple[Mask, U64, U64]:
    """(has the magic, sequence, time_ns) of each row of an (n, STAMP_SIZE) byte array."""
    stamps = np.ascontiguousarray(windows).view(STAMP_DTYPE)[:, 0]
    return stamps["magic"] == STAMP_MAGIC, stamps["sequence"], stamps["time_ns"]


__all__ = [
    "MIN_STAMPED_FRAME",
    "STAMP_DTYPE",
    "STAMP_MAGIC",
    "STAMP_OFFSET",
    "STAMP_SIZE",
    "StampWriter",
    "read",
]
