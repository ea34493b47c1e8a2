import base64
import hashlib
from itertools import pairwise

import pytest

from knowledge.embed.embedder import Embedder
from knowledge.ingest.chunk import MAX_CHARS_PER_TOKEN, chunk_page, context_line
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


class RecordingCounter:
    """The real tokenizer, remembering how long each text it was given to count was."""

    def __init__(self, embedder: Embedder) -> None:
        self.embedder = embedder
        self.lengths: list[int] = []

    def __call__(self, text: str) -> int:
        self.lengths.append(len(text))
        return self.embedder.count_tokens(text)


def _base64_blob(size: int) -> str:
    digests = (hashlib.sha256(str(i).encode()).digest() for i in range(size // 43 + 1))
    return base64.b64encode(b"".join(digests)).decode()[:size]


UNSPLITTABLE = {
    "a 1 MB word": "x" * 1_048_576,
    "a long signed URL": "Download it from https://files.example.com/"
    + "/".join(f"release{i}" for i in range(3000))
    + "?signature="
    + "a1b2c3d4" * 800
    + " before you start.",
    "a base64 blob": "data:image/png;base64," + _base64_blob(200_000),
    "CJK text without spaces": (
        "設定ファイルは起動時に一度だけ読み込まれます。" + "変更したら再起動してください"
    )
    * 400,
}


@pytest.mark.parametrize("text", UNSPLITTABLE.values(), ids=UNSPLITTABLE.keys())
def test_unsplittable_text_is_cut_into_chunks_the_embedder_can_read(
    embedder: Embedder, text: str
) -> None:
    counter = RecordingCounter(embedder)
    page = Page("Downloads", (Section(("Downloads", "Files"), "files", (text,)),))

    chunks = chunk_page(page, counter, embedder.max_tokens)

    char_bound = MAX_CHARS_PER_TOKEN * embedder.max_tokens
    assert len(chunks) > 1
    assert all(len(c.embed_text) <= char_bound for c in chunks)
    assert all(embedder.count_tokens(c.embed_text) + 2 <= embedder.max_tokens for c in chunks)
    assert "".join("".join(c.text.split()) for c in chunks) == "".join(text.split())
    # Cut by characters before tokenising: the text is never counted whole, nor many times over.
    assert max(counter.lengths) <= char_bound
    assert sum(counter.lengths) <= 4 * len(text)


def test_a_huge_title_is_clipped_in_the_text_that_is_embedded(embedder: Embedder) -> None:
    page = Page("Guide " * 50_000, (Section(("Setup",), "setup", ("Install it first.",)),))

    (chunk,) = chunk_page(page, embedder.count_tokens, embedder.max_tokens)

    assert chunk.text == "Install it first."
    assert chunk.embed_text.startswith("Guide Guide") and chunk.embed_text.endswith(chunk.text)
    assert embedder.count_tokens(chunk.embed_text) + 2 <= embedder.max_tokens
