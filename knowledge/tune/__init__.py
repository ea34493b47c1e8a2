"""`teambot tune`: adapt the embedding model to the team's own docs, and prove it first.

pairs.py (training pairs from the docs' structure) → train.py (contrastive fine-tuning,
budgeted, resumable) → registry.py (model versions: saved, exported, re-embedded in the
background) → gate.py (before/after retrieval; switch only when better) → registry's atomic
switch and rollback. docs/tuning.md explains it to an admin.
"""
