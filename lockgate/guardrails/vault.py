"""Reversible placeholders: ``<EMAIL_1>`` goes upstream, the original comes back in the answer.

One vault per request. The same value always gets the same placeholder, so a
model that repeats it is restored consistently; numbering is per label.
"""

from __future__ import annotations

import re

from lockgate.guardrails.base import Finding

PLACEHOLDER = re.compile(r"<([A-Z][A-Z_]*)_(\d+)>")


class Vault:
    __slots__ = ("_counts", "_originals", "_placeholders")

    def __init__(self) -> None:
        self._placeholders: dict[tuple[str, str], str] = {}
        self._originals: dict[str, str] = {}
        self._counts: dict[str, int] = {}

    def __bool__(self) -> bool:
        return bool(self._originals)

    def __len__(self) -> int:
        return len(self._originals)

    def placeholder(self, label: str, value: str) -> str:
        key = (label, value)
        found = self._placeholders.get(key)
        if found is None:
            n = self._counts.get(label, 0) + 1
            self._counts[label] = n
            found = self._placeholders[key] = f"<{label}_{n}>"
            self._originals[found] = value
        return found

    def findings(self, text: str, part: int = 0) -> list[Finding]:
        """Placeholders of this vault in ``text``, each with its original as the replacement."""
        if not self._originals or "<" not in text:
            return []
        found: list[Finding] = []
        for m in PLACEHOLDER.finditer(text):
            original = self._originals.get(m.group(0))
            if original is not None:
                found.append(Finding(part, m.start(), m.end(), "restore", original))
        return found

    def restore(self, text: str) -> tuple[str, int]:
        """``text`` with this vault's placeholders replaced by their originals, and how many."""
        count = 0

        def put_back(m: re.Match[str]) -> str:
            nonlocal count
            original = self._originals.get(m.group(0))
            if original is None:
                return m.group(0)
            count += 1
            return original

        if not self._originals or "<" not in text:
            return text, 0
        return PLACEHOLDER.sub(put_back, text), count
