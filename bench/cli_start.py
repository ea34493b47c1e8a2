"""How fast the `teambot` command starts: wall time and peak memory beside bare Python and typer.

    python -m bench.cli_start                          # this checkout
    python -m bench.cli_start --baseline ../wt-base    # ... and another checkout, side by side

Every row runs in a fresh process, ROUNDS times (the median is shown), with PYTHONPATH
set to the checkout it is measured for (so an editable install pointing elsewhere does
not matter). With --baseline, the two checkouts take turns within each
round, so both see the same machine load. `teambot ask` runs on a demo database that
`teambot demo` builds first in a temporary folder; no language model is configured, so
its answer is extractive: the time is teambot's own. Each checkout builds its own demo
database, so one whose schema is newer does not stop the other.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.measure import measure

ROOT = Path(__file__).resolve().parent.parent
TEAMBOT = str(Path(sys.executable).parent / "teambot")
ROUNDS = 5
QUESTION = "How do I use PostgreSQL instead of SQLite?"
HELP, TYPER = "teambot --help", 'python -c "import typer"'
# Settings that would send `ask` to a language model, blanked so that it answers extractively.
NO_LLM = {"OPENAI_API_KEY": "", "LOCAL_LLM_BASE_URL": ""}
CASES: list[tuple[str, list[str], dict[str, str]]] = [
    ("python -c pass", [sys.executable, "-c", "pass"], {}),
    (TYPER, [sys.executable, "-c", "import typer"], {}),
    (HELP, [TEAMBOT, "--help"], {}),
    ("teambot ask --help", [TEAMBOT, "ask", "--help"], {}),
    ("teambot config", [TEAMBOT, "config"], {}),
    ("teambot ask (torch)", [TEAMBOT, "ask", QUESTION], {"EMBEDDING_BACKEND": "torch"}),
    (
        "teambot ask (onnx-int8, the default)",
        [TEAMBOT, "ask", QUESTION],
        {"EMBEDDING_BACKEND": "onnx-int8"},
    ),
    ("teambot sources list", [TEAMBOT, "sources", "list"], {}),
]

Medians = dict[str, tuple[float, float]]  # case → (seconds, peak MB)


def build_demo(folder: Path, env: dict[str, str]) -> None:
    """`teambot demo` in ``folder``: the guide ingested (and the ONNX export made, if new)."""
    done = subprocess.run([TEAMBOT, "demo"], cwd=folder, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"`teambot demo` failed, so there is nothing to ask:\n{done.stderr}")


def run_rounds(trees: dict[str, Path], folders: dict[str, Path], env: dict[str, str]
               ) -> dict[str, Medians]:  # fmt: skip
    """Each case ROUNDS times for each tree (in its own folder and database), the trees
    taking turns; medians per tree."""
    samples: dict[str, dict[str, list[dict[str, float]]]] = {
        tree: {name: [] for name, _, _ in CASES} for tree in trees
    }
    for round_number in range(1, ROUNDS + 1):
        print(f"round {round_number}/{ROUNDS}", file=sys.stderr)
        for name, command, extra in CASES:
            for tree, path in trees.items():
                database = {"DATABASE_URL": f"sqlite:///{folders[tree]}/teambot.db"}
                result = measure(command, folders[tree],
                                 {**env, **database, **extra, "PYTHONPATH": str(path)})  # fmt: skip
                if result["exit"] != 0:
                    sys.exit(f"{name} failed on {tree} ({path}) with exit code {result['exit']}")
                samples[tree][name].append(result)
    return {
        tree: {
            name: (
                statistics.median(r["seconds"] for r in runs),
                statistics.median(r["peak_mb"] for r in runs),
            )
            for name, runs in cases.items()
        }
        for tree, cases in samples.items()
    }


def table(medians: dict[str, Medians]) -> str:
    """One row per command, two columns (seconds, MB) per tree, then the --help ratio."""
    trees = list(medians)
    header = "| command | " + " | ".join(f"{t} s | {t} peak MB" for t in trees) + " |"
    lines = [header, "|---|" + "---:|---:|" * len(trees)]
    for name, _, _ in CASES:
        cells = " | ".join(f"{medians[t][name][0]:.2f} | {medians[t][name][1]:.0f}" for t in trees)
        lines.append(f"| {name} | {cells} |")
    ratios = "".join(f" {medians[t][HELP][0] / medians[t][TYPER][0]:.1f}× | |" for t in trees)
    lines.append(f"| `--help` ÷ `import typer` |{ratios}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument(
        "--baseline", type=Path, help="another checkout of teambot to measure beside this one"
    )
    args = parser.parse_args()
    trees = {"this": ROOT}
    if args.baseline:
        trees = {"baseline": args.baseline.resolve(), **trees}
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, **NO_LLM}
        folders = {tree: Path(tmp, tree) for tree in trees}
        for tree, path in trees.items():
            folders[tree].mkdir()
            database = f"sqlite:///{folders[tree]}/teambot.db"
            build_demo(folders[tree], {**env, "DATABASE_URL": database, "PYTHONPATH": str(path)})
        medians = run_rounds(trees, folders, env)
    print(f"Median of {ROUNDS} runs each ({os.cpu_count()} cores).\n")
    print(table(medians))


if __name__ == "__main__":
    main()
