"""argparse types of the stamped traffic commands (memif source/sink, iface-source/sink).

Each turns bad input into an `argparse.ArgumentTypeError` that says what is accepted.
"""

from __future__ import annotations

import argparse
import math

from reference_impl import frames, stamps, wire

MAX_RATE = 1e9
"""Frames per second a paced source accepts at most (far above any memif or veth rate)."""


def _parse(text: str, convert: type[int] | type[float], what: str) -> int | float:
    try:
        return convert(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{what}{text!r} is not a number") from None


def positive_int(text: str) -> int:
    """An integer above 0."""
    value = int(_parse(text, int, ""))
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text} must be positive")
    return value


def rate(text: str) -> float:
    """Frames per second: a finite number above 0, at most MAX_RATE."""
    value = float(_parse(text, float, "rate "))
    if not math.isfinite(value) or not 0 < value <= MAX_RATE:
        raise argparse.ArgumentTypeError(
            f"rate {text} must be above 0 and at most {MAX_RATE:g} frames per second"
        )
    return value


def seconds(text: str) -> float:
    """A duration in seconds: a finite number above 0."""
    value = float(_parse(text, float, "seconds "))
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"{text} seconds must be above 0")
    return value


def stamped_size(text: str) -> int:
    """A frame size that carries a stamp: MIN_STAMPED_FRAME..ETHERNET_MAX_FRAME bytes."""
    value = int(_parse(text, int, "frame size "))
    low, high = stamps.MIN_STAMPED_FRAME, wire.ETHERNET_MAX_FRAME
    if not low <= value <= high:
        raise argparse.ArgumentTypeError(
            f"frame size {value} must be {low}..{high} bytes (a stamped UDP frame needs "
            f"{low}: {stamps.STAMP_OFFSET} bytes of headers and a {stamps.STAMP_SIZE}-byte stamp)"
        )
    return value


def benchmark_ip(text: str) -> bytes:
    """An IPv4 address inside 198.18.0.0/15, packed."""
    try:
        return frames.benchmark_ip(text)
    except frames.FrameError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def mac(text: str) -> bytes:
    """A MAC address, 6 colon-separated hex octets."""
    try:
        return frames.parse_mac(text)
    except frames.FrameError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


__all__ = ["MAX_RATE", "benchmark_ip", "mac", "positive_int", "rate", "seconds", "stamped_size"]
