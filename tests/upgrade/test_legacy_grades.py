"""Grades an earlier release stored stay readable after the upgrade: in the API's list of
a job's documents and in the CSV export (legacy-schema.md: "Both must stay readable")."""

from __future__ import annotations

import sqlalchemy as sa

from grading_app.db import make_engine, make_sessionmaker, unit_of_work
from grading_app.jobs.service import list_submissions
from grading_app.models import GradingJob, Submission
from grading_app.reports.gradebook import gradebook_rows
from grading_app.reports.scope import job_scope
from tests import legacy_db
from tests.upgrade.helpers import build_legacy, upgrade

COMPARING_JOB_ID = legacy_db._job_id(legacy_db.BATCH_WITH_ERRORS_ID, 0)
LEGACY_GRADE = legacy_db._GRADE_TEXT


def _upgraded(url, tmp_path, generation):
    build_legacy(url, generation)
    upgrade(url, tmp_path)
    engine = make_engine(url)
    return engine, make_sessionmaker(engine)


def _documents(sessions, job_id):
    with unit_of_work(sessions, read_only=True) as session:
        total, rows = list_submissions(session, job_id=job_id, limit=50, offset=0)
    assert total == len(rows)
    return rows


def _csv(sessions, job_id):
    with unit_of_work(sessions, read_only=True) as session:
        header, *rows = list(gradebook_rows(session, job_scope(session, job_id=job_id)))
    return header, [dict(zip(header, row, strict=True)) for row in rows]


def test_per_model_grades_of_an_earlier_release_are_listed_and_exported(database_url, tmp_path):
    engine, sessions = _upgraded(database_url, tmp_path, "G6")
    try:
        documents = _documents(sessions, COMPARING_JOB_ID)
        graded = [d for d in documents if d.status == "completed"]
        assert graded and all(d.grades for d in graded)
        for document in graded:
            for grade in document.grades:
                # Under the provider the legacy rows name, not the job's own.
                assert grade.provider == "openrouter" and grade.legacy
                assert grade.feedback == LEGACY_GRADE and grade.score is None
        # The comparison that hit a rate limit is not shown as a grade.
        first = graded[0]
        assert [g.model for g in first.grades] == ["openai/gpt-4o"]

        header, rows = _csv(sessions, COMPARING_JOB_ID)
        feedback_columns = [c for c in header if c.endswith(" feedback")]
        assert feedback_columns == [
            "openrouter:openai/gpt-4o feedback",
            "openrouter:anthropic/claude-3.5-sonnet feedback",
        ]
        exported = [r for r in rows if r["status"] == "completed"]
        assert len(exported) == len(graded)
        assert all(r["openrouter:openai/gpt-4o feedback"] == LEGACY_GRADE for r in exported)
    finally:
        engine.dispose()


def test_single_model_grades_of_the_first_release_are_listed_and_exported(database_url, tmp_path):
    # G1 has no grade_results: a grade lives only in submissions.grade.
    engine, sessions = _upgraded(database_url, tmp_path, "G1")
    try:
        with unit_of_work(sessions, read_only=True) as session:
            jobs = session.execute(
                sa.select(GradingJob.id, GradingJob.provider, GradingJob.model)
                .join(Submission, Submission.job_id == GradingJob.id)
                .where(Submission.grade.is_not(None), Submission.grade != "")
                .distinct()
            ).all()
        assert any(model is None for _, _, model in jobs)  # an LM Studio job: no model
        for job_id, provider, model in jobs:
            shown_model = model or "(model not recorded)"
            graded = [d for d in _documents(sessions, job_id) if d.status == "completed"]
            assert graded
            for document in graded:
                [grade] = document.grades
                assert (grade.provider, grade.model) == (provider, shown_model)
                assert grade.feedback == LEGACY_GRADE
            _, rows = _csv(sessions, job_id)  # one model: unprefixed columns
            assert [r["feedback"] for r in rows if r["status"] == "completed"] == [
                LEGACY_GRADE
            ] * len(graded)
    finally:
        engine.dispose()


def test_a_comparison_an_earlier_release_left_partly_failed_shows_as_such(database_url, tmp_path):
    engine, sessions = _upgraded(database_url, tmp_path, "G6")
    try:
        documents = _documents(sessions, COMPARING_JOB_ID)
        partly = [d for d in documents if d.failed_models]
        assert len(partly) == 1 and partly[0].status == "completed"
        [failed] = partly[0].failed_models
        assert (failed.provider, failed.model) == ("openrouter", "anthropic/claude-3.5-sonnet")
        assert failed.error == "Rate limit exceeded (429)"
        with unit_of_work(sessions, read_only=True) as session:
            job = session.get(GradingJob, COMPARING_JOB_ID)
            assert job is not None and job.partly_failed_submissions == 1
            others = session.scalar(
                sa.select(sa.func.sum(GradingJob.partly_failed_submissions)).where(
                    GradingJob.id != COMPARING_JOB_ID
                )
            )
            assert others == 0
    finally:
        engine.dispose()
