"""The root of every error teambot raises on purpose, and the knowledge package's own branch.

The CLI and the chat adapters catch ``TeambotError`` once and show its message: each error
below is written for the person who ran the command or asked the question, and says what to
do next. Anything else that escapes is a bug, named without internals.

TeambotError
├── CommandFailed                a terminal command that cannot go on (bot/cli.py)
├── KnowledgeError               documents: crawl, ingest, embed, store, search
│   ├── SourceError              a source or path that cannot be used as given
│   │   ├── SourceBusyError      another process is refreshing this source right now
│   │   └── GitError             a git repository that cannot be cloned or read
│   ├── BlockedURLError          a URL teambot refuses to fetch (private, loopback, metadata…)
│   ├── EmbeddingModelError      the embedding model cannot be loaded
│   ├── SchemaError              the database schema is missing or out of date
│   ├── UnreadableBodyError      a body teambot will not decode (stacked, corrupt encoding…)
│   ├── PdfError                 a PDF teambot will not index (encrypted, image-only, a bomb…)
│   ├── MarkupError              a reStructuredText file docutils cannot parse at all
│   ├── SlackHistoryError        Slack would not give a channel's history
│   │   └── RateLimited          Slack said 429 for longer than a run waits
│   └── TuningError              a `teambot tune` run that cannot start or go on as asked
└── BotError                     people: questions, settings, admin, models (bot/errors.py)
    ├── QuestionError            a question that cannot be asked as given
    ├── SettingsError            a configuration that cannot work (names the variable)
    ├── AdminError               an admin command that cannot run as given
    ├── LinkRefused              a console sign-in link that opens no session
    ├── SlackRefused             Sign in with Slack that lets this person not in
    └── ProviderError            one model failed one request; the router fails over on it
        ├── ProviderTimeout          no answer (or no end of one) within the deadline
        ├── ProviderBadResponse      a response that is not a usable answer
        ├── ProviderStreamDropped    the stream broke off or ended unfinished
        ├── ProviderRejected         a 4xx: the request as sent cannot succeed
        │   └── ProviderAuthError    401 / 403: the API key was refused
        └── TransientProviderError   trying again may help (honours Retry-After)
            ├── ProviderUnreachable  cannot connect to the model server
            ├── ProviderRateLimited  429
            └── ProviderServerError  5xx

Why the root lives here: knowledge/ may import neither bot/ nor workers/, and both of those
import knowledge/, so this is the lowest module every layer may use; the top level is fixed,
so there is no neutral package to put it in. This module imports nothing, so storage code
that raises SchemaError pulls in no other part of knowledge/. Subclasses are defined beside
the code that raises them when only that code does (SourceBusyError with the lease,
UnreadableBodyError with the bounded body reader).
"""


class TeambotError(Exception):
    """Base class of every error teambot raises on purpose: its message is for the user."""


class KnowledgeError(TeambotError):
    """Base class of the knowledge package's errors."""


class SourceError(KnowledgeError):
    """A source or path that cannot be used as given."""


class BlockedURLError(KnowledgeError):
    """A URL teambot refuses to fetch: private, loopback, link-local or cloud metadata address."""


class EmbeddingModelError(KnowledgeError):
    """The embedding model cannot be loaded."""


class SchemaError(KnowledgeError):
    """The database schema is missing or older than this code."""
