"""Embedding: text to normalised vectors, offline, with sentence-transformers (``embedder.py``)
or the same model exported to ONNX Runtime (``onnx_embedder.py``, the default)."""
