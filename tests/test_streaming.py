"""relay(): throttled edits of a growing answer, kept within one message, withdrawn on restart."""

from __future__ import annotations

from bot.streaming import RESTART_NOTICE, TYPING_MARK, relay
from bot.types import Answer, Delta, Restart

FINAL = Answer(text="done", citations=[], model="m", timings={}, conversation_id=1)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_edits_are_throttled_trimmed_and_restarts_withdraw_the_text() -> None:
    clock, shown = Clock(), []

    def events():
        yield Delta("a" * 30)  # first edit at once
        clock.now = 0.5
        yield Delta("b")  # within the interval: no edit
        clock.now = 1.0
        yield Delta("c")  # due: the newest text, trimmed to 20 characters
        yield Restart("model stopped")
        clock.now = 2.5
        yield Delta("x")
        yield FINAL

    answer = relay(events(), shown.append, interval=1.0, max_chars=20, clock=clock)

    assert answer is FINAL
    assert shown == [
        "…" + ("a" * 30 + TYPING_MARK)[-19:],
        "…" + ("a" * 30 + "bc" + TYPING_MARK)[-19:],
        RESTART_NOTICE,
        "x" + TYPING_MARK,
    ]
    assert all(len(text) <= 20 for text in shown if text != RESTART_NOTICE)
