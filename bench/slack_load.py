"""Slack under load: ack latency and answers per second for a burst of signed mentions.

    python -m bench.slack_load [--mentions 500] [--rate 50] [--model-seconds 1.0]

Starts the real `teambot serve` (HTTP events) in a child process, pointed at a
fake Slack and a fake model that takes ``--model-seconds`` before its first
token, on a fresh SQLite database holding teambot's bundled guide. Then sends
``--mentions`` signed app_mention events at ``--rate`` per second and reports:
the HTTP ack latency (Slack wants it under 3 s), and how fast finished answers
arrive. If answers were handled one after another, 500 would take 500 × the
model's latency; the baseline row shows that bound.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

from bench.router import guide_runtime
from tests.fakes.openai_server import FakeOpenAI, Reply
from tests.fakes.slack import (
    BOT_TOKEN,
    BOT_USER_ID,
    SIGNING_SECRET,
    FakeSlack,
    app_mention_event,
    sign,
)
from tests.processes import TEAMBOT, free_port

ANSWER = "Set DATABASE_URL to a PostgreSQL URL, then run teambot db upgrade [1]."


async def fire(url: str, mentions: int, rate: float) -> list[float]:
    """Send the mentions at ``rate`` per second; the ack latency of each, in ms."""
    latencies: list[float] = []
    # A new connection per event, as Slack's deliveries arrive (and no keep-alive race with the
    # server closing idle connections mid-burst).
    limits = httpx.Limits(max_connections=500, max_keepalive_connections=0)
    async with httpx.AsyncClient(timeout=30, limits=limits) as client:

        async def one(i: int) -> None:
            ts = f"{1_700_000_000 + i}.000100"
            envelope = app_mention_event(f"<@{BOT_USER_ID}> How do I use PostgreSQL?",
                                         f"C{i % 20}", f"U{i}", ts)  # fmt: skip
            body = json.dumps(envelope).encode()
            headers = {"content-type": "application/json", **sign(SIGNING_SECRET, body)}
            started = time.perf_counter()
            response = await client.post(url, content=body, headers=headers)
            latencies.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200, response.text

        tasks = []
        start = time.perf_counter()
        for i in range(mentions):
            await asyncio.sleep(max(0.0, start + i / rate - time.perf_counter()))
            tasks.append(asyncio.create_task(one(i)))
        await asyncio.gather(*tasks)
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--mentions", type=int, default=500)
    parser.add_argument("--rate", type=float, default=50.0, help="Mentions per second.")
    parser.add_argument("--model-seconds", type=float, default=1.0)
    parser.add_argument("--workers", type=int, default=None, help="ANSWER_WORKERS (default: ours)")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp())
    guide_runtime(folder).close()  # the guide, ingested once
    port = free_port()
    with FakeSlack() as slack, FakeOpenAI(models=("fake",)) as model:
        model.always(Reply(ANSWER, first_token_delay=args.model_seconds))
        env = {
            **os.environ,
            "DATABASE_URL": f"sqlite:///{folder / 'teambot.db'}",
            "TEAMBOT_DATA_DIR": str(folder / "data"),
            "SLACK_BOT_TOKEN": BOT_TOKEN,
            "SLACK_SIGNING_SECRET": SIGNING_SECRET,
            "SLACK_API_URL": slack.api_url,
            "SLACK_APP_TOKEN": "",
            "TEAMBOT_PORT": str(port),
            "LOCAL_LLM_BASE_URL": model.base_url,
            "LOCAL_LLM_MODEL": "fake",
            "LLM_ROUTE": "local-only",
            "RATE_LIMIT_USER_PER_MINUTE": "0",
            "RATE_LIMIT_CHANNEL_PER_MINUTE": "0",
            "LOG_LEVEL": "WARNING",
        }
        if args.workers:
            env["ANSWER_WORKERS"] = str(args.workers)
        server = subprocess.Popen([TEAMBOT, "serve"], env=env, cwd=folder)
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline and server.poll() is None, "serve did not start"
                time.sleep(0.2)
            started = time.monotonic()
            acks = asyncio.run(fire(f"http://127.0.0.1:{port}/slack/events", args.mentions,
                                    args.rate))  # fmt: skip
            sent = time.monotonic() - started

            def finished() -> list:
                return [c for c in slack.calls_to("chat.update") if c.params.get("blocks")]

            slack.wait_for(lambda: len(finished()) >= args.mentions, timeout=600)
            done = max(c.at for c in finished()) - started
        finally:
            server.terminate()
            server.wait(timeout=30)
    p50, p99 = np.percentile(acks, [50, 99])
    print("| measure | value |\n|---|---|")
    print(f"| mentions sent | {args.mentions} in {sent:.1f} s ({args.mentions / sent:.0f}/s) |")
    print(f"| ack latency p50 / p99 / max | {p50:.0f} / {p99:.0f} / {max(acks):.0f} ms |")
    print(f"| all answers finished after | {done:.1f} s |")
    print(f"| answers per second | {args.mentions / done:.1f} |")
    print(f"| baseline: answered one at a time | {args.mentions * args.model_seconds:.0f} s "
          f"({1 / args.model_seconds:.1f}/s) |")  # fmt: skip
    print(f"\nmodel first token after {args.model_seconds} s; SQLite; {os.cpu_count()} CPUs; "
          f"{time.strftime('%Y-%m-%d %H:%M')}")  # fmt: skip


if __name__ == "__main__":
    main()
