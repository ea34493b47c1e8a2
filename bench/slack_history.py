"""Slack channel history: messages per second ingested under Slack's rate-limit tiers.

    python -m bench.slack_history [--threads 150] [--replies 4] [--chatter 250] [--window 60]

A fake Slack (tests.fakes.slack_history.HistorySlack) on 127.0.0.1 holds one channel of
``--threads`` threads of ``--replies`` replies each, written by 20 people, and ``--chatter``
messages nobody answered. The fake enforces Slack's tiers per method over a sliding
``--window`` (60 s: Slack's own): conversations.history, .replies and .info 50 calls
(Tier 3), users.info 100 (Tier 4); a call past its limit is answered HTTP 429 with the
Retry-After Slack would give (until the oldest call leaves the window). teambot's reader waits
it out (knowledge/ingest/slack_client.py). The refresh is the real one
(knowledge.ingest.refresh, ONNX int8 embedder, a fresh SQLite file).

Arms, each on its own database: "tier limits" (the fake as above) and "no limits" (the same
channel, no tier enforced: the cost of teambot's own work). Per arm: the first refresh
(every message listed or read, every thread embedded), then a refresh with nothing new, then
one after a reply was added to one thread. Reported: wall seconds, messages read (the
channel's messages: listed chatter and parents, and replies), messages per second, API calls,
429s answered, seconds waited on Retry-After, threads indexed, chunks embedded.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

from knowledge.embed.embedder import load_embedder
from knowledge.ingest.refresh import refresh
from knowledge.ingest.slack_channels import add_channel
from knowledge.ingest.slack_client import SlackAccess, open_reader
from knowledge.ingest.sources import SourceSpec
from knowledge.storage.db import make_engine, make_session_factory
from knowledge.storage.schema import upgrade
from tests.fakes.slack import BOT_TOKEN
from tests.fakes.slack_history import SLACK_TIERS, HistorySlack

CHANNEL = "C0BENCH"
PEOPLE = 20
TOPICS = ("deploys", "the VPN", "billing exports", "on-call paging", "the staging database",
          "laptop requests", "CI caches", "feature flags", "log retention", "SSO")  # fmt: skip


def fill(fake: HistorySlack, threads: int, replies: int, chatter: int) -> tuple[int, str]:
    """The channel's messages; (how many, the ts of the last thread)."""
    fake.add_channel(CHANNEL, "bench-help")
    for n in range(PEOPLE):
        fake.add_user(f"U{n:04d}", f"person.{n}")
    count, last = 0, ""
    for n in range(max(threads, chatter)):
        if n < threads:
            topic = TOPICS[n % len(TOPICS)]
            asker, named = f"U{n % PEOPLE:04d}", f"U{(n + 1) % PEOPLE:04d}"
            question = f"Question {n}: how does <@{named}> handle {topic} in region {n}?"
            last = fake.seed_message(CHANNEL, question, user=asker)
            for r in range(replies):
                fake.seed_message(CHANNEL, f"Answer {r} to {n}: for {topic}, run step {r} and "
                                  f"check <https://wiki.example.com/{n}/{r}|the wiki>.",
                                  user=f"U{(n + r + 1) % PEOPLE:04d}", thread_ts=last)  # fmt: skip
            count += 1 + replies
        if n < chatter:
            fake.seed_message(CHANNEL, f"good morning, nothing to see {n}", user="U0000")
            count += 1
    return count, last


def run_arm(name: str, args: argparse.Namespace, embedder: Any, folder: Path) -> list[dict]:
    with HistorySlack() as fake:
        messages, last = fill(fake, args.threads, args.replies, args.chatter)
        if name == "tier limits":
            fake.tier_limits(SLACK_TIERS, window=args.window)
        engine = make_engine(f"sqlite:///{folder / (name.replace(' ', '-') + '.db')}")
        upgrade(engine)
        sessions = make_session_factory(engine)
        access = SlackAccess(token=BOT_TOKEN, api_url=fake.api_url)
        reader = open_reader(access)
        with sessions.begin() as session:
            source = add_channel(session, reader, SourceSpec(name="bench", location=CHANNEL)).name
        reader.close()
        rows = []
        for step in ("first refresh", "nothing new", "one new reply"):
            if step == "one new reply":
                fake.seed_message(CHANNEL, "Also: check the dashboard first.", user="U0003",
                                  thread_ts=last)  # fmt: skip
            calls_before = len(fake.calls)
            limited_before = sum(1 for c in fake.calls if c.status == 429)
            started = time.perf_counter()
            report = refresh(sessions, embedder, source, slack=access)
            seconds = time.perf_counter() - started
            calls = fake.calls[calls_before:]
            read = messages if step == "first refresh" else _messages_read(calls)
            rows.append({
                "arm": name, "step": step, "seconds": seconds, "messages": read,
                "per_second": read / seconds, "calls": len(calls),
                "429s": sum(1 for c in fake.calls if c.status == 429) - limited_before,
                "waited": report.timings.get("rate_limit_wait", 0.0),
                "threads": report.pages_new + report.pages_changed,
                "embedded": report.chunks_embedded, "status": report.pages_failed,
            })  # fmt: skip
        engine.dispose()
        return rows


def _messages_read(calls: list[Any]) -> int:
    return sum(len((c.response or {}).get("messages") or []) for c in calls
               if c.method in ("conversations.history", "conversations.replies"))  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=150)
    parser.add_argument("--replies", type=int, default=4)
    parser.add_argument("--chatter", type=int, default=250)
    parser.add_argument("--window", type=float, default=60.0, help="tier window, seconds")
    parser.add_argument("--arms", default="no limits,tier limits")
    args = parser.parse_args()
    embedder = load_embedder("all-MiniLM-L6-v2", backend="onnx-int8", batch_size=32,
                             cache_dir=Path.home() / ".cache" / "teambot")  # fmt: skip
    embedder.embed_texts(["warm up"])
    rows: list[dict] = []
    with tempfile.TemporaryDirectory() as folder:
        for arm in args.arms.split(","):
            rows += run_arm(arm.strip(), args, embedder, Path(folder))
    print(f"channel: {args.threads} threads × {args.replies} replies, {args.chatter} chatter; "
          f"tier window {args.window:.0f} s")  # fmt: skip
    print("| arm | refresh | wall s | messages read | msg/s | API calls | 429s | waited s "
          "| threads indexed | chunks embedded | failed |")  # fmt: skip
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['arm']} | {r['step']} | {r['seconds']:.1f} | {r['messages']} | "
              f"{r['per_second']:.1f} | {r['calls']} | {r['429s']} | {r['waited']:.0f} | "
              f"{r['threads']} | {r['embedded']} | {r['status']} |")  # fmt: skip


if __name__ == "__main__":
    main()
