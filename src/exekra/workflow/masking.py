"""Masking credential values in everything a run sends out (log lines, error, outputs): one masker, used by the
engine inside the worker and by the runner for what the worker's process tree prints."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

MASK = "***"
MIN_SECRET_CHARS = 4
"""Shorter values and lines are not masked: a port ("25"), a mode ("tls") or a one-letter line would turn every
occurrence in the logs into `***` while hiding nothing worth hiding."""


class SecretMasker:
    """Replaces every secret value, and each line of a multi-line one, with `***` (longest first, so that no
    part of a longer secret is left behind)."""

    def __init__(self, secrets: Iterable[str]) -> None:
        fragments: set[str] = set()
        for secret in secrets:
            fragments.add(secret)
            # Output is logged line by line, so each line of e.g. a private key is masked too.
            fragments.update(line.strip() for line in secret.splitlines())
        kept = sorted((f for f in fragments if len(f) >= MIN_SECRET_CHARS), key=len, reverse=True)
        self._pattern = re.compile("|".join(map(re.escape, kept))) if kept else None

    @classmethod
    def for_credentials(cls, credentials: Mapping[str, Mapping[str, Any]]) -> SecretMasker:
        """A masker of every field value of the given credentials (`{name: {field: value}}`)."""
        return cls(str(value) for fields in credentials.values() for value in fields.values() if value is not None)

    def text(self, text: str) -> str:
        """`text` with every secret replaced."""
        return self._pattern.sub(MASK, text) if self._pattern else text

    def value(self, value: Any) -> Any:
        """`value` with every string inside it (dict keys and values, list items) masked."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {self.value(key): self.value(item) for key, item in value.items()}
        if isinstance(value, list):
            return [self.value(item) for item in value]
        return value
