"""Prometheus metrics for `GET /metrics`: what this process answered, and what the database holds.

Questions, answer latency and model errors are counted in the process that
answers (each replica exports its own; Prometheus sums them). Knowledge-base
sizes and ingestion runs are read from the database at scrape time, so every
replica reports the same, true numbers whichever process ingested.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from knowledge.storage import store
from knowledge.storage.documents import Document, IngestionRun, Source

# Seconds: extractive answers take tens of ms, model answers seconds.
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60)
CONFIDENCE_BUCKETS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class Metrics:
    """The process's metrics; ``render()`` is the body of `GET /metrics`."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.registry = CollectorRegistry()
        self.questions = Counter(
            "teambot_questions", "Questions answered, by platform and the kind of model that "
            "answered (cloud, local, extractive).", ["platform", "provider"],
            registry=self.registry,
        )  # fmt: skip
        self.answer_seconds = Histogram(
            "teambot_answer_seconds", "Time from question to finished answer.", ["provider"],
            buckets=LATENCY_BUCKETS, registry=self.registry,
        )  # fmt: skip
        self.llm_errors = Counter(
            "teambot_llm_errors", "Failed model requests, by provider and kind of failure.",
            ["provider", "kind"], registry=self.registry,
        )  # fmt: skip
        self.abstained = Counter(
            "teambot_answers_abstained", "Answers that said the docs do not cover the question.",
            ["platform"], registry=self.registry,
        )  # fmt: skip
        self.confidence = Histogram(
            "teambot_answer_confidence", "How likely each answer is supported by the docs.",
            ["platform"], buckets=CONFIDENCE_BUCKETS, registry=self.registry,
        )  # fmt: skip
        self.registry.register(_KnowledgeBase(sessions))

    def answered(self, platform: str, provider: str, seconds: float) -> None:
        self.questions.labels(platform, provider).inc()
        self.answer_seconds.labels(provider).observe(seconds)

    def judged(self, platform: str, confidence: float, abstained: bool) -> None:
        """An answer's confidence, and whether it abstained."""
        self.confidence.labels(platform).observe(confidence)
        if abstained:
            self.abstained.labels(platform).inc()

    def llm_error(self, provider: str, kind: str) -> None:
        self.llm_errors.labels(provider, kind).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _KnowledgeBase(Collector):
    """Sizes and ingestion runs, read from the database on each scrape."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        with self._sessions() as session:
            sizes = {
                "sources": session.scalar(select(func.count(Source.id))) or 0,
                "documents": session.scalar(select(func.count(Document.id))) or 0,
                "chunks": store.serving_chunks(session),
            }
            runs = session.execute(
                select(IngestionRun.status, func.count(IngestionRun.id)).group_by(
                    IngestionRun.status
                )
            ).all()
        size = GaugeMetricFamily("teambot_knowledge_base", "Items in the knowledge base.",
                                 labels=["kind"])  # fmt: skip
        for kind, count in sizes.items():
            size.add_metric([kind], count)
        yield size
        done = CounterMetricFamily("teambot_ingestion_runs", "Ingestion runs by outcome.",
                                   labels=["status"])  # fmt: skip
        for status, count in runs:
            done.add_metric([status], count)
        yield done
