"""`teambot tune` as a user meets it when it cannot work: a clear message, no traceback."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import sqlite_url
from tests.test_cli import assert_clean_failure, run


def test_tune_refuses_clearly_what_it_cannot_do(tmp_path: Path) -> None:
    db_url = sqlite_url(tmp_path)
    env = {"TEAMBOT_DATA_DIR": str(tmp_path / "data")}
    assert_clean_failure(run("tune", "--budget", "5x", db_url=db_url, cwd=tmp_path, env=env),
                         "--budget '5x' is not a duration")  # fmt: skip
    assert_clean_failure(run("tune", "rollback", db_url=db_url, cwd=tmp_path, env=env),
                         "Nothing to roll back")  # fmt: skip
    assert_clean_failure(run("tune", "--source", "nope", db_url=db_url, cwd=tmp_path, env=env),
                         "No source named nope")  # fmt: skip
    empty = run("tune", "--budget", "10s", db_url=db_url, cwd=tmp_path, env=env)
    assert_clean_failure(empty, "Too little to tune on: 0 training pairs")
    assert not (tmp_path / "data" / "models").exists()  # nothing was trained or saved
