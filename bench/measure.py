"""Run a command in a child process and report its wall time and peak memory.

The command runs under ``/usr/bin/time -v``, whose "Maximum resident set size" is the
peak RSS of the largest process the command started. Hostile probes may grow without
bound, so a watchdog can stop the command once its processes together hold more than
``max_mb`` or it has run ``max_seconds``; the result then says which cap stopped it.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import tempfile
import time
from pathlib import Path

TIME = "/usr/bin/time"
POLL_SECONDS = 0.1


def measure(
    command: list[str],
    cwd: Path,
    env: dict[str, str],
    stdout: Path | None = None,
    *,
    max_mb: float | None = None,
    max_seconds: float | None = None,
) -> dict[str, float | str]:
    """Wall seconds, peak RSS (MB), exit code, and ``stopped`` ("" or the cap that fired).

    The command's stdout goes to ``stdout`` when given, else nowhere.
    """
    with tempfile.NamedTemporaryFile("r", suffix=".time") as report:
        out = open(stdout, "w") if stdout else subprocess.DEVNULL  # noqa: SIM115
        started = time.perf_counter()
        process = subprocess.Popen(
            [TIME, "-v", "-o", report.name, *command],
            cwd=cwd,
            env=env,
            stdout=out,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # one process group to stop, the command's children too
        )
        stopped = _watch(process, max_mb, max_seconds)
        seconds = time.perf_counter() - started
        if out is not subprocess.DEVNULL:
            out.close()
        text = Path(report.name).read_text()
    peak = re.search(r"Maximum resident set size \(kbytes\): (\d+)", text)
    code = re.search(r"Exit status: (\d+)", text)
    signalled = re.search(r"Command terminated by signal (\d+)", text)
    return {
        "seconds": seconds,
        "peak_mb": int(peak[1]) / 1024 if peak else float("nan"),
        "exit": -int(signalled[1]) if signalled else int(code[1]) if code else -1,
        "stopped": stopped,
    }


def _watch(
    process: subprocess.Popen[bytes], max_mb: float | None, max_seconds: float | None
) -> str:
    """Wait for ``process``; kill its group when a cap is passed and say which one."""
    deadline = time.monotonic() + max_seconds if max_seconds else None
    while True:
        try:  # returns the moment the command ends, so short commands are timed exactly
            process.wait(timeout=POLL_SECONDS)
            return ""
        except subprocess.TimeoutExpired:
            pass
        if deadline is not None and time.monotonic() > deadline:
            stopped = f"stopped at {max_seconds:g} s"
        elif max_mb is not None and _group_rss_mb(process.pid) > max_mb:
            stopped = f"stopped at {max_mb:g} MB RSS"
        else:
            continue
        _kill_command(process)
        return stopped


def _kill_command(process: subprocess.Popen[bytes]) -> None:
    """Kill the command but let /usr/bin/time live to write its report."""
    for pid in _group_pids(process.pid):
        if pid != process.pid:
            os.kill(pid, signal.SIGKILL)
    process.wait()


def _group_pids(pgid: int) -> list[int]:
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.getpgid(int(entry)) == pgid:
                    pids.append(int(entry))
            except ProcessLookupError:
                continue
    return pids


def _group_rss_mb(pgid: int) -> float:
    total_kb = 0
    for pid in _group_pids(pgid):
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        found = re.search(r"VmRSS:\s+(\d+) kB", status)
        total_kb += int(found[1]) if found else 0
    return total_kb / 1024
