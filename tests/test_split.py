"""Splitting long answers for chat messages: limits, word boundaries, code fences."""

from __future__ import annotations

import re

import pytest

from bot.split import split_message

PROSE = " ".join(f"word{i}" for i in range(2000))


@pytest.mark.parametrize("limit", [2000, 3000])
def test_pieces_respect_the_limit_and_never_cut_a_word(limit: int) -> None:
    pieces = split_message(PROSE, limit)

    assert len(pieces) > 1
    assert all(len(p) <= limit for p in pieces)
    assert " ".join(pieces).split() == PROSE.split()  # every word, whole, in order


def test_paragraph_boundaries_are_preferred() -> None:
    paragraphs = [("alpha " * 150).strip(), ("beta " * 150).strip(), ("gamma " * 150).strip()]

    pieces = split_message("\n\n".join(paragraphs), 2000)

    assert pieces == ["\n\n".join(paragraphs[:2]), paragraphs[2]]


def test_a_cut_inside_a_code_block_closes_and_reopens_the_fence() -> None:
    code = "\n".join(f"    call_number_{i}()" for i in range(200))
    text = f"Run this:\n\n```python\n{code}\n```\n\nThen restart."

    pieces = split_message(text, 2000)

    assert len(pieces) >= 3
    for piece in pieces:
        assert len(piece) <= 2000
        assert len(re.findall(r"^```", piece, flags=re.MULTILINE)) % 2 == 0  # balanced
    assert pieces[1].startswith("```python\n")
    joined = "\n".join(pieces)
    assert all(f"call_number_{i}()" in joined for i in range(200))
    assert pieces[-1].endswith("Then restart.")


def test_short_text_is_one_piece_and_an_endless_word_is_cut() -> None:
    assert split_message("short", 2000) == ["short"]
    pieces = split_message("x" * 4500, 2000)
    assert "".join(pieces) == "x" * 4500 and all(len(p) <= 2000 for p in pieces)
