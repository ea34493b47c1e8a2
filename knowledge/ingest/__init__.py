"""Ingestion: from a registered source to stored, embedded chunks.

``sources.py`` registers sources; ``refresh.py`` runs one refresh (lease, run record, crawl or
folder read, sync); ``folder.py`` reads a folder safely; ``extract.py`` and ``chunk.py`` turn
a document into sectioned passages; ``pipeline.py`` stores and embeds only what changed;
``local.py`` is `teambot ingest PATH`; ``progress.py`` and ``report.py`` say what happened.
"""
