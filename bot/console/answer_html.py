"""An answer's Markdown as safe HTML for the Ask page, the same whether the answer was just
streamed or is reloaded with the conversation.

A model can write anything, so the text is hostile: raw HTML is escaped, never passed
through; a link is kept only if it goes to http, https or mailto, and opens apart from the
console (``rel="noopener noreferrer"``); an image is never loaded, only linked by its alt
text; reference definitions are not read, so ``[1]: https://elsewhere`` cannot hijack a
citation marker. Each ``[n]`` that names one of the answer's listed pages becomes a link to
that page's entry under the answer. Text beyond MAX_CHARS is cut before parsing, which keeps
both the parse and the page bounded.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

from markdown_it import MarkdownIt
from markdown_it.common.utils import escapeHtml
from markdown_it.renderer import RendererHTML
from markdown_it.rules_inline import StateInline
from markdown_it.token import Token
from markdown_it.utils import EnvType, OptionsDict

MAX_CHARS = 20_000  # an answer of TEAMBOT_LLM_MAX_OUTPUT_TOKENS=600 is ~2,500 characters
CUT_NOTE = "\n\n*(The answer is longer than the console shows; it was cut here.)*"
SCHEMES = ("http", "https", "mailto")
OPEN_APART = {"rel": "noopener noreferrer", "target": "_blank"}
MARKER = re.compile(r"\[(\d{1,3})\]")


def is_safe_link(url: str) -> bool:
    """Only absolute http, https and mailto addresses: no ``javascript:``, ``data:``,
    relative paths or fragments a model could aim at the console itself."""
    try:
        scheme = urlsplit(url.strip()).scheme.lower()
    except ValueError:
        return False
    return scheme in SCHEMES


def _citation(state: StateInline, silent: bool) -> bool:
    """``[n]`` for a listed page: a link to its entry (anything else is left to the other
    rules, so ``[3]`` with no third page stays text). Inside a link's text it stays text:
    a silent call comes from reading a link's label, and links do not nest."""
    if silent or state.src[state.pos] != "[" or state.linkLevel > 0:
        return False
    found = MARKER.match(state.src, state.pos)
    anchors: Mapping[int, str] = state.env.get("citations", {})
    if found is None or int(found.group(1)) not in anchors:
        return False
    link = state.push("link_open", "a", 1)
    link.attrs = {"href": "#" + anchors[int(found.group(1))], "class": "cite"}
    state.push("text", "", 0).content = found.group(0)
    state.push("link_close", "a", -1)
    state.pos = found.end()
    return True


def _link_open(
    renderer: RendererHTML, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType
) -> str:
    token = tokens[idx]
    if token.attrGet("class") != "cite":
        for name, value in OPEN_APART.items():
            token.attrSet(name, value)
    return renderer.renderToken(tokens, idx, options, env)


def _image(
    renderer: RendererHTML, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType
) -> str:
    """An image as a link to it, never an ``<img>`` the browser would fetch."""
    token = tokens[idx]
    alt = renderer.renderInlineAsText(token.children or [], options, env) or "image"
    src = escapeHtml(str(token.attrGet("src") or ""))
    return f'<a href="{src}" rel="noopener noreferrer" target="_blank">{escapeHtml(alt)}</a>'


def _parser() -> MarkdownIt:
    md = MarkdownIt("commonmark", {"html": False})
    md.enable(["table", "strikethrough"])
    md.disable(["reference", "html_block", "html_inline"])
    md.validateLink = is_safe_link  # type: ignore[method-assign]
    md.inline.ruler.before("link", "citation", _citation)
    md.add_render_rule("link_open", _link_open)
    md.add_render_rule("image", _image)
    return md


PARSER = _parser()


def answer_html(text: str, anchors: Mapping[int, str]) -> str:
    """``text`` (an answer's Markdown) as HTML, each ``[n]`` in ``anchors`` linked to the
    element id it names."""
    if len(text) > MAX_CHARS:
        text = text[:MAX_CHARS] + CUT_NOTE
    env: dict[str, Any] = {"citations": dict(anchors)}
    return PARSER.render(text, env)
