"""When teambot says the docs do not cover a question, and how it says it.

A team forgives "the docs don't cover this"; it mutes a bot that is confidently wrong. The
retrieval confidence (knowledge.retrieval.confidence) decides before any model is asked;
a model's answer that cites no passage, or says its passages do not cover the question,
is an abstention too. An abstaining answer offers the closest pages as "might help" and
never quotes them as if they answered.
"""

from __future__ import annotations

import re

NOT_COVERED = "The indexed docs don't seem to cover this, so I won't guess."
NOTHING_CLOSE = (
    "Nothing indexed comes close. Check what is indexed with `teambot sources list`, "
    "or ask an admin to add the docs that answer it."
)
MAX_SUGGESTIONS = 3
# A model that says its documentation does not cover the question (as the prompt's rules ask
# it to), in the words models use for it.
_DECLINES = re.compile(
    r"\b(documentation|docs|passages?|context|sources?|information)\b[^.\n]{0,60}?"
    r"\b(do(es)?\s+not|don't|doesn't|isn't|aren't|is\s+not|are\s+not|never)\s+"
    r"(cover|answer|mention|contain|include|address|say|describe|explain|provide|discuss)",
    re.IGNORECASE,
)


def model_declined(text: str, cited: list[int]) -> bool:
    """Whether a model's answer is an abstention: it cites no passage, or it says the
    documentation does not cover the question."""
    return not cited or _DECLINES.search(text) is not None


def capped(confidence: float, threshold: float) -> float:
    """The confidence of an answer that abstained for a reason the retrieval score did not
    see (the model declined, no passage was close enough): below the threshold, so the two
    fields never disagree."""
    return min(confidence, threshold / 2)


def abstaining_text(suggestions: int) -> str:
    """What the asker reads: the docs do not cover it, and where to look when no page is
    close (the closest pages are listed under it, as "Might help", by each renderer)."""
    return NOT_COVERED if suggestions else f"{NOT_COVERED} {NOTHING_CLOSE}"
