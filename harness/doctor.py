"""What this host and each peer can do for the harness, and how to get what is missing."""

from __future__ import annotations

import dataclasses
import os
import platform
import re
import shutil
from pathlib import Path
from typing import Any

from harness.peers import testpmd
from harness.peers.vpp import find_vpp
from harness.runtime.docker import DockerError, engine_client
from harness.runtime.images import default_recipes, image_exists
from harness.topology import numa
from harness.topology.resources import process_commands


@dataclasses.dataclass(frozen=True)
class Capability:
    """One thing the harness may need: whether it is here, what it is, how to get it."""

    name: str
    available: bool
    detail: str
    how_to_get: str = ""
    warning: bool = False
    """Not a missing capability but something to fix: shown with "!!"."""


def testpmd_capability() -> Capability:
    binary = shutil.which("dpdk-testpmd")
    if binary is None:
        return Capability(
            "dpdk-testpmd", False, "not on PATH", "apt-get install dpdk-dev (or bash ci/setup.sh)"
        )
    return Capability("dpdk-testpmd", True, f"DPDK {testpmd.version(binary)} at {binary}")


def docker_capabilities() -> list[Capability]:
    try:
        client = engine_client(timeout=5)
    except DockerError as exc:
        return [
            Capability("docker-engine", False, str(exc).splitlines()[0], "bash ci/docker.sh"),
            Capability("images", False, "no engine", "bash ci/docker.sh, then images build"),
        ]
    version = client.version().get("Version", "?")
    try:
        recipes = default_recipes()
        tags = [recipe.tag for recipe in recipes]
        missing = [tag for tag in tags if not image_exists(client, tag)]
    except Exception as exc:  # a broken recipe must not hide the rest of the report
        return [
            Capability("docker-engine", True, f"Docker {version}"),
            Capability("images", False, f"cannot compute recipes: {exc}", ""),
        ]
    return [
        Capability("docker-engine", True, f"Docker {version}"),
        Capability(
            "images",
            not missing,
            "all built" if not missing else f"missing: {', '.join(missing)}",
            "" if not missing else "memif-harness images build",
        ),
    ]


def hugepages_capability() -> Capability:
    mounts = testpmd.hugetlbfs_mounts()
    free = testpmd.hugepages_available()
    detail = f"nr_hugepages={Path('/proc/sys/vm/nr_hugepages').read_text().strip()}, "
    detail += f"hugetlbfs at {', '.join(map(str, mounts)) or 'nowhere'}"
    return Capability(
        "hugepages (zero-copy)",
        free,
        detail,
        ""
        if free
        else "echo 512 > /proc/sys/vm/nr_hugepages; mount -t hugetlbfs nodev "
        "/dev/hugepages (ci/setup.sh does both)",
    )


def numa_capability() -> Capability:
    host = numa.read_host_topology()
    nodes = len(host.nodes)
    return Capability(
        "numa-nodes (cross-node cases)",
        nodes >= 2,
        f"{nodes} node(s): {host.describe()}",
        "" if nodes >= 2 else "needs a host with two or more NUMA nodes",
    )


def kernel_capabilities() -> list[Capability]:
    memfd = hasattr(os, "memfd_create")
    tun = Path("/dev/net/tun").exists()
    netns = Path("/proc/self/ns/net").exists() and os.geteuid() == 0
    return [
        Capability("memfd + sealing", memfd, f"kernel {platform.release()}"),
        Capability("network namespaces (root)", netns, f"euid {os.geteuid()}", "run as root"),
        Capability("TAP (/dev/net/tun)", tun, "/dev/net/tun", "modprobe tun"),
    ]


def vpp_capability(vpp_bin: str | None, vpp_image: str | None) -> Capability:
    found = find_vpp(vpp_bin, vpp_image)
    if found.available:
        return Capability("vpp", True, str(found))
    return Capability(
        "vpp",
        False,
        f"not available: {found.reason}",
        "install VPP from fd.io packages, or pass --vpp-bin PATH / --vpp-image IMAGE",
    )


UNIX_TABLE = Path("/proc/net/unix")
_UNIX_LISTENING = 0x10000  # __SO_ACCEPTCON in the Flags column
_MEMIF_DEVARGS = re.compile(r"net_memif[^\s]*")
ABSTRACT_HOW_TO = (
    "use filesystem sockets in a 0700 directory (DPDK: socket-abstract=no; memif-ref: "
    "without --abstract; VPP: a path without abstract:)"
)


def abstract_sockets_in_use(unix_table: Path = UNIX_TABLE) -> list[str]:
    """Listening abstract AF_UNIX sockets of this network namespace whose name says memif.

    Args:
        unix_table: The socket table to read (/proc/net/unix, or a test's copy).
    """
    try:
        lines = unix_table.read_text().splitlines()[1:]
    except OSError:
        return []
    found = []
    for line in lines:
        fields = line.split()
        if len(fields) < 8 or not fields[7].startswith("@"):
            continue
        if int(fields[3], 16) & _UNIX_LISTENING and "memif" in fields[7].lower():
            found.append(fields[7])
    return sorted(set(found))


def abstract_sockets_configured(proc: Path = Path("/proc")) -> list[str]:
    """Running memif peers configured for an abstract socket: memif-ref with --abstract, and
    DPDK memif vdevs without socket-abstract=no (DPDK's default is abstract).

    Args:
        proc: The proc filesystem (a test's fake tree).
    """
    found = []
    for pid, command in process_commands(proc):
        arguments = command.split()
        if "reference_impl.cli" in command and "--abstract" in arguments:
            found.append(f"pid {pid}: memif-ref --abstract")
        for devargs in _MEMIF_DEVARGS.findall(command):
            if "socket-abstract=no" not in devargs:
                found.append(f"pid {pid}: DPDK {devargs} (abstract unless socket-abstract=no)")
    return found


def abstract_socket_warnings(
    unix_table: Path = UNIX_TABLE, proc: Path = Path("/proc")
) -> list[Capability]:
    """A warning per abstract memif socket in use or configured: its name is visible to,
    and connectable by, every process of the network namespace (no file permissions)."""
    why = "abstract socket: any process of this network namespace can see and connect to it"
    return [
        Capability(f"abstract socket {name}", False, f"listening; {why}", ABSTRACT_HOW_TO, True)
        for name in abstract_sockets_in_use(unix_table)
    ] + [
        Capability("abstract socket configured", False, f"{what}; {why}", ABSTRACT_HOW_TO, True)
        for what in abstract_sockets_configured(proc)
    ]


def check(vpp_bin: str | None = None, vpp_image: str | None = None) -> list[Capability]:
    """Probe everything once (abstract memif sockets in use or configured are warnings)."""
    return [
        testpmd_capability(),
        *docker_capabilities(),
        vpp_capability(vpp_bin, vpp_image),
        hugepages_capability(),
        numa_capability(),
        Capability(
            "cpus",
            (os.cpu_count() or 1) >= 2,
            f"{os.cpu_count()} online",
            "two polling peers need two CPUs",
        ),
        *kernel_capabilities(),
        *abstract_socket_warnings(),
    ]


def as_json(capabilities: list[Capability]) -> list[dict[str, Any]]:
    """JSON-ready list."""
    return [dataclasses.asdict(capability) for capability in capabilities]


def render(capabilities: list[Capability]) -> str:
    """One line per capability, with the way to get each missing one ("!!": a warning)."""
    lines = []
    for capability in capabilities:
        mark = "ok " if capability.available else "!! " if capability.warning else "-- "
        line = f"{mark} {capability.name}: {capability.detail}"
        if not capability.available and capability.how_to_get:
            line += f"\n      how to get it: {capability.how_to_get}"
        lines.append(line)
    return "\n".join(lines)
