"""Revision 0005: work items never block deleting what they belong to, retry counts are
numbers, and default templates an earlier script left empty are completed. On fresh
databases and on databases upgraded from the legacy generations."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

from grading_app import migrations
from grading_app.db import make_engine, make_sessionmaker, unit_of_work
from grading_app.migrations.default_templates import DEFAULT_TEMPLATES
from grading_app.models import BatchTemplate, GradeResult, Submission, WorkItem, utcnow
from grading_app.processing import service as processing
from grading_app.processing.claim import claim
from grading_app.providers.targets import Target
from grading_app.templates.service import template_instructions
from grading_app.upgrade.schema import upgrade_schema
from tests import legacy_db
from tests.factories import make_batch, make_job, make_outcome
from tests.upgrade.helpers import build_legacy, execute, rows, scalar, upgrade

TARGETS = [Target("openai", "m1"), Target("claude", "c1")]


def _graded_class(url: str) -> dict[str, Any]:
    """A batch with one job of two documents and two models; one item graded."""
    engine = make_engine(url)
    sessions = make_sessionmaker(engine)
    try:
        with unit_of_work(sessions) as session:
            batch = make_batch(session)
            job = make_job(session, batch=batch, documents=2, targets=TARGETS)
            ids = {"batch": batch.id, "job": job.id}
        with unit_of_work(sessions) as session:
            [item] = claim(session, owner="w1", limit=1, lease_seconds=60, now=utcnow())
        with unit_of_work(sessions) as session:
            processing.complete_item(
                session, item_id=item.id, owner="w1", outcome=make_outcome(), single_model=False
            )
            submission_id = session.get(WorkItem, item.id).submission_id
        return {**ids, "item": item.id, "submission": submission_id}
    finally:
        engine.dispose()


def _as_another_reader(url: str, *statements: str, **params: str) -> None:
    """Plain SQL through a connection of its own, foreign keys enforced (SQLite's are
    off unless a connection turns them on, as the application's do)."""
    engine = sa.create_engine(url)
    if engine.dialect.name == "sqlite":
        sa.event.listen(
            engine, "connect", lambda dbapi, _: dbapi.execute("PRAGMA foreign_keys = ON")
        )
    try:
        with engine.begin() as connection:
            for statement in statements:
                connection.execute(sa.text(statement), params)
    finally:
        engine.dispose()


def _items(url: str, where: str, **params: str) -> int:
    return scalar(url, f"SELECT COUNT(*) FROM work_items WHERE {where}", **params)  # noqa: S608


@pytest.fixture(params=["new", "upgraded from G1"])
def any_database(request, database_url, tmp_path) -> str:
    """A database at head: made new, or upgraded from the first legacy generation."""
    if request.param == "new":
        upgrade_schema(database_url, write=lambda _: None)
    else:
        build_legacy(database_url, "G1")
        upgrade(database_url, tmp_path)
    return database_url


def test_deleting_a_submission_removes_its_work_items(any_database):
    ids = _graded_class(any_database)
    assert _items(any_database, "1 = 1") == 4

    _as_another_reader(
        any_database,
        "DELETE FROM grade_results WHERE submission_id = :submission",
        "DELETE FROM submissions WHERE id = :submission",
        submission=ids["submission"],
    )

    assert _items(any_database, "submission_id = :s", s=ids["submission"]) == 0
    assert _items(any_database, "1 = 1") == 2  # the other document's


def test_deleting_a_job_and_then_its_batch_removes_their_work_items(any_database):
    ids = _graded_class(any_database)

    _as_another_reader(
        any_database,
        "DELETE FROM grade_results WHERE submission_id IN "
        "(SELECT id FROM submissions WHERE job_id = :job)",
        "DELETE FROM submissions WHERE job_id = :job",
        "DELETE FROM grading_jobs WHERE id = :job",
        "DELETE FROM job_batches WHERE id = :batch",
        job=ids["job"],
        batch=ids["batch"],
    )

    assert _items(any_database, "1 = 1") == 0


def test_work_items_go_with_the_job_or_batch_they_name(any_database):
    """Each foreign key on its own: items that name a job or a batch go with it."""
    ids = _graded_class(any_database)
    _as_another_reader(
        any_database,
        "INSERT INTO grading_jobs (id, job_name, provider, prompt, batch_id) "
        "VALUES ('other-job', 'Other', 'openai', 'Grade it.', NULL)",
        "INSERT INTO job_batches (id, batch_name, status) VALUES ('other-batch', 'B', 'draft')",
        "UPDATE work_items SET job_id = 'other-job' WHERE submission_id = :submission",
        "UPDATE work_items SET batch_id = 'other-batch' WHERE submission_id <> :submission",
        submission=ids["submission"],
    )

    _as_another_reader(any_database, "DELETE FROM grading_jobs WHERE id = 'other-job'")
    assert _items(any_database, "1 = 1") == 2
    _as_another_reader(any_database, "DELETE FROM job_batches WHERE id = 'other-batch'")
    assert _items(any_database, "1 = 1") == 0


def test_deleting_a_work_item_keeps_the_grade_it_made(any_database):
    ids = _graded_class(any_database)

    _as_another_reader(any_database, "DELETE FROM work_items WHERE id = :item", item=ids["item"])

    [grade] = rows(any_database, "SELECT work_item_id, score FROM grade_results")
    assert grade.work_item_id is None and grade.score == make_outcome().grade.overall_score


def test_every_retry_count_is_a_number_after_upgrading_the_first_generation(database_url, tmp_path):
    build_legacy(database_url, "G1")  # no retry_count column: the upgrade adds it, empty

    _, lines = upgrade(database_url, tmp_path)

    documents = scalar(database_url, "SELECT COUNT(*) FROM submissions")
    assert scalar(database_url, "SELECT COUNT(*) FROM submissions WHERE retry_count = 0") == (
        documents
    )
    assert f"  ✓ Set retry_count to 0 in {documents} submissions that had none" in lines
    # New rows get 0 too.
    engine = make_engine(database_url)
    try:
        with unit_of_work(make_sessionmaker(engine)) as session:
            make_job(session, batch=make_batch(session), documents=1)
            counts = session.scalars(sa.select(Submission.retry_count)).all()
        assert None not in counts and len(counts) == documents + 1
    finally:
        engine.dispose()


# --- default templates an earlier script made without prompt or criteria ---------------


def _script_templates(url: str) -> None:
    """What the guide's own script left in some databases: the four default templates
    with a description (some without) but no prompt and no criteria."""
    for index, template in enumerate(DEFAULT_TEMPLATES):
        description = "NULL" if index == 0 else f"'Script text for {template['category']}.'"
        execute(
            url,
            "INSERT INTO batch_templates (id, name, description, category, default_settings, "
            f"job_structure) VALUES ('script-{index}', '{template['name']}', {description}, "
            f"'{template['category']}', '{{\"priority\": 3}}', "
            '\'{"file_types": ["docx"]}\')',
        )


def _templates(url: str) -> dict[str, BatchTemplate]:
    engine = make_engine(url)
    try:
        with unit_of_work(make_sessionmaker(engine), read_only=True) as session:
            found = session.scalars(sa.select(BatchTemplate)).all()
            return {template.name: template for template in found}
    finally:
        engine.dispose()


def _assert_completed(url: str) -> None:
    templates = _templates(url)
    assert len(templates) == len(DEFAULT_TEMPLATES)  # kept, not duplicated
    for default in DEFAULT_TEMPLATES:
        template = templates[default["name"]]
        assert template.id.startswith("script-")
        prompt, scheme = template_instructions(template)
        assert prompt == default["job_structure"]["prompt"]
        assert scheme is not None and default["job_structure"]["criteria"][0]["name"] in scheme
        assert template.job_structure["file_types"] == ["docx"]  # what it held is kept
        assert template.default_settings["priority"] == 3
        assert template.default_settings["max_tokens"] == default["default_settings"]["max_tokens"]
        assert template.processing_rules == default["processing_rules"]
        assert template.description  # the real one where the script wrote none


@pytest.mark.parametrize("generation", ["G1", "G6"])
def test_the_upgrade_completes_default_templates_the_guides_script_left_empty(
    database_url, tmp_path, generation
):
    build_legacy(database_url, generation)
    if generation == "G6":  # the script's table, and its one template replaced by four
        legacy_db.apply_original_script(database_url)
        execute(database_url, "DELETE FROM batch_templates")
    else:
        execute(
            database_url,
            "CREATE TABLE batch_templates (id VARCHAR(36) NOT NULL PRIMARY KEY, "
            "name VARCHAR(255) NOT NULL, description TEXT, category VARCHAR(100), "
            "default_settings TEXT, job_structure TEXT, processing_rules TEXT, "
            "is_public BOOLEAN, created_at TIMESTAMP, created_by VARCHAR(255))",
        )
    _script_templates(database_url)

    _, lines = upgrade(database_url, tmp_path)

    _assert_completed(database_url)
    assert any(
        line.startswith("  ✓ Completed template: Academic Essay Grading (prompt, criteria")
        for line in lines
    )


def test_templates_emptied_after_an_earlier_upgrade_are_completed_by_0005_and_by_a_rerun(
    database_url, tmp_path
):
    build_legacy(database_url, "G6")
    engine = make_engine(database_url, for_upgrade=True)
    with engine.begin() as connection:  # an earlier release of this tool stopped at 0004
        migrations.upgrade(connection, "0004_grading_results")
    engine.dispose()
    execute(database_url, "DELETE FROM batch_templates")
    _script_templates(database_url)
    # A draft batch that release made from one took the description for its prompt.
    draft = legacy_db.BATCH_DRAFT_ID
    execute(
        database_url,
        "UPDATE job_batches SET template_id = 'script-1', "
        f"prompt = 'Script text for business.' WHERE id = '{draft}'",
    )

    upgrade_schema(database_url, write=lambda _: None)  # runs 0005

    _assert_completed(database_url)
    prompt = scalar(database_url, f"SELECT prompt FROM job_batches WHERE id = '{draft}'")
    assert prompt == DEFAULT_TEMPLATES[1]["job_structure"]["prompt"]

    execute(database_url, "UPDATE batch_templates SET job_structure = NULL")
    _, lines = upgrade(database_url, tmp_path)  # the guide's command again, at head

    assert sum(line.startswith("  ✓ Completed template: ") for line in lines) == 4, lines
    assert all(template_instructions(t)[0] for t in _templates(database_url).values())


def test_a_template_without_a_prompt_gives_none_and_the_job_asks_for_one(client, sessions):
    with unit_of_work(sessions) as session:
        session.add(
            BatchTemplate(
                name="Lab reports",
                description="For the year 11 physics lab reports.",
                job_structure={"criteria": [{"name": "Method", "max_score": 10}]},
            )
        )
    batch = client.post("/api/batches", json={"name": "Lab 3", "template": "Lab reports"})
    assert batch.status_code == 201

    refused = client.post(
        f"/api/batches/{batch.json()['id']}/jobs",
        data={"models": "openai:m1"},
        files=[("files", ("lab.txt", b"A lab report.", "text/plain"))],
    )

    assert refused.status_code == 400
    assert refused.json()["detail"] == (
        "The grading prompt is empty: give the job a `prompt` (the batch has none, and its "
        "template 'Lab reports' has none)"
    )
    with unit_of_work(sessions, read_only=True) as session:
        assert session.scalar(sa.select(sa.func.count()).select_from(WorkItem)) == 0
        assert session.scalar(sa.select(sa.func.count()).select_from(GradeResult)) == 0
