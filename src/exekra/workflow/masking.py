"""Masking credential values in everything a run sends out (log lines, error, outputs)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

MASK = "***"


class SecretMasker:
    """Replaces every secret value, and each line of a multi-line one, with `***`."""

    def __init__(self, secrets: Iterable[str]) -> None:
        fragments: set[str] = set()
        for secret in secrets:
            if secret:
                fragments.add(secret)
                # Output is logged line by line, so each line of e.g. a private key is masked too.
                fragments.update(line for line in secret.splitlines() if line.strip())
        longest_first = sorted(fragments, key=len, reverse=True)
        self._pattern = re.compile("|".join(map(re.escape, longest_first))) if fragments else None

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
