"""Errors the bot package raises; the CLI and adapters show their message to the user.

BotError
└── QuestionError   a question that cannot be asked as given (empty, too long)
"""


class BotError(Exception):
    """Base class: the message is written for the person who asked."""


class QuestionError(BotError):
    """A question that cannot be asked as given."""
