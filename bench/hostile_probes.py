"""Hostile-input probes of issue #16: time, peak RSS and what survived, before and after.

    python -m bench.hostile_probes                      # this checkout only
    python -m bench.hostile_probes --baseline 407f96c   # and the code of a commit, same run

Each probe registers a source with the real CLI and refreshes it once while it is
harmless (one good page or file), then turns it hostile and times a second
``teambot refresh`` under ``/usr/bin/time -v``, stopped by a watchdog at --max-mb or
--max-seconds (the old code grows until the machine dies). After the run it checks the
database: the good page's text is still stored ("kept") and no text from outside the
source was stored ("leaked"). The baseline runs the same probes with another commit's
packages first on PYTHONPATH (a temporary git worktree), in the same run.

Run from the repository root, as a module: the hostile site is the one the tests use.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from bench.measure import measure
from tests.fakes.hostile import CASES, HostileSite

ROOT = Path(__file__).resolve().parent.parent
TEAMBOT = str(Path(sys.executable).parent / "teambot")
GOOD_MARKER = "teambot-good-page-marker"
OUTSIDE_MARKER = "teambot-outside-secret-marker"


@dataclass
class Setup:
    """A probe's source: where it is, and how to turn it hostile after the first run."""

    location: str
    kind: str
    turn_hostile: Callable[[], None]
    options: tuple[str, ...] = ()


Probe = Callable[[Path], contextlib.AbstractContextManager[Setup]]


def folder_probe(make: Callable[[Path, Path], None]) -> Probe:
    """A folder source with one good file; ``make(folder, outside)`` adds the hostile entry."""

    @contextlib.contextmanager
    def probe(work: Path) -> Iterator[Setup]:
        folder, outside = work / "docs", work / "outside"
        folder.mkdir()
        outside.mkdir()
        (folder / "good.md").write_text(f"# Good\n\nThe {GOOD_MARKER} is here.\n")
        (outside / "secret.env").write_text(f"TOKEN={OUTSIDE_MARKER}\n")
        yield Setup(str(folder), "folder", lambda: make(folder, outside))

    return probe


def _fifo(folder: Path, outside: Path) -> None:
    os.mkfifo(folder / "pipe.md")


def _odd_name(folder: Path, outside: Path) -> None:
    path = os.fsencode(folder) + b"/caf\xe9.md"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
    os.write(fd, b"# Cafe\n\nA file whose name is Latin-1, not UTF-8.\n")
    os.close(fd)


FOLDER_PROBES: dict[str, Probe] = {
    "folder: link to /etc/passwd": folder_probe(
        lambda folder, _: (folder / "passwd.txt").symlink_to("/etc/passwd")
    ),
    "folder: notes.md -> ../outside/secret.env": folder_probe(
        lambda folder, _: (folder / "notes.md").symlink_to("../outside/secret.env")
    ),
    "folder: link to /dev/zero": folder_probe(
        lambda folder, _: (folder / "zero.txt").symlink_to("/dev/zero")
    ),
    "folder: a FIFO named pipe.md": folder_probe(_fifo),
    "folder: a file name that is not UTF-8": folder_probe(_odd_name),
}


GiB, MiB = 2**30, 2**20
# The sizes the issue reports (a bomb inflating to GBs, 49 sitemaps of 200k entries, a 50 MB
# robots.txt, 90 bytes at one a second); None: the case's own default.
SITE_SIZES: dict[str, int | None] = {
    "page-gzip-gzip": 2 * GiB,
    "page-gzip-bomb": 2 * GiB,
    "page-unknown-encoding": None,
    "robots-gzip-bomb": 2 * GiB,
    "robots-endless": 16 * GiB,
    "robots-huge": 50 * MiB,
    "sitemap-gzip-bomb": 4 * GiB,
    "sitemap-xml-gz-bomb": 4 * GiB,
    "sitemap-index-amplification": 200_000 * 64,
    "slow-page": 90,
    "invalid-url": None,
}
SITE_OPTIONS = {"sitemap-index-amplification": ("--max-pages", "5")}


def site_probe(case: str) -> Probe:
    """A source on the hostile site, harmless for the first run, then serving ``case``."""

    @contextlib.contextmanager
    def probe(work: Path) -> Iterator[Setup]:
        with HostileSite(case, size=SITE_SIZES[case], harmless=True) as site:
            options = ("--allow-private", *SITE_OPTIONS.get(case, ()))
            yield Setup(site.start_url, site.kind, site.turn_hostile, options)

    return probe


def _size(size: int | None) -> str:
    if size is None:
        return ""
    if size >= GiB:
        return f", SIZE {size / GiB:g} GiB"
    return f", SIZE {size / MiB:.3g} MiB" if size >= MiB else f", SIZE {size} bytes"


def run_probe(probe: Probe, env: dict[str, str], max_mb: float, max_seconds: float) -> dict:
    with tempfile.TemporaryDirectory() as tmp, probe(Path(tmp)) as setup:
        work = Path(tmp)
        db = work / "teambot.db"
        env = {**env, "DATABASE_URL": f"sqlite:///{db}", "TEAMBOT_DATA_DIR": str(work / "data")}
        add = [TEAMBOT, "sources", "add", setup.location, "--name", "probe", "--kind", setup.kind]
        add.extend(setup.options)
        subprocess.run(add, cwd=work, env=env, check=True, capture_output=True)
        subprocess.run([TEAMBOT, "refresh", "probe"], cwd=work, env=env, capture_output=True)
        before = _count(db, GOOD_MARKER)
        setup.turn_hostile()
        result = measure(
            [TEAMBOT, "refresh", "probe"], work, env, max_mb=max_mb, max_seconds=max_seconds
        )
        result["kept"] = before > 0 and _count(db, GOOD_MARKER) >= before
        result["leaked"] = _count(db, OUTSIDE_MARKER) + _count(db, "root:x:0:0") > 0
        result["run"] = _last_run(db)
        return result


def _count(db: Path, marker: str) -> int:
    with contextlib.closing(sqlite3.connect(db, timeout=30)) as conn:
        return conn.execute(
            "SELECT count(*) FROM chunks WHERE text LIKE ?", (f"%{marker}%",)
        ).fetchone()[0]


def _last_run(db: Path) -> str:
    with contextlib.closing(sqlite3.connect(db, timeout=30)) as conn:
        row = conn.execute("SELECT status FROM ingestion_runs ORDER BY id DESC LIMIT 1").fetchone()
    return row[0] if row else "none"


@contextlib.contextmanager
def checkout(ref: str) -> Iterator[Path]:
    """A temporary worktree of ``ref``, removed afterwards."""
    path = Path(tempfile.mkdtemp(prefix="teambot-baseline-"))
    subprocess.run(
        ["git", "worktree", "add", "-q", "--detach", str(path), ref], cwd=ROOT, check=True
    )
    try:
        yield path
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(path)], cwd=ROOT, check=False)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--baseline", help="a git commit to measure in the same run")
    parser.add_argument("--max-mb", type=float, default=3072, help="watchdog: RSS cap (MB)")
    parser.add_argument("--max-seconds", type=float, default=120, help="watchdog: time cap")
    parser.add_argument("--only", help="run only the probes whose name contains this")
    args = parser.parse_args()

    probes = {
        **{f"site: {case}{_size(SITE_SIZES[case])}": site_probe(case) for case in SITE_SIZES},
        **FOLDER_PROBES,
    }
    if args.only:
        probes = {name: p for name, p in probes.items() if args.only in name}
    codes = [("after", dict(os.environ))]
    with contextlib.ExitStack() as stack:
        if args.baseline:
            old = stack.enter_context(checkout(args.baseline))
            codes.insert(0, ("before", {**os.environ, "PYTHONPATH": str(old)}))
        rows = []
        for name, probe in probes.items():
            for label, env in codes:
                print(f"{label}: {name}", file=sys.stderr, flush=True)
                rows.append((name, label, run_probe(probe, env, args.max_mb, args.max_seconds)))

    columns = ["probe", "code", "wall s", "peak RSS MB", "exit", "stopped by watchdog", "run"]
    columns += ["earlier content kept", "leaked"]
    print("| " + " | ".join(columns) + " |")
    print("|" + "---|" * len(columns))
    for name, label, r in rows:
        print(
            f"| {name} | {label} | {r['seconds']:.1f} | {r['peak_mb']:.0f} | {r['exit']} "
            f"| {r['stopped'] or '—'} | {r['run']} | {'yes' if r['kept'] else 'NO'} "
            f"| {'YES' if r['leaked'] else 'no'} |"
        )
    print("\nThe site cases (tests/fakes/hostile.py):")
    for case in SITE_SIZES:
        print(f"- {case}: {CASES[case]}")
    head = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    )
    print(
        f"\n{os.cpu_count()} CPUs, Python {sys.version.split()[0]}, commit {head.stdout.strip()}"
        f"{' vs ' + args.baseline if args.baseline else ''}, {time.strftime('%Y-%m-%d %H:%M')};"
        f" watchdog {args.max_mb:g} MB / {args.max_seconds:g} s"
    )


if __name__ == "__main__":
    main()
