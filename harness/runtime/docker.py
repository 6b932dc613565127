"""Peers in Docker containers (docker SDK): labelled with the run id, no network, pinned CPUs,
only the capabilities asked for; readiness polled in the logs; always stopped and removed."""

from __future__ import annotations

import codecs
import contextlib
import re
import select
import socket
import struct
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Self

import docker
import docker.errors
import requests.exceptions
from docker.models.containers import Container

from harness.errors import LogTailError
from harness.topology.labels import LABEL_KEY, new_run_id

RUN_LABEL: Final = LABEL_KEY
"""Label carrying the run id on everything this module creates (`memif-harness reap`)."""
PEER_LABEL: Final = "memif-harness.peer"
"""Label carrying the container's short name within its run (e.g. testpmd-server)."""
NAME_PREFIX: Final = "memif"  # names are memif-<runid>-<peer>, as harness.topology.labels says

PEER_CAPABILITIES: Final = ("IPC_LOCK", "SYS_NICE")
"""What a DPDK peer needs with every other capability dropped (measured, testpmd 22.11 + memif):
IPC_LOCK for testpmd's mlockall() (without it: a warning, memory may be paged), SYS_NICE
because Docker's default seccomp profile allows get_mempolicy/set_mempolicy/mbind only with
it (without it EAL with hugepages fails: "set_mempolicy: Operation not permitted ... Cannot
init EAL"). With --no-huge testpmd even runs with none. Nothing else is needed: the socket
directory and /dev/hugepages are owned by root, the container's user."""

DEFAULT_LOG_TAIL_LINES: Final = 40
_NAME_RE: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")
_STREAM_HEADER: Final = struct.Struct(">BxxxL")
"""Frame header of a non-tty attach stream: stream type (0 stdin, 1 stdout, 2 stderr), size."""


# --------------------------------------------------------------------------- errors


class DockerError(LogTailError):
    """A Docker runtime failure (a harness ERROR, never a peer's FAIL), with a log tail."""

    log_label = "container or build log"


class EngineUnavailableError(DockerError):
    """No Docker engine answers (not installed, not started, no permission)."""


class ContainerStartError(DockerError):
    """The engine refused to create or start a container."""


class ContainerTimeoutError(DockerError):
    """A container did not print what was awaited in time."""


class ContainerExitedError(DockerError):
    """A container exited while something was still expected from it.

    Attributes:
        exit_code: Its exit status (128 + signal number for a signal).
    """

    def __init__(self, message: str, exit_code: int | None, log_tail: str = "") -> None:
        super().__init__(message, log_tail)
        self.exit_code = exit_code


# --------------------------------------------------------------------------- engine


def engine_client(timeout: float = 120.0) -> docker.DockerClient:
    """Connect to the Docker engine named by the environment (DOCKER_HOST or the local socket).

    Args:
        timeout: HTTP timeout of API calls in seconds (image builds stream through it).

    Returns:
        A client whose engine answered a ping.

    Raises:
        EngineUnavailableError: No engine answers; the message says how to start one.
    """
    try:
        client = docker.from_env(timeout=round(timeout))
        client.ping()
    except (docker.errors.DockerException, requests.exceptions.RequestException, OSError) as error:
        raise EngineUnavailableError(
            f"Docker engine not reachable ({error}); install and start it with ci/docker.sh"
        ) from error
    return client


def list_containers(
    client: docker.DockerClient | None = None, run_id: str | None = None
) -> list[Container]:
    """List containers (running or not) that carry our run label.

    Args:
        client: Engine client; a new one if None.
        run_id: Only this run's containers; None lists every run's.

    Returns:
        The matching containers.
    """
    client = client or engine_client()
    selector = RUN_LABEL if run_id is None else f"{RUN_LABEL}={run_id}"
    containers: list[Container] = client.containers.list(all=True, filters={"label": selector})
    return containers


def remove_containers(
    client: docker.DockerClient | None = None, run_id: str | None = None
) -> list[str]:
    """Kill and remove containers that carry our run label.

    Args:
        client: Engine client; a new one if None.
        run_id: Only this run's containers; None removes every run's (the reaper).

    Returns:
        Names of the containers removed.
    """
    client = client or engine_client()
    removed: list[str] = []
    for container in list_containers(client, run_id):
        with contextlib.suppress(docker.errors.NotFound):
            container.remove(force=True, v=True)
            removed.append(container.name or container.id or "?")
    return removed


# --------------------------------------------------------------------------- specs


@dataclass(frozen=True)
class BindMount:
    """A host path mounted into a container.

    Attributes:
        source: Host path (a socket directory, /dev/hugepages).
        target: Path inside the container; the same as source if None.
        read_only: Mount read-only.
    """

    source: str | Path
    target: str | None = None
    read_only: bool = False

    def volume(self) -> tuple[str, dict[str, str]]:
        """The docker SDK `volumes` entry for this mount."""
        target = self.target if self.target is not None else str(self.source)
        return str(self.source), {"bind": target, "mode": "ro" if self.read_only else "rw"}


@dataclass(frozen=True)
class ContainerSpec:
    """What to run in a container and with which privileges and placement.

    Attributes:
        image: Image tag (see harness.runtime.images.build_images).
        command: argv of the program (no shell).
        name: Short name, unique within the run (the container is memif-harness-<run>-<name>).
        cap_add: Capabilities granted; every other one is dropped.
        mounts: Host paths to mount (socket directory, /dev/hugepages).
        cpuset_cpus: CPUs the container may run on, e.g. "1" or "0-1"; None for all.
        shm_size: Size of /dev/shm, e.g. "256m"; None for Docker's default (64 MiB).
        stdin_open: Keep stdin open as a pipe, fed through `PeerContainer.console()`.
        environment: Environment variables.
        labels: Extra labels (the run and peer labels are always added).
        working_dir: Working directory inside the container.
        init: Run the program under the engine's init (tini): signals reach it even as a
            program that installs no handler would ignore them as pid 1, and zombies are reaped.
    """

    image: str
    command: tuple[str, ...]
    name: str
    cap_add: tuple[str, ...] = PEER_CAPABILITIES
    mounts: tuple[BindMount, ...] = ()
    cpuset_cpus: str | None = None
    shm_size: str | None = None
    stdin_open: bool = False
    environment: Mapping[str, str] = field(default_factory=dict)
    labels: Mapping[str, str] = field(default_factory=dict)
    working_dir: str | None = None
    init: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "command", tuple(self.command))
        object.__setattr__(self, "cap_add", tuple(cap.upper() for cap in self.cap_add))
        object.__setattr__(self, "mounts", tuple(self.mounts))
        if not self.command:
            raise ValueError("command must not be empty")
        if not _NAME_RE.fullmatch(self.name):
            raise ValueError(f"name {self.name!r} must be 1-63 characters of [A-Za-z0-9_.-]")
        if "ALL" in self.cap_add:
            raise ValueError("cap_add ALL is --privileged in disguise: list the capabilities")
        if RUN_LABEL in self.labels or PEER_LABEL in self.labels:
            raise ValueError(f"labels {RUN_LABEL} and {PEER_LABEL} are set by the runtime")


# --------------------------------------------------------------------------- console


class ContainerConsole:
    """A container's stdin and (demultiplexed) stdout+stderr over the engine's attach socket.

    Opened before the container starts, so no output is missed. Reads wait in select() with
    a deadline; nothing sleeps.
    """

    def __init__(self, sock: socket.socket, name: str) -> None:
        self._sock = sock
        self._name = name
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._raw = b""
        self._text = ""
        self._eof = False
        self.transcript = ""
        """Everything read so far (commands' outputs in order)."""

    @classmethod
    def attach(cls, client: docker.DockerClient, container: Container) -> ContainerConsole:
        """Attach to a created (not yet started) container with stdin_open.

        Args:
            client: Engine client.
            container: The container.

        Returns:
            The console.
        """
        params = {"stdin": 1, "stdout": 1, "stderr": 1, "stream": 1}
        attached: Any = client.api.attach_socket(container.id, params=params)
        # A SocketIO around the hijacked socket. Nothing can sit unread in the HTTP
        # response's buffer: the container has not started, so it has written nothing.
        sock = getattr(attached, "_sock", attached)
        return cls(sock, container.name or "?")

    @property
    def eof(self) -> bool:
        """True once the container closed its output (it exited)."""
        return self._eof

    def send(self, text: str) -> None:
        """Write text to the container's stdin.

        Args:
            text: What to write (add the newline yourself).

        Raises:
            ContainerExitedError: The stream is closed.
        """
        try:
            self._sock.sendall(text.encode())
        except OSError as error:
            raise ContainerExitedError(
                f"{self._name}: cannot write to stdin ({error})", None, self.transcript[-4000:]
            ) from error

    def _fill(self, deadline: float) -> bool:
        """Read one chunk if one arrives before the deadline; False on timeout or EOF."""
        if self._eof:
            return False
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        return self._receive(remaining)

    def _receive(self, timeout: float) -> bool:
        """Read one chunk if one arrives within `timeout` (0: only if pending); False if not."""
        if self._eof:
            return False
        readable, _, _ = select.select([self._sock], [], [], max(timeout, 0.0))
        if not readable:
            return False
        chunk = self._sock.recv(65536)
        if not chunk:
            self._eof = True
            self._text += self._decoder.decode(b"", final=True)
            return False
        self._raw += chunk
        while len(self._raw) >= _STREAM_HEADER.size:
            _, size = _STREAM_HEADER.unpack_from(self._raw)
            end = _STREAM_HEADER.size + size
            if len(self._raw) < end:
                break
            decoded = self._decoder.decode(self._raw[_STREAM_HEADER.size : end])
            self._text += decoded
            self.transcript += decoded
            self._raw = self._raw[end:]
        return True

    def read(self, timeout: float) -> str:
        """Consume and return the text that is pending or arrives within `timeout`.

        Args:
            timeout: Seconds to wait for output when none is pending (0: do not wait).

        Returns:
            The text ("" if nothing arrived in time, or the output ended: see `eof`).
        """
        deadline = time.monotonic() + timeout
        while not self._text and self._receive(deadline - time.monotonic()):
            pass  # a chunk may hold only part of a frame or of a UTF-8 character
        text, self._text = self._text, ""
        return text

    def read_until(self, pattern: str | re.Pattern[str], timeout: float) -> str:
        """Read until `pattern` matches, and consume the text up to the end of the match.

        Args:
            pattern: Regular expression (a plain prompt such as re.escape("testpmd> ")).
            timeout: Seconds to wait.

        Returns:
            The consumed text, the match included.

        Raises:
            ContainerTimeoutError: No match in time.
            ContainerExitedError: The output ended without a match.
        """
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            match = regex.search(self._text)
            if match is not None:
                consumed, self._text = self._text[: match.end()], self._text[match.end() :]
                return consumed
            if not self._fill(deadline):
                tail = self.transcript[-4000:]
                if self._eof:
                    raise ContainerExitedError(
                        f"{self._name}: output ended before {regex.pattern!r}", None, tail
                    )
                if time.monotonic() >= deadline:
                    raise ContainerTimeoutError(
                        f"{self._name}: no {regex.pattern!r} within {timeout:.1f}s", tail
                    )

    def close(self) -> None:
        """Close the attach socket (the container keeps its stdin pipe open)."""
        with contextlib.suppress(OSError):
            self._sock.close()


# --------------------------------------------------------------------------- containers


class PeerContainer:
    """One started container of a run. Stop it with stop()/remove() or the runtime's cleanup."""

    def __init__(
        self,
        container: Container,
        spec: ContainerSpec,
        client: docker.DockerClient,
    ) -> None:
        self.container = container
        self.spec = spec
        self._client = client
        self._console: ContainerConsole | None = None
        self._final_logs: str | None = None
        self.removed = False

    @property
    def name(self) -> str:
        """Full container name."""
        return self.container.name or self.container.id or "?"

    @property
    def id(self) -> str:
        """Container id."""
        return self.container.id or ""

    def _state(self) -> dict[str, Any]:
        self.container.reload()
        state: dict[str, Any] = self.container.attrs.get("State", {})
        return state

    @property
    def running(self) -> bool:
        """True while the container's program runs."""
        if self.removed:
            return False
        try:
            return bool(self._state().get("Running"))
        except docker.errors.NotFound:
            return False

    @property
    def exit_code(self) -> int | None:
        """Exit status once exited, None while running."""
        try:
            state = self._state()
        except docker.errors.NotFound:
            return None
        return None if state.get("Running") else int(state.get("ExitCode", -1))

    @property
    def pid(self) -> int:
        """Host pid of the container's first process (for /proc/<pid>/ns/net: moving a veth in).

        With `init` it is the init's pid; the program shares its namespaces.

        Raises:
            ContainerExitedError: The container is not running.
        """
        state = self._state()
        pid = int(state.get("Pid") or 0)
        if not state.get("Running") or pid <= 0:
            raise ContainerExitedError(
                f"{self.name} is not running: no pid", self.exit_code, self.log_tail()
            )
        return pid

    def attach_console(self) -> ContainerConsole:
        """Attach the stdin/stdout console (called by the runtime before start)."""
        if not self.spec.stdin_open:
            raise ValueError(f"{self.spec.name}: console needs ContainerSpec(stdin_open=True)")
        if self._console is None:
            self._console = ContainerConsole.attach(self._client, self.container)
        return self._console

    def console(self) -> ContainerConsole:
        """The console attached at start.

        Raises:
            ValueError: The spec did not ask for stdin_open.
        """
        if self._console is None:
            raise ValueError(f"{self.spec.name}: console needs ContainerSpec(stdin_open=True)")
        return self._console

    def logs(self) -> str:
        """stdout and stderr so far (kept after removal)."""
        if self._final_logs is not None:
            return self._final_logs
        try:
            raw: bytes = self.container.logs(stdout=True, stderr=True)
        except docker.errors.NotFound:
            return ""
        return raw.decode(errors="replace")

    def log_tail(self, lines: int = DEFAULT_LOG_TAIL_LINES) -> str:
        """The last `lines` lines of logs()."""
        return "\n".join(self.logs().splitlines()[-lines:])

    def wait_for_log(
        self, pattern: str | re.Pattern[str], timeout: float, interval: float = 0.1
    ) -> re.Match[str]:
        """Poll the logs until `pattern` matches (readiness).

        Args:
            pattern: Regular expression searched in the whole log.
            timeout: Seconds to wait.
            interval: Seconds between polls.

        Returns:
            The match.

        Raises:
            ContainerExitedError: The container exited without printing it.
            ContainerTimeoutError: Not printed within the timeout.
        """
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            match = regex.search(self.logs())
            if match is not None:
                return match
            if not self.running:
                match = regex.search(self.logs())  # printed just before exiting
                if match is not None:
                    return match
                raise ContainerExitedError(
                    f"{self.name} exited with status {self.exit_code} before printing "
                    f"{regex.pattern!r}",
                    self.exit_code,
                    self.log_tail(),
                )
            if time.monotonic() >= deadline:
                raise ContainerTimeoutError(
                    f"{self.name} did not print {regex.pattern!r} within {timeout:.1f}s",
                    self.log_tail(),
                )
            time.sleep(interval)

    def wait(self, timeout: float) -> int:
        """Wait for the container to exit by itself.

        Args:
            timeout: Seconds to wait.

        Returns:
            Its exit status.

        Raises:
            ContainerTimeoutError: Still running after the timeout.
        """
        try:
            result = self.container.wait(timeout=timeout)
        except (requests.exceptions.ReadTimeout, requests.exceptions.ConnectionError) as error:
            raise ContainerTimeoutError(
                f"{self.name} still running after {timeout:.1f}s", self.log_tail()
            ) from error
        return int(result.get("StatusCode", -1))

    def kill(self, sig: int) -> None:
        """Send a signal to the container's first process (with `init`, tini forwards it).

        Args:
            sig: Signal number.
        """
        if self.removed:
            return
        with contextlib.suppress(docker.errors.NotFound, docker.errors.APIError):
            self.container.kill(signal=int(sig))  # APIError: not running (any more)

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM, then SIGKILL after `timeout` seconds; wait for the exit.

        Args:
            timeout: Grace period in seconds.

        Returns:
            Its exit status, or None if the container is gone.
        """
        if self.removed:
            return None
        try:
            self.container.stop(timeout=round(timeout))
        except docker.errors.NotFound:
            return None
        except docker.errors.APIError:
            with contextlib.suppress(docker.errors.APIError):
                self.container.kill()
        return self.exit_code

    def remove(self) -> None:
        """Kill and remove the container; its logs stay readable through logs()."""
        if self.removed:
            return
        with contextlib.suppress(
            docker.errors.DockerException, requests.exceptions.RequestException
        ):
            self._final_logs = self.logs()
        if self._console is not None:
            self._console.close()
        with contextlib.suppress(docker.errors.NotFound):
            self.container.remove(force=True, v=True)
        self.removed = True

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        try:
            self.stop()
        finally:
            self.remove()


class DockerRuntime:
    """Runs peers in containers of one run; cleanup() (or leaving the `with`) removes them all.

    Args:
        run_id: Run id put in names and labels; a fresh one if None.
        client: Engine client; connects (and checks the engine answers) if None.
    """

    def __init__(
        self, run_id: str | None = None, client: docker.DockerClient | None = None
    ) -> None:
        self.run_id = run_id or new_run_id()
        self.client = client or engine_client()
        self.containers: list[PeerContainer] = []

    def container_name(self, name: str) -> str:
        """Full container name of a peer called `name` in this run."""
        return f"{NAME_PREFIX}-{self.run_id}-{name}"

    def start(self, spec: ContainerSpec) -> PeerContainer:
        """Create and start a container.

        It runs with `network_mode="none"`, every capability dropped but `spec.cap_add`, no new
        privileges, and the run's labels.

        Args:
            spec: What to run.

        Returns:
            The running container (its console attached when spec.stdin_open).

        Raises:
            ContainerStartError: Unknown image, bad option, or the engine refused to start it.
        """
        labels = {**spec.labels, RUN_LABEL: self.run_id, PEER_LABEL: spec.name}
        volumes = dict(mount.volume() for mount in spec.mounts)
        try:
            container = self.client.containers.create(
                spec.image,
                command=list(spec.command),
                name=self.container_name(spec.name),
                labels=labels,
                network_mode="none",
                cap_drop=["ALL"],
                cap_add=list(spec.cap_add),
                security_opt=["no-new-privileges"],
                volumes=volumes,
                cpuset_cpus=spec.cpuset_cpus,
                shm_size=spec.shm_size,
                stdin_open=spec.stdin_open,
                tty=False,
                environment=dict(spec.environment),
                working_dir=spec.working_dir,
                init=spec.init,
                detach=True,
            )
        except docker.errors.ImageNotFound as error:
            raise ContainerStartError(
                f"image {spec.image} not found: build it with harness.runtime.images.build_images()"
            ) from error
        except docker.errors.APIError as error:
            raise ContainerStartError(f"cannot create {spec.name}: {error.explanation}") from error
        peer = PeerContainer(container, spec, self.client)
        self.containers.append(peer)
        try:
            if spec.stdin_open:
                peer.attach_console()
            container.start()
        except (docker.errors.APIError, OSError) as error:
            tail = peer.log_tail()
            peer.remove()
            explanation = getattr(error, "explanation", None) or str(error)
            raise ContainerStartError(f"cannot start {spec.name}: {explanation}", tail) from error
        return peer

    def cleanup(self) -> list[str]:
        """Stop and remove every container of this run (also any this object did not track).

        Returns:
            Names of the containers removed by the label sweep.
        """
        for peer in self.containers:
            peer.remove()
        return remove_containers(self.client, self.run_id)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.cleanup()


__all__ = [
    "NAME_PREFIX",
    "PEER_CAPABILITIES",
    "PEER_LABEL",
    "RUN_LABEL",
    "BindMount",
    "ContainerConsole",
    "ContainerExitedError",
    "ContainerSpec",
    "ContainerStartError",
    "ContainerTimeoutError",
    "DockerError",
    "DockerRuntime",
    "EngineUnavailableError",
    "PeerContainer",
    "engine_client",
    "list_containers",
    "new_run_id",
    "remove_containers",
]
