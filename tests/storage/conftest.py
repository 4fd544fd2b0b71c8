"""Fixtures shared by the storage tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.storage.fault_proxy import FaultProxy


@pytest.fixture
def proxy(moto_endpoint: str) -> Iterator[FaultProxy]:
    """A FaultProxy in front of the test session's moto server."""
    fault_proxy = FaultProxy(moto_endpoint)
    yield fault_proxy
    fault_proxy.close()
