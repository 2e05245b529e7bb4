"""Shared fixtures: the running stack (integration tests) and a namespace of its own per test."""
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
    """A unique name for the topics, groups and tickers of one test."""
    return f"t{uuid.uuid4().hex[:10]}"


@pytest.fixture
def isolated(settings, prefix):
    """The stack's settings in a namespace of this test (its own topics and groups, created empty).

    Every topic of the namespace is deleted afterwards.
    """
    from helpers.clients import make_admin
    from helpers.topics import delete_topics, ensure_topics

    mine = settings.with_namespace(prefix)
    admin = make_admin(mine)
    ensure_topics(admin, mine.topics.all)
    yield mine
    delete_topics(admin, [t for t in admin.list_topics(timeout=10).topics if t.startswith(mine.prefix)])
