"""Where a request can go: a target is one credential, its provider and an upstream model."""

from __future__ import annotations

from dataclasses import dataclass, field

from lockgate.providers.base import Credential, Provider


@dataclass(frozen=True, slots=True)
class Target:
    credential: Credential
    provider: Provider
    model: str
    # Derived once: targets are built at config load (or memoised), read on every attempt.
    label: str = field(init=False, repr=False, compare=False)  # @integration/model
    key: str = field(init=False, repr=False, compare=False)  # health identity: label + host

    def __post_init__(self) -> None:
        label = f"@{self.credential.name}/{self.model}"
        object.__setattr__(self, "label", label)
        # The same integration name on another host (custom_host) is another target.
        object.__setattr__(self, "key", f"{label}|{self.credential.base_url}")


@dataclass(frozen=True, slots=True)
class Route:
    name: str
    targets: tuple[Target, ...]
