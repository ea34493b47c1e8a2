"""The Discord adapter (discord.py): /ask, mentions and reply chains, streamed answers."""
