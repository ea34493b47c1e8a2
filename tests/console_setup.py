"""What the console's tests share: a Runtime on a fresh SQLite database (the real embedder,
the fake model when given), and a TestClient signed in through a real login link."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from starlette.testclient import TestClient

from bot.console.app import console_app, login_link
from bot.runtime import Runtime
from bot.settings import Settings
from knowledge.embed.embedder import Embedder
from knowledge.ingest.local import ingest_folder
from tests.corpus import write_corpus

BASE = "http://testserver"


def console_runtime(tmp_path: Path, embedder: Embedder | None = None, **values: Any) -> Runtime:
    tmp_path.mkdir(parents=True, exist_ok=True)
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        database_url=f"sqlite:///{tmp_path / 'teambot.db'}",
        data_dir=tmp_path / "data",
        llm_route=values.pop("llm_route", "extractive"),
        llm_max_retries=0,
        **values,
    )
    runtime = Runtime(settings)
    if embedder is not None:
        runtime.__dict__["embedder"] = embedder
    return runtime


def corpus_runtime(tmp_path: Path, embedder: Embedder, model_url: str) -> Runtime:
    """A Runtime answering from tests.corpus (source ``zephyr``) with the fake model at
    ``model_url``."""
    runtime = console_runtime(
        tmp_path,
        embedder,
        local_llm_base_url=model_url,
        local_llm_model="local-model",
        llm_route="local-only",
    )
    ingest_folder(runtime.sessions, embedder, write_corpus(tmp_path / "docs"), name="zephyr")
    return runtime


def sign_in(
    client: TestClient, runtime: Runtime, user: str = "alice", next_path: str | None = None
) -> Any:
    """Open a login link in ``client`` and press its button; the response of the POST."""
    link = login_link(runtime, BASE, user, next_path)
    page = client.get(link.removeprefix(BASE))
    token = re.search(r'name="token" value="([^"]+)"', page.text)
    landing = re.search(r'name="next" value="([^"]*)"', page.text)
    assert token and landing, page.text
    return client.post(
        "/console/login", data={"token": token[1], "next": landing[1]}, follow_redirects=False
    )


def signed_in(runtime: Runtime, user: str = "alice") -> TestClient:
    client = TestClient(console_app(runtime, BASE), base_url=BASE)
    assert sign_in(client, runtime, user).status_code == 303
    return client


def csrf(client: TestClient) -> str:
    page = client.get("/console/sources")
    return re.search(r'<meta name="csrf" content="([0-9a-f]+)">', page.text)[1]
