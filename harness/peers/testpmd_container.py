"""testpmd in a Docker container: the TestpmdTransport over a DockerRuntime's containers.

The prompt is driven through the container's attach socket (ContainerConsole); liveness,
exit status, signals and removal go through the engine (PeerContainer).
"""

from __future__ import annotations

import signal
from collections.abc import Sequence
from typing import Final

import docker.errors
import requests.exceptions

from harness.peers.testpmd import (
    DEFAULT_BINARY,
    TestpmdError,
    TestpmdParseError,
    TestpmdStartupError,
    TestpmdTransport,
    parse_version,
)
from harness.runtime.docker import (
    PEER_CAPABILITIES,
    BindMount,
    ContainerConsole,
    ContainerSpec,
    ContainerTimeoutError,
    DockerError,
    DockerRuntime,
    PeerContainer,
)

SIGNAL_EXIT_BASE: Final = 128
"""tini (the engine's init) and the engine report death by signal N as exit status 128 + N."""
VANISHED_EXIT_STATUS: Final = 255
"""Exit status recorded for a container removed behind the transport's back (unknown)."""

_ENGINE_ERRORS: Final = (docker.errors.DockerException, requests.exceptions.RequestException)


def exit_status(container_status: int) -> int:
    """Map a container's exit status to subprocess.Popen's convention.

    Args:
        container_status: What the engine reports (128 + N for death by signal N).

    Returns:
        -N for a death by signal N, else the status unchanged. A program that exits with
        128 + N by itself cannot be told apart (testpmd does not).
    """
    number = container_status - SIGNAL_EXIT_BASE
    if number in {int(sig) for sig in signal.valid_signals()}:
        return -number
    return container_status


class ContainerTransport(TestpmdTransport):
    """testpmd as the program of one container of a DockerRuntime.

    The container runs under the engine's init (tini), which forwards our signals to
    testpmd and reports its death by a signal as 128 + N: exit statuses are mapped back to
    Popen's negative form, so TestpmdProcess tells a crash from a signal it sent itself.
    close() removes the container; its exit status and logs stay readable.
    """

    def __init__(
        self,
        runtime: DockerRuntime,
        image: str,
        name: str,
        *,
        mounts: Sequence[BindMount] = (),
        cpuset_cpus: str | None = None,
        cap_add: Sequence[str] = PEER_CAPABILITIES,
        labels: dict[str, str] | None = None,
    ) -> None:
        """Prepare (not start) the container.

        Args:
            runtime: The run's Docker runtime (names, labels, cleanup).
            image: Image tag holding dpdk-testpmd and stdbuf.
            name: Short name, unique within the run (memif-<run>-<name>).
            mounts: Host paths to mount (socket directory, /dev/hugepages).
            cpuset_cpus: CPUs the container may use, e.g. "1".
            cap_add: Capabilities granted; every other one is dropped.
            labels: Extra labels (the run and peer labels are added by the runtime).
        """
        self.runtime = runtime
        self.image = image
        self.name = name
        self.mounts = tuple(mounts)
        self.cpuset_cpus = cpuset_cpus
        self.cap_add = tuple(cap_add)
        self.labels = dict(labels or {})
        self.container: PeerContainer | None = None
        self._console: ContainerConsole | None = None
        self._status: int | None = None

    @property
    def container_name(self) -> str:
        """The container's full name."""
        return self.runtime.container_name(self.name)

    def spec(self, argv: Sequence[str]) -> ContainerSpec:
        """The container that start(argv) creates."""
        return ContainerSpec(
            image=self.image,
            command=tuple(argv),
            name=self.name,
            cap_add=self.cap_add,
            mounts=self.mounts,
            cpuset_cpus=self.cpuset_cpus,
            stdin_open=True,
            labels=self.labels,
        )

    def start(self, argv: Sequence[str]) -> None:
        """Create, attach and start the container."""
        try:
            self.container = self.runtime.start(self.spec(argv))
        except DockerError as error:
            raise TestpmdStartupError(
                f"container {self.container_name}: {str(error).splitlines()[0]}", error.log_tail
            ) from error
        except _ENGINE_ERRORS as error:
            raise TestpmdStartupError(f"container {self.container_name}: {error}") from error
        self._console = self.container.console()

    def read(self, timeout: float) -> str | None:
        """Read the console (stdout and stderr, demultiplexed)."""
        console = self._console
        if console is None:
            return None
        try:
            text = console.read(timeout)
        except (OSError, ValueError):  # closed under us
            return None
        if text:
            return text
        return None if console.eof else ""

    def write(self, text: str) -> None:
        """Write to the container's stdin."""
        if self._console is None:
            raise BrokenPipeError(f"{self.container_name} has no console")
        try:
            self._console.send(text)
        except DockerError as error:
            raise BrokenPipeError(str(error).splitlines()[0]) from error

    def poll(self) -> int | None:
        """Ask the engine whether the container exited (once known, remembered)."""
        if self._status is not None or self.container is None:
            return self._status
        try:
            status = self.container.exit_code
            ended = self._console is not None and self._console.eof
            if status is None and ended:
                status = self._status_of_ended(self.container)
        except _ENGINE_ERRORS as error:
            raise TestpmdError(f"docker engine: {error}") from error
        if status is not None:
            self._status = exit_status(status)
        return self._status

    @staticmethod
    def _status_of_ended(container: PeerContainer) -> int | None:
        """Exit status of a container whose output ended: still running (None), exited just
        now, or removed behind our back (then unknown: VANISHED_EXIT_STATUS)."""
        if container.running:
            return None
        status = container.exit_code
        return VANISHED_EXIT_STATUS if status is None else status

    def wait(self, timeout: float) -> int | None:
        """Wait for the engine to report the exit, up to `timeout` seconds."""
        status = self.poll()
        if status is not None or self.container is None or timeout <= 0:
            return status
        try:
            self._status = exit_status(self.container.wait(timeout))
        except ContainerTimeoutError:
            return None
        except docker.errors.NotFound:
            return self.poll()
        except _ENGINE_ERRORS as error:
            raise TestpmdError(f"docker engine: {error}") from error
        return self._status

    def send_signal(self, sig: signal.Signals) -> None:
        """Signal the container's init, which forwards it to testpmd (SIGKILL ends the init)."""
        if self.container is None:
            return
        try:
            self.container.kill(sig)
        except _ENGINE_ERRORS as error:
            raise TestpmdError(f"docker engine: {error}") from error

    def close(self) -> None:
        """Remove the container (killing it if it still runs: then recorded as SIGKILL)."""
        if self.container is None or self.container.removed:
            return
        try:
            still_running = self.poll() is None
        except TestpmdError:
            still_running = True
        self.container.remove()
        if still_running:
            self._status = -signal.SIGKILL

    @property
    def pid(self) -> int | None:
        """Host pid of the container's init (testpmd's parent), None unless running."""
        if self.container is None or self._status is not None:
            return None
        try:
            return self.container.pid
        except (DockerError, *_ENGINE_ERRORS):
            return None

    @property
    def logs(self) -> str:
        """What the engine logged for the container (kept after removal)."""
        return self.container.logs() if self.container is not None else ""


def container_version(
    runtime: DockerRuntime,
    image: str,
    name: str,
    *,
    binary: str = DEFAULT_BINARY,
    timeout: float = 30.0,
) -> str:
    """The DPDK version of testpmd in an image (`testpmd -v -h` in a short-lived container).

    Args:
        runtime: The run's Docker runtime.
        image: Image tag.
        name: Short container name, unique within the run.
        binary: testpmd executable in the image.
        timeout: Seconds allowed for the container to run.

    Returns:
        The version number, e.g. "22.11.11".

    Raises:
        TestpmdError: The container could not run, or printed no version.
    """
    spec = ContainerSpec(image=image, command=(binary, "-v", "-h"), name=name, cap_add=())
    try:
        container = runtime.start(spec)
        try:
            container.wait(timeout)
            text = container.logs()
        finally:
            container.remove()
    except (DockerError, *_ENGINE_ERRORS) as error:
        raise TestpmdError(f"cannot run {binary} -v -h in {image}: {error}") from error
    try:
        return parse_version(text)
    except TestpmdParseError as error:
        raise TestpmdError(f"{binary} -v -h in {image} printed no version", text[-2000:]) from error


__all__ = [
    "SIGNAL_EXIT_BASE",
    "VANISHED_EXIT_STATUS",
    "ContainerTransport",
    "container_version",
    "exit_status",
]
