"""Importer tests run the same whether or not this build has the azure provider (issue 4):
each test that cares says which registry it wants."""

from __future__ import annotations

import pytest

from lockgate.providers import base
from lockgate.providers.openai_compat import OpenAICompatProvider


@pytest.fixture
def azure_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    base.provider_names()  # load the built-in registry before changing it
    monkeypatch.delitem(base._REGISTRY, "azure", raising=False)


@pytest.fixture
def azure_registered(monkeypatch: pytest.MonkeyPatch) -> None:
    # A stand-in with the azure provider's name: the importers only ask the registry whether it exists.
    base.provider_names()
    monkeypatch.setitem(base._REGISTRY, "azure", OpenAICompatProvider("azure", ""))
