"""Host hugepage facts: where hugetlbfs is mounted and whether enough pages are free."""

from __future__ import annotations

import re
from pathlib import Path

MOUNTS = Path("/proc/mounts")
MEMINFO = Path("/proc/meminfo")


def hugetlbfs_mounts(mounts_file: Path = MOUNTS) -> list[Path]:
    """Mount points of type hugetlbfs (octal escapes of /proc/mounts decoded).

    Args:
        mounts_file: The mount table to read.

    Returns:
        The mount points; empty if the table cannot be read.
    """
    try:
        lines = mounts_file.read_text().splitlines()
    except OSError:
        return []
    mounts: list[Path] = []
    for line in lines:
        fields = line.split()
        if len(fields) >= 3 and fields[2] == "hugetlbfs":
            # /proc/mounts escapes space, tab, newline and backslash as octal.
            mounts.append(Path(fields[1].encode().decode("unicode_escape")))
    return mounts


def hugepages_available(min_free_pages: int = 256, meminfo: Path = MEMINFO) -> bool:
    """Whether enough default-size hugepages are free and hugetlbfs is mounted.

    Args:
        min_free_pages: Free default-size hugepages needed.
        meminfo: Where to read HugePages_Free.
    """
    try:
        match = re.search(r"^HugePages_Free:\s+(\d+)", meminfo.read_text(), re.M)
    except OSError:
        return False
    return match is not None and int(match.group(1)) >= min_free_pages and bool(hugetlbfs_mounts())
