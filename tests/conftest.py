"""Shared fixtures: the running stack (integration tests) and a namespace of its own per test."""
import uuid

import pytest


@pytest.fixture(scope="session")
def settings():
    """Settings of the running stack (`make test-integration` starts it first with `make up`).

    Tests never start services behind the caller's back: when one is down,
    every test that needs it fails at once with the sentence that says how to
    start it.
    """
    from helpers.infra.environment import load_settings
    from helpers.infra.status import require_services

    s = load_settings()
    require_services(s, "kafka", "mysql")
    return s


@pytest.fixture(scope="session")
def sample_in_mysql(settings):
    """An engine on the stack's MySQL, with the daily sample bars stored in candle_prices (idempotent:
    INSERT IGNORE)."""
    from helpers.core.validation import validate_bars
    from helpers.infra.database import make_engine
    from helpers.pipeline.db import create_schema, store_bars
    from helpers.pipeline.sources import fetch_bars

    engine = make_engine(settings)
    create_schema(engine)
    good, _ = validate_bars(fetch_bars("sample"))
    store_bars(engine, good, "day", progress=False)
    yield engine
    engine.dispose()


@pytest.fixture
def prefix():
    """A unique name for the topics, groups and tickers of one test."""
    return f"t{uuid.uuid4().hex[:10]}"


@pytest.fixture
def isolated(settings, prefix):
    """The stack's settings in a namespace of this test (its own topics and groups, created empty).

    Every topic of the namespace is deleted afterwards.
    """
    from helpers.infra.clients import make_admin
    from helpers.pipeline.topics import delete_topics, ensure_topics

    mine = settings.with_namespace(prefix)
    admin = make_admin(mine)
    ensure_topics(admin, mine.topics.all)
    yield mine
    delete_topics(admin, [t for t in admin.list_topics(timeout=10).topics if t.startswith(mine.prefix)])


@pytest.fixture
def isolated_wb(isolated):
    """A Workbook in the test's namespace: its stream-SQL session and clients closed after the test."""
    from helpers.infra.workbook import Workbook

    with Workbook(isolated) as wb:
        yield wb


OWN_STACK = {"test_class_server", "test_hosted_start"}   # each starts services of its own, on other ports


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items):
    """Groups for `-n 2 --dist loadgroup` (make test-integration).

    The tests that start services of their own run on one worker while the
    tests of the shared stack run on the other, one at a time, as they would
    without xdist (some restart its broker).
    """
    for item in items:
        if "integration" in item.path.parts:
            own = item.path.stem in OWN_STACK
            item.add_marker(pytest.mark.xdist_group("own-stack" if own else "shared-stack"))
