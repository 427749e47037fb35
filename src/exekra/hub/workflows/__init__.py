"""Workflows domain."""
