"""URL normalisation and scope rules for the crawler.

One page reached by many spellings (``HTTP://Docs.X.org:443/a/../b#top?utm_source=…``)
must be fetched, stored and cited once, so every URL the crawler sees goes through
``canonicalize`` first. ``in_scope`` and ``UrlRules`` decide which canonical URLs
belong to a source.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import quote, unquote, urljoin, urlsplit, urlunsplit

from knowledge.errors import SourceError

_DEFAULT_PORTS = {"http": 80, "https": 443}
_TRACKING_PARAMS = frozenset(
    {"gclid", "fbclid", "msclkid", "mc_cid", "mc_eid", "_ga", "ref_src", "yclid"}
)
_TRACKING_PREFIX = "utm_"
# Characters left as they are when percent-encoding; "%" keeps existing escapes intact.
_PATH_SAFE = "/:@!$&'()*+,;=%"
_QUERY_SAFE = "/?:@!$&'()*+,;=%"
_STRIPPED_CHARS = re.compile(r"[\t\n\r]")  # browsers drop these anywhere in an href
_HOST_CHARS = re.compile(r"[a-z0-9.\-_:]+")  # a DNS name, IPv4 or IPv6 literal, after IDNA

MASK = "***"
# Query (and fragment) parameters whose values are secrets: a name on this list, or whose
# last word (split at "-", "_" or ".") is on it, as in client_secret or X-Amz-Signature.
SECRET_PARAMS = frozenset(
    {"token", "key", "api_key", "apikey", "access_token", "password", "secret", "sig",
     "signature", "auth", "code"}
)  # fmt: skip
_NAME_WORDS = re.compile(r"[-_.]")
# A URL inside free text (a log line, an error): scheme://, then up to a space, a quote,
# or Slack's <url|label> punctuation. Sentence punctuation at its end is not part of it.
_URL_IN_TEXT = re.compile(r"[a-z][a-z0-9+.\-]*://[^\s<>\"'`|]+", re.IGNORECASE)
_TRAILING_PUNCTUATION = ".,;:!?)]}"


def canonicalize(url: str, base: str | None = None) -> str | None:
    """Return the one spelling of an http(s) URL, or None if it is not one we can fetch.

    Joins ``url`` against ``base``; lowercases scheme and host (IDNA-encoding non-ASCII
    hosts); drops user info, default ports, the fragment and tracking parameters;
    removes dot segments; percent-encodes characters a URL may not contain.
    """
    url = _STRIPPED_CHARS.sub("", url).strip()
    try:
        parts = urlsplit(urljoin(base, url) if base else url)
        port = parts.port
    except ValueError:  # a bad port or an unbalanced IPv6 bracket
        return None
    scheme = parts.scheme.lower()
    host = _ascii_host(parts.hostname or "")
    if scheme not in _DEFAULT_PORTS or not host:
        return None
    netloc = f"[{host}]" if ":" in host else host
    if port is not None and port != _DEFAULT_PORTS[scheme]:
        netloc = f"{netloc}:{port}"
    path = quote(_remove_dot_segments(parts.path or "/"), safe=_PATH_SAFE)
    query = quote(_drop_tracking(parts.query), safe=_QUERY_SAFE)
    return urlunsplit((scheme, netloc, path, query, ""))


def in_scope(url: str, prefix: str) -> bool:
    """Whether ``url`` lies under ``prefix``: same origin, path below it at a ``/`` boundary.

    A prefix whose last segment has a dot (``/docs/index.html``) names a file and scopes
    to its directory (``/docs/``); any other prefix (``/docs`` or ``/docs/``) is a
    directory, so ``/docs/a`` is in scope and ``/docsearch`` is not.
    """
    canonical_url, canonical_prefix = canonicalize(url), canonicalize(prefix)
    if canonical_url is None or canonical_prefix is None:
        return False
    target, scope = urlsplit(canonical_url), urlsplit(canonical_prefix)
    if (target.scheme, target.netloc) != (scope.scheme, scope.netloc):
        return False
    directory = _scope_directory(scope.path)
    return target.path == directory[:-1] or target.path.startswith(directory)


def relative_path(url: str, root: str) -> str:
    """The path of ``url`` relative to the directory ``root`` scopes to, still percent-encoded.

    Root ``http://h/`` and url ``http://h/faq/admin.html`` give ``faq/admin.html``; the
    root directory itself (``http://h/`` or ``http://h/docs`` for root ``http://h/docs/``)
    gives ``""``. The query is not part of the path. Raises ValueError for a URL outside
    ``root``'s scope, which the crawler never asks about.
    """
    if not in_scope(url, root):
        raise ValueError(f"{url} is not under {root}")
    path = urlsplit(canonicalize(url) or "").path
    directory = _scope_directory(urlsplit(canonicalize(root) or "").path)
    return path[len(directory) :]


@dataclass(frozen=True)
class UrlRules:
    """A source's include/exclude regexes, searched anywhere in the canonical URL.

    With includes, a URL must match at least one; it must match no exclude. Patterns are
    compiled once here, so a typo surfaces as a ``SourceError`` when the source is added.
    """

    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    _include: tuple[re.Pattern[str], ...] = field(init=False, repr=False, compare=False)
    _exclude: tuple[re.Pattern[str], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_include", _compile_all(self.include))
        object.__setattr__(self, "_exclude", _compile_all(self.exclude))

    def allows(self, url: str) -> bool:
        if self._include and not any(pattern.search(url) for pattern in self._include):
            return False
        return not any(pattern.search(url) for pattern in self._exclude)


def _compile_all(patterns: tuple[str, ...]) -> tuple[re.Pattern[str], ...]:
    compiled = []
    for pattern in patterns:
        try:
            compiled.append(re.compile(pattern))
        except re.error as error:
            raise SourceError(f"invalid URL pattern {pattern!r}: {error}") from None
    return tuple(compiled)


def _ascii_host(host: str) -> str:
    """The host as it goes on the wire: lowercase, IDNA-encoded; "" if it is not a valid host."""
    try:
        encoded = host if host.isascii() else host.encode("idna").decode("ascii")
    except UnicodeError:
        return ""
    encoded = encoded.lower()
    return encoded if _HOST_CHARS.fullmatch(encoded) else ""


def _remove_dot_segments(path: str) -> str:
    """RFC 3986 §5.2.4 for an absolute path: resolve ``.`` and ``..``, never above ``/``."""
    segments = path.split("/")[1:]
    output: list[str] = []
    for position, segment in enumerate(segments):
        is_last = position == len(segments) - 1
        if segment in (".", ".."):
            if segment == ".." and output:
                output.pop()
            if is_last:
                output.append("")  # "/a/b/.." is the directory "/a/"
        else:
            output.append(segment)
    return "/" + "/".join(output)


def _drop_tracking(query: str) -> str:
    """The query without tracking parameters or empty pieces, other pairs kept as written."""
    kept = []
    for pair in query.split("&"):
        name = pair.split("=", 1)[0].lower()
        if pair and name not in _TRACKING_PARAMS and not name.startswith(_TRACKING_PREFIX):
            kept.append(pair)
    return "&".join(kept)


def _scope_directory(path: str) -> str:
    """The directory a prefix path scopes to, always ending in ``/``."""
    if path.endswith("/"):
        return path
    head, _, last = path.rpartition("/")
    return f"{head}/" if "." in last else f"{path}/"


def mask_url(url: str) -> str:
    """``url`` fit to show or log: its userinfo password and secret parameter values masked.

    ``http://bot:pw@h/v1?api_key=k&x=1`` becomes ``http://bot:***@h/v1?api_key=***&x=1``.
    A userinfo with no password is masked whole (``https://TOKEN@host`` is how tokens are
    put in URLs). Everything else is kept as written, so the URL stays recognisable; a URL
    that cannot be parsed is shown as ``***`` rather than risk showing it.
    """
    try:
        parts = urlsplit(url)
    except ValueError:  # an unbalanced IPv6 bracket
        return MASK
    masked = url
    userinfo, at, hostport = parts.netloc.rpartition("@")
    if at:
        user, colon, _ = userinfo.partition(":")
        shown = f"{user}:{MASK}" if colon else MASK
        masked = masked.replace(parts.netloc, f"{shown}@{hostport}", 1)
    for separator, params in (("?", parts.query), ("#", parts.fragment)):
        if params:
            hidden = "&".join(_mask_param(pair) for pair in params.split("&"))
            masked = masked.replace(separator + params, separator + hidden, 1)
    return masked


def mask_urls_in(text: str) -> str:
    """``text`` with every URL in it passed through ``mask_url`` (log lines, error messages)."""
    return _URL_IN_TEXT.sub(_mask_found_url, text)


def _mask_found_url(found: re.Match[str]) -> str:
    url = found.group()
    kept = url.rstrip(_TRAILING_PUNCTUATION)
    return mask_url(kept) + url[len(kept) :]


def _mask_param(pair: str) -> str:
    name, equals, value = pair.partition("=")
    if not (equals and value):
        return pair
    lowered = unquote(name).lower()
    is_secret = lowered in SECRET_PARAMS or _NAME_WORDS.split(lowered)[-1] in SECRET_PARAMS
    return f"{name}={MASK}" if is_secret else pair
