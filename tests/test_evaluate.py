"""Evaluation scoring: metrics checked against values worked out by hand, keys and gold sets."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from knowledge.errors import KnowledgeError
from knowledge.evaluation.answerability import Judged, summarise
from knowledge.evaluation.scoring import (
    EvalQuestion,
    Metrics,
    PageKeys,
    format_table,
    gold_for,
    load_questions,
    per_question,
    ranked_keys,
    result_key,
    score,
)
from knowledge.types import ScoredChunk

EVAL_DIR = Path(__file__).resolve().parents[2] / "shared" / "eval"
LINKS_FILE = EVAL_DIR / "django-faq.links.jsonl"
# The team's eval data lives in ../shared beside the repository, not in it; a clone elsewhere
# does not have it, and the one test that needs it is about that file, not teambot's code.
needs_shared_eval = pytest.mark.skipif(
    not LINKS_FILE.is_file(), reason=f"{LINKS_FILE} is not beside this checkout"
)
ROOT = "http://127.0.0.1:8000/"


def chunk(url: str, anchor: str = "", *, kind: str = "site", source: str = "django") -> ScoredChunk:
    return ScoredChunk(
        chunk_id=1,
        score=1.0,
        similarity=1.0,
        text="",
        heading_path=(),
        anchor=anchor,
        document_title="",
        document_url=url,
        source_name=source,
        source_kind=kind,
        source_location=ROOT,
    )


# Line 35 of ../shared/eval/django-faq.links.jsonl, field for field, so that the test of
# its gold runs wherever the repository is checked out.
GET_STARTED = {
    "id": "faq/install.html#how-do-i-get-started",
    "question": "How do I get started?",
    "answer": "Download the code . Install Django (read the installation guide ). Walk through "
    "the tutorial . Check out the rest of the documentation , and ask questions if you run "
    "into trouble.",
    "page": "faq/install.html",
    "anchor": "how-do-i-get-started",
    "url": "http://127.0.0.1:8000/faq/install.html#how-do-i-get-started",
    "linked_pages": ["index.html", "intro/install.html", "intro/tutorial01.html"],
}


# --- metrics ---------------------------------------------------------------------------


def test_one_gold_at_rank_two() -> None:
    metrics = score([["x", "a", "y"]], [{"a"}])
    assert metrics.n == 1
    assert metrics.recall_at == {1: 0.0, 5: 1.0, 10: 1.0}
    assert metrics.mrr == 0.5  # first relevant at rank 2
    # DCG = 1/log2(2+1) = 0.6309; IDCG = 1/log2(1+1) = 1
    assert metrics.ndcg_at_10 == pytest.approx(0.6309, abs=1e-4)


def test_two_golds_at_ranks_one_and_three() -> None:
    metrics = score([["a", "x", "b"]], [{"a", "b"}])
    assert metrics.recall_at == {1: 0.5, 5: 1.0, 10: 1.0}  # 1 of 2 in the top 1
    assert metrics.mrr == 1.0
    # DCG = 1/log2 2 + 1/log2 4 = 1 + 0.5 = 1.5; IDCG = 1/log2 2 + 1/log2 3 = 1.6309
    assert metrics.ndcg_at_10 == pytest.approx(1.5 / 1.6309, abs=1e-4)
    assert metrics.ndcg_at_10 == pytest.approx(0.9197, abs=1e-4)


def test_gold_beyond_ten_counts_for_nothing() -> None:
    ranking = [f"x{i}" for i in range(1, 11)] + ["a"]  # a at rank 11
    metrics = score([ranking], [{"a"}])
    assert metrics.recall_at == {1: 0.0, 5: 0.0, 10: 0.0}
    assert metrics.mrr == 0.0
    assert metrics.ndcg_at_10 == 0.0


def test_ideal_dcg_is_capped_at_ten_relevant() -> None:
    gold = {f"g{i}" for i in range(12)}
    ranking = sorted(gold)  # all 12 relevant; only the top 10 count
    metrics = score([ranking], [gold])
    assert metrics.recall_at[10] == pytest.approx(10 / 12)  # 10 of 12 in the top 10
    assert metrics.ndcg_at_10 == pytest.approx(1.0)  # IDCG from min(12, 10) = 10 at the top


def test_averages_over_questions_and_skips_empty_golds() -> None:
    rankings = [["a"], ["x", "b"], ["c"], ["anything"]]
    golds = [{"a"}, {"b"}, set(), {"d"}]
    metrics = score(rankings, golds)
    assert metrics.n == 3  # the empty gold is not counted
    # recall@1: (1 + 0 + 0) / 3; recall@5: (1 + 1 + 0) / 3
    assert metrics.recall_at[1] == pytest.approx(1 / 3)
    assert metrics.recall_at[5] == pytest.approx(2 / 3)
    assert metrics.recall_at[10] == pytest.approx(2 / 3)
    # MRR: (1/1 + 1/2 + 0) / 3 = 0.5
    assert metrics.mrr == pytest.approx(0.5)
    # nDCG: (1 + 0.6309 + 0) / 3 = 0.5436
    assert metrics.ndcg_at_10 == pytest.approx(0.5436, abs=1e-4)


def test_mrr_is_cut_at_k_but_recall_at_ten_is_not() -> None:
    ranking = ["x1", "x2", "x3", "a"]  # a at rank 4
    assert score([ranking], [{"a"}], k=10).mrr == 0.25
    cut = score([ranking], [{"a"}], k=3)
    assert cut.mrr == 0.0  # rank 4 > k = 3
    assert cut.recall_at[5] == 1.0  # recall cutoffs stay fixed
    assert cut.ndcg_at_10 == pytest.approx(1 / math.log2(5))  # 0.4307


def test_mrr_reaches_past_ten_when_k_does() -> None:
    ranking = [f"x{i}" for i in range(1, 12)] + ["a"]  # a at rank 12
    assert score([ranking], [{"a"}], k=20).mrr == pytest.approx(1 / 12)


def test_empty_input_gives_zeros() -> None:
    for metrics in (score([], []), score([["a"]], [set()])):
        assert metrics == Metrics(n=0, recall_at={1: 0.0, 5: 0.0, 10: 0.0}, mrr=0.0, ndcg_at_10=0.0)


def test_a_gold_key_counts_once_even_if_ranked_twice() -> None:
    metrics = score([["a", "a", "b"]], [{"a", "b"}])
    # hits at ranks 1 and 3, the second "a" is not relevant again
    assert metrics.recall_at[1] == 0.5
    assert metrics.ndcg_at_10 == pytest.approx(0.9197, abs=1e-4)


def test_page_level_gold_is_hit_by_any_section_of_the_page() -> None:
    metrics = score([["b.html#x", "a.html#intro", "a.html#other"]], [{"a.html"}])
    assert metrics.mrr == 0.5  # a.html#intro at rank 2 hits the page gold; a.html#other adds 0
    assert metrics.ndcg_at_10 == pytest.approx(0.6309, abs=1e-4)
    assert score([["a.html#other"]], [{"a.html#intro"}]).mrr == 0.0  # another section misses


def test_mismatched_lengths_and_bad_k_are_refused() -> None:
    with pytest.raises(ValueError):
        score([["a"]], [])
    with pytest.raises(ValueError):
        score([["a"]], [{"a"}], k=0)


def test_per_question_rows() -> None:
    rankings = [["x", "a"], ["c"], ["x1", "x2", "b"]]
    golds = [{"a", "z"}, set(), {"b"}]
    rows = per_question(rankings, golds, k=2)
    ndcg = [pytest.approx((1 / math.log2(3)) / (1 + 1 / math.log2(3))), pytest.approx(0.5)]
    assert rows == [
        {"index": 0, "first_relevant_rank": 2, "recall@10": 0.5, "ndcg@10": ndcg[0]},
        # rank 3 > k = 2 for MRR, but inside nDCG@10's cutoff
        {"index": 2, "first_relevant_rank": None, "recall@10": 1.0, "ndcg@10": ndcg[1]},
    ]
    mean_reciprocal = sum(1 / r["first_relevant_rank"] for r in rows if r["first_relevant_rank"])
    metrics = score(rankings, golds, k=2)
    assert metrics.mrr == pytest.approx(mean_reciprocal / len(rows))
    assert metrics.ndcg_at_10 == pytest.approx(sum(r["ndcg@10"] for r in rows) / len(rows))


def test_to_json_keys() -> None:
    metrics = Metrics(n=3, recall_at={1: 0.1, 5: 0.5, 10: 1.0}, mrr=0.25, ndcg_at_10=0.75)
    assert metrics.to_json() == {
        "recall@1": 0.1,
        "recall@5": 0.5,
        "recall@10": 1.0,
        "mrr": 0.25,
        "ndcg@10": 0.75,
        "n": 3,
    }


def test_format_table() -> None:
    metrics = Metrics(n=28, recall_at={1: 0.25, 5: 0.5, 10: 2 / 3}, mrr=0.4, ndcg_at_10=0.47719)
    assert format_table([("hard | bm25", metrics)]) == (
        "| name | recall@1 | recall@5 | recall@10 | MRR | nDCG@10 | n |\n"
        "|---|---|---|---|---|---|---|\n"
        "| hard \\| bm25 | 0.250 | 0.500 | 0.667 | 0.400 | 0.477 | 28 |\n"
    )


# --- result keys -----------------------------------------------------------------------


def test_result_key_for_web_source() -> None:
    roots = {"django": ROOT}
    result = chunk("http://127.0.0.1:8000/faq/admin.html", "anchor")
    assert result_key(result, "page", roots) == "faq/admin.html"
    assert result_key(result, "section", roots) == "faq/admin.html#anchor"


def test_result_key_for_web_source_under_a_subdirectory_root() -> None:
    roots = {"docs": "http://h.example/docs/3.2/"}
    result = chunk("http://h.example/docs/3.2/ref/caf%C3%A9.html", source="docs")
    assert result_key(result, "page", roots) == "ref/café.html"  # decoded like a folder path


def test_result_key_for_a_directory_url_is_its_index() -> None:
    roots = {"django": ROOT}
    assert result_key(chunk(ROOT), "page", roots) == "index.html"
    assert result_key(chunk(ROOT, "top"), "section", roots) == "index.html#top"
    assert result_key(chunk(ROOT + "intro/"), "page", roots) == "intro/index.html"


def test_result_key_outside_the_root_falls_back_to_the_url_path() -> None:
    roots = {"django": "http://127.0.0.1:8000/docs/"}
    result = chunk("http://127.0.0.1:8000/faq/admin.html")
    assert result_key(result, "page", roots) == "faq/admin.html"


def test_result_key_for_folder_source() -> None:
    result = chunk("faq/admin.html", "anchor", kind="folder", source="notes")
    assert result_key(result, "page", {}) == "faq/admin.html"
    assert result_key(result, "section", {}) == "faq/admin.html#anchor"


def test_page_keys_name_the_pages_under_path_prefixes() -> None:
    paths = ["faq/admin.html", "faq/usage.html", "intro/install.html", "intro/tutorial01.html",
             "ref/faq-like.html", "", "intro/"]  # fmt: skip
    pages = [("django", "web", ROOT + p) for p in paths] + [("notes", "folder", "faq/mine.md")]
    keys = PageKeys(pages, {"django": ROOT})
    assert keys.under(()) == frozenset()
    assert keys.under(("faq/", "intro/install.html")) == {
        ("django", ROOT + "faq/admin.html"), ("django", ROOT + "faq/usage.html"),
        ("django", ROOT + "intro/install.html"), ("notes", "faq/mine.md"),
    }  # fmt: skip
    # A directory URL stands for its index.html, as in results' keys.
    assert keys.under(("index.html",)) == {("django", ROOT)}
    assert keys.under(("intro/index.html",)) == {("django", ROOT + "intro/")}
    assert keys.under(("zzz",)) == frozenset()


def test_section_key_without_anchor_is_the_page() -> None:
    assert result_key(chunk("guide.md", kind="folder"), "section", {}) == "guide.md"


def test_ranked_keys_keep_each_key_at_its_best_rank() -> None:
    roots = {"django": ROOT}
    results = [
        chunk(ROOT + "a.html", "one"),
        chunk(ROOT + "b.html", "two"),
        chunk(ROOT + "a.html", "three"),
        chunk(ROOT + "c.html"),
        chunk(ROOT + "b.html", "two"),
    ]
    assert ranked_keys(results, "page", roots) == ["a.html", "b.html", "c.html"]
    assert ranked_keys(results, "section", roots) == [
        "a.html#one",
        "b.html#two",
        "a.html#three",
        "c.html",
    ]


# --- gold ------------------------------------------------------------------------------


def test_gold_for_a_real_question_in_both_levels_and_hard_mode(tmp_path: Path) -> None:
    path = tmp_path / "one.jsonl"
    path.write_text(json.dumps(GET_STARTED, ensure_ascii=False) + "\n", encoding="utf-8")
    (question,) = load_questions(path)
    assert question.question == "How do I get started?"
    assert gold_for(question, "section") == {"faq/install.html#how-do-i-get-started"}
    assert gold_for(question, "page") == {"faq/install.html"}
    assert gold_for(question, "page", exclude_prefixes=("faq/",)) == {
        "index.html",
        "intro/install.html",
        "intro/tutorial01.html",
    }
    # linked pages that are excluded too drop out; the section level has nothing left
    assert gold_for(question, "page", exclude_prefixes=("faq/", "intro/")) == {"index.html"}
    assert gold_for(question, "section", exclude_prefixes=("faq/",)) == set()


def test_gold_for_page_not_excluded_ignores_linked_pages() -> None:
    question = EvalQuestion("q", "guide/a.html", "x", ("ref/b.html",))
    assert gold_for(question, "page", exclude_prefixes=("faq/",)) == {"guide/a.html"}


def test_gold_for_hard_mode_without_linked_pages_is_unscorable() -> None:
    question = EvalQuestion("q", "faq/general.html", "is-django-stable", ())
    assert gold_for(question, "page", exclude_prefixes=("faq/",)) == set()


def test_gold_for_missing_anchor_or_page() -> None:
    no_anchor = EvalQuestion("q", "faq/admin.html", None, ())
    assert gold_for(no_anchor, "section") == {"faq/admin.html"}  # page-level, any section hits
    only_links = EvalQuestion("q", None, None, ("ref/settings.html",))
    assert gold_for(only_links, "section") == set()
    assert gold_for(only_links, "page") == {"ref/settings.html"}


# --- loading ---------------------------------------------------------------------------


@needs_shared_eval
def test_load_questions_reads_the_whole_real_file() -> None:
    questions = load_questions(LINKS_FILE)
    assert len(questions) == 53
    assert sum(1 for q in questions if q.linked_pages) == 28
    assert all(q.page and q.page.startswith("faq/") and q.anchor for q in questions)
    first = questions[0]
    assert first.page == "faq/admin.html"
    assert first.anchor is not None
    assert first.anchor.startswith("i-can-t-log-in-when-i-enter-a-valid-username")
    assert first.linked_pages == ("ref/settings.html",)


def test_load_questions_optional_fields_and_blank_lines(tmp_path: Path) -> None:
    path = tmp_path / "q.jsonl"
    path.write_text(
        '{"question": "A?", "page": "a.html", "anchor": "x", "answer": "ignored"}\n'
        "\n"
        '{"question": "B?", "linked_pages": ["b.html", "c.html"]}\n'
        '{"question": "C?", "page": "c.html", "anchor": ""}\n',
        encoding="utf-8",
    )
    assert load_questions(path) == [
        EvalQuestion("A?", "a.html", "x", ()),
        EvalQuestion("B?", None, None, ("b.html", "c.html")),
        EvalQuestion("C?", "c.html", None, ()),
    ]


@pytest.mark.parametrize(
    ("bad_line", "message"),
    [
        ("{not json", "not valid JSON"),
        ('["a list"]', "expected a JSON object"),
        ('{"page": "a.html"}', "`question`"),
        ('{"question": 3}', "`question`"),
        ('{"question": "Q?", "page": 1}', "`page`"),
        ('{"question": "Q?", "linked_pages": "a.html"}', "`linked_pages`"),
    ],
)
def test_load_questions_names_file_and_line(tmp_path: Path, bad_line: str, message: str) -> None:
    path = tmp_path / "q.jsonl"
    path.write_text('{"question": "Fine?"}\n\n' + bad_line + "\n", encoding="utf-8")
    with pytest.raises(KnowledgeError) as raised:
        load_questions(path)
    assert str(raised.value).startswith(f"{path}:3: ")
    assert message in str(raised.value)


def test_load_questions_missing_file(tmp_path: Path) -> None:
    with pytest.raises(KnowledgeError, match="Cannot read"):
        load_questions(tmp_path / "absent.jsonl")


def test_answerability_metrics_by_hand() -> None:
    judged = [
        Judged(True, 0.9, True), Judged(True, 0.4, True), Judged(True, 0.1, False),
        Judged(False, 0.4, True), Judged(False, 0.05, False),
    ]  # fmt: skip
    result = summarise(judged)
    # pairs (answerable, unanswerable): 0.9 beats both; 0.4 ties 0.4 and beats 0.05; 0.1
    # loses to 0.4 and beats 0.05: (2 + 1.5 + 1) / 6.
    assert result.auroc == pytest.approx(4.5 / 6)
    assert result.answer_rate == pytest.approx(2 / 3)
    assert result.abstain_rate == pytest.approx(1 / 2)
    assert (result.n_answerable, result.n_unanswerable) == (3, 2)
    assert summarise([Judged(True, 0.5, True)]).to_json() == {
        "auroc": None, "answer_rate": 1.0, "abstain_rate": None,
        "n_answerable": 1, "n_unanswerable": 0,
    }  # fmt: skip


def test_answerable_must_be_a_boolean(tmp_path: Path) -> None:
    path = tmp_path / "q.jsonl"
    path.write_text('{"question": "Why?", "answerable": "yes"}\n')
    with pytest.raises(KnowledgeError, match=r"q.jsonl:1: `answerable` must be true or false"):
        load_questions(path)
