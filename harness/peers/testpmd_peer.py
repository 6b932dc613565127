"""DPDK testpmd as a harness peer: MemifSpec -> testpmd configuration, status from its prompt."""

from __future__ import annotations

import re
import time
import uuid
from pathlib import Path

from harness.peers.base import (
    Activity,
    MemifSpec,
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
    TestpmdConfig,
    TestpmdError,
    TestpmdMemifPort,
    TestpmdProcess,
    hugepages_available,
    version,
)

FORWARD_MODES = {
    Activity.ECHO: "icmpecho",
    Activity.SINK: "rxonly",
    Activity.SOURCE: "txonly",
    Activity.FORWARD: "macswap",
    Activity.IDLE: "rxonly",
}
_DISCONNECT_LOG = re.compile(r"Disconnect received: (?P<reason>.+)$", re.MULTILINE)


def testpmd_config(spec: MemifSpec, *, cpu: int, file_prefix: str) -> TestpmdConfig:
    """The testpmd configuration for a spec (this adapter owns testpmd's quirks)."""
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
    return TestpmdConfig(
        ports=(port,),
        file_prefix=file_prefix,
        cpu=cpu,
        hugepages=spec.zero_copy and hugepages_available(),
        forward_mode=FORWARD_MODES[spec.activity],
        rxq=spec.queues,
        txq=spec.queues,
        txpkts=str(spec.frame_size) if spec.activity is Activity.SOURCE else None,
        # The memif driver logs disconnect reasons only at debug level.
        extra_eal_args=("--log-level=pmd.net.memif:debug",),
    )


class TestpmdPeer(Peer):
    """dpdk-testpmd with one memif port, driven through its interactive prompt."""

    __test__ = False
    kind = "testpmd"

    def __init__(
        self,
        spec: MemifSpec,
        workdir: Path,
        *,
        cpu: int | None = None,
        binary: str = DEFAULT_BINARY,
        file_prefix: str | None = None,
    ) -> None:
        super().__init__(spec, workdir, cpu=cpu)
        self.binary = binary
        prefix = file_prefix or f"memif-{uuid.uuid4().hex[:10]}"
        self.config = testpmd_config(spec, cpu=cpu or 0, file_prefix=prefix)
        self.process = TestpmdProcess(self.config, workdir / f"{prefix}.log", binary=binary)
        self._forwarding = False

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
            return PeerCrashed(f"testpmd crashed: {message}", self.process.log_tail())
        return PeerError(f"{message}: {str(exc).splitlines()[0]}", self.process.log_tail())

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
        )

    def logs(self) -> str:
        """testpmd's output so far."""
        return self.process.log_text()

    def version(self) -> str:
        """DPDK version of the binary."""
        return f"DPDK {version(self.binary)}"

    def stop(self) -> None:
        """Quit testpmd (kill if needed) and remove its runtime files."""
        self.process.stop()

    @property
    def crashed(self) -> bool:
        """Whether testpmd died by a signal nobody sent."""
        return self.process.crashed
