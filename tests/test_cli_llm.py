"""`teambot ask` and `teambot llm …` in a subprocess against fake model servers on 127.0.0.1."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fakes.openai_server import FakeOpenAI, Hang, Reply, Status
from tests.test_cli import assert_clean_failure, db_url, ingested, run

__all__ = ["db_url", "ingested"]  # fixtures used here


@pytest.fixture
def local() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(models=("local-model",)) as fake:
        yield fake


def local_env(fake: FakeOpenAI, **extra: str) -> dict[str, str]:
    return {"LOCAL_LLM_BASE_URL": fake.base_url, "LOCAL_LLM_MODEL": "local-model",
            "OPENAI_API_KEY": "", **extra}  # fmt: skip


def test_ask_json_reports_model_provider_route_and_timings(
    ingested: str, tmp_path: Path, local: FakeOpenAI
) -> None:
    local.always(Reply("Zephyr listens on port 8731 [1]."))

    asked = run("ask", "--json", "Which port does Zephyr listen on?", db_url=ingested,
                cwd=tmp_path, env=local_env(local))  # fmt: skip

    assert asked.returncode == 0, asked.stderr
    answer = json.loads(asked.stdout)
    assert answer["answer"] == "Zephyr listens on port 8731 [1]."
    assert (answer["model"], answer["provider"]) == ("local-model", "local")
    assert answer["route"] == "local-first (LLM_ROUTE): local answered"
    assert {"retrieve", "first_token", "total"} <= set(answer["timings"])
    assert answer["citations"][0]["path"] == "guide/network.md"


def test_ask_streams_the_answer_then_prints_its_sources(
    ingested: str, tmp_path: Path, local: FakeOpenAI
) -> None:
    local.always(Reply("Zephyr listens on port 8731 [1]."))

    asked = run("ask", "Which port does Zephyr listen on?", db_url=ingested, cwd=tmp_path,
                env=local_env(local))  # fmt: skip

    assert asked.returncode == 0, asked.stderr
    assert asked.stdout.startswith("Zephyr listens on port 8731 [1].\n\nSources:\n  [1] ")
    assert "guide/network.md#listening-port" in asked.stdout


def test_an_unreachable_model_still_gets_the_user_an_answer(
    ingested: str, tmp_path: Path, local: FakeOpenAI
) -> None:
    local.always(Hang())

    asked = run("ask", "--json", "Which port does Zephyr listen on?", db_url=ingested,
                cwd=tmp_path, env=local_env(local, LLM_TOTAL_TIMEOUT_SECONDS="1",
                                            LLM_FIRST_TOKEN_TIMEOUT_SECONDS="1"))  # fmt: skip

    assert asked.returncode == 0, asked.stderr
    answer = json.loads(asked.stdout)
    assert answer["provider"] == "extractive"
    assert answer["answer"].startswith("The language models are unavailable right now")
    assert "8731" in answer["answer"]


def test_llm_check_reports_health_and_fails_on_a_broken_model(
    tmp_path: Path, db_url: str, local: FakeOpenAI
) -> None:
    healthy = run("llm", "check", db_url=db_url, cwd=tmp_path, env=local_env(local))
    assert healthy.returncode == 0, healthy.stderr
    assert "local-model" in healthy.stdout and "ok" in healthy.stdout
    assert local.chat_requests()[0]["max_tokens"] == 5

    local.always(Status(500))
    broken = run("llm", "check", db_url=db_url, cwd=tmp_path,
                 env=local_env(local, LLM_TOTAL_TIMEOUT_SECONDS="2"))  # fmt: skip
    assert broken.returncode == 1
    assert "failing: HTTP 500" in broken.stdout


def test_llm_check_without_models_explains_how_to_configure_one(
    tmp_path: Path, db_url: str
) -> None:
    checked = run("llm", "check", db_url=db_url, cwd=tmp_path,
                  env={"LOCAL_LLM_BASE_URL": "", "OPENAI_API_KEY": ""})  # fmt: skip

    assert checked.returncode == 0
    assert "answers are extractive" in checked.stdout and "LOCAL_LLM_BASE_URL" in checked.stdout


def test_serve_local_without_vllm_says_how_to_install_it(tmp_path: Path, db_url: str) -> None:
    served = run("llm", "serve-local", "some/model", db_url=db_url, cwd=tmp_path)

    assert_clean_failure(served, "pip install 'teambot[vllm]'")


def test_an_unknown_route_is_a_clear_settings_error(tmp_path: Path, db_url: str) -> None:
    asked = run("ask", "hi", db_url=db_url, cwd=tmp_path, env={"LLM_ROUTE": "fastest"})

    assert_clean_failure(asked, "LLM_ROUTE")
