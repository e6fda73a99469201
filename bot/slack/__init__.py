"""Slack: the Bolt app, answer delivery into threads, and the bot's durable state."""
