"""Exekra benchmarks against SPEC §13, with Prefect as the peer.

Run `python -m bench [scenario ...] [--quick]` (or `make bench`); see docs/benchmarks.md.
"""
