"""Operational statistics: executions by status, the queue, runner utilisation, throughput over time."""
