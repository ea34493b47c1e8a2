"""The conversation core: Question → history → retrieve → model → Answer, stored as turns.

It knows nothing about Slack, Discord or terminals; adapters hand it a
``Question`` and either take the finished ``Answer`` (``ask``) or show the text
as it grows (``stream``: ``Delta`` pieces, ``Restart`` when a model failed
mid-answer and another takes over, and the ``Answer`` last). Every path ends
in an answer: with no model, a failed model or a spent budget, the best
passages are quoted and cited instead. When the retrieval evidence says the docs
do not cover the question (bot.abstention), no model is asked and the answer says
so, offering the closest pages.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

from bot import abstention, extractive, gaps, team_answers
from bot.channels import ChannelPrefs, channel_prefs
from bot.errors import QuestionError
from bot.followup import is_follow_up, search_query
from bot.llm.prompt import (
    build_prompt,
    cited_numbers,
    drop_unknown_markers,
    rewrite_messages,
)
from bot.llm.provider import ProviderConfig
from bot.llm.router import EXTRACTIVE, Outcome, Plan, Router
from bot.memory import ConversationMemory, PastTurn
from bot.metrics import Metrics
from bot.types import Answer, AnswerEvent, Citation, Delta, Question, Restart
from bot.why import Explanation
from knowledge.retrieval.confidence import THRESHOLD, Confidence, assess
from knowledge.retrieval.search import Method, Retriever
from knowledge.types import ScoredChunk


class Assistant:
    """Answers questions from the knowledge base and remembers the conversation."""

    def __init__(
        self,
        memory: ConversationMemory,
        retriever: Retriever,
        router: Router,
        *,
        top_k: int,
        min_relevance: float,
        max_question_chars: int,
        min_confidence: float = THRESHOLD,
        method: Method = "hybrid",
        metrics: Metrics | None = None,
    ) -> None:
        self._memory = memory
        self._metrics = metrics
        self._retriever = retriever
        self.router = router
        self._top_k = top_k
        self._min_relevance = min_relevance
        self._min_confidence = min_confidence
        self._max_question_chars = max_question_chars
        self._method: Method = method

    def ask(self, question: Question) -> Answer:
        """The finished answer to ``question``; raises QuestionError before storing anything."""
        for event in self.stream(question):
            if isinstance(event, Answer):
                return event
        raise AssertionError("stream() always ends with an Answer")

    def stream(self, question: Question) -> Iterator[AnswerEvent]:
        """The answer as it is written: ``Delta``s (``Restart`` voids them), then the ``Answer``.

        Raises QuestionError before anything is stored when the question is unusable."""
        text = validate_question(question.text, self._max_question_chars)
        started = time.perf_counter()
        conversation_id = self._memory.conversation_id(
            question.platform, question.channel, question.thread
        )
        history = self._memory.history(conversation_id) or [
            PastTurn(role, said) for role, said in question.history
        ]
        prefs = channel_prefs(self._memory.sessions, question.platform, question.channel)
        plan = self.router.plan(question, prefs.route)
        limited = self.router.ledger.rate_limit_notice(question) if plan.providers else None
        if limited:
            plan = Plan(EXTRACTIVE, "rate limit")
        timings = {"memory": _ms_since(started)}

        mark = time.perf_counter()
        query, rewrite = self._search_query(text, history, plan)
        if rewrite:
            timings["rewrite"] = _ms_since(mark)

        mark = time.perf_counter()
        explained = self._explain(query, prefs, question)
        verdict, threshold = explained.verdict, explained.threshold
        passages = [p for p in explained.results if p.similarity >= self._min_relevance]
        timings["retrieve"] = _ms_since(mark)

        mark = time.perf_counter()
        if passages and not verdict.abstained:
            outcome = yield from self._generate(text, passages, history, plan, prefs)
        else:
            why = "the docs do not cover it" if passages else "no passages matched"
            outcome = Outcome(EXTRACTIVE, EXTRACTIVE, plan.describe(why))
        timings["answer"] = _ms_since(mark)
        if outcome.first_token_ms is not None:
            timings["first_token"] = outcome.first_token_ms
        timings["total"] = _ms_since(started)

        composed = self._compose(query, passages, outcome, limited, verdict, threshold)
        answer = Answer(
            text=composed.text,
            citations=composed.citations,
            model=outcome.model,
            timings=timings,
            conversation_id=conversation_id,
            search_query=query,
            provider=outcome.provider,
            route=outcome.route,
            tokens_in=outcome.tokens_in,
            tokens_out=outcome.tokens_out,
            rewrite=rewrite,
            confidence=round(composed.confidence, 3),
            abstained=composed.abstained,
            suggestions=composed.suggestions,
        )
        # What a gap keeps: the pages offered, else the closest ones, too far to offer.
        considered = (passages or explained.results)[: abstention.MAX_SUGGESTIONS]
        turn_id = self._memory.record(
            question, answer, first_token_ms=outcome.first_token_ms,
            considered=gaps.passages_of([citation(n, p) for n, p in enumerate(considered, 1)],
                                        [p.similarity for p in considered]),
        )  # fmt: skip
        if self._metrics is not None:
            self._metrics.answered(question.platform, answer.provider, timings["total"] / 1000)
            self._metrics.judged(question.platform, answer.confidence or 0.0, answer.abstained)
        yield replace(answer, turn_id=turn_id)

    def _search_query(self, text: str, history: list[PastTurn], plan: Plan) -> tuple[str, str]:
        """What to search for, and how it was made: a model's rewrite of a follow-up, the
        documented heuristic when no model could do it, or the question as asked."""
        if not history or not is_follow_up(text):
            return text, ""
        rewritten = self.router.rewrite(plan, rewrite_messages(text, history))
        if rewritten:
            return rewritten, "model"
        return search_query(text, history, self._retriever.embed_texts), "heuristic"

    def _generate(
        self,
        text: str,
        passages: list[ScoredChunk],
        history: list[PastTurn],
        plan: Plan,
        prefs: ChannelPrefs,
    ) -> Iterator[Delta | Restart | Outcome]:
        def prompt_for(config: ProviderConfig):  # each model gets a prompt sized to its context
            return build_prompt(
                text,
                passages,
                history,
                context_tokens=config.context_tokens,
                max_output_tokens=self.router.max_output_tokens,
                persona=prefs.persona,
            )

        for event in self.router.answer(plan, prompt_for):
            if isinstance(event, Outcome):
                return event
            yield event
        raise AssertionError("Router.answer() always ends with an Outcome")

    def explain(self, question: Question) -> Explanation:
        """What answering ``question`` in its channel would retrieve, and whether teambot would
        answer or abstain (`teambot why`); nothing is stored and no model is asked."""
        text = validate_question(question.text, self._max_question_chars)
        prefs = channel_prefs(self._memory.sessions, question.platform, question.channel)
        return self._explain(text, prefs, question)

    def _explain(self, query: str, prefs: ChannelPrefs, question: Question) -> Explanation:
        """Search ``query`` within the channel's sources and the team answers usable there,
        and judge the evidence, at the channel's own abstention threshold if an admin set one,
        else MIN_CONFIDENCE."""
        scope = team_answers.scope_here(self._memory.sessions, question.platform,
                                        question.channel, prefs.sources)  # fmt: skip
        results, evidence = self._retriever.search_with_evidence(
            query, self._top_k, method=self._method, scope=scope
        )
        threshold = self._min_confidence if prefs.min_confidence is None else prefs.min_confidence
        verdict = assess(query, results, evidence, threshold=threshold)
        return Explanation(query, self._method, prefs.sources, self._min_relevance, threshold,
                           results, evidence, verdict)  # fmt: skip

    def _compose(
        self,
        query: str,
        passages: list[ScoredChunk],
        outcome: Outcome,
        limited: str | None,
        verdict: Confidence,
        threshold: float,
    ) -> Composed:
        """The final text, the citations it uses (numbered as in the text), and whether it
        abstained with what confidence."""
        suggestions = [citation(n, p) for n, p in
                       enumerate(passages[: abstention.MAX_SUGGESTIONS], start=1)]  # fmt: skip
        if outcome.prompt is not None:  # a model answered: keep only what it cited
            count = len(outcome.prompt.passages)
            body = drop_unknown_markers(outcome.text, count).strip()
            used = cited_numbers(body, count)
            if abstention.model_declined(body, used):
                low = abstention.capped(verdict.confidence, threshold)
                return Composed(body, [], low, True, suggestions)
            cited = [citation(n, outcome.prompt.passages[n - 1]) for n in used]
            return Composed(body, cited, verdict.confidence, False)
        if not passages:
            if self._retriever.indexed_chunks() == 0:
                return Composed(extractive.EMPTY_KNOWLEDGE_BASE, [], 0.0, True)
            low = abstention.capped(verdict.confidence, threshold)
            return Composed(extractive.NOTHING_FOUND, [], low, True)
        if verdict.abstained:
            text = abstention.abstaining_text(len(suggestions))
            return Composed(text, [], verdict.confidence, True, suggestions)
        citations = [citation(n, p) for n, p in enumerate(passages, start=1)]
        label = limited or outcome.unavailable
        label = label or (extractive.ROUTED_LABEL if self.router.providers else extractive.LABEL)
        before = [self._retriever.section_before(p.chunk_id) for p in passages]
        headings = [c.label for c in citations]
        text = extractive.compose(query, passages, headings, label, before=before)
        return Composed(text, citations, verdict.confidence, False)


@dataclass(frozen=True)
class Composed:
    """An answer's text and citations, with its confidence and whether it abstained."""

    text: str
    citations: list[Citation]
    confidence: float
    abstained: bool
    suggestions: list[Citation] = field(default_factory=list)


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
    """Where ``passage`` lives: a file path (and file URL) for folders, a git file's hosted view
    (or its path in the repository), the page URL otherwise;
    for a team answer, the message it was said in (bot.team_answers)."""
    if team_answers.is_team_answer(passage):
        return team_answers.team_citation(n, passage)
    web_url = passage.document_web_url  # a git file's hosted view (knowledge/ingest/git.py)
    is_file = passage.source_kind in ("folder", "git") and not web_url  # shown as its path
    if web_url:
        url = web_url
    elif passage.source_kind == "folder":
        url = Path(passage.source_location, passage.document_url).as_uri()
    elif is_file:  # a repository's file with no hosted view: the repository
        url = passage.source_location
    else:
        url = passage.document_url
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
