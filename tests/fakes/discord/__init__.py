"""A fake Discord: the REST API (v10) and the gateway, served for real on 127.0.0.1.

The modules, by concern: ``fake`` (``FakeDiscord``: the server, what tests configure and
observe, ``pointed_at``), ``rest`` (routing, errors, faults, bot-token routes),
``interactions`` (callbacks and webhook follow-ups), ``gateway`` (sessions, IDENTIFY, RESUME,
intents) and ``payloads`` (the fixed world and how its objects look). Import from here.

Tests point the real discord.py client at this server instead of discord.com. It speaks
HTTP/1.1 (standard library only) on 127.0.0.1 with a random port, in a background thread, and
answers like Discord does:

- REST under ``api_url`` (``http://127.0.0.1:PORT/api/v10``): the bot user and application,
  ``/gateway`` and ``/gateway/bot``, application command sync (global and per guild), interaction
  callbacks (types 4-7) and their webhook follow-ups and edits, channel messages (create, edit,
  read back one), channels and typing. JSON bodies only (multipart uploads are not understood).
  Errors carry Discord's ``{"message", "code"}`` bodies (Unknown Message 10008, Cannot send an
  empty message 50006, Invalid Form Body 50035 for content over 2,000 characters or a reply to
  an unknown message, ...). Bot routes want ``Authorization: Bot <token>``; interaction and
  webhook routes are authorised by the token in their path.
- The gateway at ``gateway_url`` (a WebSocket on the same port): HELLO, heartbeats answered with
  HEARTBEAT_ACK, IDENTIFY answered with READY then GUILD_CREATE, RESUME (at READY's
  ``resume_gateway_url``) answered by replaying what the session missed, then RESUMED; a RESUME
  of an unknown session gets INVALID_SESSION. Events are filtered by the IDENTIFY intents as on
  Discord: no MESSAGE_* without GUILD_MESSAGES (or DIRECT_MESSAGES), and guild messages that
  neither come from nor mention the bot lose their content without MESSAGE_CONTENT.
- Messages the app sends (channel messages, non-ephemeral interaction responses and follow-ups)
  come back to it over the gateway as MESSAGE_CREATE / MESSAGE_UPDATE, as on Discord, so a bot
  must ignore its own messages. After a deferred (thinking) response, the first follow-up
  replaces the loading message (same id), as on Discord. An interaction's first callback must
  come within ``interaction_deadline`` (3 s) of its dispatch, or it gets Unknown interaction.

Everything is recorded (``calls``, ``calls_to()``, ``messages()``, ``commands()``, ``identifies``,
``resumes``) and ``wait_for()`` polls for a condition. Faults are scripted with ``fail_next()``:
a 429 with Discord's body and headers (discord.py sleeps ``retry_after`` and retries), or any
other status. The world is fixed: the bot user ``teambot`` (``BOT_USER_ID``, token ``BOT_TOKEN``)
of the application ``APPLICATION_ID``, one guild (``GUILD_ID``) with the text channel #general
(``CHANNEL_ID``) and the roles @everyone, Managers (Manage Server) and the bot's own role.
``add_member()`` adds users, with or without Manage Server; the builders ``message_create()``,
``interaction_create_command()`` and ``interaction_create_component()`` make what ``dispatch()``
sends, and ``disconnect()`` drops the gateway so the client RESUMEs.

Pointing discord.py at it
-------------------------
discord.py (2.4 to 2.7) has no base-URL option on the client, but reads both URLs from public
class attributes. Every REST call, the interaction callbacks and webhook follow-ups included,
builds its URL from ``discord.http.Route.BASE`` (default ``https://discord.com/api/v10``).
``discord.Client`` does not ask ``GET /gateway``: it connects to
``discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY`` (a ``yarl.URL``, default
``wss://gateway.discord.gg/``) plus ``?v=10&encoding=json&compress=zlib-stream``, and resumes at
READY's ``resume_gateway_url``. So an app sets both once, before ``client.start()``:

    discord.http.Route.BASE = DISCORD_API_URL.rstrip("/")  # must end in /api/v10
    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(DISCORD_GATEWAY_URL)

Both are process-wide: fine for a bot process, which runs one client. (``AutoShardedClient``
takes its gateway from ``GET /gateway/bot``, so it needs only the first; ``discord.http.
_set_api_version()`` would reset the first to discord.com.) The fake ignores ``compress`` and
sends text frames, which discord.py reads as they are. ``pointed_at(fake)`` sets both for a test
and restores them after. discord.py waits ``guild_ready_timeout`` (2 s by default) after the
last GUILD_CREATE before ``on_ready``: tests pass ``guild_ready_timeout=0.1`` to the client.

    with FakeDiscord() as fake, pointed_at(fake):
        client = discord.Client(intents=intents, guild_ready_timeout=0.1)
        ...  # client.start(BOT_TOKEN) in a thread with its own event loop
        fake.add_member(ALICE, "alice")
        fake.dispatch("MESSAGE_CREATE", fake.message_create(CHANNEL_ID, "<@BOT> hi", ALICE))
        fake.wait_for(lambda: fake.calls_to("POST", r"/channels/\\d+/messages"))
"""

from tests.fakes.discord.fake import BOT_TOKEN, FakeDiscord, pointed_at
from tests.fakes.discord.gateway import GATEWAY_PATH, RESUME_GATEWAY_PATH
from tests.fakes.discord.payloads import (
    APPLICATION_ID,
    BOT_NAME,
    BOT_USER_ID,
    CHANNEL_ID,
    EPHEMERAL,
    GUILD_ID,
    LOADING,
    MANAGE_GUILD,
    MANAGER_ROLE_ID,
    OWNER_ID,
)
from tests.fakes.discord.rest import API_PREFIX, Call

__all__ = [
    "API_PREFIX",
    "APPLICATION_ID",
    "BOT_NAME",
    "BOT_TOKEN",
    "BOT_USER_ID",
    "CHANNEL_ID",
    "EPHEMERAL",
    "GATEWAY_PATH",
    "GUILD_ID",
    "LOADING",
    "MANAGER_ROLE_ID",
    "MANAGE_GUILD",
    "OWNER_ID",
    "RESUME_GATEWAY_PATH",
    "Call",
    "FakeDiscord",
    "pointed_at",
]
