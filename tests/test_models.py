"""The models and the Alembic head describe the same schema (what `alembic check` does)."""

from grading_app import migrations
from grading_app.upgrade.schema import read_drift, upgrade_schema
from grading_app.upgrade.verify import OPTIONAL_INDEXES
from tests.schema_snapshot import schema_snapshot
from tests.upgrade.helpers import revision_of


def test_models_match_head(database_url):
    upgrade_schema(database_url, write=lambda _: None)
    assert revision_of(database_url) == migrations.head_revision()
    assert read_drift(database_url) == {"missing": [], "other": []}


def test_fresh_database_matches_models_create_all(database_url):
    """Migrations and models agree down to indexes and keys, not only what autogenerate
    compares: a database made by the models' create_all() has the same snapshot."""
    import sqlalchemy as sa

    from grading_app.models import Base
    from tests.conftest import create_postgres_database, drop_postgres_database

    upgrade_schema(database_url, write=lambda _: None)
    if database_url.startswith("sqlite"):
        other = database_url.replace("grading_app.db", "create_all.db")
    else:
        other = create_postgres_database()
    try:
        engine = sa.create_engine(other)
        Base.metadata.create_all(engine)
        engine.dispose()
        # The indexes not every database has are made by the migrations alone.
        assert schema_snapshot(other) == schema_snapshot(database_url, leave_out=OPTIONAL_INDEXES)
        expected = (
            {"ix_grading_jobs_dashboard_counters"}
            if database_url.startswith("sqlite")
            else {"ix_job_batches_search"}
        )
        indexes = {
            index[0]
            for table in schema_snapshot(database_url).values()
            for index in table["indexes"]
        }
        assert indexes & OPTIONAL_INDEXES == expected
    finally:
        if not other.startswith("sqlite"):
            drop_postgres_database(other)


def test_db_upgrade_twice_is_a_no_op(database_url):
    first = upgrade_schema(database_url, write=lambda _: None)
    lines: list[str] = []
    second = upgrade_schema(database_url, write=lines.append)
    assert first == second == migrations.head_revision()
    assert lines == [f"✓ Database already at {second}"]
