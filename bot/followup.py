"""Turn a follow-up question into something worth searching for, without a language model.

"And what is its default?" finds nothing on its own. When a question leans on
the conversation, it is searched together with the previous question of the
same conversation. The rule, documented in docs/conversations.md: a question
is a follow-up when it has at most ``SHORT_QUESTION_WORDS`` words, or starts
with a connective ("and", "also", "what about"...), or uses a pronoun that
points back ("it", "its", "this", "they", "them", "their", "those", "these").
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

import numpy as np

from bot.extractive import keywords
from bot.memory import PastTurn

# Texts → their unit-length embeddings, one row each (TextEmbedder.embed_texts).
Embed = Callable[[Sequence[str]], np.ndarray]
SHORT_QUESTION_WORDS = 4
BACK_POINTERS = frozenset({"it", "its", "it's", "this", "they", "them", "their", "those", "these"})
CONNECTIVES = ("and ", "also ", "but ", "what about", "how about", "so ", "then ")
# Words that ask or connect but name no topic: a follow-up made of these and pronouns
# leaves its topic to the previous question.
GENERIC = frozenset(
    {
        "about",
        "again",
        "all",
        "also",
        "any",
        "besides",
        "but",
        "case",
        "come",
        "could",
        "did",
        "does",
        "doing",
        "done",
        "else",
        "get",
        "go",
        "goes",
        "had",
        "happen",
        "happens",
        "has",
        "have",
        "instead",
        "just",
        "like",
        "make",
        "many",
        "more",
        "most",
        "much",
        "need",
        "needs",
        "not",
        "one",
        "ones",
        "only",
        "other",
        "out",
        "own",
        "same",
        "so",
        "some",
        "that",
        "their",
        "them",
        "then",
        "there",
        "these",
        "they",
        "thing",
        "things",
        "those",
        "use",
        "used",
        "using",
        "want",
        "was",
        "way",
        "were",
        "work",
        "works",
        "would",
    }
)
_WORD = re.compile(r"[\w']+")
# A word that names a thing in any sentence position: ALL_CAPS, code-like, or capitalised.
_NAME = re.compile(r"^(?:[A-Z][A-Za-z0-9]*|\w*[_.\-]\w[\w.\-]*)$")


def is_follow_up(text: str) -> bool:
    words = [w.lower() for w in _WORD.findall(text)]
    if len(words) <= SHORT_QUESTION_WORDS:
        return True
    if text.lower().lstrip().startswith(CONNECTIVES):
        return True
    return any(w in BACK_POINTERS for w in words)


def points_back(text: str) -> bool:
    """Whether ``text`` uses a pronoun that points back ("it", "its", "they"...)."""
    return any(w.lower() in BACK_POINTERS for w in _WORD.findall(text))


def _singular(word: str) -> str:
    return word[:-1] if len(word) > 3 and word.endswith("s") and not word.endswith("ss") else word


def content_terms(text: str) -> set[str]:
    """The words of ``text`` that name something (lowercase, plurals made singular)."""
    return {_singular(w) for w in keywords(text) if w not in GENERIC | BACK_POINTERS}


def new_terms(text: str, previous: str) -> set[str]:
    """Content words of the follow-up ``text`` that the previous question lacks."""
    return content_terms(text) - content_terms(previous)


def without_term(text: str, term: str) -> str:
    """``text`` with every word that is ``term`` (or its plural) taken out."""
    return re.sub(rf"\b{re.escape(term)}s?\b", "", text, flags=re.IGNORECASE)


def names(text: str) -> list[str]:
    """Words of ``text`` that name something (Slack, DATABASE_URL, settings.py), not the
    first word, which is capitalised anyway."""
    words = text.split()[1:]
    stripped = [w.strip("?!.,:;()'\"") for w in words]
    return [w for w in stripped if len(w) > 1 and _NAME.match(w)]


def substituted(previous: str, text: str, embed: Embed) -> str:
    """The previous question without its content word most like one of the follow-up's new
    words (the aspect the follow-up replaces), then the follow-up; the previous question
    whole when it has a single content word (that is the topic)."""
    new, old = sorted(new_terms(text, previous)), sorted(content_terms(previous))
    if not new or len(old) < 2:
        return f"{previous}\n{text}"
    vectors = embed([*new, *old])
    similarity = vectors[len(new) :] @ vectors[: len(new)].T  # old × new
    replaced = old[int(similarity.max(axis=1).argmax())]
    kept = " ".join(without_term(previous, replaced).split())
    return f"{kept}\n{text}"


def search_query(text: str, history: list[PastTurn], embed: Embed | None = None) -> str:
    """The text to retrieve with: the question as asked unless it follows up, else what the
    conversation gives it that it leaves implicit.

    - A follow-up that names nothing new ("and where do they go?") is searched after the
      previous question.
    - One that names something new without pointing back ("and how do I do that on
      Discord?", "what about the refresh interval?") switches topic: searched as asked.
    - One that names something new and points back ("how do I disable it?") keeps the
      previous question's topic but not the word the new one replaces (``substituted``,
      with ``embed`` to compare words; without it, the previous question whole).
    """
    previous = next((t.text for t in reversed(history) if t.role == "user"), None)
    if previous is None or not is_follow_up(text):
        return text
    if not new_terms(text, previous):
        return f"{previous}\n{text}"
    if not points_back(text):
        return text
    return substituted(previous, text, embed) if embed else f"{previous}\n{text}"
