"""Everything a scenario may use: the peer pair of the case, checks that decide verdicts,
capabilities and known deviations. Scenarios import this module and nothing else.

A verdict comes only from `verify` (FAIL when it does not hold) and from a peer's crash (FAIL
of that peer, with its log). Any other exception is the harness's trouble: ERROR.
"""

from __future__ import annotations

import contextvars
import dataclasses
import itertools
import json
import os
import re
import shutil
import stat
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Final

import pytest

from harness import doctor
from harness.masking import mask_text, mask_value
from harness.peers.base import (
    Activity,
    CheckReport,
    LinkParameters,
    MemifSpec,
    Peer,
    PeerCrashed,
    PeerError,
    PeerStatus,
    Role,
)
from harness.peers.reasons import DisconnectReason
from harness.peers.reference import ReferencePeer
from harness.results import Artifact, Verdict
from harness.runtime.docker import DockerRuntime
from harness.runtime.local import exit_description
from harness.topology import numa
from harness.topology.labels import RunLabel
from harness.topology.numa import Placement
from harness.traffic.bench_point import BenchPoint, check_repeats
from harness.traffic.control_tap import ControlTap
from harness.traffic.measurement import Measurement
from reference_impl.faults import Fault

__all__ = [
    "DOCKER",
    "HUGEPAGES",
    "NUMA_NODES",
    "TESTPMD",
    "VPP",
    "Activity",
    "AttackFailed",
    "AttackResult",
    "BenchPoint",
    "Capability",
    "DisconnectReason",
    "Lab",
    "LinkParameters",
    "Measurement",
    "Pair",
    "PeerCrashed",
    "PeerError",
    "Role",
    "StartAttempt",
    "ThroughputError",
    "VerifyFailed",
    "attack",
    "base_kind",
    "bench_repeats",
    "client_layout_seen_by",
    "expect_attack_refused",
    "expect_link_down",
    "expect_link_up",
    "expect_refused",
    "expect_round_trip",
    "expect_serving",
    "expect_survived",
    "files_in_socket_dir",
    "fixed_client",
    "known_deviation",
    "lab",
    "listening",
    "negotiated",
    "note",
    "pair",
    "pair_kinds",
    "poll",
    "requires",
    "start_pair",
    "start_round_trip",
    "verify",
]

PCAP_HEADER_SIZE: Final = 24
"""Bytes of a classic pcap file with no frame in it."""
POLL_INTERVAL: Final = 0.05
"""Seconds between two polls of a peer's status."""
LINK_TIMEOUT: Final = 15.0
"""Default bound for a link to come up (testpmd needs ~1.5 s to start its EAL)."""
REQUIRES_MARK: Final = "memif_requires"
DEVIATION_MARK: Final = "memif_known_deviation"
FIXED_CLIENT_MARK: Final = "memif_fixed_client"


# --------------------------------------------------------------------------- verdicts


class VerifyFailed(AssertionError):
    """A scenario's check did not hold: the FAIL verdict of the peer under test."""

    def __init__(self, what: str, expected: object, observed: object) -> None:
        self.what = what
        self.expected = str(expected)
        self.observed = str(observed)
        super().__init__(f"{what}: expected {self.expected}, observed {self.observed}")


class HarnessTimeout(Exception):
    """A phase of a case outlived the harness's own bound (an ERROR, never a FAIL)."""


class ControlTapError(Exception):
    """The control-channel tap of a case failed (a harness ERROR, never a FAIL)."""


@dataclasses.dataclass(frozen=True)
class Check:
    """One `verify` call: what was checked, what was expected, what was seen."""

    what: str
    expected: str
    observed: str
    ok: bool


@dataclasses.dataclass
class StartedPeer:
    """A peer this case created, with the names the report gives it."""

    kind: str
    role: Role
    name: str  # "server", "client", "client-2"...
    peer: Peer


@dataclasses.dataclass
class CaseRecord:
    """What one case records for its result: checks, notes, artifacts, its peers."""

    nodeid: str
    artifact_dir: Path | None = None
    artifact_base: Path | None = None
    checks: list[Check] = dataclasses.field(default_factory=list)
    notes: list[str] = dataclasses.field(default_factory=list)
    artifacts: list[Artifact] = dataclasses.field(default_factory=list)
    peers: list[StartedPeer] = dataclasses.field(default_factory=list)
    trace: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    secrets: set[str] = dataclasses.field(default_factory=set)
    """Secrets the case's peers were given: masked in everything the case writes."""
    measurements: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    """Throughput measurements of the case (results.json `measurements`)."""

    def crashed_peers(self) -> list[StartedPeer]:
        """The case's peers that died by a signal nobody sent them."""
        return [started for started in self.peers if _crashed(started.peer)]

    def save_log(self, started: StartedPeer) -> None:
        """Keep the peer's log (secrets masked) as an artifact of the case."""
        try:
            text = self.mask(started.peer.logs())
        except Exception as exc:  # a log we cannot read must not hide the verdict
            text = f"(log unavailable: {exc})"
        filename = f"{started.name}-{started.kind}.log"
        if self.artifact_dir is not None and self.artifact_base is not None:
            self.artifact_dir.mkdir(parents=True, exist_ok=True)
            path = self.artifact_dir / filename
            path.write_text(text)
            stored = str(path.relative_to(self.artifact_base))
        else:
            stored = str(started.peer.workdir)
        description = f"{started.kind} {started.role.value} log ({started.name})"
        self._add_artifact(Artifact("log", stored, description))

    def save_capture(self, started: StartedPeer) -> None:
        """Keep the frames the peer captured (a pcap with at least one frame) as an artifact."""
        try:
            source = started.peer.frame_capture()
            if source is None or source.stat().st_size <= PCAP_HEADER_SIZE:
                return
        except OSError:
            return
        stored = str(source)
        try:
            path = self._artifact_path(f"{started.name}-{started.kind}.pcap")
            if path is not None:
                shutil.copyfile(source, path)
                stored = self._stored(path)
        except OSError:  # a capture we cannot copy is named where it is
            pass
        description = (
            f"memif frames {started.kind} {started.role.value} ({started.name}) transmitted "
            "and received, both directions in one file in the order they crossed "
            "(pcap has no direction field)"
        )
        self._add_artifact(Artifact("pcap", stored, description))

    def mask(self, text: str) -> str:
        """`text` with the case's secrets (and anything spelled as a secret) masked."""
        return mask_text(text, self.secrets)

    def save_trace(self, trace: list[dict[str, Any]], *, taps: int) -> None:
        """Keep the control-channel trace (secrets masked) on the record and as a JSON
        artifact."""
        self.trace.extend(mask_value(trace, self.secrets))
        path = self._artifact_path("control-trace.json")
        if path is None:
            return
        path.write_text(json.dumps(self.trace, indent=1))
        description = (
            f"control-channel trace: {len(self.trace)} entries, every message both ways "
            f"decoded (c2s: client to server), {taps} tap(s)"
        )
        self._add_artifact(Artifact("trace", self._stored(path), description))

    def _artifact_path(self, filename: str) -> Path | None:
        if self.artifact_dir is None or self.artifact_base is None:
            return None
        self.artifact_dir.mkdir(parents=True, exist_ok=True)
        return self.artifact_dir / filename

    def _stored(self, path: Path) -> str:
        assert self.artifact_base is not None
        return str(path.relative_to(self.artifact_base))

    def _add_artifact(self, artifact: Artifact) -> None:
        if all(known.path != artifact.path for known in self.artifacts):
            self.artifacts.append(artifact)


_CURRENT_CASE: contextvars.ContextVar[CaseRecord | None] = contextvars.ContextVar(
    "memif_current_case", default=None
)


def begin_case(record: CaseRecord) -> None:
    """Make `record` the case that `verify` and `note` write to (called by the plugin)."""
    _CURRENT_CASE.set(record)


def end_case() -> None:
    """No case is running any more (called by the plugin)."""
    _CURRENT_CASE.set(None)


def _current_case() -> CaseRecord:
    record = _CURRENT_CASE.get()
    if record is None:
        raise RuntimeError("verify()/note() outside a scenario run by scenarios.plugin")
    return record


def verify(condition: bool, what: str = "check", *, expected: object, observed: object) -> None:
    """Record a check on the case; a check that does not hold is the case's FAIL.

    Args:
        condition: Whether the peer behaved as the scenario requires.
        what: What is checked, in a few words ("client link", "refusal reason").
        expected: What the rule requires (shown in the report).
        observed: What the peers did (shown in the report).

    Raises:
        VerifyFailed: the condition is false.
    """
    check = Check(what, str(expected), str(observed), bool(condition))
    _current_case().checks.append(check)
    if not check.ok:
        raise VerifyFailed(what, expected, observed)


def note(text: str) -> None:
    """Record a fact about the case that is no check (shown with the observations)."""
    _current_case().notes.append(text)


# --------------------------------------------------------------------------- capabilities


@dataclasses.dataclass(frozen=True)
class Capability:
    """Something a scenario needs from the host or the peers, probed once per session.

    Attributes:
        name: How skip reasons name it (TESTPMD, NUMA_NODES(2)...).
        probe: Returns (available, detail); runs at most once per session.
    """

    name: str
    probe: Callable[[], tuple[bool, str]] = dataclasses.field(compare=False, repr=False)


def _from_doctor(probe: Callable[[], doctor.Capability]) -> Callable[[], tuple[bool, str]]:
    def run() -> tuple[bool, str]:
        found = probe()
        how = f" (how to get it: {found.how_to_get})" if found.how_to_get else ""
        return found.available, found.detail + ("" if found.available else how)

    return run


def _docker_probe() -> tuple[bool, str]:
    """A Docker engine that answers, and the peer images built (containers need both)."""
    engine, images = doctor.docker_capabilities()
    for found in (engine, images):
        if not found.available:
            how = f" (how to get it: {found.how_to_get})" if found.how_to_get else ""
            return False, f"{found.name}: {found.detail}{how}"
    return True, f"{engine.detail}, images {images.detail}"


def _numa_probe(count: int) -> Callable[[], tuple[bool, str]]:
    def run() -> tuple[bool, str]:
        host = numa.read_host_topology()
        return len(host.nodes) >= count, f"{len(host.nodes)} node(s): {host.describe()}"

    return run


TESTPMD: Final = Capability("TESTPMD", _from_doctor(doctor.testpmd_capability))
DOCKER: Final = Capability("DOCKER", _docker_probe)
HUGEPAGES: Final = Capability("HUGEPAGES", _from_doctor(doctor.hugepages_capability))
VPP: Final = Capability("VPP", _from_doctor(lambda: doctor.vpp_capability(None, None)))


def NUMA_NODES(count: int) -> Capability:
    """At least `count` NUMA nodes on the host."""
    return Capability(f"NUMA_NODES({count})", _numa_probe(count))


class CapabilityProbe:
    """Probes each capability once per session and remembers the answer."""

    def __init__(self) -> None:
        self._known: dict[str, tuple[bool, str]] = {}

    def check(self, capability: Capability) -> tuple[bool, str]:
        """(available, detail); a probe that raises counts as 'missing' with its error."""
        if capability.name not in self._known:
            try:
                self._known[capability.name] = capability.probe()
            except Exception as exc:
                self._known[capability.name] = (False, f"probe failed: {exc}")
        return self._known[capability.name]

    def missing(self, capabilities: tuple[Capability, ...]) -> str | None:
        """A skip reason naming every missing capability, or None if all are there."""
        lacking = []
        for capability in capabilities:
            available, detail = self.check(capability)
            if not available:
                lacking.append(f"{capability.name} ({detail})")
        return "missing capability " + "; ".join(lacking) if lacking else None


def requires(*capabilities: Capability) -> pytest.MarkDecorator:
    """Decorator: the scenario needs these capabilities; without them it is a SKIP naming them."""
    mark: pytest.MarkDecorator = getattr(pytest.mark, REQUIRES_MARK)(*capabilities)
    return mark


def known_deviation(
    peer_kind: str,
    role: Role | None,
    citation: str,
    *,
    crash: bool = False,
    intermittent: bool = False,
) -> pytest.MarkDecorator:
    """Decorator: when `peer_kind` plays `role` (None: either role), a FAIL is an XFAIL.

    Only a failed `verify` is excused; harness errors and crashes keep their verdict, unless
    `crash` opts in: then a crash of that peer in that role is an XFAIL too, and its reason
    says the crash was excused (its log is kept as for any crash). If the deviation does not
    show, the case is a PASS with a note saying so, unless it is `intermittent` (a race that
    shows in some runs only): then it is an XFAIL either way, so that two runs give the same
    verdict, and the reason says whether it showed.

    Args:
        peer_kind: The peer kind that deviates (reference, testpmd, vpp...).
        role: The role in which it deviates.
        citation: Where the deviation is documented (fact sheet section, commit, bug).
        crash: The documented deviation is a crash of that peer (explicit opt-in: a crash
            is excused only where a citation says the peer crashes there).
        intermittent: The deviation is a race that shows in some runs only.
    """
    mark: pytest.MarkDecorator = getattr(pytest.mark, DEVIATION_MARK)(
        peer_kind=peer_kind, role=role, citation=citation, crash=crash, intermittent=intermittent
    )
    return mark


def _deviations(item: pytest.Item, server_kind: str, client_kind: str) -> list[pytest.Mark]:
    """The case's known_deviation marks that apply to this pair."""
    return [
        mark
        for mark in item.iter_markers(DEVIATION_MARK)
        if (mark.kwargs["role"] in (None, Role.SERVER) and mark.kwargs["peer_kind"] == server_kind)
        or (mark.kwargs["role"] in (None, Role.CLIENT) and mark.kwargs["peer_kind"] == client_kind)
    ]


def deviation_for(item: pytest.Item, server_kind: str, client_kind: str) -> str | None:
    """The citation of a known deviation that applies to this pair, if any."""
    marks = _deviations(item, server_kind, client_kind)
    return str(marks[0].kwargs["citation"]) if marks else None


def intermittent_deviation_for(item: pytest.Item, server_kind: str, client_kind: str) -> bool:
    """Whether a known deviation of this pair is marked intermittent."""
    return any(
        mark.kwargs.get("intermittent", False)
        for mark in _deviations(item, server_kind, client_kind)
    )


def required_capabilities(item: pytest.Item) -> tuple[Capability, ...]:
    """Capabilities the scenario declared with `requires`."""
    return tuple(cap for mark in item.iter_markers(REQUIRES_MARK) for cap in mark.args)


def crash_deviation_for(item: pytest.Item, crashed: list[StartedPeer]) -> str | None:
    """The citation that excuses these crashes, if a `known_deviation(..., crash=True)` of
    the case covers every crashed peer (its kind in its role); None otherwise."""
    if not crashed:
        return None
    citations = []
    for started in crashed:
        for mark in item.iter_markers(DEVIATION_MARK):
            kind, role = mark.kwargs["peer_kind"], mark.kwargs["role"]
            if mark.kwargs.get("crash") and kind == started.kind and role in (None, started.role):
                citations.append(str(mark.kwargs["citation"]))
                break
        else:
            return None
    return "; ".join(dict.fromkeys(citations))


def fixed_client(kind: str) -> pytest.MarkDecorator:
    """Decorator (or a module's `pytestmark`): the scenario's client is always of `kind`.

    That client is a tool of the scenario (the reference's hostile client of the robustness
    suite), not a peer under test: the plugin runs the scenario once per server kind of the
    selected pairs, with this client, whatever kinds `--peers` names for clients.
    """
    mark: pytest.MarkDecorator = getattr(pytest.mark, FIXED_CLIENT_MARK)(kind)
    return mark


def fixed_client_kind(definition: pytest.Item) -> str | None:
    """The client kind a scenario fixed with `fixed_client`, if any."""
    mark = definition.get_closest_marker(FIXED_CLIENT_MARK)
    return str(mark.args[0]) if mark is not None else None


# --------------------------------------------------------------------------- peer kinds


@dataclasses.dataclass(frozen=True)
class PeerKind:
    """A peer implementation the suites can run, and what it needs from the host."""

    name: str
    needs: tuple[Capability, ...]
    make: Callable[..., Peer]
    """(spec, workdir, cpu, dpdk/api prefix, placement=None) -> an unstarted peer; a NUMA
    placement (benchmarks) overrides the cpu."""
    make_in_container: Callable[[MemifSpec, Path, int, str, Containers], Peer] | None = None
    """The same in a container of the run (runtime docker); None when no image of this
    kind exists: it then runs as a local process in that runtime too."""


def _make_reference(
    spec: MemifSpec, workdir: Path, cpu: int, prefix: str, placement: Placement | None = None
) -> Peer:
    return ReferencePeer(spec, workdir, cpu=cpu, placement=placement)


def _make_testpmd(
    spec: MemifSpec, workdir: Path, cpu: int, prefix: str, placement: Placement | None = None
) -> Peer:
    from harness.peers.testpmd_peer import TestpmdPeer

    binary = shutil.which("dpdk-testpmd") or "dpdk-testpmd"
    return TestpmdPeer(
        spec, workdir, cpu=cpu, placement=placement, binary=binary, file_prefix=prefix
    )


def _make_testpmd_container(
    spec: MemifSpec, workdir: Path, cpu: int, prefix: str, containers: Containers
) -> Peer:
    from harness.peers.testpmd_peer import TestpmdPeer

    return TestpmdPeer(
        spec,
        workdir,
        cpu=cpu,
        file_prefix=prefix,
        runtime=containers.runtime(),
        image=containers.image("testpmd"),
    )


def _make_vpp(
    spec: MemifSpec, workdir: Path, cpu: int, prefix: str, placement: Placement | None = None
) -> Peer:
    from harness.peers.vpp_peer import VppPeer

    return VppPeer(spec, workdir, cpu=cpu, placement=placement, api_prefix=prefix)


PEER_KINDS: Final[Mapping[str, PeerKind]] = {
    "reference": PeerKind("reference", (), _make_reference),
    "testpmd": PeerKind("testpmd", (TESTPMD,), _make_testpmd, _make_testpmd_container),
    "vpp": PeerKind("vpp", (VPP,), _make_vpp),
}
"""Peer kinds by the name `--peers` uses."""

FAULT_SEPARATOR: Final = "+"
"""`reference+stale-next` names the reference with a deliberate fault (test-only)."""


def peer_kind(name: str) -> PeerKind:
    """The peer kind `--peers` calls `name`: a known kind, or the reference with faults.

    `reference+FAULT[+FAULT...]` is memif-ref with deliberate misbehaviour (memif-ref
    `--fault`, reference_impl.faults): the suites' own test that each fault is caught.

    Raises:
        KeyError: no such kind or fault.
    """
    if name in PEER_KINDS:
        return PEER_KINDS[name]
    base, *faults = name.split(FAULT_SEPARATOR)
    known = {fault.value for fault in Fault}
    if base != "reference" or not faults or not set(faults) <= known:
        raise KeyError(name)

    def make(
        spec: MemifSpec, workdir: Path, cpu: int, prefix: str, placement: Placement | None = None
    ) -> Peer:
        return ReferencePeer(spec, workdir, cpu=cpu, placement=placement, faults=tuple(faults))

    return PeerKind(name, (), make)


def is_peer_kind(name: str) -> bool:
    """Whether `--peers` knows `name` (see `peer_kind`)."""
    try:
        peer_kind(name)
    except KeyError:
        return False
    return True


def base_kind(name: str) -> str:
    """The implementation behind a kind name (`reference+stale-next` -> `reference`)."""
    return name.split(FAULT_SEPARATOR)[0]


def default_peer_kinds() -> tuple[str, ...]:
    """reference, plus testpmd when dpdk-testpmd is on PATH."""
    return ("reference", "testpmd") if shutil.which("dpdk-testpmd") else ("reference",)


# --------------------------------------------------------------------------- session


RUNTIMES: Final = ("local", "docker")
"""Where peers can run: local processes, or containers of the run (kinds with an image)."""
NO_CONTAINER_IMAGE: Final = "local: no container image of this peer"
"""The runtime recorded for a kind that stays a local process in the docker runtime."""


class Containers:
    """The run's Docker runtime and peer image tags (runtime docker), made on first use.

    Containers are named and labelled with the run id; `close()` removes all of them. The
    images are not built here (`memif-harness images build`): the DOCKER capability skips
    the cases when they are missing.
    """

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        self._runtime: DockerRuntime | None = None
        self._images: dict[str, str] | None = None

    def runtime(self) -> DockerRuntime:
        """The run's DockerRuntime (connects to the engine on first use)."""
        if self._runtime is None:
            self._runtime = DockerRuntime(self.run_id)
        return self._runtime

    def image(self, name: str) -> str:
        """The tag of a peer image by its recipe name ("testpmd")."""
        if self._images is None:
            from harness.runtime.images import default_recipes

            self._images = {recipe.name: recipe.tag for recipe in default_recipes()}
        return self._images[name]

    def close(self) -> None:
        """Remove every container of the run that is still there."""
        runtime, self._runtime = self._runtime, None
        if runtime is not None:
            runtime.cleanup()


@dataclasses.dataclass
class HarnessSession:
    """What every case of one run shares (made by the plugin at configure time)."""

    label: RunLabel
    runtime: str = "local"
    server_cpu: int = 0
    client_cpu: int = dataclasses.field(default_factory=lambda: min(1, (os.cpu_count() or 1) - 1))
    probe: CapabilityProbe = dataclasses.field(default_factory=CapabilityProbe)
    socket_group: int | None = None
    """Group id of the cases' socket directories (mode 0750); None: mode 0700."""
    _sequence: Iterator[int] = dataclasses.field(default_factory=itertools.count)
    containers: Containers | None = None
    """The run's containers (runtime docker only)."""

    def __post_init__(self) -> None:
        if self.runtime not in RUNTIMES:
            raise ValueError(f"runtime {self.runtime!r}: one of {', '.join(RUNTIMES)}")
        if self.runtime == "docker" and self.containers is None:
            self.containers = Containers(self.label.run_id)

    def next_number(self) -> int:
        """A number unique in this run (for DPDK prefixes)."""
        return next(self._sequence)

    def in_container(self, kind: str) -> bool:
        """Whether peers of this kind run in containers in this session."""
        return self.containers is not None and peer_kind(kind).make_in_container is not None

    def needs(self, kind: str) -> tuple[Capability, ...]:
        """What a peer kind needs here: DOCKER in a container, else its own needs."""
        return (DOCKER,) if self.in_container(kind) else peer_kind(kind).needs

    def runtime_of(self, kind: str) -> str:
        """Where peers of a kind run (recorded in results.json for each peer)."""
        if self.in_container(kind):
            return "docker"
        return NO_CONTAINER_IMAGE if self.runtime == "docker" else "local"

    def make_peer(
        self,
        kind: str,
        spec: MemifSpec,
        workdir: Path,
        cpu: int,
        prefix: str,
        placement: Placement | None = None,
    ) -> Peer:
        """An unstarted peer of a kind, in a container or as a local process.

        Raises:
            pytest.skip.Exception: an abstract socket with a peer in a container (its
                network namespace cannot see the host's abstract names).
        """
        kind_of_peer = peer_kind(kind)
        if not self.in_container(kind) or kind_of_peer.make_in_container is None:
            return kind_of_peer.make(spec, workdir, cpu, prefix, placement)
        assert self.containers is not None  # in_container() says so
        if spec.abstract:
            pytest.skip(
                f"runtime docker: {kind} runs in a container with its own network namespace "
                "(--network none), where the host's abstract socket names do not exist; "
                "abstract sockets need --runtime local"
            )
        return kind_of_peer.make_in_container(spec, workdir, cpu, prefix, self.containers)

    def close(self) -> None:
        """Remove what the session made for all cases (the run's containers)."""
        if self.containers is not None:
            self.containers.close()


SESSION_KEY: Final = pytest.StashKey[HarnessSession]()
RECORD_KEY: Final = pytest.StashKey[CaseRecord]()


# --------------------------------------------------------------------------- peers of a case


@dataclasses.dataclass(frozen=True)
class Pair:
    """The server and client peers of a case, and where they meet.

    Attributes:
        server: The started server peer.
        client: The started client peer (None if the case asked for the server only).
        server_kind: The server's peer kind.
        client_kind: The client's peer kind (also the kind of extra clients).
        socket_path: The server's socket path, or the abstract name without its leading
            NUL (what `listening` and other checks of the server look at).
        abstract: Whether the socket is abstract.
        lab: The case's peer factory (for more clients).
        client_socket_path: Where clients connect: the front of the case's control-channel
            tap, which relays to `socket_path` unchanged and records the trace ("" when
            clients connect to the server directly).
    """

    server: Peer
    client: Peer | None
    server_kind: str
    client_kind: str
    socket_path: str
    abstract: bool
    lab: Lab
    client_socket_path: str = ""

    def with_client(self, client: Peer) -> Pair:
        """The same server with another client (for expectations on a second client)."""
        return dataclasses.replace(self, client=client)

    def start_client(self, kind: str | None = None, **overrides: Any) -> Peer:
        """Start one more client on this pair's socket (default: the pair's client kind).

        The client connects through the control-channel tap like the pair's first client.
        """
        return self.lab.start(kind or self.client_kind, Role.CLIENT, **self._client_spec(overrides))

    def try_start_client(self, kind: str | None = None, **overrides: Any) -> StartAttempt:
        """Like `start_client`, for a spec a layer may refuse (see `Lab.try_start`)."""
        return self.lab.try_start(
            kind or self.client_kind, Role.CLIENT, **self._client_spec(overrides)
        )

    def _client_spec(self, overrides: Mapping[str, Any]) -> dict[str, Any]:
        path = self.client_socket_path or self.socket_path
        return {"socket_path": path, "abstract": self.abstract, **overrides}


@dataclasses.dataclass(frozen=True)
class StartAttempt:
    """How far a peer got with a spec.

    Attributes:
        peer: The started peer, or None if a layer refused the spec.
        refused_by: "MemifSpec", "<kind> adapter" or "<kind> tool"; "" when it started.
        error: The refusing layer's message.
    """

    peer: Peer | None
    refused_by: str
    error: str


class Lab:
    """Creates the peers of one case and tears all of them down, whatever happened.

    Peers get a private work directory, a run-labelled DPDK prefix, and the CPU of their
    role (server CPU 0, client CPU 1). The socket lives in a run-labelled 0700 directory;
    an abstract socket takes the same path as its name.
    """

    def __init__(
        self,
        session: HarnessSession,
        record: CaseRecord,
        workdir: Path,
        server_kind: str,
        client_kind: str,
    ) -> None:
        self.session = session
        self.record = record
        self.workdir = workdir
        self.server_kind = server_kind
        self.client_kind = client_kind
        self._socket_dir: Path | None = None
        self._extra_sockets = 0
        self._taps: list[ControlTap] = []

    @property
    def socket_dir(self) -> Path:
        """The case's socket directory (created on first use, removed at close)."""
        if self._socket_dir is None:
            self._socket_dir = self.session.label.make_socket_dir(
                "case", group=self.session.socket_group
            )
        return self._socket_dir

    def socket_path(self) -> str:
        """The case's socket: `memif.sock` in the case's socket directory.

        An abstract socket uses the same path as its name (as in DPDK's
        `socket=/run/memif.sock,socket-abstract=yes`), so a peer that wrongly creates a
        file for it is caught in the directory.
        """
        return str(self.socket_dir / "memif.sock")

    def spec(self, role: Role, **overrides: Any) -> MemifSpec:
        """The default spec of a role (filesystem socket of the case), with overrides."""
        secret = overrides.get("secret")
        if isinstance(secret, str) and secret:
            self.record.secrets.add(secret)  # masked in the case's files, even if refused
        fields: dict[str, Any] = {"socket_path": self.socket_path(), **overrides}
        return MemifSpec(role=role, **fields)

    def new_socket_path(self) -> str:
        """Another socket path in the case's directory (for a second, independent server)."""
        self._extra_sockets += 1
        return str(self.socket_dir / f"memif-{self._extra_sockets}.sock")

    def create(self, kind: str, role: Role, **overrides: Any) -> Peer:
        """Create (not start) a peer; it is stopped at the end of the case like the others.

        Raises:
            ValueError: a spec field the adapter or MemifSpec refuses.
            PeerError: the adapter cannot run the spec.
        """
        return self._make(kind, self.spec(role, **overrides))

    def _make(self, kind: str, spec: MemifSpec, placement: Placement | None = None) -> Peer:
        number = self.session.next_number()
        same_role = sum(started.role is spec.role for started in self.record.peers)
        name = spec.role.value if same_role == 0 else f"{spec.role.value}-{same_role + 1}"
        workdir = self.workdir / f"{name}-{kind}"
        workdir.mkdir(parents=True, exist_ok=True)
        cpu = self.session.server_cpu if spec.role is Role.SERVER else self.session.client_cpu
        if placement is not None:
            cpu = placement.cpus[0]
        prefix = self.session.label.dpdk_prefix(f"{spec.role.value}{number}")
        peer = self.session.make_peer(kind, spec, workdir, cpu, prefix, placement)
        self.record.peers.append(StartedPeer(kind, spec.role, name, peer))
        return peer

    def try_start(self, kind: str, role: Role, **overrides: Any) -> StartAttempt:
        """Try to start a peer with a spec that may be refused, and say who refused it.

        Layers, in order: MemifSpec (the harness's neutral spec), the adapter (building the
        peer's configuration), the tool (the peer program exits at start-up).

        Raises:
            PeerCrashed: the peer crashed at start-up (that is no refusal).
        """
        try:
            spec = self.spec(role, **overrides)
        except ValueError as exc:
            return StartAttempt(None, "MemifSpec", str(exc))
        try:
            peer = self._make(kind, spec)
        except (ValueError, PeerError) as exc:
            return StartAttempt(None, f"{kind} adapter", str(exc))
        try:
            peer.start()
        except PeerCrashed:
            raise
        except PeerError as exc:
            return StartAttempt(None, f"{kind} tool", str(exc))
        return StartAttempt(peer, "", "")

    def start(self, kind: str, role: Role, **overrides: Any) -> Peer:
        """Create and start a peer (see `create`); a server is listening when this returns.

        Raises:
            PeerError: the peer did not start; when its socket's directory is the cause
                (read-only, full, missing) the message says so first.
        """
        peer = self.create(kind, role, **overrides)
        try:
            peer.start()
        except PeerError as exc:
            problem = "" if peer.spec.abstract else socket_dir_problem(peer.spec.socket_path)
            if not problem or isinstance(exc, PeerCrashed):
                raise
            raise PeerError(f"{problem}; {exc.summary}", exc.log_tail) from exc
        return peer

    def start_pair(
        self,
        server_overrides: Mapping[str, Any] | None = None,
        client_overrides: Mapping[str, Any] | None = None,
        *,
        abstract: bool = False,
        client: bool = True,
    ) -> Pair:
        """Start the case's server, then its client, on the case's socket.

        The server listens on the case's socket; clients connect to the front of a
        control-channel tap beside it, which relays every message (and its fds) unchanged
        and records the case's trace.

        Args:
            server_overrides: MemifSpec fields for the server (secret, queues...).
            client_overrides: MemifSpec fields for the client.
            abstract: Meet on an abstract socket instead of a file.
            client: Start the client too (False: the scenario starts clients itself).

        Raises:
            ControlTapError: the tap could not listen (a harness ERROR).
        """
        path = self.socket_path()
        server_socket = {"socket_path": path, "abstract": abstract}
        server = self.start(
            self.server_kind, Role.SERVER, **{**server_socket, **(server_overrides or {})}
        )
        front = self._open_tap(Path(path), abstract=abstract)
        client_socket = {"socket_path": front, "abstract": abstract}
        started_client = (
            self.start(
                self.client_kind, Role.CLIENT, **{**client_socket, **(client_overrides or {})}
            )
            if client
            else None
        )
        return Pair(
            server=server,
            client=started_client,
            server_kind=self.server_kind,
            client_kind=self.client_kind,
            socket_path=path,
            abstract=abstract,
            lab=self,
            client_socket_path=front,
        )

    def measure_throughput(self, point: BenchPoint, *, repeats: int = 1) -> Measurement:
        """Measure one throughput point with the case's pair; record it for results.json.

        The peers are placed by the point's NUMA case; on the NIC topology the case's
        namespaces and veths live in a run-labelled Topology removed afterwards.

        Raises:
            pytest.skip.Exception: the host cannot place the case (e.g. cross-node on one
                node) or the pair cannot run the mode; the reason names the placement.
            ThroughputError: the measurement failed (an ERROR, with the reason).
        """
        from harness.topology.netns import Topology
        from harness.traffic.bench import PointRun

        def make_peer(kind: str, spec: MemifSpec, placement: Placement | None) -> Peer:
            return self._make(kind, spec, placement)

        with Topology(self.session.label) as topology:
            run = PointRun(
                point,
                self.server_kind,
                self.client_kind,
                make_peer=make_peer,
                topology=topology,
                workdir=self.workdir,
                socket_path=self.socket_path(),
                versions={},
                repeats=repeats,
            )
            measurement = run.measure()
        versions = {
            started.role.value: _version_of(started.peer) for started in reversed(self.record.peers)
        }
        measurement = dataclasses.replace(measurement, peer_versions=versions)
        self.record.measurements.append(measurement.to_json())
        if measurement.verdict is Verdict.SKIP:
            pytest.skip(measurement.reason)
        if measurement.verdict is Verdict.ERROR:
            raise ThroughputError(measurement.reason)
        return measurement

    def _open_tap(self, back: Path, *, abstract: bool) -> str:
        """Start a control-channel tap that relays to `back`; returns where clients go."""
        number = len(self._taps) + 1
        front = self.socket_dir / ("memif-tap.sock" if number == 1 else f"memif-tap-{number}.sock")
        try:
            tap = ControlTap(front, back, abstract=abstract).start()
        except OSError as exc:
            raise ControlTapError(f"control-channel tap at {front}: {exc}") from exc
        self._taps.append(tap)
        return str(front)

    @property
    def tap_fronts(self) -> list[str]:
        """Socket names of the case's control-channel taps (files unless abstract)."""
        return [str(tap.front) for tap in self._taps]

    def name_of(self, peer: Peer) -> str:
        """'<kind> <name>' of a peer this lab made (as logs and reasons name it)."""
        for started in self.record.peers:
            if started.peer is peer:
                return f"{started.kind} {started.name}"
        return type(peer).kind

    def close(self) -> None:
        """Stop every peer (clients first, in parallel), keep their logs, remove the socket dir.

        Raises:
            PeerCrashed: a peer died by a signal nobody sent it (the case's FAIL).
            PeerError: a peer could not be stopped (the case's ERROR).
        """
        errors: list[BaseException] = []

        def stop(started: StartedPeer) -> None:
            try:
                started.peer.stop()
            except BaseException as exc:
                errors.append(exc)
            finally:
                self.record.save_log(started)

        for started in self.record.peers:  # nobody polls the rings while a peer leaves
            try:
                started.peer.quiesce()
            except BaseException as exc:
                errors.append(exc)
        clients = [p for p in self.record.peers if p.role is Role.CLIENT]
        servers = [p for p in self.record.peers if p.role is Role.SERVER]
        for group in (clients, servers):
            if group:
                with ThreadPoolExecutor(max_workers=len(group)) as pool:
                    list(pool.map(stop, group))
        for started in self.record.peers:
            self.record.save_capture(started)
        tap_errors = self._close_taps()
        if self._socket_dir is not None:
            shutil.rmtree(self._socket_dir, ignore_errors=True)
        crashed = self.record.crashed_peers()
        if crashed:
            first = crashed[0]
            raise crash_error(f"{first.kind} {first.name}", first.peer)
        if tap_errors:
            raise ControlTapError("; ".join(tap_errors))
        if errors:
            raise errors[0]

    def _close_taps(self) -> list[str]:
        """Stop the taps (after the peers: their last messages are in), keep the trace."""
        if not self._taps:
            return []
        taps, self._taps = self._taps, []
        trace: list[dict[str, Any]] = []
        failures = []
        for number, tap in enumerate(taps, start=1):
            try:
                entries = tap.stop()
            except Exception as exc:
                failures.append(f"control-channel tap {tap.front} did not stop: {exc}")
                entries = tap.snapshot()
            if len(taps) > 1:
                entries = [{**entry, "tap": number} for entry in entries]
            trace.extend(entries)
            if tap.error is not None:
                failures.append(f"control-channel tap {tap.front}: {tap.error}")
        try:
            self.record.save_trace(trace, taps=len(taps))
        except OSError as exc:
            failures.append(f"control-channel trace not saved: {exc}")
        return failures


class ThroughputError(Exception):
    """A throughput measurement could not be made (the case's ERROR)."""


def _version_of(peer: Peer) -> str:
    try:
        return peer.version()
    except Exception as exc:
        return f"unknown ({type(exc).__name__})"


def socket_dir_problem(socket_path: str) -> str:
    """What keeps a socket from being made in its directory ("" if nothing is seen):
    missing, on a read-only file system, or with no free inode or block left."""
    directory = os.path.dirname(socket_path) or "."
    try:
        fs = os.statvfs(directory)
    except OSError as exc:
        return f"socket directory {directory}: {exc.strerror}"
    if fs.f_flag & os.ST_RDONLY:
        return f"socket directory {directory} is on a read-only file system"
    if fs.f_files and not fs.f_favail:
        return f"socket directory {directory} is full (no free inode)"
    if fs.f_blocks and not fs.f_bavail:
        return f"socket directory {directory} is full (no free block)"
    return ""


def _crashed(peer: Peer) -> bool:
    try:
        return peer.crashed
    except Exception:
        return False


def _log_tail(peer: Peer, lines: int = 40) -> str:
    try:
        return "\n".join(peer.logs().splitlines()[-lines:])
    except Exception as exc:
        return f"(log unavailable: {exc})"


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(autouse=True)
def pair_kinds(request: pytest.FixtureRequest) -> tuple[str, str]:
    """(server kind, client kind) of the case, parametrized by the plugin.

    The case is skipped, naming what is missing, when the host lacks a capability that the
    scenario declared with `requires` or that one of the pair's peer kinds needs (in the
    run's runtime: DOCKER for a peer that runs in a container).
    """
    param = getattr(request, "param", None)
    if param is None:
        raise RuntimeError("scenarios run only with the plugin: pytest -p scenarios.plugin")
    server_kind, client_kind = str(param[0]), str(param[1])
    session = request.config.stash[SESSION_KEY]
    needs = (
        *required_capabilities(request.node),
        *session.needs(server_kind),
        *session.needs(client_kind),
    )
    reason = session.probe.missing(tuple(dict.fromkeys(needs)))
    if reason is not None:
        pytest.skip(reason)
    return server_kind, client_kind


@pytest.fixture
def lab(
    request: pytest.FixtureRequest, pair_kinds: tuple[str, str], tmp_path: Path
) -> Iterator[Lab]:
    """The case's peer factory; every peer it made is stopped at teardown."""
    session = request.config.stash[SESSION_KEY]
    record = request.node.stash[RECORD_KEY]
    the_lab = Lab(session, record, tmp_path, *pair_kinds)
    try:
        yield the_lab
    finally:
        the_lab.close()


@pytest.fixture
def bench_repeats(request: pytest.FixtureRequest) -> int:
    """NDR/PDR searches per throughput point (`--bench-repeats`)."""
    try:
        return check_repeats(int(request.config.getoption("--bench-repeats")), "--bench-repeats")
    except ValueError as exc:
        raise pytest.UsageError(str(exc)) from None


@pytest.fixture
def pair(lab: Lab) -> Pair:
    """A started server and client of the case's kinds, on a filesystem socket."""
    return lab.start_pair()


@pytest.fixture
def start_pair(lab: Lab) -> Callable[..., Pair]:
    """`start_pair(server_overrides, client_overrides, *, abstract=False, client=True)`."""
    return lab.start_pair


# --------------------------------------------------------------------------- expectations


def poll(done: Callable[[], bool], timeout: float) -> bool:
    """Call `done` every POLL_INTERVAL seconds until it is true; False after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        if done():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(POLL_INTERVAL)


def _peers_of(pair: Pair) -> list[tuple[str, Peer]]:
    found = [("server", pair.server)]
    if pair.client is not None:
        found.append(("client", pair.client))
    return found


def _describe(status: PeerStatus, peer: Peer | None = None) -> str:
    reason = status.disconnect.value if status.disconnect else "none"
    text = f" ({status.disconnect_text!r})" if status.disconnect_text else ""
    cause = exit_cause(peer) if peer is not None else ""
    running = f", {cause}" if cause else "" if status.running else ", exited"
    return f"link {'up' if status.link_up else 'down'}, reason {reason}{text}{running}"


def exit_cause(peer: Peer) -> str:
    """How a peer's process ended, or that it is stopped; "" while it runs (or unknown).

    "killed by SIGKILL", "exited with status 1", or "process stopped (SIGSTOP): it runs
    none of its code" for a peer that can neither read its socket nor answer.
    """
    process = getattr(peer, "process", None)
    try:
        code = getattr(process, "returncode", None)
        pid = getattr(process, "pid", None)
    except Exception:  # a transport that cannot tell
        return ""
    if isinstance(code, int):
        return exit_description(code)
    if isinstance(pid, int) and _process_state(pid) in ("T", "t"):
        return "process stopped (SIGSTOP): it runs none of its code"
    return ""


def _process_state(pid: int) -> str:
    """The state letter of /proc/<pid>/stat ("" if there is no such process)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return text[text.rfind(")") + 2 :][:1]


def crash_error(name: str, peer: Peer, context: str = "") -> PeerCrashed:
    """The PeerCrashed of a peer that died by a signal nobody sent: its name, how it died
    and the tail of its log ("reference server crashed (killed by SIGKILL)")."""
    cause = exit_cause(peer)
    return PeerCrashed(f"{name} crashed{context}{f' ({cause})' if cause else ''}", _log_tail(peer))


def _raise_if_crashed(pair: Pair) -> None:
    for _, peer in _peers_of(pair):
        if _crashed(peer):
            raise crash_error(pair.lab.name_of(peer), peer)


def expect_link_up(pair: Pair, timeout: float = LINK_TIMEOUT) -> None:
    """Both peers of the pair must report the link up within `timeout` seconds.

    The client is waited for first: its link comes up last (on CONNECTED), so by then the
    server has finished its side of the handshake and is asked only once it is quiet.
    """
    if pair.client is None:
        raise ValueError("expect_link_up needs a pair with a client")
    started = time.monotonic()
    up: dict[str, float | None] = {}
    for role, peer in (("client", pair.client), ("server", pair.server)):
        # Once the client has failed the verdict is made: the server is asked, not awaited.
        waiting = role == "client" or up["client"] is not None
        left = max(0.0, timeout - (time.monotonic() - started)) if waiting else 0.0
        up[role] = time.monotonic() - started if peer.wait_for_link(left) else None
    _raise_if_crashed(pair)
    observed = "; ".join(
        f"{role} link up after {up[role]:.1f} s"
        if up[role] is not None
        else f"{role}: {_describe(peer.status(), peer)}"
        for role, peer in _peers_of(pair)
    )
    verify(
        all(seconds is not None for seconds in up.values()),
        "link up on both peers",
        expected=f"server and client link up within {timeout:g} s",
        observed=observed,
    )


def expect_link_down(peer: Peer, timeout: float = LINK_TIMEOUT, what: str = "peer") -> PeerStatus:
    """The peer must report its link down within `timeout` seconds; returns its status."""
    last: list[PeerStatus] = []

    def down() -> bool:
        last[:] = [peer.status()]
        return not last[0].link_up

    went_down = poll(down, timeout)
    if _crashed(peer):
        raise crash_error(f"{what} ({type(peer).kind})", peer)
    verify(
        went_down,
        f"{what} link down",
        expected=f"link down within {timeout:g} s",
        observed=_describe(last[0], peer),
    )
    return last[0]


def expect_refused(
    pair: Pair, reason: DisconnectReason, timeout: float = LINK_TIMEOUT
) -> DisconnectReason:
    """The client's link must not come up, and a peer must report `reason`.

    The reason counts when either peer reports it (the refusing server, or the refused
    client that received the DISCONNECT); reasons are compared normalised, never as text.

    Returns:
        The reason seen.
    """
    if pair.client is None:
        raise ValueError("expect_refused needs a pair with a client")
    client = pair.client
    came_up = False

    def refused() -> bool:
        # The refused client is asked first: it holds the reason it received, and the
        # server is left alone while it may still be busy with the handshake.
        nonlocal came_up
        status = client.status()
        came_up = came_up or status.link_up
        return came_up or status.disconnect is reason or pair.server.status().disconnect is reason

    poll(refused, timeout)
    _raise_if_crashed(pair)
    seen = {role: peer.status() for role, peer in _peers_of(pair)}
    observed = "; ".join(f"{role}: {_describe(seen[role], peer)}" for role, peer in _peers_of(pair))
    verify(
        not came_up and not seen["client"].link_up,
        "client link stays down",
        expected="client link never up",
        observed=observed,
    )
    verify(
        any(status.disconnect is reason for status in seen.values()),
        "refusal reason",
        expected=f"reason {reason.value} within {timeout:g} s",
        observed=observed,
    )
    return reason


# --------------------------------------------------------------------------- observations


def negotiated(peer: Peer) -> LinkParameters | None:
    """The link parameters the peer reports, or None if this kind of peer does not tell."""
    return peer.negotiated()


_UNIX_LISTENING = 0x10000  # __SO_ACCEPTCON in /proc/net/unix Flags


def _unix_socket_table(peer: Peer) -> str:
    """The AF_UNIX socket table of the peer's network namespace.

    A peer in a container (runtime docker) has its own namespace, whose table the host's
    /proc/net/unix does not show: it is read through a process of the peer
    (/proc/<pid>/net/unix). A peer without a known process is taken to share the harness's.
    """
    pid = getattr(getattr(peer, "process", None), "pid", None)
    if isinstance(pid, int) and pid > 0 and os.path.exists(f"/proc/{pid}/net/unix"):
        return f"/proc/{pid}/net/unix"
    return "/proc/net/unix"


def listening(pair: Pair) -> bool:
    """Whether a listening AF_UNIX socket is bound at the pair's address right now.

    A filesystem socket must also exist as a socket file; an abstract one shows as
    `@name` in the socket table of the server's network namespace.
    """
    address = "@" + pair.socket_path if pair.abstract else pair.socket_path
    if not pair.abstract:
        try:
            if not stat.S_ISSOCK(os.stat(pair.socket_path).st_mode):
                return False
        except OSError:
            return False
    with open(_unix_socket_table(pair.server)) as table:
        next(table)
        for line in table:
            fields = line.split()
            if len(fields) >= 8 and fields[7] == address and int(fields[3], 16) & _UNIX_LISTENING:
                return True
    return False


def files_in_socket_dir(pair: Pair) -> list[str]:
    """Names of the files in the case's socket directory (the harness's tap excluded)."""
    taps = {Path(front).name for front in pair.lab.tap_fronts}
    return sorted(path.name for path in pair.lab.socket_dir.iterdir() if path.name not in taps)


# --------------------------------------------------------------------------- round trips

CHECK_TIMEOUT: Final = 30.0
"""Default bound for a round trip of numbered frames to finish."""
CHECKING_KINDS: Final = frozenset({"reference"})
"""Implementations that can send numbered frames and check them back (Activity.VERIFY)."""


def start_round_trip(
    lab: Lab,
    checker: Role,
    *,
    sizes: tuple[int, ...],
    count: int,
    window: int = 32,
    server: Mapping[str, Any] | None = None,
    client: Mapping[str, Any] | None = None,
) -> Pair:
    """Start a pair where the `checker` role sends numbered frames and the other forwards.

    The checker (a reference peer) sends `count` frames, sizes in turn from `sizes`, at
    most `window` in flight; the other peer sends each frame back (testpmd macswap,
    memif-ref forward). Every frame thus crosses both rings: produced by the checker,
    consumed and produced again by the forwarder, consumed by the checker.

    The case is skipped when the pair has no checking implementation in the `checker` role.
    """
    kind = lab.server_kind if checker is Role.SERVER else lab.client_kind
    if base_kind(kind) not in CHECKING_KINDS:
        pytest.skip(
            f"the {checker.value} checks the frames here and {kind} cannot "
            f"(checking needs one of: {', '.join(sorted(CHECKING_KINDS))})"
        )
    checking = {
        "activity": Activity.VERIFY,
        "frame_sizes": sizes,
        "frame_count": count,
        "window": window,
    }
    forwarding = {"activity": Activity.FORWARD}
    server_spec = {**(checking if checker is Role.SERVER else forwarding), **(server or {})}
    client_spec = {**(checking if checker is Role.CLIENT else forwarding), **(client or {})}
    return lab.start_pair(server_spec, client_spec)


def expect_round_trip(pair: Pair, checker: Role, timeout: float = CHECK_TIMEOUT) -> None:
    """The checker's numbered frames must all come back byte for byte, and no peer may
    have seen its peer publish an index inside a chain.

    Waits for the link, then for the checker to finish (it ends by itself when every frame
    is back, or after 2 s without any coming back).
    """
    expect_link_up(pair)
    assert pair.client is not None
    peer = pair.server if checker is Role.SERVER else pair.client
    last: list[CheckReport | None] = [None]

    def finished() -> bool:
        last[0] = peer.check_report()
        return last[0] is not None and last[0].done

    poll(finished, timeout)
    _raise_if_crashed(pair)
    report = last[0]
    for role, each in _peers_of(pair):
        seen = each.violations_seen()
        if seen is None:
            continue
        broken = {rule: times for rule, times in seen.items() if times}
        verify(
            not broken,
            f"{role} saw no ring-rule violation",
            expected="no index published inside a chain (fact sheet §5.5)",
            observed=", ".join(f"{rule}: {times} time(s)" for rule, times in broken.items())
            or "none",
        )
    if report is None or not report.done:
        verify(
            False,
            "numbered frames checked",
            expected=f"the check finishes within {timeout:g} s",
            observed=f"{_describe_check(report)}; {_describe(peer.status(), peer)}",
        )
        return
    verify(
        report.matched == report.count,
        "every frame back byte for byte",
        expected=f"{report.count} of {report.count} frames back unchanged (MACs aside)",
        observed=_describe_check(report),
    )


def _describe_check(report: CheckReport | None) -> str:
    if report is None:
        return "the check never started"
    text = (
        f"sent {report.sent}, matched {report.matched}, mismatched {report.mismatched}, "
        f"missing {report.missing if report.missing is not None else '?'}, "
        f"foreign {report.foreign}"
    )
    if report.first_mismatch:
        first = report.first_mismatch
        text += (
            f"; first mismatch: frame {first.get('sequence')} sent {first.get('sent_bytes')} "
            f"B, back {first.get('returned_bytes')} B, first different byte "
            f"{first.get('first_different_byte')}"
        )
    return text


# --------------------------------------------------------------------------- layouts


def client_layout_seen_by(server: Peer, timeout: float = 5.0) -> dict[str, Any] | None:
    """The server's report on its client's memory at CONNECT (None: this server does not
    inspect layouts). Waits up to `timeout` seconds for the report to appear."""
    found: list[dict[str, Any] | None] = [None]

    def reported() -> bool:
        found[0] = server.layout_report()
        return found[0] is not None

    poll(reported, timeout)
    return found[0]


# --------------------------------------------------------------------------- attacks

ATTACK_TIMEOUT: Final = 15.0
"""Bound on one attack, seconds."""
ATTACK_SETTLE: Final = 1.0
"""Seconds the attacker waits for the server's answer after the attack."""
ATTACK_REFUSALS: Final = ("disconnect", "closed")
"""Answers that count as refusing a bad message: a DISCONNECT, or a close without one."""
CRASH_SHOWS_WITHIN: Final = 2.0
"""Seconds allowed for a server that closed on the attacker to show up as crashed."""


class AttackFailed(Exception):
    """The hostile client could not carry out its attack (a harness ERROR, never a FAIL)."""


@dataclasses.dataclass(frozen=True)
class AttackResult:
    """What the hostile client did to the pair's server, and what the server answered.

    Attributes:
        name: The attack (a `reference_impl.hostile.Attack` value, e.g. "bad-region").
        answer: "disconnect", "closed" (without DISCONNECT), "accepted" (went on as if the
            message were fine), "none" (nothing within the settle time; any link stayed up)
            or "not-observed" (the attacker closed first).
        reason: The server's DISCONNECT reason, normalised (None without a DISCONNECT).
        reason_text: That reason as the server wrote it.
        facts: The attacker's whole report: what it sent and received, descriptors published
            and consumed, frames sent...
    """

    name: str
    answer: str
    reason: DisconnectReason | None
    reason_text: str | None
    facts: Mapping[str, Any]

    def describe(self) -> str:
        """One line: what was sent, and what came back."""
        sent = "; ".join(self.facts.get("sent") or []) or "nothing"
        received = ", ".join(self.facts.get("received") or []) or "nothing"
        why = f" {self.reason_text!r}" if self.reason_text else ""
        return f"sent {sent}; server sent {received}; answer {self.answer}{why}"


def attack(
    pair: Pair, name: str, *, settle: float = ATTACK_SETTLE, timeout: float = ATTACK_TIMEOUT
) -> AttackResult:
    """Run one attack of the reference's hostile client against the pair's server.

    The attacker is `reference_impl.hostile` (what `memif-ref client ... attack NAME` runs),
    run in the harness process: a separate memif-ref process would add half a second of
    start-up to every case. It connects to the server's own socket, not through the case's
    control-channel tap, so the server gets exactly the bytes and fds the attack sends and
    sees its closes as they happen; its report of what went each way is kept as an artifact.
    It uses the server's interface id and secret for the correct part of its handshake.

    After a descriptor attack the server is quiesced (its datapath stops polling, as the lab
    does before any peer leaves) before the attacker leaves with a DISCONNECT: DPDK 22.11 can
    crash when a peer leaves while its lcore polls the rings, a defect of leaving, which
    close-mid-traffic exercises on purpose; a descriptor case judges the descriptors. A peer
    that takes the next client starts its datapath again (`Peer.wait_for_link`).

    Args:
        pair: The case's pair; only its server is attacked.
        name: The attack (`memif-ref client --socket S attack --help` lists them).
        settle: Seconds to wait for the server's answer.
        timeout: Bound on the attack.

    Returns:
        What the server answered.

    Raises:
        PeerCrashed: the server crashed during the attack (the case's FAIL, with its log).
        AttackFailed: the attacker could not carry out the attack (the case's ERROR).
    """
    from harness.peers.reasons import normalise
    from reference_impl import hostile

    spec = pair.server.spec
    target = hostile.Target(pair.socket_path, pair.abstract, spec.interface_id, spec.secret or "")
    report = hostile.run_attack(
        hostile.Attack(name),
        target,
        timeout=timeout,
        settle=settle,
        before_leaving=pair.server.quiesce,
    )
    facts = report.as_dict()
    _keep_attack_report(_current_case(), name, facts)
    text = report.disconnect_reason
    result = AttackResult(
        name=name,
        answer=report.answer,
        reason=None if text is None else normalise(text),
        reason_text=text,
        facts=facts,
    )
    note(f"attack {name}: {result.describe()}")
    server = pair.server
    if report.answer == hostile.Answer.CLOSED:
        poll(lambda: _crashed(server), CRASH_SHOWS_WITHIN)
    if _crashed(server):
        raise crash_error(pair.lab.name_of(server), server, f" under attack {name}")
    if report.error is not None:
        raise AttackFailed(f"the hostile client could not carry out attack {name}: {report.error}")
    return result


def _keep_attack_report(record: CaseRecord, name: str, facts: Mapping[str, Any]) -> None:
    """Keep the attacker's report as an artifact of the case."""
    if record.artifact_dir is None or record.artifact_base is None:
        return
    record.artifact_dir.mkdir(parents=True, exist_ok=True)
    path = record.artifact_dir / f"attack-{name}.json"
    path.write_text(json.dumps(mask_value(facts, record.secrets), indent=1, sort_keys=True))
    stored = str(path.relative_to(record.artifact_base))
    if all(artifact.path != stored for artifact in record.artifacts):
        description = f"hostile client's report of attack {name}: what went each way"
        record.artifacts.append(Artifact("attack", stored, description))


def expect_attack_refused(result: AttackResult, reason: DisconnectReason) -> None:
    """The server must refuse the bad message: DISCONNECT with `reason`, or close at once.

    A close without DISCONNECT counts (VPP and libmemif close silently in places, fact sheet
    §3.6, §7.1); a DISCONNECT must carry the reason the fact sheet gives for the fault
    (compared normalised). Going on as if nothing were wrong, or saying nothing within the
    settle time, is a FAIL.
    """
    verify(
        result.answer in ATTACK_REFUSALS,
        f"server refuses {result.name}",
        expected="DISCONNECT or a closed connection",
        observed=result.describe(),
    )
    if result.reason is not None:
        verify(
            result.reason is reason,
            f"reason for refusing {result.name}",
            expected=f"reason {reason.value}",
            observed=f"reason {result.reason.value} ({result.reason_text!r})",
        )
    else:
        note(f"server closed the connection on {result.name} without a DISCONNECT")


def expect_survived(pair: Pair, timeout: float = LINK_TIMEOUT) -> None:
    """After an attack the server must have survived it and serve a correct client.

    Checked in order: no crash (else PeerCrashed: FAIL with its log); the server's link is
    down within `timeout` (it noticed the attacker is gone); it is still running and still
    listening; a new client of the pair's client kind brings the link up with it.
    """
    _raise_if_crashed(pair)
    try:
        status = expect_link_down(pair.server, timeout, what="server after the attack")
    except PeerCrashed as crash:  # it died while letting the attacker's connection go
        what = f"{pair.lab.name_of(pair.server)} crashed after the attack ({crash.summary})"
        raise PeerCrashed(what, crash.log_tail) from None
    expect_serving(pair, status, "after the attack")
    expect_link_up(pair.with_client(pair.start_client()), timeout)


def expect_serving(pair: Pair, status: PeerStatus, when: str) -> None:
    """The pair's server (whose last status is `status`) must still run and listen."""
    verify(
        status.running,
        f"server still running {when}",
        expected="running",
        observed="running" if status.running else "exited",
    )
    verify(
        listening(pair),
        f"server still listening {when}",
        expected=f"listening on {pair.socket_path}",
        observed="listening" if listening(pair) else "no listener",
    )


# --------------------------------------------------------------------------- docstrings

_SECTION = re.compile(r"^\s*(?P<name>[A-Z][A-Za-z ]*):\s*(?P<rest>.*)$")


def docstring_sections(doc: str | None) -> dict[str, str]:
    """The `Name:` sections of a docstring (Steps, Verify...), dedented."""
    sections: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in (doc or "").expandtabs().splitlines():
        match = _SECTION.match(line)
        if match and match.group("name") in ("Steps", "Verify", "Args", "Notes"):
            current = sections.setdefault(match.group("name"), [])
            if match.group("rest").strip():
                current.append(match.group("rest").strip())
        elif current is not None:
            current.append(line)
    return {name: _dedent(lines) for name, lines in sections.items()}


def _dedent(lines: list[str]) -> str:
    import textwrap

    return textwrap.dedent("\n".join(lines)).strip()
