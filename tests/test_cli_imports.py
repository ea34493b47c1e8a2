"""The `teambot` command starts at once: what each command line imports, in a fresh process.

`--help` of every command imports none of the heavy libraries, and `ask` on the ONNX
backend none of torch's (issue #17; bench/cli_start.py measures the time).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.test_cli import run

HEAVY = {
    "faiss", "numpy", "onnxruntime", "torch", "transformers", "sentence_transformers",
    "slack_bolt", "slack_sdk", "discord", "openai", "sqlalchemy", "bs4", "httpx",
}  # fmt: skip
TORCH = {"torch", "transformers", "sentence_transformers"}
# `teambot admin --help` is the admin command `help` (it lists the admin commands, as chat's
# `admin help` does), run and audited by the admin module like every admin command.
ADMIN = ["admin"]

# Runs each command line given as a JSON list in one process, then prints the modules loaded.
PROBE = """\
import contextlib, io, json, sys
from bot.cli import main
for argv in json.loads(sys.argv[1]):
    sys.argv = ["teambot", *argv]
    with contextlib.redirect_stdout(io.StringIO()):
        try:
            main()
        except SystemExit as exit:
            if exit.code:
                sys.exit(f"teambot {' '.join(argv)} exited with {exit.code}")
print(json.dumps(sorted(sys.modules)))
"""


def modules_after(
    *command_lines: list[str], cwd: Path, env: dict[str, str] | None = None
) -> set[str]:
    """Top-level packages loaded once ``command_lines`` ran, in order, in one new process."""
    done = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(command_lines)],
        cwd=cwd,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    return {name.split(".")[0] for name in json.loads(done.stdout.splitlines()[-1])}


def command_paths() -> list[list[str]]:
    """Every command and group of `teambot`, as the words that name it."""
    import typer.main

    from bot.cli import app

    def walk(command: object, words: list[str]) -> list[list[str]]:
        found = [words]
        for name, sub in getattr(command, "commands", {}).items():
            found += walk(sub, [*words, name])
        return found

    return walk(typer.main.get_command(app), [])


def test_every_help_imports_no_heavy_library(tmp_path: Path) -> None:
    paths = [words for words in command_paths() if words != ADMIN]
    assert ["sources", "add"] in paths and ["llm", "check"] in paths  # the walk finds them

    loaded = modules_after(*([*words, "--help"] for words in paths), cwd=tmp_path)

    assert loaded & HEAVY == set()


def test_importing_the_cli_imports_no_heavy_library(tmp_path: Path) -> None:
    assert modules_after(cwd=tmp_path) & (HEAVY | {"pydantic", "alembic"}) == set()


def test_ask_on_onnx_imports_no_torch(corpus: Path, tmp_path: Path) -> None:
    """The export of the model (which needs torch) is cached in EMBEDDING_CACHE_DIR by an
    earlier `teambot ingest`, as a user's first run does."""
    env = {"DATABASE_URL": f"sqlite:///{tmp_path / 'teambot.db'}", "EMBEDDING_BACKEND": "onnx-int8"}
    ingested = run("ingest", str(corpus), db_url=env["DATABASE_URL"], cwd=tmp_path, env=env)
    assert ingested.returncode == 0, ingested.stderr

    loaded = modules_after(["ask", "Which TCP port does Zephyr listen on?"], cwd=tmp_path, env=env)

    assert "onnxruntime" in loaded and loaded & TORCH == set()
    # The database is current: one query says so, and Alembic is only imported to migrate.
    assert "alembic" not in loaded
