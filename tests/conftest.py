from __future__ import annotations

from collections.abc import Iterator

import pytest

from lockgate.testing.mock_provider import MockProviderThread
from tests.gateway_harness import GatewayThread, demo_config


@pytest.fixture(scope="session")
def mock() -> Iterator[MockProviderThread]:
    with MockProviderThread() as provider:
        yield provider


@pytest.fixture(autouse=True)
def _fresh_mock(request: pytest.FixtureRequest) -> None:
    if "mock" in request.fixturenames:
        request.getfixturevalue("mock").clear()


@pytest.fixture(scope="module")
def gateway(mock: MockProviderThread, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayThread]:
    with GatewayThread(
        tmp_path_factory.mktemp("gw"), demo_config(mock.url), request_timeout=2.0, demo=True
    ) as gw:
        yield gw


@pytest.fixture(scope="module")
def keyed_gateway(
    mock: MockProviderThread, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayThread]:
    with GatewayThread(
        tmp_path_factory.mktemp("gwk"), demo_config(mock.url), master_key="lg-test-master"
    ) as gw:
        yield gw


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """A private Redis server for the whole session."""
    from tests.services import redis_server

    with redis_server() as url:
        yield url


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A private PostgreSQL server (and database) for the whole session."""
    from tests.services import postgres_server

    with postgres_server() as url:
        yield url
