"""Everything a scenario may use: the peer pair of the case, checks that decide verdicts,
capabilities and known deviations. Scenarios import this module and nothing else.

A verdict comes only from `verify` (FAIL when it does not hold) and from a peer's crash (FAIL
of that peer, with its log). Any other exception is the harness's trouble: ERROR.
"""

from __future__ import annotations

import contextvars
import dataclasses
import itertools
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
from harness.peers.base import (
    Activity,
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
from harness.results import Artifact
from harness.topology import numa
from harness.topology.labels import RunLabel

__all__ = [
    "DOCKER",
    "HUGEPAGES",
    "NUMA_NODES",
    "TESTPMD",
    "VPP",
    "Activity",
    "Capability",
    "DisconnectReason",
    "Lab",
    "LinkParameters",
    "Pair",
    "PeerCrashed",
    "PeerError",
    "Role",
    "StartAttempt",
    "VerifyFailed",
    "expect_link_down",
    "expect_link_up",
    "expect_refused",
    "files_in_socket_dir",
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
    "verify",
]

POLL_INTERVAL: Final = 0.05
"""Seconds between two polls of a peer's status."""
LINK_TIMEOUT: Final = 15.0
"""Default bound for a link to come up (testpmd needs ~1.5 s to start its EAL)."""
REQUIRES_MARK: Final = "memif_requires"
DEVIATION_MARK: Final = "memif_known_deviation"


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

    def crashed_peers(self) -> list[StartedPeer]:
        """The case's peers that died by a signal nobody sent them."""
        return [started for started in self.peers if _crashed(started.peer)]

    def save_log(self, started: StartedPeer) -> None:
        """Keep the peer's log as an artifact of the case."""
        try:
            text = started.peer.logs()
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
        if all(artifact.path != stored for artifact in self.artifacts):
            self.artifacts.append(Artifact("log", stored, description))


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
    engine = doctor.docker_capabilities()[0]
    return engine.available, engine.detail


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


def known_deviation(peer_kind: str, role: Role | None, citation: str) -> pytest.MarkDecorator:
    """Decorator: when `peer_kind` plays `role` (None: either role), a FAIL is an XFAIL.

    Only a failed `verify` is excused; harness errors and crashes keep their verdict. If the
    deviation does not show, the case is a PASS with a note saying so.

    Args:
        peer_kind: The peer kind that deviates (reference, testpmd, vpp...).
        role: The role in which it deviates.
        citation: Where the deviation is documented (fact sheet section, commit, bug).
    """
    mark: pytest.MarkDecorator = getattr(pytest.mark, DEVIATION_MARK)(
        peer_kind=peer_kind, role=role, citation=citation
    )
    return mark


def deviation_for(item: pytest.Item, server_kind: str, client_kind: str) -> str | None:
    """The citation of a known deviation that applies to this pair, if any."""
    for mark in item.iter_markers(DEVIATION_MARK):
        kind, role = mark.kwargs["peer_kind"], mark.kwargs["role"]
        if (role in (None, Role.SERVER) and kind == server_kind) or (
            role in (None, Role.CLIENT) and kind == client_kind
        ):
            return str(mark.kwargs["citation"])
    return None


def required_capabilities(item: pytest.Item) -> tuple[Capability, ...]:
    """Capabilities the scenario declared with `requires`."""
    return tuple(cap for mark in item.iter_markers(REQUIRES_MARK) for cap in mark.args)


# --------------------------------------------------------------------------- peer kinds


@dataclasses.dataclass(frozen=True)
class PeerKind:
    """A peer implementation the suites can run, and what it needs from the host."""

    name: str
    needs: tuple[Capability, ...]
    make: Callable[[MemifSpec, Path, int, str], Peer]
    """(spec, workdir, cpu, dpdk/api prefix) -> an unstarted peer."""


def _make_reference(spec: MemifSpec, workdir: Path, cpu: int, prefix: str) -> Peer:
    return ReferencePeer(spec, workdir, cpu=cpu)


def _make_testpmd(spec: MemifSpec, workdir: Path, cpu: int, prefix: str) -> Peer:
    from harness.peers.testpmd_peer import TestpmdPeer

    binary = shutil.which("dpdk-testpmd") or "dpdk-testpmd"
    return TestpmdPeer(spec, workdir, cpu=cpu, binary=binary, file_prefix=prefix)


def _make_vpp(spec: MemifSpec, workdir: Path, cpu: int, prefix: str) -> Peer:
    from harness.peers.vpp_peer import VppPeer

    return VppPeer(spec, workdir, cpu=cpu, api_prefix=prefix)


PEER_KINDS: Final[Mapping[str, PeerKind]] = {
    "reference": PeerKind("reference", (), _make_reference),
    "testpmd": PeerKind("testpmd", (TESTPMD,), _make_testpmd),
    "vpp": PeerKind("vpp", (VPP,), _make_vpp),
}
"""Peer kinds by the name `--peers` uses."""


def default_peer_kinds() -> tuple[str, ...]:
    """reference, plus testpmd when dpdk-testpmd is on PATH."""
    return ("reference", "testpmd") if shutil.which("dpdk-testpmd") else ("reference",)


# --------------------------------------------------------------------------- session


@dataclasses.dataclass
class HarnessSession:
    """What every case of one run shares (made by the plugin at configure time)."""

    label: RunLabel
    runtime: str = "local"
    server_cpu: int = 0
    client_cpu: int = dataclasses.field(default_factory=lambda: min(1, (os.cpu_count() or 1) - 1))
    probe: CapabilityProbe = dataclasses.field(default_factory=CapabilityProbe)
    _sequence: Iterator[int] = dataclasses.field(default_factory=itertools.count)

    def next_number(self) -> int:
        """A number unique in this run (for DPDK prefixes)."""
        return next(self._sequence)


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
        socket_path: The socket path, or the abstract name without its leading NUL.
        abstract: Whether the socket is abstract.
        lab: The case's peer factory (for more clients).
    """

    server: Peer
    client: Peer | None
    server_kind: str
    client_kind: str
    socket_path: str
    abstract: bool
    lab: Lab

    def with_client(self, client: Peer) -> Pair:
        """The same server with another client (for expectations on a second client)."""
        return dataclasses.replace(self, client=client)

    def start_client(self, kind: str | None = None, **overrides: Any) -> Peer:
        """Start one more client on this pair's socket (default: the pair's client kind)."""
        socket = {"socket_path": self.socket_path, "abstract": self.abstract}
        return self.lab.start(kind or self.client_kind, Role.CLIENT, **{**socket, **overrides})


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

    @property
    def socket_dir(self) -> Path:
        """The case's socket directory (created on first use, removed at close)."""
        if self._socket_dir is None:
            self._socket_dir = self.session.label.make_socket_dir("case")
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

    def _make(self, kind: str, spec: MemifSpec) -> Peer:
        number = self.session.next_number()
        same_role = sum(started.role is spec.role for started in self.record.peers)
        name = spec.role.value if same_role == 0 else f"{spec.role.value}-{same_role + 1}"
        workdir = self.workdir / f"{name}-{kind}"
        workdir.mkdir(parents=True, exist_ok=True)
        cpu = self.session.server_cpu if spec.role is Role.SERVER else self.session.client_cpu
        prefix = self.session.label.dpdk_prefix(f"{spec.role.value}{number}")
        peer = PEER_KINDS[kind].make(spec, workdir, cpu, prefix)
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
        """Create and start a peer (see `create`); a server is listening when this returns."""
        peer = self.create(kind, role, **overrides)
        peer.start()
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

        Args:
            server_overrides: MemifSpec fields for the server (secret, queues...).
            client_overrides: MemifSpec fields for the client.
            abstract: Meet on an abstract socket instead of a file.
            client: Start the client too (False: the scenario starts clients itself).
        """
        path = self.socket_path()
        socket = {"socket_path": path, "abstract": abstract}
        server = self.start(self.server_kind, Role.SERVER, **{**socket, **(server_overrides or {})})
        started_client = (
            self.start(self.client_kind, Role.CLIENT, **{**socket, **(client_overrides or {})})
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
        )

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
        if self._socket_dir is not None:
            shutil.rmtree(self._socket_dir, ignore_errors=True)
        crashed = self.record.crashed_peers()
        if crashed:
            first = crashed[0]
            raise PeerCrashed(f"{first.kind} {first.name} crashed", _log_tail(first.peer))
        if errors:
            raise errors[0]


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
    scenario declared with `requires` or that one of the pair's peer kinds needs.
    """
    param = getattr(request, "param", None)
    if param is None:
        raise RuntimeError("scenarios run only with the plugin: pytest -p scenarios.plugin")
    server_kind, client_kind = str(param[0]), str(param[1])
    needs = (
        *required_capabilities(request.node),
        *PEER_KINDS[server_kind].needs,
        *PEER_KINDS[client_kind].needs,
    )
    reason = request.config.stash[SESSION_KEY].probe.missing(tuple(dict.fromkeys(needs)))
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


def _describe(status: PeerStatus) -> str:
    reason = status.disconnect.value if status.disconnect else "none"
    text = f" ({status.disconnect_text!r})" if status.disconnect_text else ""
    running = "" if status.running else ", exited"
    return f"link {'up' if status.link_up else 'down'}, reason {reason}{text}{running}"


def _raise_if_crashed(pair: Pair) -> None:
    for _, peer in _peers_of(pair):
        if _crashed(peer):
            raise PeerCrashed(f"{pair.lab.name_of(peer)} crashed", _log_tail(peer))


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
        left = max(0.0, timeout - (time.monotonic() - started))
        up[role] = time.monotonic() - started if peer.wait_for_link(left) else None
    _raise_if_crashed(pair)
    observed = "; ".join(
        f"{role} link up after {up[role]:.1f} s"
        if up[role] is not None
        else f"{role}: {_describe(peer.status())}"
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
        raise PeerCrashed(f"{what} ({type(peer).kind}) crashed", _log_tail(peer))
    verify(
        went_down,
        f"{what} link down",
        expected=f"link down within {timeout:g} s",
        observed=_describe(last[0]),
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
    observed = "; ".join(f"{role}: {_describe(status)}" for role, status in seen.items())
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


def listening(pair: Pair) -> bool:
    """Whether a listening AF_UNIX socket is bound at the pair's address right now.

    A filesystem socket must also exist as a socket file; an abstract one shows as
    `@name` in /proc/net/unix.
    """
    address = "@" + pair.socket_path if pair.abstract else pair.socket_path
    if not pair.abstract:
        try:
            if not stat.S_ISSOCK(os.stat(pair.socket_path).st_mode):
                return False
        except OSError:
            return False
    with open("/proc/net/unix") as table:
        next(table)
        for line in table:
            fields = line.split()
            if len(fields) >= 8 and fields[7] == address and int(fields[3], 16) & _UNIX_LISTENING:
                return True
    return False


def files_in_socket_dir(pair: Pair) -> list[str]:
    """Names of the files in the case's socket directory."""
    return sorted(path.name for path in pair.lab.socket_dir.iterdir())


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
