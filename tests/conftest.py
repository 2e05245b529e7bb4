"""Shared fixtures: the running stack (integration tests) and per-test topic names."""
import uuid

import pytest


@pytest.fixture(scope="session")
def settings():
    """Settings of the running stack; starts it if needed (idempotent)."""
    from helpers.config import load_settings
    from helpers.stack import stack_up

    s = load_settings()
    stack_up(s)
    return s


@pytest.fixture
def prefix():
    """A unique prefix for the topics and tickers of one test."""
    return f"t{uuid.uuid4().hex[:10]}_"
