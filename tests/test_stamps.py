"""The payload stamp (reference_impl.stamps): layout, writing in bursts, reading back."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from reference_impl import frames, stamps

MAC_A, MAC_B = frames.parse_mac("02:fe:00:00:00:01"), frames.parse_mac("02:fe:00:00:00:02")
IP_A, IP_B = frames.benchmark_ip("198.18.0.1"), frames.benchmark_ip("198.18.0.2")


def udp(size: int) -> bytes:
    return frames.udp_frame(size, MAC_A, MAC_B, IP_A, IP_B)


def test_stamp_is_the_first_20_bytes_of_the_udp_payload_and_fits_64_byte_frames() -> None:
    assert stamps.STAMP_OFFSET == 42 and stamps.STAMP_SIZE == 20
    assert stamps.MIN_STAMPED_FRAME == 62
    fields = stamps.STAMP_DTYPE.fields
    assert fields is not None
    assert {name: fields[name][1] for name in fields} == {"magic": 0, "sequence": 4, "time_ns": 12}
    writer = stamps.StampWriter(udp(64))
    template = writer.template_at(0x1122334455667788)
    rows = np.tile(template, (3, 1))
    writer.next_sequence = 40
    writer.fill(rows, 1)
    magic, sequence, sent = struct.unpack_from("<IQQ", rows[2].tobytes(), 42)
    assert (magic, sequence, sent) == (stamps.STAMP_MAGIC, 43, 0x1122334455667788)
    # everything but the stamp is the frame it was built from (headers, the rest of the payload)
    original = np.frombuffer(udp(64), dtype=np.uint8)
    assert np.array_equal(rows[2, :42], original[:42])
    assert np.array_equal(rows[2, 62:], original[62:])


def test_stamps_number_frames_across_runs_and_bursts() -> None:
    writer = stamps.StampWriter(udp(100))
    first = np.tile(writer.template_at(5), (7, 1))
    writer.fill(first[:4], 0)  # a burst written in two runs (a ring wrap)
    writer.fill(first[4:], 4)
    writer.advance(7)
    second = np.tile(writer.template_at(6), (3, 1))
    writer.fill(second, 0)
    valid, sequence, sent = stamps.read(np.concatenate((first, second))[:, 42:62])
    assert valid.all()
    assert sequence.tolist() == list(range(10))
    assert sent.tolist() == [5] * 7 + [6] * 3


def test_read_marks_rows_without_the_magic() -> None:
    writer = stamps.StampWriter(udp(64))
    rows = np.tile(writer.template_at(1), (2, 1))
    writer.fill(rows, 0)
    plain = np.frombuffer(udp(64), dtype=np.uint8)[None, :]
    valid, _, _ = stamps.read(np.concatenate((rows, plain))[:, 42:62])
    assert valid.tolist() == [True, True, False]


def test_a_frame_too_short_for_a_stamp_is_refused() -> None:
    with pytest.raises(frames.FrameError, match="below the 62-byte minimum"):
        stamps.StampWriter(udp(61))
