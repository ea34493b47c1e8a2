"""Run a command in a child process and report its wall time and peak memory."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

_PROBE = """\
import json, resource, subprocess, sys, time
out = open(sys.argv[1], "w") if sys.argv[1] else subprocess.DEVNULL
start = time.perf_counter()
code = subprocess.run(sys.argv[2:], stdout=out).returncode
peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print(json.dumps({"seconds": time.perf_counter() - start, "peak_mb": peak / 1024, "exit": code}))
"""


def measure(
    command: list[str], cwd: Path, env: dict[str, str], stdout: Path | None = None
) -> dict[str, float]:
    """Wall seconds, peak RSS (MB) of the largest process ``command`` started, exit code.

    The command runs under a small probe process so that ru_maxrss covers only
    it; its stdout goes to ``stdout`` when given.
    """
    out = subprocess.run(
        [sys.executable, "-c", _PROBE, str(stdout or ""), *command],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])
