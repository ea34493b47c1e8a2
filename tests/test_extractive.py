"""The extractive answer: quotes made of whole sentences, steps and code blocks, each under its
citation number, the whole answer within one chat message."""

import re

from bot import extractive
from knowledge.types import ScoredChunk

FILLER = " ".join(f"Filler sentence number {i} talks about nothing." for i in range(12))
STEPS = [
    "Create the app. Choose From an app manifest and paste slack-manifest.yml.",
    "Install it to the workspace. Copy the Bot User OAuth Token into SLACK_BOT_TOKEN.",
    "Socket Mode (optional). Create an app-level token and put it in SLACK_APP_TOKEN.",
    "Run it: teambot serve. It checks the token first.",
]
CODE = "$ teambot ingest docs/\nIngested 12 documents. 40 chunks.\n    done in 3.2 s."


def passage(text: str, heading: str = "Guide") -> ScoredChunk:
    return ScoredChunk(
        chunk_id=1,
        score=1.0,
        similarity=0.9,
        text=text,
        heading_path=(heading,),
        anchor="",
        document_title=heading,
        document_url="guide.md",
        source_name="docs",
        source_kind="folder",
        source_location="/docs",
    )


def test_a_hit_in_the_middle_of_a_paragraph_starts_at_its_sentence() -> None:
    text = f"{FILLER} Use a cache, e.g. Redis or Memcached, to keep sessions fast. {FILLER}"
    quoted = extractive.quote(text, "Which cache keeps sessions fast with Redis?", limit=200)
    assert quoted.startswith("… Use a cache, e.g. Redis or Memcached, to keep sessions fast.")
    assert quoted.endswith(" …") and len(quoted) <= 200
    assert quoted.removesuffix(" …").endswith(".")  # whole sentences only


def test_a_paragraph_that_fits_is_quoted_from_its_first_sentence() -> None:
    text = f"{FILLER}\n\nRetries are counted per job. The retry limit defaults to five.\n\n{FILLER}"
    quoted = extractive.quote(text, "What is the retry limit?", limit=300)
    assert quoted.startswith("… Retries are counted per job. The retry limit defaults to five.")


def test_numbered_steps_are_quoted_from_step_one() -> None:
    steps = "\n\n".join(f"{n}. {step}" for n, step in enumerate(STEPS, start=1))
    text = f"{FILLER}\n\n{steps}\n\n{FILLER}"
    quoted = extractive.quote(text, "How do I install it to the workspace?", limit=330)
    assert quoted.startswith("… 1. Create the app.")
    assert "2. Install it to the workspace." in quoted


def test_a_procedure_at_the_start_of_a_passage_is_quoted_from_its_first_step() -> None:
    text = "\n\n".join([*STEPS, FILLER])  # HTML list items arrive as paragraphs, unnumbered
    quoted = extractive.quote(text, "How do I install it to the workspace?", limit=300)
    assert quoted.startswith("Create the app.")
    assert "\nInstall it to the workspace." in quoted  # each step on its own line


def test_code_blocks_are_kept_whole_with_their_lines() -> None:
    text = f"{FILLER}\n\nTo ingest a folder run this:\n\n{CODE}\n\n{FILLER}"
    quoted = extractive.quote(text, "How do I ingest a folder?", limit=240)
    assert f"To ingest a folder run this:\n{CODE}" in quoted


def test_a_code_block_that_does_not_fit_is_left_out_not_cut() -> None:
    text = f"{FILLER}\n\nTo ingest a folder run this:\n\n{CODE}\n\n{FILLER}"
    quoted = extractive.quote(text, "How do I ingest a folder?", limit=60)
    assert quoted == "… To ingest a folder run this: …"


def test_the_answer_fits_one_chat_message_and_each_quote_stays_under_its_number() -> None:
    passages = [passage(f"Topic{n} is explained here. {FILLER} {FILLER}") for n in range(1, 5)]
    headings = [f"Guide › Section {n} " + "with a long heading " * 3 for n in range(1, 5)]
    text = extractive.compose("Where is topic3 explained?", passages, headings)

    assert len(text) <= extractive.ANSWER_CHARS
    label, *blocks = text.split("\n\n")
    assert label == extractive.LABEL and len(blocks) == 4
    for n, block in enumerate(blocks, start=1):
        first, *lines = block.split("\n")
        assert first == f"[{n}] {headings[n - 1]}"
        assert lines and all(line.startswith(">") for line in lines)
        assert f"Topic{n} is explained here." in block  # the passage's own text, under its number
    assert len(blocks[0]) > len(blocks[1])  # the best passage gets the most room


def test_a_short_passage_is_quoted_whole() -> None:
    text = extractive.compose("q", [passage("Short passage.\n\nSecond line.")], ["Guide"])
    assert text.endswith("[1] Guide\n> Short passage.\n>\n> Second line.")


def test_a_sentence_longer_than_the_limit_is_cut_at_a_word() -> None:
    text = "word " * 200
    quoted = extractive.quote(f"{text.strip()}. Next sentence.", "word", limit=100)
    assert len(quoted) <= 100 and quoted.endswith("…")
    assert re.fullmatch(r"(word )*word…", quoted)


def test_a_procedure_cut_into_chunks_is_quoted_from_the_sections_first_step() -> None:
    *earlier, last = STEPS
    quoted = extractive.quote(last, "How do I run it?", limit=400, before="\n\n".join(earlier))
    assert quoted.startswith("Create the app.")
    text = extractive.compose(
        "How do I run it?", [passage(last)], ["Guide"], before=["\n\n".join(earlier)]
    )
    assert "[1] Guide\n> Create the app." in text
