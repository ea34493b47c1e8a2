"""The Gaps page's topics kept in the process, so that a repeat view embeds nothing.

Grouping gaps by topic embeds every gap's question (about 170 ms for 300 on the demo
database). The grouping only changes when the gaps in the window do, so it is kept under the
window, the newest gap's id and the number of gaps: a new gap raises the id, and one leaving
the window or deleted (retention, ``admin forget``) lowers the count, so either makes a new
grouping. Only the last few groupings are kept, as each key is stale once the gaps move on.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable

from bot.gap_topics import Topic

KEPT = 4


class KeptTopics:
    """The last KEPT groupings, each under the state of the gaps it was made from."""

    def __init__(self, size: int = KEPT) -> None:
        self.size = size
        self._kept: OrderedDict[Hashable, list[Topic]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable, make: Callable[[], list[Topic]]) -> list[Topic]:
        """The grouping kept under ``key``, or ``make()``'s, kept from now on. Requests that
        miss together wait for one ``make`` rather than each embedding the same gaps."""
        with self._lock:
            if key in self._kept:
                self._kept.move_to_end(key)
                return self._kept[key]
            made = make()
            self._kept[key] = made
            while len(self._kept) > self.size:
                self._kept.popitem(last=False)
            return made

    def __len__(self) -> int:
        return len(self._kept)
