"""Dispatch domain."""
