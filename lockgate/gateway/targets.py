"""Where a request can go: a target is one credential, its provider and an upstream model."""

from __future__ import annotations

from dataclasses import dataclass

from lockgate.providers.base import Credential, Provider


@dataclass(frozen=True, slots=True)
class Target:
    credential: Credential
    provider: Provider
    model: str

    @property
    def label(self) -> str:
        return f"@{self.credential.name}/{self.model}"

    @property
    def key(self) -> str:
        """Identity for health tracking: the same name on another host is another target."""
        return f"{self.label}|{self.credential.base_url}"


@dataclass(frozen=True, slots=True)
class Route:
    name: str
    targets: tuple[Target, ...]
