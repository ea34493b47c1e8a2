"""The real `teambot` command in a subprocess, as a user runs it: answers, errors, exit codes."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest
import yaml
from sqlalchemy import func, select

from knowledge.embed.embedder import Embedder
from knowledge.ingest.local import ingest_folder
from knowledge.storage.conversations import Turn
from knowledge.storage.db import make_engine, make_session_factory
from knowledge.storage.documents import Chunk
from knowledge.storage.schema import bundled_head, upgrade
from tests.conftest import postgres_schema_url, sqlite_url
from tests.fakes.docsite import DocSite
from tests.fakes.slack import BOT_TOKEN, FakeSlack
from tests.processes import TEAMBOT


def run(
    *args: str, db_url: str, cwd: Path, stdin: str | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "DATABASE_URL": db_url, **(env or {})}
    return subprocess.run(
        [TEAMBOT, *args],
        cwd=cwd,
        env=environment,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=300,
    )


def assert_clean_failure(result: subprocess.CompletedProcess[str], message: str) -> None:
    assert result.returncode == 1, result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def chunk_count(db_url: str) -> int:
    engine = make_engine(db_url)
    try:
        with make_session_factory(engine)() as session:
            return session.scalar(select(func.count(Chunk.id))) or 0
    finally:
        engine.dispose()


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return sqlite_url(tmp_path)


@pytest.fixture
def ingested(corpus: Path, db_url: str, embedder: Embedder) -> str:
    """The corpus ingested in-process (with the session's model), for tests about asking."""
    engine = make_engine(db_url)
    upgrade(engine)
    ingest_folder(make_session_factory(engine), embedder, corpus, name="zephyr-docs")
    engine.dispose()
    return db_url


def test_ingest_then_ask_cites_the_file_that_holds_the_answer(
    corpus: Path, db_url: str, tmp_path: Path
) -> None:
    ingested = run("ingest", str(corpus), "--name", "zephyr", db_url=db_url, cwd=tmp_path)
    assert ingested.returncode == 0, ingested.stderr
    assert "Source 'zephyr': 4 pages seen — 4 new" in ingested.stdout

    asked = run(
        "ask", "--json", "Which TCP port does Zephyr listen on?", db_url=db_url, cwd=tmp_path
    )
    assert asked.returncode == 0, asked.stderr
    answer = json.loads(asked.stdout)
    assert set(answer) >= {"answer", "citations", "model", "timings"}
    assert answer["model"] == "extractive"
    assert answer["citations"][0]["path"] == "guide/network.md"
    assert answer["citations"][0]["anchor"] == "listening-port"
    assert {"title", "url", "path", "anchor"} <= set(answer["citations"][0])
    assert "8731" in answer["answer"]
    assert answer["timings"]["total"] > 0

    listed = run("sources", "list", db_url=db_url, cwd=tmp_path)
    assert listed.returncode == 0 and "zephyr" in listed.stdout and "ok" in listed.stdout


def test_plain_answers_print_numbered_sources(ingested: str, tmp_path: Path) -> None:
    asked = run("ask", "How do I restore a backup?", db_url=ingested, cwd=tmp_path)
    assert asked.returncode == 0, asked.stderr
    assert "Sources:\n  [1] Backups" in asked.stdout
    assert "guide/backups.html#" in asked.stdout


def test_a_question_the_docs_do_not_cover_says_so_and_lists_what_might_help(
    ingested: str, tmp_path: Path
) -> None:
    asked = run("ask", "Does Zephyr support Microsoft Teams?", db_url=ingested, cwd=tmp_path)
    as_json = run("ask", "--json", "Does Zephyr support Microsoft Teams?", db_url=ingested,
                  cwd=tmp_path)  # fmt: skip

    assert asked.returncode == 0, asked.stderr
    assert asked.stdout.startswith("The indexed docs don't seem to cover this, so I won't guess.")
    assert "\nMight help:\n  [1] " in asked.stdout and "Sources:" not in asked.stdout
    assert "Not covered by the indexed docs (confidence 0." in asked.stdout
    answer = json.loads(as_json.stdout)
    assert answer["abstained"] is True and answer["citations"] == []
    assert 0 <= answer["confidence"] < 0.14 and answer["might_help"][0]["path"]


def test_why_shows_scores_ranks_and_the_verdict(ingested: str, tmp_path: Path) -> None:
    shown = run("why", "Which TCP port does Zephyr listen on?", db_url=ingested, cwd=tmp_path)
    as_json = run("why", "--json", "Is Kafka supported?", db_url=ingested, cwd=tmp_path)
    in_admin = run("admin", "why", "what's Zephyr's port?", db_url=ingested, cwd=tmp_path)

    assert shown.returncode == 0, shown.stderr
    assert "[1] Network settings › Listening port — guide/network.md#listening-port" in shown.stdout
    assert "dense  cosine  BM25 rank" in shown.stdout and "would answer." in shown.stdout
    explained = json.loads(as_json.stdout)
    assert explained["abstained"] is True and explained["confidence"] < explained["threshold"]
    assert any("kafka" in reason for reason in explained["reasons"])
    assert in_admin.returncode == 0 and "Confidence " in in_admin.stdout
    engine = make_engine(ingested)
    with make_session_factory(engine)() as session:  # explaining answers nothing, stores nothing
        assert session.scalar(select(func.count(Turn.id))) == 0
    engine.dispose()


def test_chat_keeps_one_conversation_for_follow_ups(ingested: str, tmp_path: Path) -> None:
    chat = run(
        "chat",
        db_url=ingested,
        cwd=tmp_path,
        stdin="How do I set up TLS certificates for Zephyr?\nand where do they go?\n\n/quit\n",
    )
    assert chat.returncode == 0, chat.stderr
    answers = chat.stdout.split("teambot> ")[1:]
    assert len(answers) == 2
    assert "network.md#tls-certificates" in answers[1]


def write_questions(path: Path, *questions: dict[str, object]) -> Path:
    path.write_text("".join(json.dumps(q) + "\n" for q in questions), encoding="utf-8")
    return path


def evaluated(*args: str, db_url: str, cwd: Path) -> dict[str, object]:
    result = run("eval", *args, "--json", db_url=db_url, cwd=cwd)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


PORT_QUESTION = {
    "question": "Which TCP port does the Zephyr server listen on?",
    "page": "guide/network.md",
    "anchor": "listening-port",
    # Every other page: whatever the order, the first result after the own page is gold.
    "linked_pages": ["install.md", "guide/backups.html", "faq.txt"],
}


def test_eval_scores_the_real_search_against_hand_computed_metrics(
    ingested: str, tmp_path: Path
) -> None:
    questions = write_questions(
        tmp_path / "questions.jsonl",
        PORT_QUESTION,
        {
            "question": "How do I restore a backup dump?",
            "page": "guide/backups.html",
            "anchor": "restoring-a-backup",
        },
        {"question": "How do I rotate the logs?", "page": "guide/logs.md", "anchor": "rotation"},
        {"question": "Unscorable at section level", "linked_pages": ["install.md"]},
    )
    # Two sections found first, one that is not in the corpus: 2/3 everywhere.
    section = evaluated(str(questions), db_url=ingested, cwd=tmp_path)
    assert list(section)[:6] == ["recall@1", "recall@5", "recall@10", "mrr", "ndcg@10", "n"]
    assert section["n"] == 3
    for key in ("recall@1", "recall@10", "mrr", "ndcg@10"):
        assert section[key] == pytest.approx(2 / 3), key
    assert [q["first_relevant_rank"] for q in section["questions"]] == [1, 1, None]

    table = run("eval", str(questions), db_url=ingested, cwd=tmp_path)
    assert table.returncode == 0 and "recall@1" in table.stdout and "0.667" in table.stdout


def test_eval_answerability_matches_the_metrics_computed_by_hand(
    ingested: str, tmp_path: Path
) -> None:
    # Labels chosen so that the metrics are not all 1: the port question is called
    # unanswerable and the banana bread one answerable.
    labelled = {
        "How do I restore a backup?": True, "Why is my job stuck?": True,
        "What is the recipe for banana bread?": True,
        "Which TCP port does Zephyr listen on?": False,
        "Does Zephyr support Microsoft Teams?": False,
        "How do I configure Kafka partitions?": False,
    }  # fmt: skip
    questions = tmp_path / "answerability.jsonl"
    questions.write_text("".join(json.dumps({"question": q, "answerable": a}) + "\n"
                                 for q, a in labelled.items()))  # fmt: skip
    judged = {}
    for question in labelled:
        explained = json.loads(run("why", "--json", question, db_url=ingested, cwd=tmp_path).stdout)
        judged[question] = (explained["confidence"], not explained["abstained"])
    positives = [judged[q][0] for q, a in labelled.items() if a]
    negatives = [judged[q][0] for q, a in labelled.items() if not a]
    pairs = [(p > n) + (p == n) / 2 for p in positives for n in negatives]

    result = run("eval", str(questions), "--answerability", "--json", db_url=ingested,
                 cwd=tmp_path)  # fmt: skip

    assert result.returncode == 0, result.stderr
    scored = json.loads(result.stdout)
    assert list(scored) == ["auroc", "answer_rate", "abstain_rate", "n_answerable",
                            "n_unanswerable"]  # fmt: skip
    assert scored["n_answerable"] == 3 and scored["n_unanswerable"] == 3
    assert scored["auroc"] == pytest.approx(sum(pairs) / len(pairs), abs=1e-3)
    assert 0 < scored["auroc"] < 1
    answered = [judged[q][1] for q, a in labelled.items() if a]
    refused = [not judged[q][1] for q, a in labelled.items() if not a]
    assert scored["answer_rate"] == pytest.approx(sum(answered) / 3, abs=1e-4)
    assert scored["abstain_rate"] == pytest.approx(sum(refused) / 3, abs=1e-4)
    unlabelled = tmp_path / "plain.jsonl"
    unlabelled.write_text(json.dumps({"question": "Why is my job stuck?"}) + "\n")
    refused_file = run("eval", str(unlabelled), "--answerability", db_url=ingested, cwd=tmp_path)
    assert_clean_failure(refused_file, "lack `answerable`")


def test_eval_hard_modes_leave_pages_out_of_the_candidates(ingested: str, tmp_path: Path) -> None:
    questions = write_questions(tmp_path / "port.jsonl", PORT_QUESTION)
    own = evaluated(str(questions), "--level", "page", "--k", "1", db_url=ingested, cwd=tmp_path)
    assert (own["n"], own["recall@1"], own["mrr"]) == (1, 1.0, 1.0)  # its own page comes first

    # Without its own page, the first result is one of the three linked pages.
    hard = evaluated(str(questions), "--level", "page", "--k", "1", "--exclude-own-page",
                     db_url=ingested, cwd=tmp_path)  # fmt: skip
    assert (hard["n"], hard["mrr"]) == (1, 1.0)
    assert hard["recall@1"] == pytest.approx(1 / 3)

    # guide/ dropped: the own page goes, and so does one of the linked pages.
    prefix = evaluated(str(questions), "--level", "page", "--exclude-prefix", "guide/",
                       db_url=ingested, cwd=tmp_path)  # fmt: skip
    assert (prefix["n"], prefix["mrr"], prefix["recall@5"]) == (1, 1.0, 1.0)
    assert prefix["recall@1"] == pytest.approx(1 / 2)

    assert_clean_failure(
        run("eval", str(questions), "--exclude-own-page", db_url=ingested, cwd=tmp_path),
        "add --level page",
    )


def test_bad_input_fails_clearly_and_loses_nothing(
    corpus: Path, ingested: str, tmp_path: Path
) -> None:
    db_url = ingested
    stored = chunk_count(db_url)
    assert stored > 0

    assert_clean_failure(run("ask", "", db_url=db_url, cwd=tmp_path), "The question is empty")
    assert_clean_failure(
        run("ask", "why?" * 10_000, db_url=db_url, cwd=tmp_path), "40,000 characters"
    )
    assert_clean_failure(
        run("ingest", str(tmp_path / "missing"), db_url=db_url, cwd=tmp_path), "No such folder"
    )
    assert_clean_failure(
        run("ingest", str(corpus / "install.md"), db_url=db_url, cwd=tmp_path), "is a file"
    )
    assert_clean_failure(
        run("ingest", str(tmp_path), "--name", "zephyr-docs", db_url=db_url, cwd=tmp_path),
        "already exists",
    )
    assert chunk_count(db_url) == stored


def test_binary_and_non_utf8_files_are_listed_as_skipped(
    corpus: Path, db_url: str, tmp_path: Path
) -> None:
    (corpus / "diagram.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")
    (corpus / "notes.md").write_bytes(b"# Notes\n\nCaf\xe9 au lait\n")
    (corpus / "dump.txt").write_bytes(b"\x00\x00\x00\xff")
    result = run("ingest", str(corpus), db_url=db_url, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "Failed (2):" in result.stdout and "Skipped (1):" in result.stdout
    assert "diagram.png: not a format teambot reads" in result.stdout
    assert "notes.md: not UTF-8 (byte 12); re-save it as UTF-8" in result.stdout
    assert "dump.txt: binary, not text" in result.stdout
    assert "4 new" in result.stdout


def test_config_masks_secrets_and_an_unreachable_database_is_explained(tmp_path: Path) -> None:
    url = "postgresql://bot:hunter2@127.0.0.1:1/teambot"
    shown = run("config", db_url=url, cwd=tmp_path)
    assert shown.returncode == 0
    assert "DATABASE_URL=postgresql+psycopg://bot:***@127.0.0.1:1/teambot" in shown.stdout
    assert "hunter2" not in shown.stdout + shown.stderr

    failed = run("-v", "sources", "list", db_url=url, cwd=tmp_path)
    assert_clean_failure(failed, "Cannot use the database postgresql+psycopg://bot:***@127.0.0.1:1")
    assert "Check DATABASE_URL" in failed.stderr
    assert "hunter2" not in failed.stdout + failed.stderr


def test_an_invalid_setting_is_named(tmp_path: Path, db_url: str) -> None:
    result = run("config", db_url=db_url, cwd=tmp_path, env={"TOP_K": "many"})
    assert_clean_failure(result, "Invalid setting")
    assert "TOP_K" in result.stderr


def test_postgres_needs_db_upgrade_then_works_end_to_end(
    corpus: Path, pg_schema: str, tmp_path: Path
) -> None:
    url = postgres_schema_url(pg_schema)
    assert_clean_failure(run("sources", "list", db_url=url, cwd=tmp_path), "teambot db upgrade")

    upgraded = run("db", "upgrade", db_url=url, cwd=tmp_path)
    assert upgraded.returncode == 0 and f"Database at revision {bundled_head()}" in upgraded.stdout

    assert run("ingest", str(corpus), "--name", "zephyr", db_url=url, cwd=tmp_path).returncode == 0
    asked = run("ask", "--json", "How do I restore a backup?", db_url=url, cwd=tmp_path)
    assert json.loads(asked.stdout)["citations"][0]["path"] == "guide/backups.html"


def test_demo_answers_from_the_bundled_guide(db_url: str, tmp_path: Path) -> None:
    result = run("demo", db_url=db_url, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "Source 'teambot-guide'" in result.stdout
    assert "Sources:\n  [1] " in result.stdout
    assert ".md#" in result.stdout

    # Issue #18's example: the guide says nothing about Microsoft Teams, and teambot says so
    # (a guide page that named it as an example would make it "covered").
    asked = run("ask", "--json", "Does teambot support Microsoft Teams?", db_url=db_url,
                cwd=tmp_path)  # fmt: skip
    answer = json.loads(asked.stdout)
    assert answer["abstained"] is True and answer["citations"] == []


def test_serve_without_a_platform_token_says_what_to_set(db_url: str, tmp_path: Path) -> None:
    served = run("serve", db_url=db_url, cwd=tmp_path, env={"SLACK_BOT_TOKEN": ""})
    assert_clean_failure(served, "No chat platform is configured: set SLACK_BOT_TOKEN")


def test_serve_over_http_needs_the_signing_secret(db_url: str, tmp_path: Path) -> None:
    with FakeSlack() as slack:
        served = run("serve", db_url=db_url, cwd=tmp_path,
                     env={"SLACK_BOT_TOKEN": BOT_TOKEN, "SLACK_API_URL": slack.api_url,
                          "SLACK_SIGNING_SECRET": "", "SLACK_APP_TOKEN": ""})  # fmt: skip
    assert_clean_failure(served, "SLACK_SIGNING_SECRET is empty")


@pytest.mark.parametrize(
    "command", [[], ["ask"], ["chat"], ["ingest"], ["sources", "list"], ["db", "upgrade"], ["demo"]]
)
def test_every_command_explains_itself(command: list[str], tmp_path: Path, db_url: str) -> None:
    result = run(*command, "--help", db_url=db_url, cwd=tmp_path)
    assert result.returncode == 0
    assert "Usage: teambot" in result.stdout
    assert len(result.stdout.split()) > 20


def test_sources_add_refresh_list_remove(tmp_path: Path, db_url: str) -> None:
    with DocSite.with_default_site() as site:
        start = site.url("/docs/index.html")
        refused = run("sources", "add", start, "--name", "acme", db_url=db_url, cwd=tmp_path)
        assert_clean_failure(refused, "--allow-private")
        bad_cron = ["--allow-private", "--cron", "every tuesday"]
        assert_clean_failure(
            run("sources", "add", start, "--name", "acme", *bad_cron, db_url=db_url, cwd=tmp_path),
            "not a crontab expression",
        )
        options = ["--allow-private", "--every", "6h", "--exclude", "/faq", "--max-pages", "50"]
        added = run(
            "sources", "add", start, "--name", "acme", *options, db_url=db_url, cwd=tmp_path
        )
        assert added.returncode == 0, added.stderr
        assert "Added site source 'acme'" in added.stdout

        refreshed = run("refresh", "acme", "--json", db_url=db_url, cwd=tmp_path)

    assert refreshed.returncode == 0, refreshed.stderr
    summary = json.loads(refreshed.stdout)
    keys = {"pages_seen", "pages_fetched", "pages_unchanged", "pages_changed", "pages_new",
            "pages_removed", "pages_failed", "chunks_embedded", "errors"}  # fmt: skip
    assert keys <= set(summary)
    assert summary["pages_new"] >= 6 and summary["chunks_embedded"] > 0
    assert not any("faq" in e["url"] and "robots" not in e["error"] for e in summary["errors"])
    listed = run("sources", "list", db_url=db_url, cwd=tmp_path)
    assert "acme" in listed.stdout and "site" in listed.stdout and "ok" in listed.stdout
    removed = run("sources", "remove", "acme", db_url=db_url, cwd=tmp_path)
    assert removed.returncode == 0 and "Removed source 'acme'" in removed.stdout
    assert chunk_count(db_url) == 0
    assert_clean_failure(run("refresh", "acme", db_url=db_url, cwd=tmp_path), "No source named")


def test_the_terminal_adds_any_folder_where_chat_may_add_only_inside_the_roots(
    tmp_path: Path, db_url: str
) -> None:
    env = {"TEAMBOT_FOLDER_ROOTS": str(tmp_path / "shared")}  # chat's limit, not the terminal's
    empty = run("sources", "list", db_url=db_url, cwd=tmp_path, env=env)
    assert empty.stdout.startswith("No sources yet. Add one with `teambot ingest PATH`")

    added = run("sources", "add", str(tmp_path), "--name", "notes", db_url=db_url, cwd=tmp_path,
                env=env)  # fmt: skip

    assert added.returncode == 0, added.stderr
    assert added.stdout == (
        f"Added folder source 'notes' at {tmp_path}. Index it now with `teambot refresh notes`.\n"
    )
    assert "notes" in run("sources", "list", db_url=db_url, cwd=tmp_path, env=env).stdout


def assert_json_failure(
    result: subprocess.CompletedProcess[str], message: str, code: int = 1
) -> None:
    """A --json command line that fails: one {"error": …} object on stdout, nothing on stderr."""
    assert result.returncode == code, result.stdout + result.stderr
    assert message in json.loads(result.stdout)["error"]
    assert result.stderr == ""


def test_json_commands_fail_in_json(tmp_path: Path, db_url: str) -> None:
    assert_json_failure(run("ask", "--json", "", db_url=db_url, cwd=tmp_path), "question is empty")
    assert_json_failure(
        run("ask", "--json", "hi", db_url=db_url, cwd=tmp_path, env={"TOP_K": "many"}), "TOP_K"
    )
    assert_json_failure(
        run("ask", "--json", "--top-k", "50", "hi", db_url=db_url, cwd=tmp_path), "--top-k", 2
    )
    assert_json_failure(run("refresh", "nope", "--json", db_url=db_url, cwd=tmp_path), "nope")
    questions = tmp_path / "questions.jsonl"
    questions.write_text('{"question": "Fine?"}\n{"question": "Where is\n', encoding="utf-8")
    assert_json_failure(run("eval", str(questions), "--json", db_url=db_url, cwd=tmp_path),
                        f"{questions}:2: not valid JSON")  # fmt: skip


def test_eval_names_the_file_line_and_the_shape_of_a_line(tmp_path: Path, db_url: str) -> None:
    questions = tmp_path / "questions.jsonl"
    questions.write_text('{"question": "Fine?"}\n\n{"question": "Where is\n', encoding="utf-8")

    failed = run("eval", str(questions), db_url=db_url, cwd=tmp_path)

    assert_clean_failure(
        failed, f"{questions}:3: not valid JSON (Unterminated string starting at column 14)."
    )
    assert 'Each line must be one JSON object, e.g. {"question": ' in failed.stderr


def test_the_docs_list_exactly_the_scopes_of_the_slack_manifest() -> None:
    root = Path(__file__).resolve().parent.parent
    manifest = yaml.safe_load((root / "slack-manifest.yml").read_text(encoding="utf-8"))
    guide = (root / "docs" / "chat-platforms.md").read_text(encoding="utf-8")
    section = guide.split("### Slack scopes the app needs", 1)[1].split("\n#", 1)[0]
    documented = re.findall(r"^\| `([a-z_.:]+)` \|", section, flags=re.MULTILINE)

    assert documented == manifest["oauth_config"]["scopes"]["bot"]
