"""The Slack adapter (slack-bolt): events in, threaded streamed answers out."""
