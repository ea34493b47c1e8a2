"""The Ask page's answers as Markdown: a hostile answer from the (fake) model — scripts, raw
HTML, ``javascript:`` and ``data:`` links, images, a reference that tries to take over a
citation marker, an answer of hundreds of kilobytes — comes out inert both in the streamed
``answer`` event and in the kept conversation reloaded, the same HTML in both, with each
``[n]`` linked to its listed page."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from bot.console.answer_html import MAX_CHARS, OPEN_APART, answer_html
from bot.runtime import Runtime
from knowledge.embed.embedder import Embedder
from tests.console_setup import corpus_runtime, csrf, signed_in
from tests.fakes.openai_server import FakeOpenAI, Reply

QUESTION = "Which port does Zephyr listen on?"
HOSTILE = (
    "Zephyr listens on port **8731** [1].\n\n"
    '<script>alert("x")</script> <img src=x onerror=alert(1)> '
    '<a href="javascript:alert(2)">raw</a>\n\n'
    "[click](javascript:alert(1)) [data](data:text/html,<script>alert(3)</script>) "
    "[here](/console/sources) [Zephyr docs](https://zephyr.example/docs) "
    "![tracker](http://127.0.0.1:9/pixel.png)\n\n"
    "[1]: https://evil.example/\n"
)
SAFE_SCHEMES = ("http://", "https://", "mailto:")


class Tags(HTMLParser):
    """Every start tag of a fragment with its attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[tuple[str, dict[str, str]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.found.append((tag, {name: value or "" for name, value in attrs}))


def tags(html: str) -> list[tuple[str, dict[str, str]]]:
    parser = Tags()
    parser.feed(html)
    return parser.found


def live_parts(html: str) -> list[str]:
    """What in ``html`` could run, load or navigate somewhere unsafe ([] when inert)."""
    found = []
    for tag, attrs in tags(html):
        if tag in ("script", "img", "iframe", "object", "embed", "style", "link", "form"):
            found.append(tag)
        found += [f"{tag} {name}" for name in attrs if name.startswith("on") or name == "src"]
        href = attrs.get("href") or ""
        opens_apart = href.startswith(SAFE_SCHEMES) and attrs.get("rel") == "noopener noreferrer"
        is_citation = attrs.get("class") == "cite" and href.startswith("#cite-")
        if tag == "a" and not (opens_apart or is_citation):
            found.append(f"a href={href!r} rel={attrs.get('rel')!r}")
    return found


@pytest.fixture
def runtime(tmp_path: Path, embedder: Embedder, model: FakeOpenAI) -> Iterator[Runtime]:
    runtime = corpus_runtime(tmp_path, embedder, model.base_url)
    yield runtime
    runtime.close()


def asked(client: TestClient, token: str, thread: str) -> dict:
    """The final ``answer`` event of a question streamed on ``thread``."""
    response = client.post(
        "/console/ask/stream",
        headers={"x-csrf-token": token},
        json={"question": QUESTION, "thread": thread},
    )
    kind, data = re.findall(r"event: (\w+)\ndata: (.*)\n\n", response.text)[-1]
    assert kind == "answer", data
    return json.loads(data)


def test_a_hostile_answer_is_inert_streamed_and_reloaded(
    runtime: Runtime, model: FakeOpenAI
) -> None:
    model.always(Reply(HOSTILE, token_delay=0.0))
    client = signed_in(runtime)
    answer = asked(client, csrf(client), "hostile")
    html = answer["html"]
    assert "<script>" in answer["text"]  # the core keeps the text; only the page defuses it
    assert live_parts(html) == [], html
    assert "<strong>8731</strong>" in html
    assert "&lt;script&gt;" in html and "&lt;img src=x onerror" in html
    links = {a.get("href"): a for tag, a in tags(html) if tag == "a"}
    anchor = answer["citations"][0]["anchor"]
    assert links["#" + anchor]["class"] == "cite"  # [1] goes to its page, not evil.example
    assert "https://evil.example/" not in links and "javascript:alert(1)" not in links
    assert links["https://zephyr.example/docs"]["target"] == "_blank"
    assert links["http://127.0.0.1:9/pixel.png"]  # the image is a link, never loaded
    page = client.get("/console/ask?t=hostile")
    assert html in page.text  # the reload shows the very same HTML
    assert f'id="{anchor}"' in page.text
    assert live_parts(page.text.split('id="conversation"')[1].split("</section>")[0]) == []


def test_a_huge_answer_is_cut_and_stays_quick(runtime: Runtime, model: FakeOpenAI) -> None:
    model.always(Reply("[1] " + "[a](" * 20_000 + "<b>" * 20_000, token_delay=0.0))
    client = signed_in(runtime)
    token = csrf(client)
    started = time.monotonic()
    answer = asked(client, token, "huge")
    page = client.get("/console/ask?t=huge")
    assert time.monotonic() - started < 10
    assert len(answer["text"]) > 100_000 and len(answer["html"]) < 4 * MAX_CHARS
    assert "cut here" in answer["html"] and "<b>" not in answer["html"]
    assert answer["html"] in page.text


@pytest.mark.parametrize(
    "text",
    [
        "[x](javascript:alert(1))",
        "[x](JAVASCRIPT:alert(1))",
        "[x]( javascript:alert(1))",
        "[x](vbscript:msgbox)",
        "[x](data:text/html;base64,PHNjcmlwdD4=)",
        "[x](file:///etc/passwd)",
        "<javascript:alert(1)>",
        '[x](http://a.example "t" onclick="alert(1)")',
        '<div onclick="alert(1)">x</div>',
        "<iframe src=https://a.example></iframe>",
        "![x](https://a.example/p.png)",
        "[x]: javascript:alert(1)\n\n[x]",
    ],
)
def test_markdown_tricks_stay_inert(text: str) -> None:
    html = answer_html(text, {1: "cite-1-1"})
    assert live_parts(html) == [], html


def test_markers_link_to_listed_pages_only() -> None:
    anchors = {1: "cite-7-1", 2: "cite-7-2"}
    links = [
        (a.get("href"), a.get("class"))
        for text in ("Port [1][2], not [3].", "[1](https://evil.example/)", "`[2]`")
        for tag, a in tags(answer_html(text, anchors))
        if tag == "a"
    ]
    assert links == [("#cite-7-1", "cite"), ("#cite-7-2", "cite"), ("#cite-7-1", "cite")]
    inside = tags(answer_html("[the guide [1]](https://docs.example/)", anchors))
    assert inside == [("p", {}), ("a", {**OPEN_APART, "href": "https://docs.example/"})]
