"""The throughput measurement model: one `Measurement` per results.json `measurements` entry.

A measurement is one (case, topology, server peer, client peer, direction, frame size, mode)
point of a benchmark run: its verdict (PASS, or SKIP/ERROR with the reason), the rate, loss
and latency measured, where the peers ran, and the generator's own self-test rate.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

from harness.results import Verdict

#: The four cases of the original benchmark: peers on one NUMA node or two, zero-copy or
#: copy client. Reports show them in this order.
CASES: tuple[str, ...] = ("same-node-zc", "same-node-copy", "cross-node-zc", "cross-node-copy")
#: memif only (peer A source -> memif -> peer B sink) or NIC-backed (veth -> A -> memif -> B).
TOPOLOGIES: tuple[str, ...] = ("memif", "nic")
#: Which memif peer transmits: the client to the server, or the server to the client.
DIRECTIONS: tuple[str, ...] = ("c2s", "s2c")
#: Max receive rate at full offered load, or the NDR/PDR search.
MODES: tuple[str, ...] = ("mrr", "ndrpdr")
#: The verdicts a measurement can have (a measurement has no conformance FAIL).
MEASUREMENT_VERDICTS: tuple[Verdict, ...] = (Verdict.PASS, Verdict.SKIP, Verdict.ERROR)
#: The loss ratio goal of the PDR search (CSIT's 0.5 %).
PDR_LOSS_RATIO = 0.005


def gbps(pps: float, frame_size: int) -> float:
    """The bit rate of a frame rate: L2 bytes (no preamble or inter-frame gap), in Gbit/s.

    Args:
        pps: Frames per second.
        frame_size: L2 frame size in bytes.

    Returns:
        pps * frame_size * 8 / 1e9.
    """
    return pps * frame_size * 8 / 1e9


def _number(data: Mapping[str, Any], key: str, where: str) -> float:
    value = data.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{where}: {key} must be a number, got {value!r}")
    return float(value)


def _check_keys(data: Mapping[str, Any], allowed: tuple[str, ...], where: str) -> None:
    if not isinstance(data, Mapping):
        raise ValueError(f"{where} must be a JSON object, got {data!r}")
    unknown = sorted(set(data) - set(allowed))
    if unknown:
        raise ValueError(f"{where}: unknown keys {', '.join(map(repr, unknown))}")


@dataclasses.dataclass(frozen=True)
class Rate:
    """A frame rate with its bit rate and loss.

    Attributes:
        pps: Frames received per second.
        gbps: The same rate in Gbit/s of L2 bytes (see `gbps`).
        loss: Fraction of offered frames not received (unsent frames count as lost).
    """

    pps: float
    gbps: float
    loss: float

    @classmethod
    def at(cls, pps: float, frame_size: int, loss: float) -> Rate:
        """A rate of `frame_size`-byte frames, its bit rate computed by `gbps`."""
        return cls(pps=pps, gbps=gbps(pps, frame_size), loss=loss)

    def to_json(self) -> dict[str, float]:
        """JSON-ready dict."""
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Rate:
        """Inverse of to_json; refuses missing, unknown or non-numeric fields."""
        names = tuple(field.name for field in dataclasses.fields(cls))
        _check_keys(data, names, "rate")
        return cls(**{name: _number(data, name, "rate") for name in names})


@dataclasses.dataclass(frozen=True)
class Latency:
    """One-way latency percentiles, in microseconds, from per-frame timestamps.

    Attributes:
        min_us: Smallest latency.
        avg_us: Mean latency.
        p50_us: Median.
        p99_us: 99th percentile.
        max_us: Largest latency.
        samples: How many frames the figures come from.
    """

    min_us: float
    avg_us: float
    p50_us: float
    p99_us: float
    max_us: float
    samples: int

    @classmethod
    def from_samples(cls, ns: npt.ArrayLike) -> Latency:
        """Percentiles of latencies given in nanoseconds.

        Args:
            ns: One latency per frame, in nanoseconds (any 1-D numeric array).

        Returns:
            The figures in microseconds (numpy's linear-interpolation percentiles).

        Raises:
            ValueError: No samples, more than one dimension, or a negative or non-finite
                latency.
        """
        values = np.asarray(ns, dtype=np.float64)
        if values.ndim != 1 or values.size == 0:
            raise ValueError(f"latency samples must be a non-empty 1-D array, got {values.shape}")
        if not np.all(np.isfinite(values)) or np.any(values < 0):
            raise ValueError("latency samples must be finite and non-negative nanoseconds")
        micro = values / 1000.0
        p50, p99 = np.percentile(micro, [50.0, 99.0])
        return cls(
            min_us=float(micro.min()),
            avg_us=float(micro.mean()),
            p50_us=float(p50),
            p99_us=float(p99),
            max_us=float(micro.max()),
            samples=int(values.size),
        )

    def to_json(self) -> dict[str, float | int]:
        """JSON-ready dict."""
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Latency:
        """Inverse of to_json; refuses missing, unknown or non-numeric fields."""
        names = tuple(field.name for field in dataclasses.fields(cls))
        _check_keys(data, names, "latency")
        figures = {name: _number(data, name, "latency") for name in names if name != "samples"}
        samples = data.get("samples")
        if isinstance(samples, bool) or not isinstance(samples, int) or samples < 0:
            raise ValueError(f"latency: samples must be a count, got {samples!r}")
        return cls(**figures, samples=samples)


#: The keys a results.json measurement must have; the others have defaults.
_REQUIRED = (
    "case",
    "topology",
    "server_peer",
    "client_peer",
    "direction",
    "frame_size",
    "mode",
    "verdict",
)


def _choice(value: object, allowed: tuple[str, ...], name: str) -> None:
    if value not in allowed:
        raise ValueError(f"unknown {name} {value!r}: expected one of {', '.join(allowed)}")


@dataclasses.dataclass(frozen=True)
class Measurement:
    """One benchmark point, as the `measurements` list of results.json holds it.

    Attributes:
        case: One of `CASES`.
        topology: One of `TOPOLOGIES`.
        server_peer: Peer kind of the memif server, e.g. "testpmd".
        client_peer: Peer kind of the memif client, e.g. "reference".
        direction: One of `DIRECTIONS`.
        frame_size: L2 frame size in bytes.
        mode: One of `MODES`.
        verdict: PASS (measured), SKIP (could not apply here, e.g. cross-node on a one-node
            host) or ERROR (the harness failed); SKIP and ERROR say why in `reason`.
        reason: Why it was skipped or failed ("" for PASS).
        pps: mrr: the rate received at full offered load; ndrpdr: the NDR rate.
        gbps: `pps` in Gbit/s (see `gbps`).
        loss: Fraction of offered frames not received at that rate.
        ndr: The no-drop rate (ndrpdr mode only).
        pdr: The partial-drop rate at `PDR_LOSS_RATIO` loss (ndrpdr mode only).
        latency: Latency percentiles, when timestamps were carried.
        placement: Where each peer ran (case, reason, per-peer CPUs and memory node).
        generator_pps: The generator's self-test rate (generator -> sink, no DUT).
        generator_bound: The DUT rate came within 5 % of the generator's own rate.
        peer_versions: Version of each peer by role ("server", "client").
        duration: Seconds per trial.
        trials: How many trials the figure comes from.
        details: How the figure was made: each trial's counts, the NDR/PDR search's
            trials, the generator self-test, the receiver's own report.
    """

    case: str
    topology: str
    server_peer: str
    client_peer: str
    direction: str
    frame_size: int
    mode: str
    verdict: Verdict
    reason: str = ""
    pps: float | None = None
    gbps: float | None = None
    loss: float | None = None
    ndr: Rate | None = None
    pdr: Rate | None = None
    latency: Latency | None = None
    placement: dict[str, Any] = dataclasses.field(default_factory=dict)
    generator_pps: float | None = None
    generator_bound: bool = False
    peer_versions: dict[str, str] = dataclasses.field(default_factory=dict)
    duration: float = 0.0
    trials: int = 1
    details: dict[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        """Refuse values outside the schema, naming the field and what it allows."""
        _choice(self.case, CASES, "case")
        _choice(self.topology, TOPOLOGIES, "topology")
        _choice(self.direction, DIRECTIONS, "direction")
        _choice(self.mode, MODES, "mode")
        if self.verdict not in MEASUREMENT_VERDICTS:
            allowed = ", ".join(v.value for v in MEASUREMENT_VERDICTS)
            raise ValueError(f"unknown verdict {self.verdict!r}: expected one of {allowed}")
        for name in ("server_peer", "client_peer"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name):
                raise ValueError(f"{name} must be a peer kind, got {getattr(self, name)!r}")
        if isinstance(self.frame_size, bool) or not isinstance(self.frame_size, int):
            raise ValueError(f"frame_size must be an integer, got {self.frame_size!r}")
        if self.frame_size <= 0:
            raise ValueError(f"frame_size must be positive, got {self.frame_size}")
        if self.verdict is Verdict.PASS and None in (self.pps, self.gbps, self.loss):
            raise ValueError("a PASS measurement needs pps, gbps and loss")
        if self.verdict is not Verdict.PASS and not self.reason:
            raise ValueError(f"a {self.verdict.value} measurement needs a reason")
        if self.mode != "ndrpdr" and (self.ndr is not None or self.pdr is not None):
            raise ValueError(f"ndr/pdr are for ndrpdr mode only, not {self.mode}")

    @property
    def key(self) -> tuple[str, str, str, str, str, int, str]:
        """What identifies the point across runs: (case, topology, server, client,
        direction, frame size, mode)."""
        return (
            self.case,
            self.topology,
            self.server_peer,
            self.client_peer,
            self.direction,
            self.frame_size,
            self.mode,
        )

    def to_json(self) -> dict[str, Any]:
        """JSON-ready dict, keys in schema order."""
        data = dataclasses.asdict(self)
        data["verdict"] = self.verdict.value
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Measurement:
        """Inverse of to_json.

        Raises:
            ValueError: An unknown key, a missing required key, or a value outside the
                schema (an unknown case, topology, direction, mode or verdict, ...).
        """
        names = tuple(field.name for field in dataclasses.fields(cls))
        _check_keys(data, names, "measurement")
        missing = [name for name in _REQUIRED if name not in data]
        if missing:
            raise ValueError(f"measurement: missing {', '.join(missing)}")
        fields = dict(data)
        try:
            fields["verdict"] = Verdict(fields["verdict"])
        except ValueError:
            allowed = ", ".join(v.value for v in MEASUREMENT_VERDICTS)
            raise ValueError(
                f"unknown verdict {fields['verdict']!r}: expected one of {allowed}"
            ) from None
        for name in ("ndr", "pdr"):
            if fields.get(name) is not None:
                fields[name] = Rate.from_json(fields[name])
        if fields.get("latency") is not None:
            fields["latency"] = Latency.from_json(fields["latency"])
        for name in ("pps", "gbps", "loss", "generator_pps"):
            if fields.get(name) is not None:
                fields[name] = _number(fields, name, "measurement")
        return cls(**fields)
