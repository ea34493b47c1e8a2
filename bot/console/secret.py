"""The key that signs console login links and cookies: TEAMBOT_CONSOLE_SECRET, or one made
once into TEAMBOT_DATA_DIR, readable by its owner only, so every process sharing that folder
(and `teambot console login`) signs alike. Never logged, never shown."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from bot.errors import SettingsError
from bot.settings import Settings

SECRET_FILE = "console-secret"
SECRET_BYTES = 32
MIN_SECRET_CHARS = 32


def signing_secret(settings: Settings) -> str:
    """The configured secret, else the one in the data folder (made on first use)."""
    configured = settings.console_secret.get_secret_value()
    if configured:
        if len(configured) < MIN_SECRET_CHARS:
            raise SettingsError(
                f"TEAMBOT_CONSOLE_SECRET is too short: use at least {MIN_SECRET_CHARS} random "
                "characters (e.g. `python -c 'import secrets; print(secrets.token_hex(32))'`)."
            )
        return configured
    path = Path(settings.data_dir) / SECRET_FILE
    try:
        return _stored_secret(path)
    except OSError as exc:
        raise SettingsError(
            f"Cannot keep the console's signing secret in {path}: {exc.strerror or exc}. "
            "Make TEAMBOT_DATA_DIR writable, or set TEAMBOT_CONSOLE_SECRET."
        ) from None


def _stored_secret(path: Path) -> str:
    try:
        return _read(path)
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    try:  # O_EXCL: two processes starting at once agree on the first one written
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return _read(path)
    with os.fdopen(fd, "w") as file:
        file.write(secrets.token_hex(SECRET_BYTES))
    return _read(path)


def _read(path: Path) -> str:
    with path.open() as file:
        value = file.read(4 * SECRET_BYTES).strip()  # capped: a stray big file is not read
    if len(value) < MIN_SECRET_CHARS:
        raise SettingsError(
            f"{path} does not hold a console secret; delete it and teambot makes a new one."
        )
    return value
