"""Credentials domain."""
