"""Exactly-once delivery: every platform event answered once, by however many replicas.

The path of one event, and where each step is decided:

1. Claim (``inbox.Inbox.claim``): before an event is acknowledged, a row keyed by
   (platform, event id) is inserted under a unique constraint, holding the payload and
   the claiming process. A retry or a second replica finds the id taken and acknowledges
   without answering. The Slack middleware and the Discord client both call it; when the
   database is down the claim fails and neither answers (Slack gets a 503 and retries,
   Discord retries the claim, then says "try again").
2. Reply record (``Inbox.record_reply``): the reply message posted first is stored, so a
   second attempt edits it instead of posting another.
3. Finish (``Inbox.finish``): answered, or given up for a sweep to retry.
4. Take-over (``replica.ReplicaDuties``): every replica beats a heartbeat
   (``knowledge.storage.coordination``) and sweeps for claims whose owner stopped beating,
   or its own that failed mid-answer, and answers them again (``Inbox.adopt_orphans``).

Heartbeats and process liveness live in storage because workers use them too.
"""
