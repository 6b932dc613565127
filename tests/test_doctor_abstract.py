"""`doctor` warns about abstract memif sockets, in use (listening) or configured (peers)."""

from __future__ import annotations

import os
import socket
from pathlib import Path

from harness import doctor

UNIX_HEADER = "Num       RefCount Protocol Flags    Type St Inode Path\n"


def unix_line(flags: int, path: str) -> str:
    return f"0000000000000000: 00000002 00000000 {flags:08X} 0005 01 12345 {path}\n"


def test_listening_abstract_memif_sockets_are_found(tmp_path: Path) -> None:
    table = tmp_path / "unix"
    table.write_text(
        UNIX_HEADER
        + unix_line(0x10000, "@/tmp/memif-harness-1a2b3c4d-case-x/memif.sock")
        + unix_line(0x00000, "@/tmp/memif-connected.sock")  # not listening
        + unix_line(0x10000, "@/tmp/.X11-unix/X0")  # not memif
        + unix_line(0x10000, "/tmp/memif-harness-1a2b3c4d-case-x/memif-tap.sock")  # a file
    )
    assert doctor.abstract_sockets_in_use(table) == [
        "@/tmp/memif-harness-1a2b3c4d-case-x/memif.sock"
    ]


def test_a_real_abstract_socket_is_a_rendered_warning(tmp_path: Path) -> None:
    name = f"/memif-doctor-test-{os.getpid()}.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    try:
        listener.bind("\0" + name)
        listener.listen(1)
        warnings = doctor.abstract_socket_warnings(proc=tmp_path)
    finally:
        listener.close()
    (warning,) = [w for w in warnings if name in w.name]
    assert warning.warning and not warning.available
    text = doctor.render([warning])
    assert text.startswith(f"!!  abstract socket @{name}: listening; abstract socket: any process")
    assert "how to get it: use filesystem sockets in a 0700 directory" in text
    assert all(name not in w.name for w in doctor.abstract_socket_warnings(proc=tmp_path))


def test_peers_configured_for_abstract_sockets_are_found(tmp_path: Path) -> None:
    commands = {
        11: "python -m reference_impl.cli server --socket /run/m.sock --abstract responder",
        12: "python -m reference_impl.cli server --socket /run/m.sock responder",
        13: "dpdk-testpmd --vdev=net_memif0,role=server,socket=/run/a.sock -- -i",
        14: "dpdk-testpmd --vdev=net_memif0,role=client,socket=/run/b.sock,socket-abstract=no",
        15: "dpdk-testpmd --vdev net_memif1,socket=/run/c.sock,socket-abstract=yes -- -i",
    }
    for pid, command in commands.items():
        (tmp_path / str(pid)).mkdir()
        (tmp_path / str(pid) / "cmdline").write_bytes(command.replace(" ", "\0").encode())
    assert doctor.abstract_sockets_configured(tmp_path) == [
        "pid 11: memif-ref --abstract",
        "pid 13: DPDK net_memif0,role=server,socket=/run/a.sock "
        "(abstract unless socket-abstract=no)",
        "pid 15: DPDK net_memif1,socket=/run/c.sock,socket-abstract=yes "
        "(abstract unless socket-abstract=no)",
    ]


def test_no_abstract_socket_no_warning(tmp_path: Path) -> None:
    table = tmp_path / "unix"
    table.write_text(UNIX_HEADER)
    assert doctor.abstract_socket_warnings(table, tmp_path) == []
