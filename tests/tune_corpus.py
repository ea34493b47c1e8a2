"""A generated doc folder for the tuning tests: many small pages, each with titled sections whose
words are the page's own, so pairs, negatives and the held-out split have something to hold."""

from __future__ import annotations

from pathlib import Path

TOPICS = [
    ("queues", "Queues hold jobs until a worker takes them", "priority", "backlog"),
    ("workers", "Workers run jobs pulled from their queues", "concurrency", "heartbeat"),
    ("retries", "Failed jobs are retried with exponential backoff", "attempts", "jitter"),
    ("scheduling", "Periodic jobs follow cron expressions", "timezone", "calendar"),
    ("storage", "Job payloads are stored as compressed JSON", "compression", "payload"),
    ("metrics", "Prometheus counters describe throughput", "latency", "histogram"),
    ("security", "Tokens sign every request between nodes", "rotation", "signature"),
    ("clustering", "Nodes elect a leader through a lease table", "election", "quorum"),
    ("logging", "Structured logs carry the job identifier", "verbosity", "redaction"),
    ("backups", "Snapshots copy the database while jobs run", "restore", "retention"),
    ("upgrades", "Rolling upgrades replace one node at a time", "migration", "downtime"),
    ("plugins", "Plugins hook into the job lifecycle", "middleware", "callback"),
]


def write_tune_corpus(root: Path, pages: int = len(TOPICS)) -> Path:
    """``pages`` Markdown pages of three sections each; returns ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    for name, summary, first, second in TOPICS[:pages]:
        (root / f"{name}.md").write_text(
            f"# {name.capitalize()} in Zephyr\n\n{summary}. This page explains {name}.\n\n"
            f"## Configuring {first} for {name}\n\n"
            f"Set the {first} option in zephyr.toml to control {name}; the {first} value is "
            f"read at start and applies to every node that handles {name}.\n\n"
            f"## Monitoring {second} of {name}\n\n"
            f"The {second} of {name} is shown by `zephyr status {name}`; a growing {second} "
            f"means {name} need attention before jobs are delayed.\n"
        )
    return root
