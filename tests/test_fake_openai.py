"""Tests for tests/fakes/openai_server.py, driven by the real ``openai`` client.

They also pin down what the SDK raises for each fault the fake can play, which is what the bot's
LLM code has to handle: RateLimitError, InternalServerError, a bare json.JSONDecodeError (not an
OpenAIError), APIConnectionError, APITimeoutError and AuthenticationError.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import openai
import pytest

from tests.fakes.openai_server import (
    DEFAULT_TEXT,
    DropMidStream,
    Echo,
    FakeOpenAI,
    Hang,
    Malformed,
    Reply,
    Respond,
    Status,
)

MODEL = "fake-model"
MESSAGES: list[Any] = [
    {"role": "system", "content": "Answer from the docs only."},  # 5 words
    {"role": "user", "content": "How do I restart a node?"},  # 6 words
]
PROMPT_WORDS = 11


@pytest.fixture(scope="module")
def http_client() -> Iterator[openai.DefaultHttpxClient]:
    """One connection pool for the module: each new one costs ~0.15 s of TLS setup."""
    with openai.DefaultHttpxClient(trust_env=False) as http:  # trust_env: never via a proxy
        yield http


@pytest.fixture
def sdk(http_client: openai.DefaultHttpxClient) -> Callable[..., openai.OpenAI]:
    """Makes a real client for a fake: ``sdk(fake, api_key="x", timeout=5.0)``."""

    def make(fake: FakeOpenAI, *, api_key: str = "x", timeout: float = 5.0) -> openai.OpenAI:
        return openai.OpenAI(
            base_url=fake.base_url,
            api_key=api_key,
            max_retries=0,
            timeout=timeout,
            http_client=http_client,
        )

    return make


@pytest.fixture
def fake() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as running:
        yield running


@pytest.fixture
def client(fake: FakeOpenAI, sdk: Callable[..., openai.OpenAI]) -> openai.OpenAI:
    return sdk(fake)


def _ask(client: openai.OpenAI, **options: Any) -> Any:
    return client.chat.completions.create(model=MODEL, messages=MESSAGES, **options)


# -- answers ---------------------------------------------------------------------------------


def test_base_url_is_local_v1(fake: FakeOpenAI) -> None:
    assert fake.base_url.startswith("http://127.0.0.1:")
    assert fake.base_url.endswith("/v1")


def test_reply_has_content_model_and_usage(fake: FakeOpenAI, client: openai.OpenAI) -> None:
    fake.script(Reply("Run acmeq restart [1]."))
    answer = _ask(client)
    assert answer.object == "chat.completion"
    assert answer.id.startswith("chatcmpl-")
    assert answer.model == MODEL
    choice = answer.choices[0]
    assert choice.message.role == "assistant"
    assert choice.message.content == "Run acmeq restart [1]."
    assert choice.finish_reason == "stop"
    assert answer.usage is not None
    assert answer.usage.prompt_tokens == PROMPT_WORDS
    assert answer.usage.completion_tokens == 4
    assert answer.usage.total_tokens == PROMPT_WORDS + 4


def test_stream_deltas_join_to_the_text_and_end_with_usage(
    fake: FakeOpenAI, client: openai.OpenAI
) -> None:
    text = "Stop the node, then start it again [2]."
    fake.script(Reply(text))
    chunks = list(_ask(client, stream=True, stream_options={"include_usage": True}))
    deltas = [
        c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content
    ]
    assert len(deltas) == len(text.split())  # one delta per word, spaces kept
    assert "".join(deltas) == text
    assert chunks[0].choices[0].delta.role == "assistant"
    assert {c.object for c in chunks} == {"chat.completion.chunk"}
    assert len({c.id for c in chunks}) == 1
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert chunks[-1].choices == []
    usage = chunks[-1].usage
    assert usage is not None
    assert (usage.prompt_tokens, usage.completion_tokens) == (PROMPT_WORDS, len(text.split()))


def test_stream_without_include_usage_has_no_usage_chunk(
    fake: FakeOpenAI, client: openai.OpenAI
) -> None:
    chunks = list(_ask(client, stream=True))
    assert all(c.choices and c.usage is None for c in chunks)
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == DEFAULT_TEXT


def test_stream_is_server_sent_events_ending_in_done(fake: FakeOpenAI) -> None:
    with (
        httpx.Client(base_url=fake.base_url, trust_env=False, timeout=5.0) as http,
        http.stream("POST", "/chat/completions", json={"messages": [], "stream": True}) as sse,
    ):
        assert sse.headers["content-type"].startswith("text/event-stream")
        events = [line for line in sse.iter_lines() if line]
    assert all(line.startswith("data: ") for line in events)
    assert events[-1] == "data: [DONE]"
    assert json.loads(events[0].removeprefix("data: "))["model"] == MODEL  # none asked: the first


def test_models_list_names_the_configured_models(sdk: Callable[..., openai.OpenAI]) -> None:
    with FakeOpenAI(models=("small", "large")) as fake:
        client = sdk(fake)
        assert [model.id for model in client.models.list()] == ["small", "large"]
        assert client.models.retrieve("large").id == "large"
        with pytest.raises(openai.NotFoundError):
            client.models.retrieve("missing")


def test_respond_and_echo_answer_from_the_request(fake: FakeOpenAI, client: openai.OpenAI) -> None:
    fake.script(
        Respond(lambda body: f"{len(body['messages'])} messages [1]."),
        Echo(),
        Respond(lambda body: 1 / 0),  # type: ignore[arg-type, return-value]
    )
    assert _ask(client).choices[0].message.content == "2 messages [1]."
    assert _ask(client).choices[0].message.content == "How do I restart a node?"
    with pytest.raises(openai.InternalServerError, match="ZeroDivisionError"):
        _ask(client)


# -- scripting and recording -----------------------------------------------------------------


def test_script_is_used_in_order_then_the_default(fake: FakeOpenAI, client: openai.OpenAI) -> None:
    fake.script(Reply("one"), Status(500))
    fake.script(Reply("two"))
    assert fake.pending == 3
    assert _ask(client).choices[0].message.content == "one"
    with pytest.raises(openai.InternalServerError):
        _ask(client)
    assert _ask(client).choices[0].message.content == "two"
    assert fake.pending == 0
    assert _ask(client).choices[0].message.content == DEFAULT_TEXT
    fake.always(Reply("always this"))
    assert [_ask(client).choices[0].message.content for _ in range(2)] == ["always this"] * 2


def test_models_requests_do_not_use_up_steps(fake: FakeOpenAI, client: openai.OpenAI) -> None:
    fake.script(Reply("scripted"))
    client.models.list()
    assert _ask(client).choices[0].message.content == "scripted"


def test_requests_are_recorded_with_their_bodies(fake: FakeOpenAI, client: openai.OpenAI) -> None:
    before = time.monotonic()
    _ask(client, temperature=0.2)
    client.models.list()
    first, second = fake.requests
    assert (first.method, first.path) == ("POST", "/v1/chat/completions")
    assert first.headers["authorization"] == "Bearer x"
    assert first.headers["content-type"] == "application/json"
    assert first.json is not None
    assert first.json["messages"] == MESSAGES
    assert first.json["temperature"] == 0.2
    assert before <= first.received_at <= second.received_at
    assert (second.method, second.path, second.json) == ("GET", "/v1/models", None)
    assert fake.chat_requests() == [first.json]


def test_reset_forgets_script_and_requests(fake: FakeOpenAI, client: openai.OpenAI) -> None:
    _ask(client)
    fake.script(Reply("never used"))
    fake.reset()
    assert fake.requests == []
    assert fake.pending == 0
    assert _ask(client).choices[0].message.content == DEFAULT_TEXT


def test_bad_requests_get_openai_errors(fake: FakeOpenAI) -> None:
    with httpx.Client(base_url=fake.base_url, trust_env=False, timeout=5.0) as http:
        no_messages = http.post("/chat/completions", json={"model": MODEL})
        not_json = http.post("/chat/completions", content=b"{", headers={"content-type": "x"})
        unknown = http.get("/engines")
    assert no_messages.status_code == not_json.status_code == 400
    assert no_messages.json()["error"]["type"] == "invalid_request_error"
    assert unknown.status_code == 404
    assert "Invalid URL" in unknown.json()["error"]["message"]


# -- faults and what the SDK raises ----------------------------------------------------------


def test_429_is_a_rate_limit_error_carrying_retry_after(
    fake: FakeOpenAI, client: openai.OpenAI
) -> None:
    fake.script(Status(429, retry_after=7))
    with pytest.raises(openai.RateLimitError) as caught:
        _ask(client)
    assert caught.value.status_code == 429
    assert caught.value.response.headers["retry-after"] == "7"
    assert caught.value.code == "rate_limit_exceeded"


@pytest.mark.parametrize("status", [500, 503])
def test_5xx_is_an_internal_server_error(
    fake: FakeOpenAI, client: openai.OpenAI, status: int
) -> None:
    fake.script(Status(status, "the GPUs are on fire"))
    with pytest.raises(openai.InternalServerError, match="the GPUs are on fire") as caught:
        _ask(client)
    assert caught.value.status_code == status
    assert caught.value.type == "server_error"


def test_status_with_a_dict_body_sends_it_as_is(fake: FakeOpenAI, client: openai.OpenAI) -> None:
    error = {"message": "context too long", "type": "invalid_request_error", "code": "ctx"}
    fake.script(Status(400, {"error": error}))
    with pytest.raises(openai.BadRequestError) as caught:
        _ask(client)
    assert caught.value.code == "ctx"


def test_errors_answer_stream_requests_with_json_too(
    fake: FakeOpenAI, client: openai.OpenAI
) -> None:
    fake.script(Status(503))
    with pytest.raises(openai.InternalServerError):
        _ask(client, stream=True)


@pytest.mark.parametrize("stream", [False, True])
def test_malformed_body_raises_a_bare_json_decode_error(
    fake: FakeOpenAI, client: openai.OpenAI, stream: bool
) -> None:
    # The SDK does not wrap this one in an OpenAIError: callers must catch ValueError too.
    fake.script(Malformed())
    with pytest.raises(json.JSONDecodeError):
        result = _ask(client, stream=stream)
        if stream:
            list(result)


def test_drop_mid_stream_raises_after_the_first_deltas(
    fake: FakeOpenAI, client: openai.OpenAI
) -> None:
    fake.script(DropMidStream("one two three four five", after_deltas=2))
    received: list[str] = []
    with pytest.raises(openai.APIConnectionError) as caught:
        for chunk in _ask(client, stream=True):
            received.append(chunk.choices[0].delta.content or "")
    assert received == ["one ", "two "]
    assert not isinstance(caught.value, openai.APITimeoutError)
    assert "incomplete chunked read" in str(caught.value.__cause__)


def test_drop_mid_body_raises_a_connection_error(fake: FakeOpenAI, client: openai.OpenAI) -> None:
    fake.script(DropMidStream("one two three"))
    with pytest.raises(openai.APIConnectionError) as caught:
        _ask(client)
    assert "peer closed connection" in str(caught.value.__cause__)


@pytest.mark.parametrize("stream", [False, True])
def test_hang_times_out_and_the_fake_still_stops_promptly(
    sdk: Callable[..., openai.OpenAI], stream: bool
) -> None:
    fake = FakeOpenAI(default=Hang()).start()
    try:
        client = sdk(fake, timeout=0.5)
        started = time.monotonic()
        with pytest.raises(openai.APITimeoutError):
            _ask(client, stream=stream)
        assert time.monotonic() - started >= 0.5
        assert len(fake.chat_requests()) == 1  # recorded although never answered
    finally:
        stopping = time.monotonic()
        fake.stop()
    assert time.monotonic() - stopping < 2.0


def test_stop_cuts_a_slow_stream_short(sdk: Callable[..., openai.OpenAI]) -> None:
    fake = FakeOpenAI(default=Reply("never sent", first_token_delay=30)).start()
    try:
        stream = _ask(sdk(fake), stream=True)  # the headers arrive at once
        stopping = time.monotonic()
        fake.stop()
        assert time.monotonic() - stopping < 2.0
        with pytest.raises(openai.APIConnectionError):
            list(stream)
    finally:
        fake.stop()


def test_first_token_delay_is_honoured(fake: FakeOpenAI, client: openai.OpenAI) -> None:
    fake.script(Reply("slow answer", first_token_delay=0.3))
    started = time.monotonic()
    assert _ask(client).choices[0].message.content == "slow answer"
    assert time.monotonic() - started >= 0.3
    assert fake.requests[-1].received_at - started < 0.25  # recorded before the delay

    fake.script(Reply("slow stream of words", first_token_delay=0.3, token_delay=0.05))
    started = time.monotonic()
    stream = _ask(client, stream=True)
    first = next(iter(stream))
    first_at = time.monotonic() - started
    rest = list(stream)
    assert first_at >= 0.3
    assert first.choices[0].delta.content == "slow "
    assert time.monotonic() - started >= 0.3 + 3 * 0.05
    assert len(rest) == 4  # three more deltas, then the finish chunk


# -- authentication --------------------------------------------------------------------------


def test_api_key_check_rejects_a_wrong_key_without_using_a_step(
    sdk: Callable[..., openai.OpenAI],
) -> None:
    with FakeOpenAI(api_key="right") as fake:
        fake.script(Reply("for the right key"))
        bad = sdk(fake, api_key="wrong")
        with pytest.raises(openai.AuthenticationError) as caught:
            _ask(bad)
        assert caught.value.status_code == 401
        assert caught.value.code == "invalid_api_key"
        with pytest.raises(openai.AuthenticationError):
            bad.models.list()
        assert _ask(sdk(fake, api_key="right")).choices[0].message.content == "for the right key"
        assert len(fake.requests) == 3
