from itertools import pairwise

from knowledge.chunk import chunk_page, context_line
from knowledge.types import Page, Section


def words(text: str) -> int:
    return len(text.split())


def test_context_line_drops_a_first_heading_equal_to_the_title() -> None:
    assert context_line("Guide", ("Guide", "Setup")) == "Guide > Setup"
    assert context_line("Guide", ("Other", "Setup")) == "Guide > Other > Setup"
    assert context_line("", ("Setup",)) == "Setup"


def test_each_section_becomes_its_own_chunk_with_its_anchor() -> None:
    page = Page(
        "Guide",
        (
            Section(("Guide",), "guide", ("Intro text.",)),
            Section(("Guide", "Setup"), "setup", ("Install it.", "Then run it.")),
        ),
    )
    chunks = chunk_page(page, words, max_tokens=100)
    assert [(c.ordinal, c.anchor, c.text) for c in chunks] == [
        (0, "guide", "Intro text."),
        (1, "setup", "Install it.\n\nThen run it."),
    ]
    assert chunks[1].embed_text == "Guide > Setup\n\nInstall it.\n\nThen run it."
    assert chunks[1].heading_path == ("Guide", "Setup")


def test_long_sections_are_cut_within_the_budget_without_losing_words() -> None:
    sentences = [f"Sentence {i} has exactly six words." for i in range(60)]
    page = Page("T", (Section(("T", "Long"), "long", (" ".join(sentences),)),))
    chunks = chunk_page(page, words, max_tokens=50)
    assert len(chunks) > 5
    assert all(words(c.embed_text) + 4 <= 50 for c in chunks)
    assert [c.ordinal for c in chunks] == list(range(len(chunks)))
    in_order: list[str] = []
    for chunk in chunks:
        cut = [f"Sentence {s}" for s in chunk.text.split("Sentence ")[1:]]
        assert cut[0].strip() in (sentences[len(in_order)], in_order[-1] if in_order else "")
        if in_order and cut[0].strip() == in_order[-1]:
            cut = cut[1:]  # the overlap: the previous chunk's last sentence, repeated once
        in_order += [c.strip() for c in cut]
    assert in_order == sentences
    assert any(c.text.startswith(p.text.rsplit(". ", 1)[-1]) for p, c in pairwise(chunks))


def test_a_sentence_longer_than_the_budget_is_cut_by_words() -> None:
    run_on = " ".join(f"w{i}" for i in range(500))
    chunks = chunk_page(Page("T", (Section((), "", (run_on,)),)), words, max_tokens=64)
    assert all(c.token_count <= 64 for c in chunks)
    assert " ".join(c.text for c in chunks).split() == run_on.split()


def test_a_single_giant_token_is_cut_by_characters() -> None:
    blob = "x" * 5000
    chunks = chunk_page(Page("T", (Section((), "", (blob,)),)), len, max_tokens=600)
    assert "".join(c.text for c in chunks) == blob
    assert all(len(c.text) <= 600 for c in chunks)


def test_the_real_tokenizer_keeps_chunks_inside_the_model_window(embedder) -> None:
    body = " ".join(f"The setting number {i} controls the retry back-off." for i in range(200))
    page = Page("Reference", (Section(("Reference", "Settings"), "settings", (body,)),))
    chunks = chunk_page(page, embedder.count_tokens, embedder.max_tokens)
    assert len(chunks) > 1
    assert max(embedder.count_tokens(c.embed_text) for c in chunks) + 2 <= embedder.max_tokens
