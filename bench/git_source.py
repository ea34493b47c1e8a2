"""A git source of a few hundred documents: first ingest, a no-change refresh, one changed file.

    python -m bench.git_source [--django DIR] [--work DIR]

Builds a repository under /tmp: teambot's own docs/ (Markdown), the Django docs' HTML pages
from python-django-doc (without indexes, release notes and static files) and two generated
PDFs, one commit. Registers it as a git source (a local path, as from the terminal) in a fresh
SQLite database with its own TEAMBOT_DATA_DIR, then runs `teambot refresh --json` four times:
the first ingest, a refresh with nothing changed, one after one file changed, and one after
one file was renamed. Prints the blobs read (``pages_fetched``), chunks embedded and time of
each, with the refresh's own time (``timings.total``, without the process start) as a share
of the first ingest's.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.measure import measure
from tests.pdf_maker import handbook

TEAMBOT = str(Path(sys.executable).parent / "teambot")
DJANGO_DOCS = Path("/usr/share/doc/python-django-doc/html")
SKIP_DJANGO = ("_modules", "_static", "_sources", "_images", "releases")
SKIP_PAGES = ("genindex.html", "py-modindex.html", "search.html", "contents.html")
ROOT = Path(__file__).resolve().parent.parent


def git(cwd: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "bench@example.org",
           "GIT_COMMITTER_NAME": "bench", "GIT_COMMITTER_EMAIL": "bench@example.org"}  # fmt: skip
    return subprocess.run(
        ["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True
    ).stdout


def build(work: Path, django: Path) -> int:
    """The repository's files, committed on main; returns how many documents it holds."""
    shutil.copytree(ROOT / "docs", work / "docs" / "teambot")
    for page in django.rglob("*.html"):
        relative = page.relative_to(django)
        if relative.parts[0] in SKIP_DJANGO or relative.name in SKIP_PAGES:
            continue
        target = work / "docs" / "django" / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(page, target)
    (work / "docs" / "handbook.pdf").write_bytes(handbook(chapters=8, sections=3).data)
    (work / "docs" / "handbook-2col.pdf").write_bytes(handbook(chapters=4, columns=2).data)
    git(work, "init", "--quiet", "-b", "main")
    git(work, "add", "-A")
    git(work, "commit", "--quiet", "-m", "docs")
    return sum(1 for p in (work / "docs").rglob("*") if p.is_file())


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--django", type=Path, default=DJANGO_DOCS)
    parser.add_argument("--work", type=Path, default=None, help="where to build (default: /tmp)")
    args = parser.parse_args()
    if not args.django.is_dir():
        raise SystemExit(
            f"{args.django} is missing: apt-get install -y --no-install-recommends "
            "python-django-doc"
        )
    with tempfile.TemporaryDirectory(prefix="teambot-git-bench-") as tmp:
        base = args.work or Path(tmp)
        work = base / "repo"
        work.mkdir(parents=True)
        count = build(work, args.django)
        env = {**os.environ, "DATABASE_URL": f"sqlite:///{base}/teambot.db",
               "TEAMBOT_DATA_DIR": str(base / "data")}  # fmt: skip
        subprocess.run(
            [TEAMBOT, "sources", "add", str(work), "--kind", "git", "--name", "repo"],
            env=env, check=True, stdout=subprocess.DEVNULL,
        )  # fmt: skip
        rows = []

        def refresh(label: str) -> None:
            out = base / "out.json"
            result = measure([TEAMBOT, "refresh", "repo", "--json"], base, env, out)
            rows.append((label, result, json.loads(out.read_text())))

        refresh("first ingest")
        refresh("refresh, nothing changed")
        changed = work / "docs" / "teambot" / "sources.md"
        changed.write_text(changed.read_text() + "\n\n## Benchmarks\n\nOne more section.\n")
        git(work, "commit", "--quiet", "-am", "one file changed")
        refresh("refresh, one file changed")
        git(work, "mv", "docs/teambot/cli.md", "docs/teambot/commands.md")
        git(work, "commit", "--quiet", "-m", "one file renamed")
        refresh("refresh, one file renamed")
    print(f"{count} documents in the repository\n")
    print("| run | wall s | refresh s | share of first | peak RSS MB | seen | blobs read | "
          "new | changed | unchanged | removed | chunks embedded | reused |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    first = rows[0][2]["timings"]["total"]
    for label, r, j in rows:
        total = j["timings"]["total"]
        print(f"| {label} | {r['seconds']:.1f} | {total:.2f} | {100 * total / first:.1f}% | "
              f"{r['peak_mb']:.0f} | {j['pages_seen']} | {j['pages_fetched']} | {j['pages_new']} | "
              f"{j['pages_changed']} | {j['pages_unchanged']} | {j['pages_removed']} | "
              f"{j['chunks_embedded']} | {j['chunks_reused']} |")  # fmt: skip
    backend = os.environ.get("EMBEDDING_BACKEND", "onnx-int8 (default)")
    print(f"\n{os.cpu_count()} CPUs, Python {sys.version.split()[0]}, EMBEDDING_BACKEND={backend}, "
          f"{time.strftime('%Y-%m-%d %H:%M')}")  # fmt: skip


if __name__ == "__main__":
    main()
