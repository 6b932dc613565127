"""DPDK testpmd as a harness peer: MemifSpec -> testpmd configuration, status from its prompt.

The same peer runs as a local process or in a container of a DockerRuntime: only its
transport differs, scenarios never see where it runs.
"""

from __future__ import annotations

import dataclasses
import re
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Final, Literal

from harness.peers.base import (
    Activity,
    MemifSpec,
    PacingUnsupported,
    Peer,
    PeerCounters,
    PeerCrashed,
    PeerError,
    PeerStatus,
    Role,
)
from harness.peers.reasons import normalise
from harness.peers.testpmd import (
    DEFAULT_BINARY,
    MemifRole,
    TestpmdAfPacketPort,
    TestpmdConfig,
    TestpmdError,
    TestpmdMemifPort,
    TestpmdProcess,
    TestpmdTransport,
    hugepages_available,
    hugetlbfs_mounts,
    version,
)
from harness.runtime.local import exit_description
from harness.topology.hugepages import hugepage_state
from harness.topology.labels import LabelError, RunLabel
from harness.topology.numa import Placement

if TYPE_CHECKING:
    from harness.runtime.docker import DockerRuntime

FORWARD_MODES = {
    Activity.ECHO: "icmpecho",
    Activity.SINK: "rxonly",
    Activity.SOURCE: "txonly",
    Activity.FORWARD: "macswap",
    Activity.IDLE: "rxonly",
}
_DISCONNECT_LOG = re.compile(r"Disconnect received: (?P<reason>.+)$", re.MULTILINE)
HUGEPAGES_DIR: Final = Path("/dev/hugepages")
"""Mounted into testpmd containers when present (at the same path)."""


def testpmd_config(
    spec: MemifSpec, *, cpu: int, file_prefix: str, placement: Placement | None = None
) -> TestpmdConfig:
    """The testpmd configuration for a spec (this adapter owns testpmd's quirks).

    A NUMA placement pins the lcores to its CPUs and, with hugepages, puts the memory
    on its node (`--socket-mem`).

    Raises:
        PeerError: the activity has no testpmd forwarding mode (VERIFY), or the spec
            asks for interrupt mode: DPDK's memif driver always polls (it sets MASK_INT
            on its RX rings at connect and has no Rx-interrupt support, fact sheet §6).
    """
    if spec.interrupt:
        raise PeerError(
            "DPDK's memif driver always polls (MASK_INT set, no Rx interrupts); "
            "it cannot receive in interrupt mode"
        )
    if spec.mode != "ethernet":
        raise PeerError(f"DPDK's memif driver has Ethernet mode only, not {spec.mode!r}")
    if spec.activity not in FORWARD_MODES:
        raise PeerError(f"testpmd has no forwarding mode for activity {spec.activity.value!r}")
    if spec.rate is not None or spec.seconds is not None or spec.trials:
        raise PacingUnsupported(
            "testpmd txonly cannot pace or time-bound its transmitter (no software rate "
            "limit in 22.11); a paced source needs another peer"
        )
    port = TestpmdMemifPort(
        role=MemifRole.SERVER if spec.role is Role.SERVER else MemifRole.CLIENT,
        socket_path=spec.socket_path,
        id=spec.interface_id,
        secret=spec.secret,
        rsize=spec.log2_ring_size,
        bsize=spec.buffer_size,
        zero_copy=spec.zero_copy,
        socket_abstract=spec.abstract,
    )
    # A NIC-backed forwarder: io between memif (port 0) and the kernel interface (port 1).
    nic = (TestpmdAfPacketPort(iface=spec.iface),) if spec.iface else ()
    return TestpmdConfig(
        ports=(port, *nic),
        file_prefix=file_prefix,
        cpu=cpu,
        hugepages=spec.zero_copy and hugepages_available(),
        forward_mode="io" if spec.iface else FORWARD_MODES[spec.activity],
        rxq=spec.queues,
        txq=spec.queues,
        txpkts=str(spec.frame_size) if spec.activity is Activity.SOURCE else None,
        lcore_map=placement.lcore_map() if placement is not None else None,
        # The memif driver logs disconnect reasons only at debug level.
        extra_eal_args=("--log-level=pmd.net.memif:debug", *_socket_mem(spec, placement)),
    )


def _socket_mem(spec: MemifSpec, placement: Placement | None) -> tuple[str, ...]:
    if placement is None or not (spec.zero_copy and hugepages_available()):
        return ()
    socket_mem = placement.socket_mem()
    return ("--socket-mem", socket_mem) if socket_mem else ()


class TestpmdPeer(Peer):
    """dpdk-testpmd with one memif port, driven through its interactive prompt.

    It runs as a local process (runtime "local") or in a container of a DockerRuntime. In a
    container the socket's directory is bind-mounted at the same path as on the host, so
    socket paths need no translation and a local peer can share the socket; the container
    has no network, only the IPC_LOCK and SYS_NICE capabilities, /dev/hugepages (when
    present) and the peer's CPU, and is named and labelled after the runtime's run.
    """

    __test__ = False
    kind = "testpmd"

    def __init__(
        self,
        spec: MemifSpec,
        workdir: Path,
        *,
        cpu: int | None = None,
        placement: Placement | None = None,
        binary: str = DEFAULT_BINARY,
        file_prefix: str | None = None,
        runtime: Literal["local"] | DockerRuntime = "local",
        image: str | None = None,
        name: str | None = None,
    ) -> None:
        """Prepare (not start) testpmd.

        Args:
            spec: The memif interface.
            workdir: Directory for testpmd's log.
            cpu: CPU for testpmd's lcores (and the container's cpuset); 0 if None.
            placement: NUMA placement: lcores on its CPUs, memory on its node.
            binary: testpmd executable (on the host, or in the image).
            file_prefix: EAL --file-prefix; unique per instance. Default: random locally,
                `memif-<run>-<name>` in a container (its hugepage files are on the host).
            runtime: "local", or the DockerRuntime of the run to start a container in.
            image: Image tag with testpmd (see `memif-harness images build`); needed with a
                DockerRuntime.
            name: Container short name within the run (default testpmd_<role>_<random>).

        Raises:
            ValueError: Unknown runtime, or a DockerRuntime without an image.
            PeerError: The spec cannot work in a container (abstract or relative socket
                path, socket directory missing on the host).
        """
        super().__init__(spec, workdir, cpu=cpu, placement=placement)
        cpu = self.cpu
        self.binary = binary
        self.runtime = runtime
        self.image = image
        self._version: str | None = None
        transport: TestpmdTransport | None = None
        if isinstance(runtime, str):
            if runtime != "local":
                raise ValueError(f"runtime must be 'local' or a DockerRuntime, not {runtime!r}")
            self.name = name or "testpmd"
            prefix = file_prefix or f"memif-{uuid.uuid4().hex[:10]}"
            self.config = testpmd_config(
                spec, cpu=cpu or 0, file_prefix=prefix, placement=placement
            )
        else:
            if image is None:
                raise ValueError("a DockerRuntime needs the testpmd image tag (image=)")
            self.name = name or f"testpmd_{spec.role.value}_{uuid.uuid4().hex[:6]}"
            try:
                label = RunLabel(runtime.run_id)
                label.container_name(self.name)  # the name must fit the labelling scheme
            except LabelError as error:
                raise ValueError(f"container name {self.name!r}: {error}") from error
            prefix = file_prefix or label.dpdk_prefix(self.name)
            config = testpmd_config(spec, cpu=cpu or 0, file_prefix=prefix, placement=placement)
            # Only /dev/hugepages goes into the container: hugepages only if it is hugetlbfs.
            hugepages = config.hugepages and HUGEPAGES_DIR in hugetlbfs_mounts()
            self.config = dataclasses.replace(config, hugepages=hugepages)
            transport = self._container_transport(runtime, image)
        self.process = TestpmdProcess(
            self.config, workdir / f"{prefix}.log", binary=binary, transport=transport
        )
        self._forwarding = False

    def _container_transport(self, runtime: DockerRuntime, image: str) -> TestpmdTransport:
        from harness.peers.testpmd_container import ContainerTransport
        from harness.runtime.docker import PEER_CAPABILITIES, BindMount

        socket_path = Path(self.spec.socket_path)
        if self.spec.abstract:
            raise PeerError(
                "an abstract socket lives in a network namespace, and a testpmd container "
                "has its own (--network none): use a filesystem socket"
            )
        if not socket_path.is_absolute():
            raise PeerError(f"socket path {socket_path} must be absolute to be bind-mounted")
        if not socket_path.parent.is_dir():
            # Docker would create a missing bind source as an empty root-owned directory.
            raise PeerError(f"socket directory {socket_path.parent} does not exist on the host")
        mounts = [BindMount(socket_path.parent)]
        if HUGEPAGES_DIR.is_dir():
            mounts.append(BindMount(HUGEPAGES_DIR))
        return ContainerTransport(
            runtime,
            image,
            self.name,
            mounts=mounts,
            cpuset_cpus=str(self.config.cpu),
            cap_add=PEER_CAPABILITIES,
        )

    def start(self) -> None:
        """Start testpmd; a server starts forwarding at once, a client once its link is up."""
        try:
            self.process.start()
            if self.spec.role is Role.SERVER:
                self._start_forwarding()
        except TestpmdError as exc:
            raise self._error("testpmd did not start", exc) from exc

    def _start_forwarding(self) -> None:
        if not self._forwarding:
            self.process.start_forwarding()
            self._forwarding = True

    def _error(self, message: str, exc: TestpmdError) -> PeerError:
        if self.process.crashed:
            how = exit_description(self.process.returncode)
            return PeerCrashed(f"testpmd crashed ({how}): {message}", self.process.log_tail())
        hugepages = f" (host: {hugepage_state()})" if self.config.hugepages else ""
        first = str(exc).splitlines()[0]
        return PeerError(f"{message}: {first}{hugepages}", self.process.log_tail())

    def wait_for_link(self, timeout: float) -> bool:
        """Poll `show port info` until the link is up, then start forwarding."""
        deadline = time.monotonic() + timeout
        try:
            while not self.process.port_info(0).link_status:
                if time.monotonic() > deadline:
                    return False
                time.sleep(0.05)
            self._start_forwarding()
        except TestpmdError as exc:
            raise self._error("testpmd stopped answering", exc) from exc
        return True

    def status(self) -> PeerStatus:
        """Link and counters from the prompt (testpmd resets counters at disconnect)."""
        try:
            info = self.process.port_info(0)
            stats = self.process.port_stats(0)
            sampled = time.monotonic()
        except TestpmdError as exc:
            raise self._error("testpmd stopped answering", exc) from exc
        reasons = _DISCONNECT_LOG.findall(self.process.log_text())
        text = reasons[-1].strip() if reasons else None
        return PeerStatus(
            link_up=info.link_status,
            counters=PeerCounters(
                rx_frames=stats.rx_packets,
                rx_bytes=stats.rx_bytes,
                tx_frames=stats.tx_packets,
                tx_bytes=stats.tx_bytes,
                rx_errors=stats.rx_errors,
                tx_errors=stats.tx_errors,
            ),
            disconnect=normalise(text) if text else None,
            disconnect_text=text,
            running=self.process.running,
            time=sampled,
        )

    def logs(self) -> str:
        """testpmd's output so far."""
        return self.process.log_text()

    def version(self) -> str:
        """DPDK version of the binary (in a container: of the image's binary)."""
        if self._version is None:
            if isinstance(self.runtime, str):
                number = version(self.binary)
            else:
                from harness.peers.testpmd_container import container_version

                assert self.image is not None  # checked in __init__
                try:
                    number = container_version(
                        self.runtime, self.image, f"{self.name}.version", binary=self.binary
                    )
                except TestpmdError as exc:
                    raise PeerError("cannot ask testpmd for its version", exc.log_tail) from exc
            self._version = f"DPDK {number}"
        return self._version

    def quiesce(self) -> None:
        """Stop forwarding (testpmd's `stop`), so no lcore polls the rings any more."""
        if self._forwarding and self.process.running:
            try:
                self.process.stop_forwarding()
            except TestpmdError as exc:
                raise self._error("testpmd did not stop forwarding", exc) from exc
            self._forwarding = False

    def stop(self) -> None:
        """Quit testpmd (kill if needed) and remove its runtime files (and its container)."""
        try:
            self.process.stop()
        except TestpmdError as exc:  # the engine failed; the runtime's cleanup sweeps the run
            raise self._error("testpmd did not stop cleanly", exc) from exc

    @property
    def crashed(self) -> bool:
        """Whether testpmd died by a signal nobody sent."""
        return self.process.crashed
