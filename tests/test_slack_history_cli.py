"""`teambot sources add '#channel'`, `teambot refresh --json`, `teambot sources list` and
`teambot ask --channel` for a private Slack channel, as a person runs them: the real command
in a subprocess, the fake Slack."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import sqlite_url
from tests.fakes.slack import BOT_TOKEN
from tests.fakes.slack_history import HistorySlack
from tests.test_cli import assert_clean_failure, run


@pytest.fixture
def fake() -> Iterator[HistorySlack]:
    with HistorySlack() as slack:
        slack.add_channel("C0HELP", "help", private=True)
        root = slack.seed_message("C0HELP", "How do I request a laptop?", user="UALICE")
        slack.seed_message("C0HELP", "Fill in the IT form", user="UBOB", thread_ts=root)
        yield slack


def test_a_channel_is_added_refreshed_and_listed_from_the_terminal(
    tmp_path: Path, corpus: Path, fake: HistorySlack
) -> None:
    db = sqlite_url(tmp_path)
    env = {"SLACK_BOT_TOKEN": BOT_TOKEN, "SLACK_API_URL": fake.api_url}

    refused = run("sources", "add", "#help", db_url=db, cwd=tmp_path, env={"SLACK_BOT_TOKEN": ""})
    assert_clean_failure(refused, "Reading a Slack channel needs SLACK_BOT_TOKEN")
    added = run("sources", "add", "#help", db_url=db, cwd=tmp_path, env=env)
    assert added.returncode == 0, added.stderr
    assert "Added Slack channel #help as source 'slack-help'" in added.stdout
    assert "Index it now with `teambot refresh slack-help`" in added.stdout
    folder = run("sources", "add", str(corpus), "--name", "docs", db_url=db, cwd=tmp_path)
    assert folder.returncode == 0, folder.stderr

    refreshed = run("refresh", "--json", db_url=db, cwd=tmp_path, env=env)

    assert refreshed.returncode == 0, refreshed.stderr
    reports = json.loads(refreshed.stdout)["sources"]
    assert set(reports["slack-help"]) == set(reports["docs"])  # the same keys for every kind
    assert reports["slack-help"]["pages_new"] == 1
    listed = run("sources", "list", db_url=db, cwd=tmp_path, env={"COLUMNS": "200"})
    assert "slack-help" in listed.stdout and "slack-channel" in listed.stdout
    assert "#help (C0HELP)" in listed.stdout

    question = "How do I request a laptop?"
    elsewhere = run("ask", "--json", question, db_url=db, cwd=tmp_path)
    there = run("ask", "--json", "--channel", "slack:C0HELP", question, db_url=db, cwd=tmp_path)
    assert elsewhere.returncode == there.returncode == 0, elsewhere.stderr + there.stderr
    cited = [[c["source"] for c in json.loads(r.stdout)["citations"]] for r in (elsewhere, there)]
    assert "slack-help" not in cited[0]  # a private channel's history stays in the channel
    assert cited[1][0] == "slack-help"
