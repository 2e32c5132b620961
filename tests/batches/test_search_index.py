"""The batch search's trigram index on PostgreSQL (migration 0010): the list's search is
answered from it, and a database where pg_trgm cannot be enabled upgrades anyway, says
so, and searches without it."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from grading_app.batches.queries import batch_conditions
from grading_app.batches.schemas import BatchQuery
from grading_app.db import make_engine, make_sessionmaker, unit_of_work
from grading_app.models import JobBatch
from grading_app.upgrade.schema import upgrade_schema
from grading_app.upgrade.verify import has_drift, schema_drift
from tests.factories import make_batch

INDEX = "ix_job_batches_search"


def _add_batches(url: str) -> None:
    sessions = make_sessionmaker(make_engine(url))
    with unit_of_work(sessions) as session:
        for name, description, tags in (
            ("Year 10 essays", "Term 1 persuasive writing", ["english", "café"]),
            ("Lab reports", None, ["chemistry"]),
            ("Archived essays", "old", None),
        ):
            batch = make_batch(session, name=name)
            batch.description = description
            batch.tags = tags
            if name.startswith("Archived"):
                batch.status = "archived"


def _search(url: str, text: str) -> tuple[list[str], str]:
    """The names the search finds and the plan PostgreSQL chose for its count, with
    sequential scans discouraged so a usable index is always taken."""
    engine = make_engine(url)
    statement = sa.select(sa.func.count()).select_from(JobBatch)
    where = batch_conditions(BatchQuery(q=text), dialect="postgresql")
    with engine.connect() as connection:
        names = sorted(connection.execute(sa.select(JobBatch.batch_name).where(*where)).scalars())
        connection.exec_driver_sql("SET enable_seqscan = off")
        compiled = statement.where(*where).compile(engine)
        plan = "\n".join(
            row[0]
            for row in connection.exec_driver_sql(f"EXPLAIN {compiled}", compiled.params or {})
        )
    engine.dispose()
    return names, plan


def test_search_is_answered_from_the_trigram_index(postgres_url):
    upgrade_schema(postgres_url, write=lambda _: None)
    _add_batches(postgres_url)

    for text in ("ESSAYS", "persuasive year", "CAFÉ", "chemistry"):
        names, plan = _search(postgres_url, text)
        assert INDEX in plan, f"{text!r} did not use the index:\n{plan}"
    assert _search(postgres_url, "ESSAYS")[0] == ["Year 10 essays"]
    assert _search(postgres_url, "persuasive year")[0] == ["Year 10 essays"]
    assert _search(postgres_url, "café")[0] == ["Year 10 essays"]
    assert _search(postgres_url, "chemistry lab")[0] == ["Lab reports"]
    assert _search(postgres_url, "essays chemistry")[0] == []


@pytest.fixture
def without_extension_rights(postgres_url) -> Iterator[str]:
    """The same database, reached as a user who may create tables but not extensions."""
    role = f"ga_plain_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    database = sa.engine.make_url(postgres_url).database
    with admin.connect() as connection:
        connection.exec_driver_sql(f'CREATE ROLE "{role}" LOGIN')
        connection.exec_driver_sql(f'GRANT CONNECT ON DATABASE "{database}" TO "{role}"')
        connection.exec_driver_sql(f'GRANT ALL ON SCHEMA public TO "{role}"')
    try:
        yield sa.engine.make_url(postgres_url).set(username=role).render_as_string(False)
    finally:
        with admin.connect() as connection:
            connection.exec_driver_sql(f'DROP OWNED BY "{role}" CASCADE')
            connection.exec_driver_sql(f'DROP ROLE "{role}"')
        admin.dispose()


def test_without_pg_trgm_the_upgrade_says_so_and_search_works(without_extension_rights):
    url = without_extension_rights
    lines: list[str] = []
    upgrade_schema(url, write=lines.append)

    output = "\n".join(lines)
    assert "Could not enable the pg_trgm extension" in output
    assert "CREATE EXTENSION IF NOT EXISTS pg_trgm" in output  # what the owner can run
    engine = make_engine(url)
    with engine.connect() as connection:
        indexes = {index["name"] for index in sa.inspect(connection).get_indexes("job_batches")}
        assert INDEX not in indexes
        assert not has_drift(schema_drift(connection))  # `grading-app db check` passes
    engine.dispose()
    _add_batches(url)
    assert _search(url, "essays")[0] == ["Year 10 essays"]
