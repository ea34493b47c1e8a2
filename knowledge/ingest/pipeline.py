"""From fetched text to stored, embedded chunks — the same path for folders and web pages.

Nothing unchanged is embedded twice: a document whose extracted content hash
is unchanged is not re-chunked into the database, and inside a changed
document every chunk whose text was embedded before (by the same model, on
any page) reuses the stored vector. Each document is written in its own
transaction, so a run that dies halfway leaves whole documents behind and
the next run finishes the job without duplicates.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session, sessionmaker

from knowledge.crawl.links import is_javascript_shell
from knowledge.embed.embedder import TextEmbedder, pinned
from knowledge.errors import KnowledgeError
from knowledge.ingest.chunk import chunk_page
from knowledge.ingest.extract import extract
from knowledge.ingest.report import RunReport
from knowledge.storage import store
from knowledge.types import ChunkDraft

log = logging.getLogger(__name__)

# Bumped whenever extraction or chunking changes, so every document is re-chunked.
PIPELINE_VERSION = "3"  # 3: reStructuredText through docutils
# Documents are embedded together until this many chunks wait, or the oldest has waited
# this long (so a slow crawl's pages become searchable as it goes), then stored one by one.
EMBED_GROUP_CHUNKS = 256
EMBED_GROUP_SECONDS = 2.0


@dataclass(frozen=True)
class FetchedDocument:
    """A document's current text as its source delivered it."""

    url: str
    text: str | bytes  # bytes for binary formats (extract.BINARY_SUFFIXES: PDF)
    suffix: str  # how to read it: ".html", ".md", ".txt", ".pdf"...
    fallback_title: str
    etag: str | None = None
    last_modified: str | None = None
    sitemap_lastmod: datetime | None = None
    links: list[str] | None = None
    web_url: str | None = None  # where a reader opens it, when not ``url`` (a git file)


@dataclass(frozen=True)
class _Planned:
    document: FetchedDocument
    title: str
    content_hash: str
    drafts: list[ChunkDraft]
    chunk_hashes: list[str]
    is_new: bool


class DocumentSync:
    """Brings a source's stored documents in line with what one run fetches."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        embedder: TextEmbedder,
        source_id: int,
        report: RunReport,
    ) -> None:
        self._sessions = sessions
        self._embedder = embedder
        self._source_id = source_id
        self._report = report
        with sessions() as session:
            self.known = store.known_documents(session, source_id)
        self.present: set[str] = set()  # urls confirmed to exist this run
        self.gone: set[str] = set()  # known urls the source says no longer exist
        # urls whose content another url of this run also has; stored ones are deleted
        self.duplicates: set[str] = set()
        # content hash → the url that keeps it; stored documents hold theirs until they change
        self._holder: dict[str, str] = {}
        self._held: dict[str, str] = {}  # the reverse: url → the content hash it keeps
        # url → (content hash, document) of pages dropped as copies this run, in case the
        # url that kept their content changes later in the run and leaves it to them
        self._copies: dict[str, tuple[str, FetchedDocument]] = {}
        for url in sorted(self.known, key=_url_order, reverse=True):
            self._hold(self.known[url].content_hash, url)
        self._pending: list[_Planned] = []
        self._pending_since = 0.0
        self._metadata: list[FetchedDocument] = []

    def submit(self, document: FetchedDocument) -> None:
        """Index ``document`` if its content changed; count it as unchanged otherwise."""
        self.present.add(document.url)
        started = time.perf_counter()
        try:
            page = extract(
                document.text, suffix=document.suffix, fallback_title=document.fallback_title
            )
        except KnowledgeError as exc:  # a PDF we refuse, and says why: encrypted, too large
            self._report.fail(document.url, str(exc))
            return
        except Exception as exc:  # a page that breaks the extractor must not stop the run
            log.exception("extracting %s failed", document.url)
            self._report.fail(document.url, f"could not be extracted ({type(exc).__name__})")
            return
        self._report.add_time("extract", time.perf_counter() - started)
        if (
            document.suffix in (".html", ".htm")
            and isinstance(document.text, str)
            and is_javascript_shell(document.text, page.text)
        ):
            self._report.skip(document.url, "a JavaScript app shell with no content to index")
            return
        content_hash = _digest([PIPELINE_VERSION, self._embedder.model_name, page.title, page.text])
        if not self._claim(document.url, content_hash):
            self._copies[document.url] = (content_hash, document)
            return
        known = self.known.get(document.url)
        if known is not None and known.content_hash == content_hash:
            self._report.pages_unchanged += 1
            self._metadata.append(document)
            return
        started = time.perf_counter()
        drafts = chunk_page(page, self._embedder.count_tokens, self._embedder.max_tokens)
        self._report.add_time("chunk", time.perf_counter() - started)
        if not drafts:
            self._report.skip(document.url, "no text found in it")
            return
        model = self._embedder.model_name
        if not self._pending:
            self._pending_since = time.monotonic()
        self._pending.append(
            _Planned(
                document=document,
                title=page.title,
                content_hash=content_hash,
                drafts=drafts,
                chunk_hashes=[chunk_hash(model, d.embed_text) for d in drafts],
                is_new=known is None,
            )
        )
        waited = time.monotonic() - self._pending_since
        if (
            sum(len(p.drafts) for p in self._pending) >= EMBED_GROUP_CHUNKS
            or waited >= EMBED_GROUP_SECONDS
        ):
            self.flush()

    def unchanged(self, url: str) -> None:
        """The source says this document did not change (HTTP 304, sitemap lastmod)."""
        self.present.add(url)
        known = self.known.get(url)
        if known is not None and not self._claim(url, known.content_hash):
            return
        self._report.pages_unchanged += 1

    def _claim(self, url: str, content_hash: str) -> bool:
        """False if another url keeps this content; the shorter url wins, whatever order
        the pages arrive in, so the choice is the same on every run and nothing churns."""
        holder = self._holder.get(content_hash)
        if holder is not None and holder != url:
            winner, loser = sorted((holder, url), key=_url_order)
            self._drop(loser, winner)
            if winner == holder:
                return False
        released = self._hold(content_hash, url)
        if url in self.duplicates:
            # Dropped earlier in this run for the content it had when stored, which a
            # shorter url took before this one was fetched; its new content is its own.
            self.duplicates.discard(url)
            self._copies.pop(url, None)
            self._report.unskip(url)
        if released is not None:
            self._resubmit_copies_of(released)
        return True

    def _hold(self, content_hash: str, url: str) -> str | None:
        """``url`` keeps ``content_hash``; returns the content it kept before, if that is
        now kept by no url."""
        previous = self._held.get(url)
        self._holder[content_hash] = url
        self._held[url] = content_hash
        if previous is not None and previous != content_hash and self._holder.get(previous) == url:
            del self._holder[previous]  # the url's old content is no longer there
            return previous
        return None

    def _resubmit_copies_of(self, content_hash: str) -> None:
        """Pages dropped as copies of content whose keeper has changed since: the shortest
        url of them keeps it now (submitted first, it wins; the others are copies again)."""
        urls = [url for url, (held, _) in self._copies.items() if held == content_hash]
        for url in sorted(urls, key=_url_order):
            _, document = self._copies.pop(url)
            self.submit(document)

    def _drop(self, url: str, kept: str) -> None:
        if url in self.duplicates:
            return
        self.duplicates.add(url)
        self.present.discard(url)
        self._pending = [p for p in self._pending if p.document.url != url]
        self._metadata = [d for d in self._metadata if d.url != url]
        self._report.skip(url, f"the same content as {kept}")

    def rename(self, old: str, new: str, *, last_modified: str, web_url: str | None) -> None:
        """The document at ``old`` is now at ``new`` with the same content (a file moved in a
        repository): its chunks stay, only its address changes; nothing is read or embedded."""
        with self._sessions.begin() as session:
            kept = store.rename_document(
                session, self._source_id, old, new, last_modified=last_modified, web_url=web_url
            )
        known = self.known.pop(old)
        self.known[new] = known
        if self._holder.get(known.content_hash) == old:
            self._holder[known.content_hash] = new
        self._held[new] = self._held.pop(old, known.content_hash)
        self.present.add(new)
        self._report.pages_changed += 1
        self._report.chunks_reused += kept

    def keep(self, url: str) -> None:
        """The document could not be read this run: keep what was stored, do not remove it."""
        if url in self.known:
            self.present.add(url)

    def flush(self) -> None:
        """Embed what the pending documents need, store each, and save changed metadata."""
        group, self._pending = self._pending, []
        if group:
            self._store(group)
        if self._metadata:
            with self._sessions.begin() as session:
                for document in self._metadata:
                    store.update_document_metadata(
                        session,
                        source_id=self._source_id,
                        url=document.url,
                        etag=document.etag,
                        last_modified=document.last_modified,
                        sitemap_lastmod=document.sitemap_lastmod,
                        links=document.links,
                    )
            self._metadata = []

    def _store(self, group: list[_Planned]) -> None:
        embedder = pinned(self._embedder)  # one model for the whole group, switch or not
        report, model = self._report, embedder.model_name
        with self._sessions() as session:
            vectors = store.stored_embeddings(
                session, (h for p in group for h in p.chunk_hashes), model
            )
        texts: dict[str, str] = {}
        for plan in group:
            for draft, chunk_hash in zip(plan.drafts, plan.chunk_hashes, strict=True):
                if chunk_hash not in vectors:
                    texts.setdefault(chunk_hash, draft.embed_text)
        if texts:
            started = time.perf_counter()
            embedded = embedder.embed_texts(list(texts.values()))
            vectors.update(zip(texts, map(store.vector_bytes, embedded), strict=True))
            report.add_time("embed", time.perf_counter() - started)
            report.chunks_embedded += len(texts)
        report.chunks_reused += sum(len(p.drafts) for p in group) - len(texts)
        started = time.perf_counter()
        for plan in group:
            with self._sessions.begin() as session:
                store.save_document(
                    session,
                    source_id=self._source_id,
                    url=plan.document.url,
                    title=plan.title,
                    content_hash=plan.content_hash,
                    etag=plan.document.etag,
                    last_modified=plan.document.last_modified,
                    sitemap_lastmod=plan.document.sitemap_lastmod,
                    links=plan.document.links,
                    drafts=plan.drafts,
                    chunk_hashes=plan.chunk_hashes,
                    embeddings=[vectors[h] for h in plan.chunk_hashes],
                    model=model,
                    web_url=plan.document.web_url,
                )
            if plan.is_new:
                report.pages_new += 1
            else:
                report.pages_changed += 1
        report.add_time("store", time.perf_counter() - started)


def _url_order(url: str) -> tuple[int, str]:
    return len(url), url


def chunk_hash(model: str, embed_text: str) -> str:
    """A chunk's ``content_hash``: the same text embedded by the same model has the same one,
    which lets a page reuse vectors (and `teambot tune`'s re-embed write reusable ones)."""
    return _digest([model, embed_text])


def _digest(parts: list[str]) -> str:
    return hashlib.sha256(json.dumps(parts, ensure_ascii=False).encode()).hexdigest()
