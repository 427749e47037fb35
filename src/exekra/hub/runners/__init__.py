"""Runners domain."""
