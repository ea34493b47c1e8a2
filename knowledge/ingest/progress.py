"""How long-running work reports progress without knowing who is watching.

The CLI shows a progress bar; tests and the worker pass ``NullProgress`` or
their own implementation.
"""

from __future__ import annotations

from typing import Protocol


class Progress(Protocol):
    def begin(self, stage: str, total: int | None) -> None:
        """A new stage of ``total`` steps (None: not known in advance) starts."""

    def advance(self, steps: int = 1) -> None:
        """``steps`` more steps of the current stage are done."""

    def end(self) -> None:
        """The current stage is over."""


class NullProgress:
    """Progress that goes nowhere."""

    def begin(self, stage: str, total: int | None) -> None:
        pass

    def advance(self, steps: int = 1) -> None:
        pass

    def end(self) -> None:
        pass
