"""Errors the knowledge package raises; the CLI and adapters turn them into messages.

KnowledgeError
├── SourceError          a source or path that cannot be used as given
├── BlockedURLError      a URL teambot refuses to fetch (private, loopback, metadata…)
├── EmbeddingModelError  the embedding model cannot be loaded
└── SchemaError          the database schema is missing or out of date
"""


class KnowledgeError(Exception):
    """Base class: the message is written for the person who ran the command."""


class SourceError(KnowledgeError):
    """A source or path that cannot be used as given."""


class BlockedURLError(KnowledgeError):
    """A URL teambot refuses to fetch: private, loopback, link-local or cloud metadata address."""


class EmbeddingModelError(KnowledgeError):
    """The embedding model cannot be loaded."""


class SchemaError(KnowledgeError):
    """The database schema is missing or older than this code."""
