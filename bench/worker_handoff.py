"""How fast a running `teambot worker` notices a new source and an admin's refresh request.

    python -m bench.worker_handoff [--rounds 5]

Starts a real worker on a fresh SQLite database holding the test corpus, then,
``--rounds`` times: adds a source (as `admin sources add` does) and times until
the worker starts refreshing it; queues a refresh (as `admin sources refresh`
does with a worker running) and times until the worker starts it. The baseline
is the poll interval the worker promises (coordination.HEARTBEAT_SECONDS) and,
for new sources, the one-minute rescan the worker used before.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from bot.runtime import Runtime
from bot.settings import Settings
from knowledge.storage import coordination
from knowledge.storage.documents import Source
from tests.corpus import write_corpus
from tests.processes import TEAMBOT, TeambotProcess


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="handoff-"))
    corpus = write_corpus(folder / "docs")
    url = f"sqlite:///{folder / 'teambot.db'}"
    env = {"DATABASE_URL": url}
    ingest = [TEAMBOT, "ingest", str(corpus), "--name", "docs"]
    subprocess.run(ingest, cwd=folder, env={**os.environ, **env}, check=True, capture_output=True)
    worker = TeambotProcess("worker", cwd=folder, env=env)
    runtime = Runtime(Settings(_env_file=None, database_url=url))  # type: ignore[call-arg]
    added, asked = [], []
    try:
        worker.wait_for("refreshed docs", timeout=120)
        for round_ in range(args.rounds):
            mark = len(worker.lines)
            with runtime.sessions.begin() as session:
                session.add(Source(name=f"new{round_}", kind="folder", location=str(corpus),
                                   options={}, schedule="every 3600"))  # fmt: skip
            started = time.monotonic()
            worker.wait_for(f"refreshing new{round_} ", after=mark)
            added.append(time.monotonic() - started)
            worker.wait_for(f"refreshed new{round_}", after=mark, timeout=120)
            mark = len(worker.lines)
            with runtime.sessions.begin() as session:
                coordination.request_refresh(session, "docs", by="bench")
            started = time.monotonic()
            worker.wait_for(r"refreshing docs \(asked", after=mark)
            asked.append(time.monotonic() - started)
            worker.wait_for("refreshed docs", after=mark, timeout=120)
    finally:
        worker.stop()
        runtime.close()
    print("| event | until the worker starts: median / max s | promised |\n|---|---|---|")
    for label, times, bound in (
        ("a source is added", added, "2 s poll (before: 60 s rescan)"),
        ("an admin asks for a refresh", asked, "2 s poll"),
    ):
        print(f"| {label} | {statistics.median(times):.2f} / {max(times):.2f} | {bound} |")
    print(f"\n{args.rounds} rounds, SQLite, {time.strftime('%Y-%m-%d %H:%M')}")


if __name__ == "__main__":
    main()
