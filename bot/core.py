"""The conversation core: Question → history → retrieve → answer → Answer, stored as turns.

It knows nothing about Slack, Discord or terminals; adapters hand it a
``Question`` and render the ``Answer`` it returns.
"""

from __future__ import annotations

import time
from pathlib import Path

from bot import extractive
from bot.errors import QuestionError
from bot.followup import search_query
from bot.memory import ConversationMemory
from bot.types import Answer, Citation, Question
from knowledge.search import Method, Retriever
from knowledge.types import ScoredChunk

EXTRACTIVE_MODEL = "extractive"


class Assistant:
    """Answers questions from the knowledge base and remembers the conversation."""

    def __init__(
        self,
        memory: ConversationMemory,
        retriever: Retriever,
        *,
        top_k: int,
        min_relevance: float,
        max_question_chars: int,
        method: Method = "hybrid",
    ) -> None:
        self._memory = memory
        self._retriever = retriever
        self._top_k = top_k
        self._min_relevance = min_relevance
        self._max_question_chars = max_question_chars
        self._method: Method = method

    def ask(self, question: Question) -> Answer:
        """Answer ``question`` in its conversation; raises QuestionError before storing anything."""
        text = validate_question(question.text, self._max_question_chars)
        started = time.perf_counter()
        conversation_id = self._memory.conversation_id(
            question.platform, question.channel, question.thread
        )
        query = search_query(text, self._memory.history(conversation_id))
        timings = {"memory": _ms_since(started)}

        mark = time.perf_counter()
        passages = [
            p
            for p in self._retriever.search(query, self._top_k, method=self._method)
            if p.similarity >= self._min_relevance
        ]
        timings["retrieve"] = _ms_since(mark)

        mark = time.perf_counter()
        citations = [citation(n, p) for n, p in enumerate(passages, start=1)]
        if passages:
            body = extractive.compose(query, passages, [c.label for c in citations])
        elif self._retriever.indexed_chunks() == 0:
            body = extractive.EMPTY_KNOWLEDGE_BASE
        else:
            body = extractive.NOTHING_FOUND
        timings["answer"] = _ms_since(mark)
        timings["total"] = _ms_since(started)

        answer = Answer(
            text=body,
            citations=citations,
            model=EXTRACTIVE_MODEL,
            timings=timings,
            conversation_id=conversation_id,
            search_query=query,
        )
        self._memory.record(question, answer)
        return answer


def validate_question(text: str, max_chars: int) -> str:
    """The question stripped, or a QuestionError that says how to fix it."""
    text = text.strip()
    if not text:
        raise QuestionError("The question is empty. Type what you want to know.")
    if len(text) > max_chars:
        raise QuestionError(
            f"The question is {len(text):,} characters long; the limit is {max_chars:,} "
            "(MAX_QUESTION_CHARS). Ask about one thing, quoting only the part that matters."
        )
    return text


def citation(n: int, passage: ScoredChunk) -> Citation:
    """Where ``passage`` lives: a file path (and file URL) for folders, the page URL otherwise."""
    is_file = passage.source_kind == "folder"
    url = (
        Path(passage.source_location, passage.document_url).as_uri()
        if is_file
        else passage.document_url
    )
    return Citation(
        n=n,
        title=passage.document_title,
        url=url,
        path=passage.document_url if is_file else None,
        anchor=passage.anchor,
        heading=passage.heading_path[-1] if passage.heading_path else "",
        source=passage.source_name,
    )


def _ms_since(start: float) -> float:
    return round((time.perf_counter() - start) * 1000, 1)
