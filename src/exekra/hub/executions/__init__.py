"""Executions domain."""
