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


def hugepage_state(meminfo: Path = MEMINFO) -> str:
    """Free and total default-size hugepages, for error messages ("0 of 512 hugepages of
    2048 kB free"); "" if unknown."""
    try:
        text = meminfo.read_text()
    except OSError:
        return ""
    found = {
        key: match.group(1)
        for key in ("HugePages_Total", "HugePages_Free", "Hugepagesize")
        if (match := re.search(rf"^{key}:\s+(\d+)", text, re.M))
    }
    if len(found) < 3:
        return ""
    return (
        f"{found['HugePages_Free']} of {found['HugePages_Total']} hugepages of "
        f"{found['Hugepagesize']} kB free"
    )


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
