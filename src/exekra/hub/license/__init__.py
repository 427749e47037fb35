"""Licence domain: the signed licence file, the hub id it is bound to, and its enforcement (SPEC §10.7)."""
