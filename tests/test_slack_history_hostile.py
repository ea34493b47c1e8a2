"""A Slack API that attacks the history reader: an answer with no end, one that trickles in,
one in an encoding nobody asked for. Each call is cut at its size cap or its deadline and
fails with a clear message that names no secret."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from knowledge.ingest.slack_client import SlackAccess, SlackHistoryError, open_reader
from tests.fakes.http import FakeHTTPServer, LocalFake, TrackedHandler


class HostileSlackAPI(LocalFake):
    """Answers every Web API call with one attack: ``endless``, ``trickle`` or ``encoded``."""

    def __init__(self, attack: str) -> None:
        self.attack = attack

    def _new_server(self) -> FakeHTTPServer:
        server = FakeHTTPServer(_Handler, "hostile-slack")
        server.attack = self.attack  # type: ignore[attr-defined]
        return server

    @property
    def api_url(self) -> str:
        return self._origin() + "/api/"


class _Handler(TrackedHandler):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        attack, stopping = self.server.attack, self.server.stopping  # type: ignore[attr-defined]
        self.send_response(200)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        if attack == "encoded":
            self.send_header("Content-Encoding", "gzip")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        piece = b'{"ok": true, "messages": [' + b'{"text": "x"},' * 5000
        while not stopping.is_set():
            self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            self.wfile.flush()
            if attack == "trickle" and stopping.wait(0.2):
                return


@pytest.fixture(params=["endless", "trickle", "encoded"])
def hostile(request: pytest.FixtureRequest) -> Iterator[HostileSlackAPI]:
    with HostileSlackAPI(request.param) as api:
        yield api


def test_a_hostile_answer_is_cut_at_its_cap_or_deadline(hostile: HostileSlackAPI) -> None:
    access = SlackAccess(token="xoxb-test", api_url=hostile.api_url, timeout=1, deadline=1.5,
                         max_response_bytes=2 * 2**20)  # fmt: skip
    reader = open_reader(access)
    started = time.monotonic()
    try:
        with pytest.raises(SlackHistoryError) as raised:
            reader.call("conversations.history", channel="C0HELP")
    finally:
        reader.close()
    assert time.monotonic() - started < 4
    message = str(raised.value)
    expected = {"endless": "larger than 2 MB", "trickle": "deadline",
                "encoded": "encoded body"}[hostile.attack]  # fmt: skip
    assert expected in message and "xoxb-test" not in message
