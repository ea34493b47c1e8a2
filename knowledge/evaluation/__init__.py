"""Evaluation: question files with known answers (``scoring.py``) run through the retriever
(``run.py``): what `teambot eval` prints and bench/ builds on."""
