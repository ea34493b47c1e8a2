"""The console in real headless Chromium (Debian's ``chromium``, driven by Playwright), served
by `teambot serve`'s own ASGI app under uvicorn on 127.0.0.1, against the fake model (which
streams) and the fake doc site: sign in with a login link, ask and watch the answer stream in
with linked citations, add a source and watch its refresh finish, and check that every Usage
chart holds drawn data. A screenshot of every page (desktop, and a 375 px phone) goes to
``$TEAMBOT_TEST_OUTPUT`` or ``test-output/console/``."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
import uvicorn
from playwright.sync_api import Browser, Page

from bot import gaps
from bot.admin import Actor, run_admin
from bot.console.app import login_link
from bot.runtime import Runtime
from bot.serve import asgi_app, web_console
from knowledge.embed.embedder import Embedder
from knowledge.storage.conversations import Conversation, LlmUsage, Turn
from knowledge.storage.db import utcnow
from tests.console_setup import console_runtime
from tests.fakes.docsite import DocSite
from tests.fakes.openai_server import FakeOpenAI, Reply
from tests.processes import free_port

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason="needs Debian's chromium at /usr/bin/chromium (.ci/run installs it)",
)
OUTPUT = Path(os.environ.get("TEAMBOT_TEST_OUTPUT") or Path(__file__).parent.parent / "test-output")
SHOTS = OUTPUT / "console"
QUESTION = "Which TCP port does Acme Queue listen on by default?"
REPLY = "By default Acme Queue listens on TCP port 7421 [1]."
HOSTILE = (
    'It is **7421** [1].\n\n<img src=x onerror="window.pwned=1"> <script>window.pwned=2</script> '
    "[run](javascript:window.pwned=3) ![pixel](http://127.0.0.1:9/p.png) [docs](https://a.example/)"
)
WAIT_MS = 30_000
GAP_QUESTIONS = (
    "How do I back up the Acme Queue journal?",
    "What is the way to back up Acme Queue's journal every night?",
    "Is there a dark mode for the dashboard?",
)


@dataclass
class Served:
    runtime: Runtime
    url: str
    site: DocSite
    model: FakeOpenAI


def seed_usage(runtime: Runtime) -> None:
    """A week of questions on two platforms, with latencies, abstentions and tokens."""
    now = utcnow()
    with runtime.sessions.begin() as session:
        for platform in ("slack", "discord"):
            conversation = Conversation(platform=platform, channel="C1", thread="seed")
            session.add(conversation)
            session.flush()
            for day in range(7):
                for n in range(day % 3 + 1):
                    when = now - timedelta(days=day, minutes=n)
                    session.add_all(
                        [
                            Turn(
                                conversation_id=conversation.id,
                                role="user",
                                text=f"q{day}{n}",
                                created_at=when,
                            ),
                            Turn(
                                conversation_id=conversation.id,
                                role="assistant",
                                text="a",
                                latency_ms=300.0 + 150 * n + 20 * day,
                                abstained=n == 1,
                                confidence=0.6,
                                model="local-model",
                                created_at=when,
                            ),
                        ]
                    )
        for day in range(7):
            session.add(
                LlmUsage(
                    day=(now - timedelta(days=day)).date(),
                    provider="local",
                    requests=3,
                    tokens_in=900 + 100 * day,
                    tokens_out=200,
                )
            )


def seed_gaps(runtime: Runtime) -> None:
    """Abstained answers on two topics, for the Gaps page."""
    with runtime.sessions.begin() as session:
        conversation = Conversation(platform="slack", channel="C2", thread="gaps")
        session.add(conversation)
        session.flush()
        for text in GAP_QUESTIONS:
            session.add(Turn(conversation_id=conversation.id, role="user", user_id="U2", text=text))
            answer = Turn(conversation_id=conversation.id, role="assistant", text="…",
                          abstained=True, confidence=0.1)  # fmt: skip
            session.add(answer)
            session.flush()
            gaps.add_gap(session, gaps.ABSTAINED, answer, text, "slack", "C2", [])


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, embedder: Embedder) -> Iterator[Served]:
    tmp = tmp_path_factory.mktemp("console-browser")
    with FakeOpenAI(models=("local-model",)) as model, DocSite.with_default_site() as site:
        model.always(Reply(REPLY, first_token_delay=0.2, token_delay=0.08))
        port = free_port()
        runtime = console_runtime(
            tmp,
            embedder,
            local_llm_base_url=model.base_url,
            local_llm_model="local-model",
            llm_route="local-only",
            TEAMBOT_HOST="127.0.0.1",
            TEAMBOT_PORT=port,
        )
        cli = Actor("cli", "ops")
        run_admin(
            runtime,
            cli,
            [
                "sources",
                "add",
                site.url("/docs/guide/configure.html"),
                "--name",
                "acme-config",
                "--kind",
                "page",
                "--allow-private",
            ],
        )
        assert run_admin(runtime, cli, ["sources", "refresh", "acme-config"]).ok
        seed_usage(runtime)
        seed_gaps(runtime)
        app = asgi_app(None, lambda: (True, {"ok": True}), console=web_console(runtime))
        server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
        )
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        deadline = time.monotonic() + 20
        while not server.started:
            assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
            time.sleep(0.02)
        yield Served(runtime, f"http://127.0.0.1:{port}", site, model)
        server.should_exit = True
        thread.join(timeout=10)
        runtime.close()


@pytest.fixture(scope="module")
def browser(served: Served) -> Iterator[Browser]:
    """Chromium, started once the site is served: Playwright's event loop then owns this
    thread, where the set-up's own asyncio calls could no longer run."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox"]
        )
        yield chromium
        chromium.close()


def shot(page: Page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def signed_in_page(
    browser: Browser, served: Served, width: int = 1280, next_path: str = ""
) -> Page:
    """A new browser page, signed in by clicking a fresh login link's button."""
    context = browser.new_context(viewport={"width": width, "height": 900})
    page = context.new_page()
    page.set_default_timeout(WAIT_MS)
    page.goto(login_link(served.runtime, served.url, "alice", next_path or None))
    shot(page, "login" if width > 400 else "login-phone")
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/console/**")
    return page


def test_sign_in_then_ask_and_watch_the_answer_stream_in_with_citations(
    browser: Browser, served: Served
) -> None:
    page = signed_in_page(browser, served)
    assert "/console/ask?t=" in page.url
    page.get_by_label("Your question").fill(QUESTION)
    page.get_by_role("button", name="Ask").click()
    answer = page.locator(".turn.answer").last
    page.wait_for_function(
        "() => { const a = document.querySelector('.turn.answer.streaming .text');"
        " return a && a.textContent.length > 0; }"
    )  # part of the answer is shown while the rest is still being written
    partial = answer.locator(".text").inner_text()
    assert partial and REPLY.startswith(partial.rstrip()) and len(partial) < len(REPLY)
    link = answer.locator(".citations a").first
    link.wait_for()
    assert answer.locator(".text").inner_text() == REPLY
    assert link.get_attribute("href").startswith(served.site.url("/docs/guide/configure.html"))
    assert "Confidence" in answer.locator(".note").inner_text()
    cite = answer.locator(".text a.cite")
    assert cite.inner_text() == "[1]"
    assert answer.locator(cite.get_attribute("href") + " a").get_attribute(
        "href"
    ) == link.get_attribute("href")
    answer.get_by_role("button", name="Not helpful").click()
    page.get_by_text("Thanks, your feedback is recorded.").wait_for()
    shot(page, "ask")
    page.reload()  # the conversation is kept
    assert page.locator(".turn.question").first.inner_text() == QUESTION
    pressed = page.get_by_role("button", name="Not helpful").get_attribute("aria-pressed")
    assert pressed == "true"
    ask_hostile(page, served)
    filter_questions_by_platform_from_the_keyboard(page, served)
    open_a_gap_topic(page, served)
    page.context.close()


def filter_questions_by_platform_from_the_keyboard(page: Page, served: Served) -> None:
    page.goto(served.url + "/console/questions")
    table = page.locator("table.questions")
    assert QUESTION in table.inner_text()
    shot(page, "questions")
    page.get_by_label("Platform").focus()
    page.keyboard.press("s")  # the first platform that starts with s: slack
    page.keyboard.press("Tab")  # to Channel
    page.keyboard.press("Tab")  # to Filter
    page.keyboard.press("Enter")
    page.wait_for_url("**platform=slack**")
    places = table.locator("tbody td:nth-child(2)").all_inner_texts()
    assert places and all(place.startswith("slack") for place in places), places
    assert QUESTION not in table.inner_text()
    assert page.get_by_label("Platform").input_value() == "slack"


def open_a_gap_topic(page: Page, served: Served) -> None:
    page.goto(served.url + "/console/questions/gaps")
    topic = page.locator("details.topic").filter(has_text="back up").first
    examples = topic.locator(".examples")
    assert not examples.is_visible()
    topic.locator("summary").focus()
    page.keyboard.press("Enter")
    examples.wait_for()
    shown = examples.locator("li").all_inner_texts()
    assert set(GAP_QUESTIONS[:2]) <= set(shown) and GAP_QUESTIONS[2] not in shown, shown
    shot(page, "gaps")


def ask_hostile(page: Page, served: Served) -> None:
    """A hostile answer renders as inert Markdown, streamed and reloaded, and its [1] jumps to
    the page it cites."""
    served.model.script(Reply(HOSTILE))
    page.goto(served.url + "/console/ask?t=hostile")
    page.get_by_label("Your question").fill(QUESTION)
    page.get_by_role("button", name="Ask").click()
    for reloaded in (False, True):
        if reloaded:
            page.reload()
        answer = page.locator(".turn.answer").last
        answer.locator(".citations a").first.wait_for()
        assert answer.locator(".text strong").inner_text() == "7421"
        assert page.evaluate("() => window.pwned") is None
        assert page.locator("#conversation img, #conversation script").count() == 0
        hrefs = answer.locator(".text a").evaluate_all("links => links.map(a => a.href)")
        assert not any(href.startswith("javascript:") for href in hrefs), hrefs
        assert "http://127.0.0.1:9/p.png" in hrefs  # the image is only a link
        answer.locator(".text a.cite").first.click()
        assert page.evaluate("() => document.querySelector('.citations li:target a').href")
    shot(page, "ask-markdown")


def test_add_a_source_and_watch_its_refresh_finish(browser: Browser, served: Served) -> None:
    page = signed_in_page(browser, served, next_path="/console/sources")
    page.get_by_label("Address (site").fill(served.site.url("/docs/index.html"))
    page.get_by_label("Name", exact=True).fill("acme-docs")
    page.get_by_label("Never URLs matching").fill("/private/")
    page.get_by_label("Allow private and loopback addresses").check()
    page.get_by_role("button", name="Add source").click()
    page.get_by_text("Added. Refresh it now").wait_for()
    for slow in ("/docs/guide/install.html", "/docs/guide/backups.html"):
        served.site.set_delay(slow, 1.0)  # a refresh long enough to watch it run
    page.evaluate(
        """() => { window.seen = []; new MutationObserver(() => window.seen.push(
            document.getElementById('refresh-status').textContent)).observe(
            document.getElementById('refresh-status'), {childList: true}); }"""
    )
    page.get_by_role("button", name="Refresh now").click()
    status = page.locator("#refresh-status")
    page.wait_for_selector("#refresh-status[data-state='done']", timeout=60_000)
    seen = page.evaluate("() => window.seen")
    assert any("pages indexed so far" in line for line in seen), seen
    assert "refreshed it here" in status.inner_text() and "new" in status.inner_text()
    first_run = page.locator("#runs tbody tr").first
    assert first_run.locator(".badge").inner_text() in ("ok", "partial")
    assert int(first_run.locator("td").nth(2).inner_text()) >= 4
    shot(page, "source")
    first_run.locator("a").click()
    page.get_by_role("heading", name="Errors").wait_for()
    shot(page, "run")
    page.goto(served.url + "/console/sources")
    assert "acme-docs" in page.locator("table").inner_text()
    shot(page, "sources")
    page.get_by_role("link", name="acme-docs").click()
    page.get_by_role("link", name="Remove this source…").click()
    shot(page, "remove")
    page.get_by_role("button", name="Remove acme-docs").click()
    page.get_by_text("Removed source 'acme-docs'").wait_for()
    assert "acme-docs" not in page.locator("table").inner_text()
    page.context.close()


def test_usage_charts_hold_drawn_data(browser: Browser, served: Served) -> None:
    page = signed_in_page(browser, served, next_path="/console/usage")
    charts = page.locator("figure.chart svg")
    assert charts.count() == 4
    drawn = page.evaluate(
        """() => [...document.querySelectorAll('figure.chart svg')].map(svg => [...svg
            .querySelectorAll('rect, path, polyline, circle, line')]
            .filter(mark => mark.querySelector(':scope > title'))
            .filter(mark => { const box = mark.getBBox(); return box.width + box.height > 0; })
            .length)"""
    )
    assert all(count > 0 for count in drawn), drawn
    assert "No data yet" not in page.locator(".charts").inner_text()
    shot(page, "usage")
    page.goto(served.url + "/console/models")
    assert "local" in page.locator(".health").inner_text()
    audit = page.locator("table").last
    assert "sources add" in audit.inner_text()
    shot(page, "models")
    page.get_by_label("Command").fill("refresh")
    page.get_by_label("Command").press("Enter")  # filters the audit log
    page.wait_for_url("**command=refresh**")
    commands = audit.locator("tbody td:nth-child(3)").all_inner_texts()
    assert commands and all("sources refresh" in c for c in commands), commands
    assert page.get_by_label("Command").input_value() == "refresh"
    page.context.close()


def test_pages_fit_a_phone_and_work_from_the_keyboard(browser: Browser, served: Served) -> None:
    page = signed_in_page(browser, served, width=375)
    for name in ("ask", "sources", "questions", "questions/gaps", "usage", "models"):
        page.goto(f"{served.url}/console/{name}")
        if name == "questions/gaps":
            page.locator("details.topic summary").first.click()
        overflow = page.evaluate("() => document.documentElement.scrollWidth")
        assert overflow <= 375, (name, overflow)
        shot(page, f"{name.replace('/', '-')}-phone")
    page.goto(served.url + "/console/ask")
    page.keyboard.press("Tab")  # the skip link comes first
    assert page.evaluate("() => document.activeElement.textContent") == "Skip to content"
    unlabelled = page.evaluate(
        """() => [...document.querySelectorAll('input:not([type=hidden]), select, textarea')]
            .filter(el => !(el.labels && el.labels.length) && !el.getAttribute('aria-label'))
            .map(el => el.name)"""
    )
    assert unlabelled == []
    page.context.close()
