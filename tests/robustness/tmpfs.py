"""A small tmpfs of its own for one member's data dir, so that a test can fill it up (the disk-full fault).

Contract: ``Tmpfs(path, size_mib).mount()`` mounts a fresh tmpfs of ``size_mib`` MiB (mode 0700) on ``path``
(created if missing); ``unmount()`` lazily unmounts it, and everything in it is gone. ``tmpfs_unavailable_reason()``
says why it cannot be mounted here (None when it can): mounting needs root.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

MOUNT = shutil.which("mount") or "/usr/bin/mount"
UMOUNT = shutil.which("umount") or "/usr/bin/umount"


def tmpfs_unavailable_reason() -> str | None:
    if os.geteuid() != 0:
        return "mounting a tmpfs needs root"
    if not os.path.exists(MOUNT):
        return "no mount(8)"
    return None


class Tmpfs:
    def __init__(self, path: Path, size_mib: int = 256) -> None:
        self.path = path
        self.size_mib = size_mib
        self.mounted = False

    def mount(self) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        opts = f"size={self.size_mib}m,mode=0700"
        subprocess.run([MOUNT, "-t", "tmpfs", "-o", opts, "tmpfs", str(self.path)], check=True, capture_output=True)
        self.mounted = True

    def unmount(self) -> None:
        if self.mounted:
            subprocess.run([UMOUNT, "-l", str(self.path)], check=False, capture_output=True)
            self.mounted = False
