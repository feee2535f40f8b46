from __future__ import annotations

import os
import sys
from typing import Iterator

import pytest

sys.path.insert(0, os.path.dirname(__file__))

from fake_provider import FakeProvider  # noqa: E402

import usage_core  # noqa: E402


@pytest.fixture(scope="session")
def fake_server() -> Iterator[FakeProvider]:
    server = FakeProvider()
    yield server
    server.close()


@pytest.fixture()
def fake(fake_server: FakeProvider) -> Iterator[FakeProvider]:
    fake_server.reset()
    yield fake_server
    fake_server.reset()


@pytest.fixture()
def tracker() -> Iterator[usage_core.Tracker]:
    t = usage_core.Tracker("memory://")
    yield t
    t.close()
