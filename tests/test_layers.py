"""The layers point one way (DESIGN.md, Layout): each rule names a part of the tree and the
packages it must never import, at module level or inside a function alike.

    composition root (bot.cli, bot.serve, and
      bot.runtime, which wires the pieces)      sees everything
    adapters (bot.slack, bot.discord,           never each other, never the composition root
      bot.console, the web console)
    core (the rest of bot/)                     never the adapters or the composition root
    delivery (bot.delivery)                     storage only
    workers/                                    never bot/
    knowledge/                                  never bot/ or workers/
    storage (knowledge.storage)                 nothing above it: only knowledge.errors and
                                                knowledge.types, the leaves every layer shares
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ADAPTERS = ("bot.slack", "bot.discord", "bot.console")
COMPOSITION_ROOT = ("bot.cli", "bot.cli_llm", "bot.cli_console", "bot.cli_tune", "bot.serve",
                    "bot.runtime")  # fmt: skip
LEAVES = ("knowledge.errors", "knowledge.types")
STORAGE = "knowledge.storage"
# (modules the rule is about, what they must not import, modules exempt from the rule,
#  imports allowed although they fall under a forbidden prefix)
RULES = [
    (("knowledge",), ("bot", "workers"), (), ()),
    ((STORAGE,), ("knowledge", "bot", "workers"), (), (STORAGE, *LEAVES)),
    (("workers",), ("bot",), (), ()),
    (("bot.slack",), ("bot.discord", *COMPOSITION_ROOT), (), ()),
    (("bot.discord",), ("bot.slack", *COMPOSITION_ROOT), (), ()),
    (("bot.console",), ("bot.slack", "bot.discord", *COMPOSITION_ROOT), (), ()),
    (("bot",), (*ADAPTERS, *COMPOSITION_ROOT), (*ADAPTERS, *COMPOSITION_ROOT), ()),
    (("bot.delivery",), ("bot", "knowledge", "workers"), (), ("bot.delivery", STORAGE, *LEAVES)),
]


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(source: str, module: str) -> set[str]:
    """Every module ``source`` (the text of ``module``) imports, relative imports resolved."""
    names: set[str] = set()
    package = module.rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def within(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def violations(modules: dict[str, str]) -> list[str]:
    """``module imports forbidden`` for every rule broken by ``modules`` (name → source)."""
    found = []
    for name, source in sorted(modules.items()):
        for about, forbidden, exempt, allowed in RULES:
            if not within(name, about) or within(name, exempt):
                continue
            for target in sorted(imported(source, name)):
                if within(target, forbidden) and not within(target, allowed):
                    found.append(f"{name} imports {target}")
    return found


def project_modules() -> dict[str, str]:
    return {
        module_name(path): path.read_text()
        for package in ("bot", "knowledge", "workers")
        for path in (ROOT / package).rglob("*.py")
    }


def test_the_layers_point_one_way() -> None:
    assert violations(project_modules()) == []


@pytest.mark.parametrize(
    ("module", "source"),
    [
        ("knowledge.crawl.crawler", "from bot.settings import Settings"),
        ("knowledge.storage.store", "def f():\n    import workers.jobs"),
        ("knowledge.storage.lease", "from knowledge.ingest.sources import add_source"),
        ("knowledge.storage.db", "from knowledge.retrieval import search"),
        ("workers.scheduler", "from bot import render"),
        ("bot.slack.app", "from bot.discord.render import split"),
        ("bot.core", "from bot.slack import render"),
        ("bot.admin.commands", "from ..serve import serve"),
        ("bot.delivery.replica", "from bot.runtime import Runtime"),
        ("bot.delivery.inbox", "from bot.core import Assistant"),
        ("bot.delivery.inbox", "from knowledge.retrieval.search import Retriever"),
        ("bot.slack.app", "from bot.runtime import Runtime"),
        ("bot.discord.app", "from ..serve import serve"),
        ("bot.console.ask", "from bot.runtime import Runtime"),
        ("bot.console.sources", "from bot.slack.render import answer_blocks"),
        ("bot.gaps", "from bot.console.web import render"),
    ],
)
def test_a_forbidden_import_is_found(module: str, source: str) -> None:
    assert violations({**project_modules(), module: source}) != []
