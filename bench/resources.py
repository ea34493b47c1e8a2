"""Time and peak memory of teambot's main commands, each in a fresh process.

    python -m bench.resources              # demo (cold and warm), ask, config
    python -m bench.resources --tests      # ... and the whole test suite

Each row runs in a temporary folder with its own SQLite database. Peak RSS is
that of the largest single process the command started (ru_maxrss of its
children), which for the test suite is pytest or one of its CLI subprocesses.
`teambot config` is the baseline: Python plus teambot's imports, no model.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

from bench.measure import measure

ROOT = Path(__file__).resolve().parent.parent
TEAMBOT = str(Path(sys.executable).parent / "teambot")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--tests", action="store_true", help="also time the whole test suite")
    args = parser.parse_args()

    rows: list[tuple[str, dict[str, float]]] = []
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp}/teambot.db"}
        cases = [
            ("teambot config (baseline: imports, no model)", [TEAMBOT, "config"]),
            ("teambot demo, empty database (ingest + answer)", [TEAMBOT, "demo"]),
            ("teambot demo again (nothing changed)", [TEAMBOT, "demo"]),
            ("teambot ask (one question)", [TEAMBOT, "ask", "How do I use PostgreSQL?"]),
        ]
        if args.tests:
            pytest = [sys.executable, "-m", "pytest", "-q", str(ROOT / "tests")]
            cases.append(("pytest (whole suite)", pytest))
        for label, command in cases:
            print(f"running: {label}", file=sys.stderr)
            rows.append((label, measure(command, Path(tmp), env)))

    print("| command | wall s | peak RSS MB | exit |")
    print("|---|---|---|---|")
    for label, r in rows:
        print(f"| {label} | {r['seconds']:.1f} | {r['peak_mb']:.0f} | {r['exit']} |")
    when = time.strftime("%Y-%m-%d %H:%M")
    print(f"\n{os.cpu_count()} CPUs, Python {sys.version.split()[0]}, {when}")


if __name__ == "__main__":
    main()
