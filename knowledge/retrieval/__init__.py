"""Retrieval: the in-memory indexes rebuilt from SQL and the search that fuses them.

``index.py`` is FAISS (dense), ``lexical.py`` BM25, ``snapshot.py`` their optional on-disk
copies, and ``search.py`` the ``Retriever`` every answer and evaluation goes through.
"""
