"""Whether a folder can be written, asked before any work: pure Python, nothing created."""

from __future__ import annotations

import os
from pathlib import Path

# Kernel file systems: os.access says root may write there, but no folder of ours can be made.
PSEUDO_FILE_SYSTEMS = {
    "proc", "sysfs", "devtmpfs", "devpts", "cgroup", "cgroup2", "debugfs", "securityfs",
    "tracefs", "configfs", "pstore", "bpf",
}  # fmt: skip


def file_system(path: Path) -> str:
    """The type of the file system `path` lies on, from the mount table ('' if unknown)."""
    try:
        mounts = Path("/proc/self/mounts").read_text().splitlines()
    except OSError:
        return ""
    target, best, kind = str(path.resolve()), "", ""
    for line in mounts:
        fields = line.split()
        if len(fields) < 3:
            continue
        point = fields[1].replace("\\040", " ")
        inside = target == point or target.startswith(point.rstrip("/") + "/")
        if inside and len(point) >= len(best):  # the deepest mount, the last one mounted
            best, kind = point, fields[2]
    return kind


def unwritable(target: Path, folder: bool = True) -> str | None:
    """Why `target` (a folder, or with `folder=False` a file) cannot be written, or None."""
    if not os.access(target, os.W_OK | (os.X_OK if folder else 0)):
        return f"{target} is not writable"
    if (kind := file_system(target)) in PSEUDO_FILE_SYSTEMS:
        return f"{target} is on the kernel's {kind} file system"
    return None


def cannot_make(folder: str | Path) -> str | None:
    """Why `folder` can neither be written nor made, or None: its nearest existing ancestor
    must be a writable folder."""
    existing = Path(folder).absolute()
    while not os.path.exists(existing):
        existing = existing.parent
    if not existing.is_dir():
        return f"{existing} is a file, not a folder"
    return unwritable(existing)
