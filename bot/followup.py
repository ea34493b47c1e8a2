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

from bot.memory import PastTurn

SHORT_QUESTION_WORDS = 4
BACK_POINTERS = frozenset({"it", "its", "it's", "this", "they", "them", "their", "those", "these"})
CONNECTIVES = ("and ", "also ", "but ", "what about", "how about", "so ", "then ")
_WORD = re.compile(r"[\w']+")


def is_follow_up(text: str) -> bool:
    words = [w.lower() for w in _WORD.findall(text)]
    if len(words) <= SHORT_QUESTION_WORDS:
        return True
    if text.lower().lstrip().startswith(CONNECTIVES):
        return True
    return any(w in BACK_POINTERS for w in words)


def search_query(text: str, history: list[PastTurn]) -> str:
    """The text to retrieve with: the question, after the previous one if it follows up."""
    previous = next((t.text for t in reversed(history) if t.role == "user"), None)
    if previous is None or not is_follow_up(text):
        return text
    return f"{previous}\n{text}"
