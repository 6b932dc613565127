"""Byte-level fuzzing of the reference control path, and the `memif-ref fuzz` command.

Each input opens a fresh connection to a real endpoint of the role under test, drives it with
an honest peer (a `MemifProtocol` of the other role over a raw SEQPACKET socket) to one of the
states its handshake reaches, then sends one datagram of 0-200 bytes with 0-5 real fds (a memfd
and an eventfd made once; the kernel hands the endpoint its own copies). The endpoint's answer
is recorded (DISCONNECT, close, or accepted), the rest of the honest handshake runs (so an
accepted region or ring reaches CONNECT and gets mapped), and the connection must leave nothing
behind: no fd, no session, no claimed interface. An exception escaping the endpoint is a
failure. Inputs derive from (seed, role, index) alone, so any one of them replays by itself.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import enum
import fcntl
import json
import os
import shutil
import socket
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Sequence
from typing import Any

from reference_impl import protocol, ring, wire
from reference_impl.endpoint import ClientEndpoint, ControlChannel, ServerEndpoint
from reference_impl.fuzz_inputs import (
    FUZZ_MEMFD_SIZE,
    PEER_BUFFER,
    PEER_LOG2,
    PEER_SHAPE,
    FdKind,
    FuzzInput,
    generate,
    states_of,
)
from reference_impl.memory import Region, create_eventfd
from reference_impl.protocol import InterfaceConfig, MemifProtocol, Role
from reference_impl.wire import RingType

ROUND_LIMIT = 40
"""Exchanges (peer -> endpoint -> peer) allowed to reach a state or to settle after an input."""

EXIT_OK = 0
EXIT_FAILED = 1


class Outcome(enum.StrEnum):
    """How the endpoint answered one input."""

    DISCONNECT = "disconnect"
    """It sent DISCONNECT with a reason and closed."""
    CLOSE = "close"
    """It closed the connection without a DISCONNECT (EOF, or the peer's own DISCONNECT)."""
    ACCEPTED = "accepted"
    """It kept the connection (with or without a reply)."""
    RAISED = "raised"
    """An exception escaped the endpoint: always a bug."""


@dataclasses.dataclass(frozen=True)
class Verdict:
    """What one input led to.

    Attributes:
        outcome: The endpoint's answer.
        reason: The DISCONNECT reason, when it sent one.
        problem: Why this input counts as a failure (exception, leak, inconsistency).
        later_reason: After an accepted input, the reason of a DISCONNECT the endpoint sent
            while the rest of the handshake ran (e.g. when CONNECT mapped what it accepted).
    """

    outcome: Outcome
    reason: str | None = None
    problem: str | None = None
    later_reason: str | None = None


@dataclasses.dataclass
class RoleTally:
    """Counts of one role's run, and the first failing input."""

    role: str
    inputs: int = 0
    disconnect: int = 0
    close: int = 0
    accepted: int = 0
    raised: int = 0
    failed: int = 0
    """Inputs that raised, leaked or left the endpoint inconsistent."""
    seconds: float = 0.0
    by_state: dict[str, dict[str, int]] = dataclasses.field(default_factory=dict)
    reasons: dict[str, int] = dataclasses.field(default_factory=dict)
    later_reasons: dict[str, int] = dataclasses.field(default_factory=dict)
    """DISCONNECT reasons sent after an accepted input, while the handshake went on."""
    first_failure: dict[str, Any] | None = None

    def count(self, fuzz_input: FuzzInput, verdict: Verdict) -> None:
        """Add one input's verdict."""
        self.inputs += 1
        outcome = verdict.outcome.value
        setattr(self, outcome, getattr(self, outcome) + 1)
        per_state = self.by_state.setdefault(fuzz_input.state, {o.value: 0 for o in Outcome})
        per_state[outcome] += 1
        if verdict.reason is not None:
            self.reasons[verdict.reason] = self.reasons.get(verdict.reason, 0) + 1
        if verdict.later_reason is not None:
            later = verdict.later_reason
            self.later_reasons[later] = self.later_reasons.get(later, 0) + 1
        if verdict.problem is not None:
            self.failed += 1
            if self.first_failure is None:
                self.first_failure = {**fuzz_input.as_dict(), "problem": verdict.problem}

    @property
    def ok(self) -> bool:
        """No input raised, leaked or left the endpoint inconsistent."""
        return self.failed == 0

    def as_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {**dataclasses.asdict(self), "ok": self.ok}


@dataclasses.dataclass
class FuzzReport:
    """A whole run: its parameters and one tally per role."""

    seed: int
    inputs: int
    seconds_limit: float | None
    roles: list[RoleTally]
    stopped_by: str = "inputs"

    @property
    def ok(self) -> bool:
        """Every role came through without a failure."""
        return all(tally.ok for tally in self.roles)

    def as_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "seed": self.seed,
            "inputs_per_role": self.inputs,
            "seconds_limit": self.seconds_limit,
            "stopped_by": self.stopped_by,
            "ok": self.ok,
            "roles": {tally.role: tally.as_dict() for tally in self.roles},
        }


class FuzzSetupError(RuntimeError):
    """The honest peer could not drive the endpoint to the wanted state (a harness bug)."""


# ----------------------------------------------------------------------------- the peer


def _open_fd_set() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


class _FdSource:
    """The fds inputs carry, made once: a memfd, an eventfd, and the peer's region."""

    def __init__(self) -> None:
        self.memfd = os.memfd_create("memif-fuzz memfd", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
        try:
            os.ftruncate(self.memfd, FUZZ_MEMFD_SIZE)
            fcntl.fcntl(self.memfd, fcntl.F_ADD_SEALS, fcntl.F_SEAL_SHRINK)
            self.eventfd = create_eventfd()
        except BaseException:
            os.close(self.memfd)
            raise
        try:
            self.region = Region.create("memif-fuzz peer region", PEER_SHAPE.region_sizes()[0])
        except BaseException:
            os.close(self.memfd)
            os.close(self.eventfd)
            raise

    def fd(self, kind: FdKind) -> int:
        """The fd of one kind (sending it gives the receiver its own copy)."""
        if kind is FdKind.MEMFD:
            return self.memfd
        if kind is FdKind.EVENTFD:
            return self.eventfd
        return self.region.fd

    def reset_rings(self) -> None:
        """Put the peer's rings back as an honest client leaves them before CONNECT."""
        for ring_type, index in PEER_SHAPE.rings():
            view = ring.RingView(self.region, PEER_SHAPE.ring_offset(ring_type, index), PEER_LOG2)
            first = PEER_SHAPE.buffer_offset(ring_type, index, 0)
            owned = ring.OwnedBuffers.of_region(self.region, 0, first, 1 << PEER_LOG2, PEER_BUFFER)
            ring.init_ring(view, owned.region_ids, owned.offsets, PEER_BUFFER)
            view.release()

    def announcement(
        self,
    ) -> tuple[list[tuple[wire.AddRegion, int]], list[tuple[wire.AddRing, int]]]:
        """What the honest client announces: its region, one C2S and one S2C ring."""
        regions = [(wire.AddRegion(index=0, size=self.region.size), self.region.fd)]
        rings = [
            (
                wire.AddRing(
                    flags=int(wire.AddRingFlag.C2S) if ring_type is RingType.C2S else 0,
                    index=index,
                    region=0,
                    offset=PEER_SHAPE.ring_offset(ring_type, index),
                    log2_ring_size=PEER_LOG2,
                ),
                self.eventfd,
            )
            for ring_type, index in PEER_SHAPE.rings()
        ]
        return regions, rings

    def close(self) -> None:
        """Close everything."""
        self.region.close()
        os.close(self.memfd)
        os.close(self.eventfd)


class _AdvertisingDirectory(protocol.StaticInterfaceDirectory):
    """The honest server peer: accepts up to 2 rings each way, advertises 1 (like its client)."""

    def hello(self) -> wire.Hello:
        """HELLO offering one ring each way of the peer's size."""
        return wire.Hello(
            name="memif-fuzz", max_c2s_ring=0, max_s2c_ring=0, max_log2_ring_size=PEER_LOG2
        )


class _Connection:
    """The honest peer's end of one control connection, with its held-back messages."""

    def __init__(self, sock: socket.socket, brain: MemifProtocol, fds: _FdSource) -> None:
        self.channel = ControlChannel(sock)
        self.brain = brain
        self.source = fds
        self.held: list[tuple[bytes, tuple[int, ...]]] = []
        self.delivered = 0
        self.eof = False
        self.heard: list[wire.Message | str] = []

    def send(self, datagram: bytes, fds: Sequence[int]) -> bool:
        """Send one datagram with its fds; False when the endpoint is gone."""
        try:
            self.channel.send(datagram, fds)
        except OSError:
            return False
        return True

    def hear(self) -> int:
        """Read what the endpoint sent and let the honest peer react; returns datagrams read."""
        count = 0
        while not self.eof:
            try:
                received = self.channel.receive()
            except BlockingIOError:
                break
            except ConnectionResetError:
                continue  # reported once, before what the endpoint sent before it closed
            except OSError:
                received = None
            if received is None:
                self.eof = True
                self.heard.append("EOF")
                break
            data, fds = received
            count += 1
            try:
                self.heard.append(wire.unpack(data))
            except wire.WireError as exc:
                self.heard.append(f"malformed: {exc}")
            self._react(self.brain.receive(data, fds))
        if self.eof and not self.brain.closed:
            self._react(self.brain.connection_lost())
        self.held.extend(self.brain.messages_to_send())
        return count

    def _react(self, events: list[protocol.Event]) -> None:
        for event in events:
            if isinstance(event, protocol.RegionAdded | protocol.RingAdded):
                os.close(event.fd)
            elif isinstance(event, protocol.UnusedFds):
                for fd in event.fds:
                    os.close(fd)
            elif isinstance(event, protocol.HelloReceived):
                self.brain.announce(*self.source.announcement())
            elif isinstance(event, protocol.ConnectRequested):
                self.brain.complete_connect()

    def release(self, limit: int | None) -> int:
        """Send held honest messages while fewer than `limit` went out; returns how many."""
        sent = 0
        while self.held and (limit is None or self.delivered < limit) and not self.eof:
            datagram, fds = self.held.pop(0)
            if not self.send(datagram, fds):
                self.held.clear()
                break
            self.delivered += 1
            sent += 1
        return sent

    def close(self) -> None:
        """Close the peer's socket (no DISCONNECT: the endpoint sees EOF)."""
        self.channel.close()


# ----------------------------------------------------------------------------- targets


class _Target:
    """One endpoint under test, reused for every input of a run."""

    role: Role

    def __init__(self, directory: str, fds: _FdSource) -> None:
        self.directory = directory
        self.fds = fds

    def open(self) -> _Connection:
        """A fresh connection, the endpoint's end registered with it."""
        raise NotImplementedError

    def service(self) -> None:
        """Let the endpoint handle what arrived."""
        raise NotImplementedError

    def session(self) -> protocol.MemifProtocol | None:
        """The protocol of the endpoint's one session, if it has one."""
        raise NotImplementedError

    def leftovers(self) -> str | None:
        """What the endpoint still holds once the connection is gone (None: nothing)."""
        raise NotImplementedError

    def close(self) -> None:
        """Release the endpoint."""
        raise NotImplementedError


class _ServerTarget(_Target):
    role = Role.SERVER

    def __init__(self, directory: str, fds: _FdSource) -> None:
        super().__init__(directory, fds)
        self.path = os.path.join(directory, "server.sock")
        self.config = InterfaceConfig(
            id=0, c2s_rings=2, s2c_rings=2, log2_ring_size=PEER_LOG2, if_name="fuzz-server"
        )
        self.endpoint = ServerEndpoint(self.path, [self.config])

    def open(self) -> _Connection:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
        sock.connect(self.path)
        self.fds.reset_rings()
        brain = MemifProtocol(
            Role.CLIENT,
            config=InterfaceConfig(
                id=0, log2_ring_size=PEER_LOG2, buffer_size=PEER_BUFFER, app_name="memif-fuzz"
            ),
        )
        connection = _Connection(sock, brain, self.fds)
        self.endpoint.service(0)  # accept: HELLO goes out
        return connection

    def service(self) -> None:
        self.endpoint.service(0)

    def session(self) -> protocol.MemifProtocol | None:
        sessions = self.endpoint.sessions
        return sessions[0].protocol if sessions else None

    def leftovers(self) -> str | None:
        if self.endpoint.sessions:
            return f"{len(self.endpoint.sessions)} session(s) still open"
        if self.endpoint.directory.is_claimed(self.config.id):
            return f"interface {self.config.id} still claimed"
        if self.endpoint.links:
            return "a link is still registered"
        return None

    def close(self) -> None:
        self.endpoint.close()


class _ClientTarget(_Target):
    role = Role.CLIENT

    def __init__(self, directory: str, fds: _FdSource) -> None:
        super().__init__(directory, fds)
        self.path = os.path.join(directory, "peer.sock")
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
        try:
            self.listener.bind(self.path)
            self.listener.listen(4)
            self.listener.settimeout(2.0)
            config = InterfaceConfig(
                id=0,
                c2s_rings=2,
                s2c_rings=2,
                log2_ring_size=PEER_LOG2,
                buffer_size=PEER_BUFFER,
                if_name="fuzz-client",
            )
            self.endpoint = ClientEndpoint(self.path, config)
        except BaseException:
            self.listener.close()
            raise

    def open(self) -> _Connection:
        self.endpoint.connect()
        sock, _ = self.listener.accept()
        directory = _AdvertisingDirectory(
            InterfaceConfig(id=0, c2s_rings=2, s2c_rings=2, log2_ring_size=PEER_LOG2)
        )
        return _Connection(sock, MemifProtocol(Role.SERVER, directory=directory), self.fds)

    def service(self) -> None:
        self.endpoint.service(0)

    def session(self) -> protocol.MemifProtocol | None:
        session = self.endpoint.session
        return session.protocol if session is not None else None

    def leftovers(self) -> str | None:
        if self.endpoint.session is not None or self.endpoint.sessions:
            return "the session is still open"
        if self.endpoint.link is not None:
            return "a link is still registered"
        return None

    def close(self) -> None:
        self.endpoint.close()
        self.listener.close()


# ----------------------------------------------------------------------------- one input


class _Bench:
    """Everything one role's run needs: the endpoint, the fds, a private socket directory."""

    def __init__(self, role: Role) -> None:
        self.role = role
        self.directory = tempfile.mkdtemp(prefix="memif-fuzz-")
        self.fds: _FdSource | None = None
        self.target: _Target | None = None
        try:
            self.fds = _FdSource()
            self.target = self._new_target()
        except BaseException:
            self.close()
            raise
        self.baseline = _open_fd_set()

    def _new_target(self) -> _Target:
        assert self.fds is not None
        kind = _ServerTarget if self.role is Role.SERVER else _ClientTarget
        return kind(self.directory, self.fds)

    def honest_next(self, state: str) -> bytes | None:
        """The honest peer's next message in `state` (what a replacement stands in for)."""
        try:
            connection = self._reach(state)
        except FuzzSetupError:
            raise
        except Exception:  # the endpoint fails the honest handshake: each input will say so
            self._recover(None)
            return None
        try:
            return connection.held[0][0] if connection.held else None
        finally:
            self._teardown(connection)

    def run(self, fuzz_input: FuzzInput) -> Verdict:
        """Feed one input from its state and check what the endpoint did and left."""
        assert self.target is not None
        connection: _Connection | None = None
        try:
            connection = self._reach(fuzz_input.state)
            verdict = self._feed(connection, fuzz_input)
            self._teardown(connection)
        except FuzzSetupError:
            raise
        except Exception as exc:  # the endpoint raised: the one thing that must never happen
            self._recover(connection)
            return Verdict(Outcome.RAISED, problem=_describe_exception(exc))
        if verdict.problem is None:
            verdict = dataclasses.replace(verdict, problem=self._leftovers())
        return verdict

    def _reach(self, state: str) -> _Connection:
        assert self.target is not None
        steps = [label for label, _ in states_of(self.role)]
        if state not in steps:
            raise FuzzSetupError(f"no state {state!r} for a {self.role.value}; one of {steps}")
        step = steps.index(state)
        expected = states_of(self.role)[step][1]
        connection = self.target.open()
        for _ in range(ROUND_LIMIT):
            heard = connection.hear()
            sent = connection.release(step)
            self.target.service()
            if not heard and not sent and connection.delivered == step:
                heard = connection.hear()
                if not heard:
                    break
        session = self.target.session()
        if session is None or session.state is not expected or connection.delivered != step:
            got = "no session" if session is None else session.state.value
            self._teardown(connection)
            raise FuzzSetupError(f"honest peer reached {got} instead of {state}")
        return connection

    def _feed(self, connection: _Connection, fuzz_input: FuzzInput) -> Verdict:
        assert self.target is not None and self.fds is not None
        mark = len(connection.heard)
        if fuzz_input.replaces and connection.held:
            connection.held.pop(0)
        fds = [self.fds.fd(kind) for kind in fuzz_input.fds]
        if not connection.send(fuzz_input.datagram, fds):
            raise FuzzSetupError("the endpoint was gone before the input was sent")
        self.target.service()
        connection.hear()
        answer = connection.heard[mark:]
        session = self.target.session()
        disconnects = [m for m in answer if isinstance(m, wire.Disconnect)]
        if disconnects:
            reason = disconnects[0].reason
            problem = None
            if not reason:
                problem = "DISCONNECT without a reason"
            elif session is not None:
                problem = f"sent DISCONNECT {reason!r} but kept the session"
            return Verdict(Outcome.DISCONNECT, reason, problem)
        if connection.eof or session is None:
            return Verdict(Outcome.CLOSE)
        mark = len(connection.heard)
        self._settle(connection)
        later = [m.reason for m in connection.heard[mark:] if isinstance(m, wire.Disconnect)]
        return Verdict(Outcome.ACCEPTED, later_reason=later[0] if later else None)

    def _settle(self, connection: _Connection) -> None:
        """Let the honest handshake go on after an accepted input, bounded."""
        assert self.target is not None
        for _ in range(ROUND_LIMIT):
            sent = connection.release(None)
            self.target.service()
            if not connection.hear() and not sent:
                return

    def _teardown(self, connection: _Connection) -> None:
        assert self.target is not None
        connection.close()
        for _ in range(ROUND_LIMIT):
            if self.target.session() is None:
                break
            self.target.service()

    def _leftovers(self) -> str | None:
        assert self.target is not None
        left = self.target.leftovers()
        if left is not None:
            return left
        now = _open_fd_set()
        if now != self.baseline:
            opened, closed = sorted(now - self.baseline), sorted(self.baseline - now)
            self.baseline = now  # report each leak once
            return f"fd table changed: {len(opened)} more open {opened}, closed {closed}"
        return None

    def _recover(self, connection: _Connection | None) -> None:
        """After an exception: drop the endpoint (whatever state it is in) and start over."""
        if connection is not None:
            with contextlib.suppress(OSError):
                connection.close()
        if self.target is not None:
            with contextlib.suppress(Exception):
                self.target.close()
        self.target = self._new_target()
        self.baseline = _open_fd_set()

    def close(self) -> None:
        """Release the endpoint, the fds and the socket directory."""
        if self.target is not None:
            with contextlib.suppress(Exception):
                self.target.close()
            self.target = None
        if self.fds is not None:
            self.fds.close()
            self.fds = None
        shutil.rmtree(self.directory, ignore_errors=True)


def _describe_exception(exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" at {frames[-1].filename}:{frames[-1].lineno} in {frames[-1].name}" if frames else ""
    return f"{type(exc).__name__}: {exc}{where}"


# ----------------------------------------------------------------------------- runs


def replay(fuzz_input: FuzzInput) -> Verdict:
    """Run one input alone (a fresh endpoint of its role)."""
    bench = _Bench(fuzz_input.role)
    try:
        return bench.run(fuzz_input)
    finally:
        bench.close()


def fuzz_role(
    role: Role,
    inputs: int,
    *,
    seed: int = 0,
    deadline: float | None = None,
    on_input: Callable[[FuzzInput, Verdict], None] | None = None,
) -> RoleTally:
    """Run `inputs` inputs against one role (fewer if `deadline`, a monotonic time, passes).

    Raises:
        FuzzSetupError: the honest peer could not reach a state (not the endpoint's fault).
    """
    tally = RoleTally(role.value)
    started = time.monotonic()
    bench = _Bench(role)
    try:
        honest = {label: bench.honest_next(label) for label, _ in states_of(role)}
        for index in range(inputs):
            if deadline is not None and time.monotonic() >= deadline:
                break
            state = states_of(role)[index % len(states_of(role))][0]
            fuzz_input = generate(role, seed, index, honest[state])
            verdict = bench.run(fuzz_input)
            tally.count(fuzz_input, verdict)
            if on_input is not None:
                on_input(fuzz_input, verdict)
    finally:
        bench.close()
        tally.seconds = round(time.monotonic() - started, 3)
    return tally


def run(
    roles: Sequence[Role], inputs: int, *, seed: int = 0, seconds: float | None = None
) -> FuzzReport:
    """Fuzz each role in turn with `inputs` inputs, within `seconds` overall if given."""
    if inputs <= 0:
        raise ValueError(f"inputs must be positive, not {inputs}")
    if seconds is not None and seconds <= 0:
        raise ValueError(f"seconds must be positive, not {seconds}")
    deadline = None if seconds is None else time.monotonic() + seconds
    report = FuzzReport(seed, inputs, seconds, [])
    for role in roles:
        tally = fuzz_role(role, inputs, seed=seed, deadline=deadline)
        report.roles.append(tally)
        if tally.inputs < inputs:
            report.stopped_by = "seconds"
    return report


# ----------------------------------------------------------------------------- command


def build_parser() -> argparse.ArgumentParser:
    """The `memif-ref fuzz` argument parser."""
    parser = argparse.ArgumentParser(
        prog="memif-ref fuzz",
        description="Feed raw control datagrams (0-200 bytes, with and without real fds) to the "
        "reference server and/or client from every state of its handshake; count how many were "
        "answered by DISCONNECT, by a close, or accepted, and how many raised (must be 0).",
    )
    parser.add_argument("--role", choices=["server", "client", "both"], default="both")
    parser.add_argument("--inputs", type=int, required=True, help="inputs per role")
    parser.add_argument("--seed", type=int, default=0, help="seed (default 0)")
    parser.add_argument("--seconds", type=float, help="stop after this long in all")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument(
        "--replay",
        metavar="JSON",
        help="run one input alone, given as the JSON object a failure report prints "
        '(e.g. \'{"role": "server", "state": "wait-init", "hex": "0300", "fds": []}\')',
    )
    return parser


def _print_human(report: FuzzReport) -> None:
    for tally in report.roles:
        print(
            f"{tally.role}: {tally.inputs} inputs in {tally.seconds:.1f} s: "
            f"{tally.disconnect} DISCONNECT, {tally.close} close, {tally.accepted} accepted, "
            f"{tally.raised} raised, {tally.failed} failed"
        )
        if tally.first_failure is not None:
            failure = tally.first_failure
            print(f"  first failure: {failure['problem']}")
            print(f"  input {failure['index']} in state {failure['state']}, fds {failure['fds']}")
            print(f"  hex {failure['hex']}")
            print(f"  replay: memif-ref fuzz --inputs 1 --replay '{json.dumps(failure)}'")
    if report.stopped_by == "seconds":
        print(f"stopped by --seconds {report.seconds_limit:g}")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `memif-ref fuzz`: exit 0 if nothing failed, 1 otherwise."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # bad usage exits 1, as in every memif-ref command; --help 0
        return EXIT_OK if exc.code in (0, None) else EXIT_FAILED
    try:
        if args.inputs <= 0:
            raise ValueError(f"--inputs {args.inputs}: must be positive")
        if args.replay is not None:
            return _replay_command(args.replay, args.json)
        roles = [Role.SERVER, Role.CLIENT] if args.role == "both" else [Role(args.role)]
        report = run(roles, args.inputs, seed=args.seed, seconds=args.seconds)
    except (ValueError, FuzzSetupError) as exc:
        print(f"memif-ref fuzz: error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    if args.json:
        print(json.dumps(report.as_dict(), sort_keys=True))
    else:
        _print_human(report)
    return EXIT_OK if report.ok else EXIT_FAILED


def _replay_command(text: str, as_json: bool) -> int:
    try:
        fuzz_input = FuzzInput.from_dict(json.loads(text))
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"--replay: not an input object: {exc}") from exc
    verdict = replay(fuzz_input)
    result = {
        "input": fuzz_input.as_dict(),
        "outcome": verdict.outcome.value,
        "reason": verdict.reason,
        "problem": verdict.problem,
    }
    if as_json:
        print(json.dumps(result, sort_keys=True))
    else:
        print(f"{verdict.outcome.value}" + (f" ({verdict.reason!r})" if verdict.reason else ""))
        if verdict.problem:
            print(f"problem: {verdict.problem}")
    return EXIT_OK if verdict.problem is None else EXIT_FAILED
