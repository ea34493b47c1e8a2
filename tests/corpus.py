"""A small generated doc folder whose answers are known, for ingestion and retrieval tests."""

from __future__ import annotations

from pathlib import Path

INSTALL_MD = """\
# Installing Zephyr

Zephyr is a queue server for background jobs.

## Requirements

Zephyr needs Python 3.11 and a PostgreSQL database. It runs on Linux and macOS.

## Upgrading

Stop the workers, run `zephyr migrate`, then start the workers again.
"""

NETWORK_MD = """\
# Network settings

## Listening port

The Zephyr server listens on TCP port 8731 by default. Set ZEPHYR_PORT to change the port.

## TLS certificates

Put the certificate and key in /etc/zephyr/tls and set ZEPHYR_TLS=on to encrypt connections.
"""

BACKUPS_HTML = """\
<!doctype html>
<html><head><title>Backups — Zephyr docs</title></head>
<body>
<nav class="sidebar"><a href="/">Home</a> <a href="/net">Network</a> Site navigation menu</nav>
<div class="body">
  <div class="section" id="backups">
    <h1>Backups</h1>
    <p>Zephyr stores every job in its database, so a backup is a database dump.</p>
    <div class="section" id="restoring-a-backup">
      <h2>Restoring a backup</h2>
      <p>To restore, stop Zephyr, load the dump with pg_restore and start Zephyr again.
      Jobs that were running when the dump was taken are retried.</p>
    </div>
  </div>
</div>
<footer>Copyright Zephyr Inc. All rights reserved.</footer>
</body></html>
"""

FAQ_TXT = """\
Why is my job stuck?

A job stays queued while no worker listens on its queue. Start a worker with
zephyr work --queue NAME for that queue.
"""

FILES = {
    "install.md": INSTALL_MD,
    "guide/network.md": NETWORK_MD,
    "guide/backups.html": BACKUPS_HTML,
    "faq.txt": FAQ_TXT,
}

# What the fake model answers about the corpus (Zephyr's port is in it).
ANSWER = "Zephyr listens on port 8731 by default [1]."


def write_corpus(folder: Path) -> Path:
    """Write the corpus into ``folder`` and return it."""
    for name, text in FILES.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return folder
