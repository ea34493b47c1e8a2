"""A watchdog for one git process: killed at its deadline, or once the repository it writes to
grows past a size (a fetch of a hostile repository can be endless or enormous)."""

from __future__ import annotations

import contextlib
import os
import subprocess
import threading
import time
from pathlib import Path

SIZE_CHECK_SECONDS = 0.5


class Watcher(threading.Thread):
    """Kills a git process at its deadline, or once the repository grows past ``max_bytes``."""

    def __init__(
        self, process: subprocess.Popen, path: Path, deadline: float, max_bytes: int | None
    ) -> None:
        super().__init__(daemon=True)
        self.process, self.path, self.max_bytes = process, path, max_bytes
        self.ends = time.monotonic() + deadline
        self.deadline = deadline
        self.reason = ""
        self._stopped = threading.Event()

    def run(self) -> None:
        while not self._stopped.wait(SIZE_CHECK_SECONDS if self.max_bytes else 0.05):
            if time.monotonic() > self.ends:
                self.reason = f"took longer than {self.deadline:g} s and was stopped"
            elif self.max_bytes is not None and folder_size(self.path) > self.max_bytes:
                self.reason = too_large(self.max_bytes)
            else:
                continue
            self.process.kill()
            return

    def stop(self) -> None:
        self._stopped.set()
        self.join()


def too_large(max_bytes: int) -> str:
    return f"stopped: the repository is larger than {max_bytes:,} bytes"


def folder_size(path: Path) -> int:
    total = 0
    for top, _dirs, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):  # gone since the walk listed it
                total += os.lstat(os.path.join(top, name)).st_size
    return total
