"""What the explorer's test files share: the anyio backend for Pilot tests."""

from __future__ import annotations

import pytest


@pytest.fixture
def anyio_backend():
    return "asyncio"
