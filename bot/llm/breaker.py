"""A circuit breaker per model, so a dead model costs one timeout, not one per question.

Closed: requests flow. After ``failures_to_open`` failures in a row it opens and
requests skip the model for ``reset_seconds``. Then it is half-open: one probe
request may go; success closes it, failure opens it again for twice as long (up
to ``max_reset_seconds``). A short first period keeps a brief outage brief (a 10 s
outage under load cost 163 extractive answers with 5 s, 1,254 with a fixed 30 s:
bench/cluster.py), and the doubling keeps a model that stays down from costing a
probe timeout every few seconds. State is per process: each replica learns a
model's health from its own calls.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Literal

State = Literal["closed", "open", "half-open"]


class CircuitBreaker:
    """Decides whether the next request may go to a model, from how its last ones ended."""

    def __init__(
        self,
        failures_to_open: int = 3,
        reset_seconds: float = 5.0,
        max_reset_seconds: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.failures_to_open = failures_to_open
        self.reset_seconds = reset_seconds
        self.max_reset_seconds = max(reset_seconds, max_reset_seconds)
        self._period = reset_seconds  # how long the current opening lasts
        self._clock = clock
        self._lock = threading.Lock()
        self._failures = 0
        self._opened_at: float | None = None
        self._probing = False

    @property
    def state(self) -> State:
        with self._lock:
            return self._state()

    def allow(self) -> bool:
        """True if a request may go now; in half-open state only one probe at a time may."""
        with self._lock:
            state = self._state()
            if state == "closed":
                return True
            if state == "half-open" and not self._probing:
                self._probing = True
                return True
            return False

    def retry_in(self) -> float:
        """Seconds until an open breaker lets a probe through (0 when it would now)."""
        with self._lock:
            if self._opened_at is None:
                return 0.0
            return max(0.0, self._opened_at + self._period - self._clock())

    def record_success(self) -> None:
        with self._lock:
            self._failures = 0
            self._opened_at = None
            self._probing = False
            self._period = self.reset_seconds

    def record_failure(self) -> None:
        with self._lock:
            self._failures += 1
            if self._probing:  # still down: wait twice as long before the next probe
                self._period = min(self._period * 2, self.max_reset_seconds)
            if self._probing or self._failures >= self.failures_to_open:
                self._opened_at = self._clock()
            self._probing = False

    def _state(self) -> State:
        if self._opened_at is None:
            return "closed"
        if self._clock() - self._opened_at >= self._period:
            return "half-open"
        return "open"
