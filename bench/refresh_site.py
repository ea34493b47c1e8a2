"""First ingest and no-change refresh of a real doc site served on 127.0.0.1.

    python -m bench.refresh_site                      # Django 3.2 docs (see shared/eval)
    python -m bench.refresh_site --root DIR --port N  # any static site folder

Serves ROOT with `python -m http.server`, registers it as a site source in a
fresh SQLite database, and runs `teambot refresh --json` twice: the first
run indexes everything, the second should fetch nothing new (HTTP 304 or
unchanged hashes) and embed nothing. Prints time and peak memory per run and
the time per stage (fetch is the crawl's wall time; it overlaps the others).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from bench.measure import measure

TEAMBOT = str(Path(sys.executable).parent / "teambot")
DJANGO_DOCS = "/usr/share/doc/python-django-doc/html"
# Not content: sources, static files, indexes, release notes (see shared/eval/README.md).
DJANGO_EXCLUDES = [r"/_(modules|static|sources|images)/", r"/genindex", r"/py-modindex",
                   r"/search\.html", r"/releases/", r"/contents\.html"]  # fmt: skip
STAGES = ("fetch", "extract", "chunk", "embed", "store", "total")


def serve(root: str, port: int) -> subprocess.Popen[bytes]:
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "http.server",
            str(port),
            "--bind",
            "127.0.0.1",
            "--directory",
            root,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for _ in range(50):
        try:
            httpx.get(f"http://127.0.0.1:{port}/", timeout=1)
            return server
        except httpx.HTTPError:
            time.sleep(0.1)
    server.kill()
    raise SystemExit(f"the static server on port {port} did not start")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--root", default=DJANGO_DOCS, help="folder of the static site")
    parser.add_argument("--port", type=int, default=8765)
    args = parser.parse_args()
    if not Path(args.root).is_dir():
        raise SystemExit(
            f"{args.root} is missing; for the Django docs: "
            "apt-get install -y --no-install-recommends python-django-doc"
        )
    server = serve(args.root, args.port)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            env = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp}/teambot.db"}
            add = [TEAMBOT, "sources", "add", f"http://127.0.0.1:{args.port}/", "--name", "site",
                   "--allow-private", "--max-pages", "5000"]  # fmt: skip
            for pattern in DJANGO_EXCLUDES if args.root == DJANGO_DOCS else []:
                add += ["--exclude", pattern]
            subprocess.run(add, env=env, check=True, stdout=subprocess.DEVNULL)
            rows = []
            for label in ("first ingest", "refresh, nothing changed"):
                out = Path(tmp, "out.json")
                result = measure([TEAMBOT, "refresh", "site", "--json"], Path(tmp), env, out)
                rows.append((label, result, json.loads(out.read_text())))
    finally:
        server.terminate()
    print(
        "| run | wall s | peak RSS MB | pages seen | fetched | unchanged | new | chunks embedded |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for label, r, j in rows:
        print(f"| {label} | {r['seconds']:.1f} | {r['peak_mb']:.0f} | {j['pages_seen']} | "
              f"{j['pages_fetched']} | {j['pages_unchanged']} | {j['pages_new']} | "
              f"{j['chunks_embedded']} |")  # fmt: skip
    print("\n| run | " + " | ".join(f"{s} s" for s in STAGES) + " |")
    print("|---|" + "---|" * len(STAGES))
    for label, _, j in rows:
        print(f"| {label} | " + " | ".join(f"{j['timings'].get(s, 0):.1f}" for s in STAGES) + " |")
    first, second = rows[0][1]["seconds"], rows[1][1]["seconds"]
    print(f"\nno-change refresh / first ingest: {100 * second / first:.1f}% of the wall time")
    print(
        f"{os.cpu_count()} CPUs, Python {sys.version.split()[0]}, {time.strftime('%Y-%m-%d %H:%M')}"
    )


if __name__ == "__main__":
    main()
