"""The one way the crawler reads a response body: decoded by us, counted, and cut at a cap.

httpx inflates ``Content-Encoding`` with no output limit, so a 13 kB ``gzip, gzip`` answer
can grow to gigabytes before any size check sees it. ``BodyReader`` reads the raw stream
(``aiter_raw``) instead and decodes it itself with ``Inflater``, which asks zlib for at most
the room left under the cap on every call: no single chunk, however well it compresses,
can inflate past the cap. Identity, gzip (and x-gzip) and deflate are read; stacked or
unknown encodings (br, zstd, …) are refused, and ``ACCEPT_ENCODING`` asks servers for
nothing else. The same ``Inflater`` bounds the gunzip of ``.xml.gz`` sitemaps.

The reader's counters (``raw_bytes``, ``decoded_bytes``, ``at_cap``) say what it held, so
tests and benches assert memory bounds through them rather than through process RSS.
"""

from __future__ import annotations

import zlib
from collections.abc import AsyncIterator, Iterator

import httpx

from knowledge.errors import KnowledgeError

ACCEPT_ENCODING = "gzip, deflate"
_WBITS = {"gzip": 16 + zlib.MAX_WBITS, "x-gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}
_RAW_DEFLATE_WBITS = -zlib.MAX_WBITS
_PIECE_BYTES = 256 * 1024  # the most one call inflates, so pieces stream, however small the cap


class UnreadableBodyError(KnowledgeError):
    """A body teambot will not decode: a stacked, unknown, corrupt or truncated encoding."""


class Inflater:
    """Decompresses gzip or deflate data incrementally, never past ``limit`` bytes in all.

    ``at_cap`` turns True (and ``feed`` returns nothing more) once the data would inflate
    beyond ``limit``; what came before is returned, exactly ``limit`` bytes of it.
    """

    def __init__(self, encoding: str, limit: int) -> None:
        self.encoding = encoding
        self.limit = limit
        self.decoded_bytes = 0
        self.at_cap = False
        self._wbits = _WBITS[encoding]
        self._zlib = zlib.decompressobj(self._wbits)
        self._started = False

    @property
    def eof(self) -> bool:
        """The compressed stream ended properly (trailing bytes after it are ignored)."""
        return self._zlib.eof

    def feed(self, data: bytes) -> Iterator[bytes]:
        """The decompressed pieces of ``data``, each at most the room left under the cap."""
        while not self.at_cap and not self._zlib.eof:
            room = self.limit - self.decoded_bytes
            wanted = min(room + 1, _PIECE_BYTES)  # one byte over the room tells "past the cap"
            piece = self._decompress(data, wanted)
            data = self._zlib.unconsumed_tail
            inflated = len(piece)
            if inflated > room:
                self.at_cap = True
                piece = piece[:room]
            self.decoded_bytes += len(piece)
            if piece:
                yield piece
            if not data and inflated < wanted:
                return  # the input is used up and zlib holds nothing more back

    def finish(self) -> None:
        """Raise ``UnreadableBodyError`` if the stream stopped before its end."""
        if not self.at_cap and not self._zlib.eof:
            raise UnreadableBodyError(f"truncated {self.encoding} data")

    def _decompress(self, data: bytes, max_length: int) -> bytes:
        try:
            piece = self._zlib.decompress(data, max_length)
        except zlib.error as error:
            if self._started or self._wbits != zlib.MAX_WBITS:
                raise UnreadableBodyError(f"not valid {self.encoding}: {error}") from None
            # "deflate" is meant to be zlib-wrapped, but some servers send it raw.
            self._wbits = _RAW_DEFLATE_WBITS
            self._zlib = zlib.decompressobj(self._wbits)
            return self._decompress(data, max_length)
        self._started = True
        return piece


def content_encoding(response: httpx.Response) -> str:
    """The one encoding the body is in ("identity", "gzip", "x-gzip" or "deflate").

    Raises ``UnreadableBodyError`` for stacked encodings (``gzip, gzip``) and for any
    other, such as ``br`` or ``zstd``.
    """
    header = response.headers.get("content-encoding", "")
    named = (coding.strip().lower() for coding in header.split(","))
    codings = [coding for coding in named if coding not in ("", "identity")]
    if not codings:
        return "identity"
    if len(codings) > 1:
        raise UnreadableBodyError(
            f"stacked Content-Encoding {header.strip()!r} is refused: "
            "teambot decodes one layer of gzip or deflate"
        )
    if codings[0] not in _WBITS:
        raise UnreadableBodyError(
            f"Content-Encoding {codings[0]!r} is not one teambot reads (gzip or deflate)"
        )
    return codings[0]


class BodyReader:
    """Reads one response body, decoded, up to ``limit`` bytes; the caller judges the rest.

    After reading: ``raw_bytes`` came off the wire, ``decoded_bytes`` (at most ``limit``)
    were handed out, and ``at_cap`` is True when the body went on past ``limit`` (reading
    stopped there). Raises ``UnreadableBodyError`` for encodings it refuses or cannot decode.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.encoding = "identity"
        self.raw_bytes = 0
        self.decoded_bytes = 0
        self.at_cap = False

    async def stream(self, response: httpx.Response) -> AsyncIterator[bytes]:
        """The decoded body in pieces, ending early at the cap."""
        self.encoding = content_encoding(response)
        inflater = None if self.encoding == "identity" else Inflater(self.encoding, self.limit)
        async for raw in response.aiter_raw():
            self.raw_bytes += len(raw)
            for piece in self._decode(raw, inflater):
                self.decoded_bytes += len(piece)
                yield piece
            if self.at_cap:
                return
        if inflater is not None:
            inflater.finish()

    async def read(self, response: httpx.Response) -> bytes:
        """The decoded body, at most ``limit`` bytes of it (see ``at_cap``)."""
        body = bytearray()
        async for piece in self.stream(response):
            body.extend(piece)
        return bytes(body)

    def _decode(self, raw: bytes, inflater: Inflater | None) -> Iterator[bytes]:
        if inflater is not None:
            yield from inflater.feed(raw)
            self.at_cap = inflater.at_cap
            return
        room = self.limit - self.decoded_bytes
        if len(raw) > room:
            self.at_cap = True
            raw = raw[:room]
        if raw:
            yield raw
