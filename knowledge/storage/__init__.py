"""Storage: the one module tree every layer may use, and which uses nothing above it.

    db.py             engine, sessions, the declarative Base, UTC timestamps, migrations glue
    documents.py      sources, documents, chunks (with their embeddings), runs, index state
    conversations.py  conversations, turns, feedback, channel settings, admins, audit, LLM usage
    answers.py        team answers ("Teach teambot"), each also a document of `team-answers`
    processes.py      heartbeats, notices, processed events, the scheduler's job store
    store.py          reading and writing the knowledge tables inside a caller's session
    lease.py          one refresh of a source at a time, across machines
    coordination.py   who is alive, what is queued: what processes agree on through SQL

It lives inside knowledge/ because the project's top-level folders are fixed; the layering
test (tests/test_layers.py) holds it to importing only itself and ``knowledge.errors`` /
``knowledge.types``, the leaf modules of the package.
"""
