"""teambot scaled out on this machine, under load and faults: two replicas, two workers, one
PostgreSQL.

    python -m bench.cluster [--events 2000] [--rate 100] [--scenarios baseline,replica-kill,...]

Each scenario starts, on a fresh PostgreSQL database: two `teambot serve` replicas
(Slack HTTP events) behind a round-robin load balancer with passive health checks
(the sender: tests/fakes/slack_events.py), two `teambot worker`s, the fake Slack,
a fake model whose first token takes ``--model-seconds``, and a doc site of
``--pages`` pages the workers refresh while the load runs. Then it delivers
``--events`` signed mentions at ``--rate`` per second as Slack does (3 s ack limit,
retries), ``--duplicates`` of them delivered twice, and injects its fault
``--fault-at`` seconds in:

- baseline: none;
- replica-kill: kill -9 one replica, restart it 10 s later;
- worker-kill: kill -9 the worker holding the refresh's lease;
- llm-outage: the model answers 500 for 10 s;
- pg-restart: `pg_ctlcluster` restarts PostgreSQL (needs root; affects every user of it).

It reports, per scenario: unique events, answers, duplicates (extra bot messages
in a thread), events with no answer, error replies, ack and answer p50/p99, Slack
retries, fallbacks to extractive answers, whether the refresh completed, and the
peak memory (VmHWM) of each process.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from sqlalchemy import create_engine, func, select, text

from knowledge.storage.conversations import Turn
from knowledge.storage.documents import IngestionRun, Source
from tests.fakes.docsite import DocSite
from tests.fakes.openai_server import FakeOpenAI, Reply, Status
from tests.fakes.slack import (
    BOT_TOKEN,
    BOT_USER_ID,
    SIGNING_SECRET,
    FakeSlack,
    app_mention_event,
)
from tests.fakes.slack_events import Delivery, EventSender
from tests.processes import TEAMBOT, TeambotProcess, free_port

GUIDE = Path(__file__).resolve().parents[1] / "docs"
ANSWER = "Set DATABASE_URL to a PostgreSQL URL, then run teambot db upgrade [1]."
POSTGRES = os.environ.get("TEAMBOT_BENCH_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432")
SCENARIOS = ("baseline", "replica-kill", "worker-kill", "llm-outage", "pg-restart")
RETRY_DELAYS = (1.0, 5.0, 15.0)  # Slack's are ~0 s, 1 min, 5 min; compressed
OUTAGE_SECONDS = 10.0
REPLICA_DOWN_SECONDS = 10.0


@dataclass
class Cluster:
    """The processes of one scenario and what they need to be restarted."""

    folder: Path
    db_url: str
    slack: FakeSlack
    model: FakeOpenAI
    model_seconds: float  # the fake model's time to first token when it works
    replicas: dict[str, TeambotProcess] = field(default_factory=dict)
    ports: dict[str, int] = field(default_factory=dict)
    workers: dict[str, TeambotProcess] = field(default_factory=dict)
    all_replicas: list[TeambotProcess] = field(default_factory=list)  # restarted ones too
    peak_kb: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    settings: dict[str, str] = field(default_factory=dict)  # --env: for every process
    load_started: float = 0.0  # time.monotonic() of the first delivery

    def since_load(self) -> float:
        return time.monotonic() - self.load_started

    def env(self, **extra: str) -> dict[str, str]:
        return {
            "DATABASE_URL": self.db_url,
            "SLACK_BOT_TOKEN": BOT_TOKEN,
            "SLACK_SIGNING_SECRET": SIGNING_SECRET,
            "SLACK_API_URL": self.slack.api_url,
            "SLACK_APP_TOKEN": "",
            "LOCAL_LLM_BASE_URL": self.model.base_url,
            "LOCAL_LLM_MODEL": "fake",
            "LLM_ROUTE": "local-only",
            "LLM_MAX_RETRIES": "0",
            "RATE_LIMIT_USER_PER_MINUTE": "0",
            "RATE_LIMIT_CHANNEL_PER_MINUTE": "0",
            "REFRESH_LEASE_SECONDS": "15",
            "CRAWL_PER_HOST": "2",
            "LOG_LEVEL": "INFO",
            **self.settings,
            **extra,
        }

    def start_replica(self, name: str) -> None:
        port = self.ports.setdefault(name, free_port())
        env = self.env(TEAMBOT_PORT=str(port), TEAMBOT_DATA_DIR=str(self.folder / name))
        self.replicas[name] = TeambotProcess("serve", cwd=self.folder, env=env)
        self.all_replicas.append(self.replicas[name])

    def wait_ready(self, name: str, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                url = f"http://127.0.0.1:{self.ports[name]}/healthz"
                if httpx.get(url, timeout=5).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"replica {name} did not start:\n{self.replicas[name].log()[-3000:]}")

    def start_worker(self, name: str) -> None:
        self.workers[name] = TeambotProcess("worker", cwd=self.folder, env=self.env())

    def sample_memory(self, stop: threading.Event) -> None:
        """Keep each process's peak resident memory (VmHWM), sampled every half second."""
        while not stop.wait(0.5):
            for role, processes in (("serve", self.replicas), ("worker", self.workers)):
                for name, process in list(processes.items()):
                    key = f"{role} {name} (pid {process.pid})"
                    try:
                        status = Path(f"/proc/{process.pid}/status").read_text()
                    except OSError:
                        continue
                    for line in status.splitlines():
                        if line.startswith("VmHWM:"):
                            self.peak_kb[key] = max(self.peak_kb.get(key, 0), int(line.split()[1]))

    def stop(self) -> None:
        for process in [*self.replicas.values(), *self.workers.values()]:
            if process.process.poll() is None:
                process.stop(timeout=30)


def create_database(name: str) -> str:
    admin = create_engine(f"{POSTGRES}/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return f"{POSTGRES}/{name}"


def drop_database(name: str) -> None:
    admin = create_engine(f"{POSTGRES}/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def run_cli(cluster: Cluster, *args: str) -> None:
    subprocess.run([TEAMBOT, *args], cwd=cluster.folder, env={**os.environ, **cluster.env()},
                   check=True, capture_output=True, text=True)  # fmt: skip


def doc_site(pages: int) -> DocSite:
    site = DocSite()
    links = "".join(f'<li><a href="/docs/p{i}.html">Page {i}</a></li>' for i in range(pages))
    site.set_page("/docs/index.html", f"<html><body><h1>Index</h1><ul>{links}</ul></body></html>")
    for i in range(pages):
        paragraphs = "".join(
            f"<h2>Part {j}</h2><p>Topic {i}.{j}: how queue {i} retries failed jobs, backs off "
            f"and reports errors; setting {j} controls the delay between attempts.</p>"
            for j in range(4)
        )
        site.set_page(
            f"/docs/p{i}.html", f"<html><body><h1>Page {i}</h1>{paragraphs}</body></html>"
        )
        site.set_delay(f"/docs/p{i}.html", 0.05)
    return site


def fault_plan(
    scenario: str, cluster: Cluster, at: float
) -> list[tuple[float, Callable[[], None]]]:
    """(seconds after the load starts, action) pairs for ``scenario``."""
    if scenario == "replica-kill":

        def restart() -> None:
            cluster.start_replica("a")
            cluster.wait_ready("a")
            cluster.notes.append(f"replica a back at {cluster.since_load():.1f} s")

        return [(at, lambda: cluster.replicas["a"].kill()), (at + REPLICA_DOWN_SECONDS, restart)]
    if scenario == "worker-kill":

        def kill_holder() -> None:
            engine = create_engine(cluster.db_url)
            with engine.connect() as connection:
                holder = connection.scalar(select(Source.lease_owner).where(Source.name == "site"))
            engine.dispose()
            for name, worker in cluster.workers.items():
                if holder and holder.split(":")[1] == str(worker.pid):
                    worker.kill()
                    cluster.notes.append(f"killed worker {name} holding the refresh lease")
                    return
            cluster.notes.append(f"no worker held the refresh lease at the kill ({holder})")

        return [(at, kill_holder)]
    if scenario == "llm-outage":

        def fail() -> None:
            cluster.model.always(Status(500, "model server down"))

        def recover() -> None:
            cluster.model.always(Reply(ANSWER, first_token_delay=cluster.model_seconds))

        return [(at, fail), (at + OUTAGE_SECONDS, recover)]
    if scenario == "pg-restart":

        def restart_postgres() -> None:
            begun = time.monotonic()
            subprocess.run(["pg_ctlcluster", "15", "main", "restart", "-m", "fast"], check=True)
            cluster.notes.append(f"PostgreSQL restart took {time.monotonic() - begun:.1f} s")

        return [(at, restart_postgres)]
    return []


def run_scenario(scenario: str, args: argparse.Namespace) -> dict[str, Any]:
    folder = Path(tempfile.mkdtemp(prefix=f"cluster-{scenario}-"))
    db_name = f"teambot_bench_{scenario.replace('-', '_')}_{os.getpid()}"
    db_url = create_database(db_name)
    with FakeSlack() as slack, FakeOpenAI(models=("fake",)) as model, doc_site(args.pages) as site:
        model.always(Reply(ANSWER, first_token_delay=args.model_seconds))
        cluster = Cluster(folder, db_url, slack, model, args.model_seconds, settings=dict(args.env))
        run_cli(cluster, "db", "upgrade")
        run_cli(cluster, "ingest", str(GUIDE), "--name", "teambot-guide")
        run_cli(cluster, "sources", "add", site.url("/docs/index.html"), "--name", "site",
                "--allow-private", "--every", "1h")  # fmt: skip
        for name in ("a", "b"):
            cluster.start_replica(name)
        for name in ("a", "b"):
            cluster.wait_ready(name)
        stop_sampling = threading.Event()
        threading.Thread(target=cluster.sample_memory, args=(stop_sampling,), daemon=True).start()
        for name in ("w1", "w2"):
            cluster.start_worker(name)  # each refreshes the site at once: the load runs beside
        for worker in cluster.workers.values():
            worker.wait_for(r"worker \S+ started", timeout=60)
        mentions = [mention(i) for i in range(args.events)]
        targets = [f"http://127.0.0.1:{cluster.ports[n]}/slack/events" for n in ("a", "b")]
        sender = EventSender(targets, SIGNING_SECRET, retry_delays=RETRY_DELAYS,
                             duplicate_share=args.duplicates)  # fmt: skip
        timers = [threading.Timer(at, action) for at, action in
                  fault_plan(scenario, cluster, args.fault_at)]  # fmt: skip

        def begin(i: int) -> None:
            if i == 0:
                cluster.load_started = time.monotonic()
                for timer in timers:
                    timer.start()

        try:
            deliveries = sender.deliver(mentions, args.rate, before_each=begin)
            sent_for = cluster.since_load()
            answered_by = wait_for_answers(cluster, mentions, args.drain_timeout)
            refresh = wait_for_refresh(db_url, args.drain_timeout)
            time.sleep(3)  # a late duplicate would show by now
            result = measure(scenario, slack, mentions, deliveries, db_url)
            result.update(sent_for=sent_for, drained_after=answered_by, refresh=refresh)
        finally:
            for timer in timers:
                timer.cancel()
            stop_sampling.set()
            cluster.stop()
        result["peak_mb"] = {k: v / 1024 for k, v in sorted(cluster.peak_kb.items())}
        taken = sum(r.count(r"taking over slack event") for r in cluster.all_replicas)
        adopted = sum(w.count(r"refreshing site \(taking over") for w in cluster.workers.values())
        cluster.notes.append(f"{taken} events answered by a replica that took them over")
        cluster.notes.append(f"{adopted} refreshes taken over by another worker")
        result["notes"] = cluster.notes
    drop_database(db_name)
    return result


def mention(i: int) -> dict[str, Any]:
    """The i-th mention: 50 channels, 300 people."""
    text = f"<@{BOT_USER_ID}> How do I use PostgreSQL? ({i})"
    return app_mention_event(text, f"C{i % 50}", f"U{i % 300}", f"{1_700_000_000 + i}.000100")


def bot_replies(slack: FakeSlack, envelope: dict[str, Any]) -> list[dict[str, Any]]:
    event = envelope["event"]
    return [m for m in slack.thread(event["channel"], event["ts"]) if m.get("bot_id")]


def is_answer(message: dict[str, Any]) -> bool:
    return any(b.get("type") == "actions" for b in message.get("blocks") or [])


def wait_for_answers(cluster: Cluster, mentions: list[dict[str, Any]], timeout: float) -> float:
    """Seconds after the load began until every event had a final answer (or the timeout)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(any(is_answer(m) for m in bot_replies(cluster.slack, e)) for e in mentions):
            break
        time.sleep(1)
    return cluster.since_load()


def wait_for_refresh(db_url: str, timeout: float) -> str:
    """The site's latest run once it has finished (or 'running' at the timeout)."""
    engine = create_engine(db_url, pool_pre_ping=True)
    deadline = time.monotonic() + timeout
    status = "never ran"
    while time.monotonic() < deadline:
        try:
            with engine.connect() as connection:
                runs = connection.execute(
                    select(IngestionRun.status, IngestionRun.counts)
                    .join(Source, Source.id == IngestionRun.source_id)
                    .where(Source.name == "site")
                    .order_by(IngestionRun.id)
                ).all()
        except Exception:  # PostgreSQL restarting
            time.sleep(1)
            continue
        if runs and runs[-1].status != "running":
            history = ", ".join(r.status for r in runs)
            pages = runs[-1].counts.get("pages_seen", 0)
            status = f"{runs[-1].status} ({pages} pages; runs: {history})"
            break
        status = "running"
        time.sleep(1)
    engine.dispose()
    return status


def measure(
    scenario: str,
    slack: FakeSlack,
    mentions: list[dict[str, Any]],
    deliveries: list[Delivery],
    db_url: str,
) -> dict[str, Any]:
    finished_at: dict[str, float] = {}
    for call in slack.calls_to("chat.update"):
        if call.params.get("blocks"):
            finished_at[f"{call.params.get('channel')}/{call.params.get('ts')}"] = call.at
    answers = duplicates = unanswered = errors = 0
    answer_ms = []
    for envelope, delivery in zip(mentions, deliveries, strict=True):
        replies = bot_replies(slack, envelope)
        duplicates += max(0, len(replies) - 1)
        final = [m for m in replies if is_answer(m)]
        if final:
            answers += 1
            key = f"{envelope['event']['channel']}/{final[0]['ts']}"
            if key in finished_at:
                answer_ms.append((finished_at[key] - delivery.first_sent) * 1000)
        elif replies:
            errors += 1
        else:
            unanswered += 1
    acks = [d.first_ack_ms for d in deliveries if d.first_ack_ms is not None]
    engine = create_engine(db_url)
    with engine.connect() as connection:
        providers = dict(
            connection.execute(
                select(Turn.provider, func.count()).where(Turn.role == "assistant")
                .group_by(Turn.provider)
            ).all()
        )  # fmt: skip
    engine.dispose()
    return {
        "scenario": scenario,
        "events": len(mentions),
        "deliveries": sum(len(d.attempts) for d in deliveries),
        "slack_retries": sum(
            1 for d in deliveries for a in d.attempts if a.retry_num and not a.duplicate
        ),
        "duplicate_deliveries": sum(1 for d in deliveries for a in d.attempts if a.duplicate),
        "never_acked": sum(1 for d in deliveries if not d.acked),
        "answers": answers,
        "duplicates": duplicates,
        "unanswered": unanswered,
        "error_replies": errors,
        "ack_ms": np.percentile(acks, [50, 99]).tolist() if acks else [0, 0],
        "answer_s": (np.percentile(answer_ms, [50, 99]) / 1000).tolist() if answer_ms else [0, 0],
        "extractive": providers.get("extractive", 0),
    }


def report(results: list[dict[str, Any]], args: argparse.Namespace) -> None:
    print(
        "| scenario | events | answers | duplicates | unanswered | error replies | ack p50 / p99"
        " ms | answer p50 / p99 s | retries (duplicates) | extractive | refresh |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        print(
            f"| {r['scenario']} | {r['events']} | {r['answers']} | {r['duplicates']} | "
            f"{r['unanswered']} | {r['error_replies']} | {r['ack_ms'][0]:.0f} / "
            f"{r['ack_ms'][1]:.0f} | {r['answer_s'][0]:.1f} / {r['answer_s'][1]:.1f} | "
            f"{r['slack_retries']} ({r['duplicate_deliveries']}) | {r['extractive']} | "
            f"{r['refresh']} |"
        )
    print("\n| scenario | process | peak memory (VmHWM) |\n|---|---|---|")
    for r in results:
        for process, mb in r["peak_mb"].items():
            print(f"| {r['scenario']} | {process} | {mb:.0f} MB |")
    print()
    for r in results:
        notes = "; ".join(r["notes"]) or "-"
        print(f"- {r['scenario']}: load sent in {r['sent_for']:.1f} s, all answered after "
              f"{r['drained_after']:.1f} s; {notes}")  # fmt: skip
    print(f"\n{args.events} mentions at {args.rate:.0f}/s, {args.duplicates:.0%} delivered twice, "
          f"model first token after {args.model_seconds} s, fault at {args.fault_at} s, "
          f"{args.pages}-page site refreshing; {os.cpu_count()} CPUs; "
          f"settings: {dict(args.env) or 'defaults'}; "
          f"{time.strftime('%Y-%m-%d %H:%M')}")  # fmt: skip


def _setting(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"{text!r}: write it as KEY=VALUE")
    return key, value


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=2000, help="Unique mentions to send.")
    parser.add_argument("--rate", type=float, default=100.0, help="Mentions per second.")
    parser.add_argument("--duplicates", type=float, default=1 / 3,
                        help="Share of events Slack delivers twice.")  # fmt: skip
    parser.add_argument("--model-seconds", type=float, default=1.0,
                        help="The fake model's time to first token.")  # fmt: skip
    parser.add_argument("--pages", type=int, default=300, help="Pages of the refreshing site.")
    parser.add_argument("--fault-at", type=float, default=5.0,
                        help="Seconds into the load when the fault strikes.")  # fmt: skip
    parser.add_argument("--drain-timeout", type=float, default=600.0,
                        help="Give up waiting for answers after this many seconds.")  # fmt: skip
    parser.add_argument("--env", action="append", default=[], type=_setting, metavar="KEY=VALUE",
                        help="A teambot setting for every process (repeatable).")  # fmt: skip
    parser.add_argument("--scenarios", default=",".join(SCENARIOS),
                        help=f"Comma-separated, from: {', '.join(SCENARIOS)}.")  # fmt: skip
    args = parser.parse_args()
    chosen = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    unknown = sorted(set(chosen) - set(SCENARIOS))
    if unknown:
        parser.error(f"unknown scenarios {unknown}; choose from {', '.join(SCENARIOS)}")
    results = []
    for scenario in chosen:
        print(f"running {scenario}…", file=sys.stderr, flush=True)
        results.append(run_scenario(scenario, args))
    report(results, args)


if __name__ == "__main__":
    main()
