"""Alerts: notification rules, channels (email, webhook, Slack), and the durable delivery of their messages."""
