"""Scripts that measure quality, speed and load and print tables (not run by CI).

A package so each script runs from the repository root as ``python -m bench.NAME`` and
imports the test fakes as ``tests.fakes`` without touching ``sys.path``.
"""
