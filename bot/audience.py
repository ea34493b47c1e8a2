"""Who reads a listing of what people asked (``admin stats``, ``admin gaps``, the digest).

A question asked in a DM or a private channel is shown only where it was asked and in the
operator's terminal; anywhere else a listing counts it but shows neither its words nor where
it was asked. A listing whose audience is unknown shows no private words at all.
"""

from __future__ import annotations

from dataclasses import dataclass

PRIVATE_TEXT = "(asked in a private conversation)"
PRIVATE_PLACE = "private"


@dataclass(frozen=True)
class Audience:
    """The chat place (platform, channel) a listing is posted to, or the trusted terminal."""

    platform: str = ""
    channel: str = ""
    trusted: bool = False

    def may_read(self, platform: str, channel: str, is_private: bool) -> bool:
        """Whether words asked in (platform, channel) may be shown to this audience."""
        here = (platform, channel) == (self.platform, self.channel)
        return self.trusted or not is_private or here

    def place(self, platform: str, channel: str, is_private: bool) -> str:
        """``platform:channel`` as this audience may see it."""
        shown = channel if self.may_read(platform, channel, is_private) else PRIVATE_PLACE
        return f"{platform}:{shown}"


OPERATOR = Audience(trusted=True)  # the terminal: the operator reads everything
PUBLIC = Audience()
