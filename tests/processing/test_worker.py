"""The local worker grades through real providers against the fake vendor over HTTP."""

from __future__ import annotations

import threading
import time

import sqlalchemy as sa

from grading_app.batches import service as batches
from grading_app.db import unit_of_work
from grading_app.jobs.results import model_agreement
from grading_app.jobs.service import Target
from grading_app.models import GradeResult, GradingJob, JobBatch, Submission, WorkItem
from grading_app.processing.runtime import provider_resolver
from grading_app.processing.worker import LocalWorker
from tests.factories import make_batch, make_job
from tests.fakes.llm_server import Fault, document_of, expected_grade


def _worker(sessions, provider_env, **options) -> LocalWorker:
    resolve, _ = provider_resolver(provider_env)
    options.setdefault("concurrency", 4)
    options.setdefault("request_timeout", 5)
    options.setdefault("poll_interval", 0.05)
    return LocalWorker(sessions, resolve_provider=resolve, **options)


def _run_until_idle(worker: LocalWorker, timeout: float = 60) -> None:
    stop = threading.Event()
    thread = threading.Thread(target=worker.run, args=(stop,), kwargs={"until_idle": True})
    thread.start()
    thread.join(timeout)
    stop.set()
    thread.join(10)
    assert not thread.is_alive()


def _batch(sessions, *, documents=4, targets=None, settings=None):
    with unit_of_work(sessions) as session:
        batch = make_batch(session, settings=settings)
        job = make_job(session, batch=batch, documents=documents, targets=targets)
        return batch.id, job.id


def test_grades_every_document_with_every_model(sessions, llm, provider_env):
    targets = [Target("openai", "gpt-fake"), Target("claude", "claude-fake")]
    batch_id, job_id = _batch(sessions, documents=4, targets=targets)

    _run_until_idle(_worker(sessions, provider_env))

    with unit_of_work(sessions) as session:
        batch = session.get(JobBatch, batch_id)
        assert batch.status == "completed" and batch.completed_items == 8
        results = session.execute(
            sa.select(GradeResult, Submission.extracted_text).join(
                Submission, Submission.id == GradeResult.submission_id
            )
        ).all()
        assert len(results) == 8
        for result, text in results:
            expected = expected_grade(result.model, text)
            assert result.score == expected["overall_score"]
            assert [c["score"] for c in result.criteria] == [
                c["score"] for c in expected["criteria"]
            ]
            assert result.raw_response and result.latency_ms is not None
            assert result.prompt_tokens and result.completion_tokens
        agreement = model_agreement(session, job_id=job_id)
        assert agreement.documents_compared == 4 and agreement.mean_spread is not None
    assert llm.count("gpt-fake") == 4 and llm.count("claude-fake") == 4
    # Documents travel as delimited data, not as instructions.
    texts = {
        document_of(r.body["messages"][-1]["content"])
        for r in llm.requests
        if r.path.endswith("/chat/completions")
    }
    assert all(t.startswith("Essay number") for t in texts)


def test_transient_errors_are_retried_and_then_succeed(sessions, llm, provider_env):
    llm.script("flaky", [Fault.rate_limit(retry_after=0.2), Fault.server_error()], then="ok")
    batch_id, _ = _batch(sessions, documents=1, targets=[Target("openai", "flaky")])

    _run_until_idle(_worker(sessions, provider_env))

    with unit_of_work(sessions) as session:
        item = session.scalars(sa.select(WorkItem)).one()
        assert item.state == "completed" and item.attempts == 3
        assert session.get(JobBatch, batch_id).status == "completed"
    assert llm.count("flaky") == 3  # the SDK's own retries are off: no multiplying


def test_permanent_errors_fail_at_once_naming_the_cause(sessions, llm, provider_env):
    llm.script("missing-model", [], then=Fault.status(404, "model not found"))
    batch_id, _ = _batch(sessions, documents=2, targets=[Target("openai", "missing-model")])

    _run_until_idle(_worker(sessions, provider_env))

    with unit_of_work(sessions) as session:
        items = session.scalars(sa.select(WorkItem)).all()
        assert {i.state for i in items} == {"failed"} and {i.attempts for i in items} == {1}
        assert all("missing-model" in i.last_error for i in items)
        assert "sk-test" not in " ".join(i.last_error for i in items)
        batch = session.get(JobBatch, batch_id)
        assert batch.status == "failed" and batch.failed_items == 2
        failed = session.scalars(sa.select(Submission)).all()
        assert all(s.status == "failed" and "missing-model" in s.error_message for s in failed)
    assert llm.count("missing-model") == 2


def test_retries_are_bounded_by_the_batch_setting(sessions, llm, provider_env):
    llm.script("down", [], then=Fault.server_error(503, retry_after=0.05))
    _batch(sessions, documents=1, targets=[Target("openai", "down")], settings={"max_retries": 2})

    _run_until_idle(_worker(sessions, provider_env))

    with unit_of_work(sessions) as session:
        item = session.scalars(sa.select(WorkItem)).one()
        assert item.state == "failed" and "gave up after 3 attempts" in item.last_error
    assert llm.count("down") == 3


def test_an_unusable_answer_gets_one_repair_request(sessions, llm, provider_env):
    llm.script("sloppy", [Fault.malformed_json()], then="ok")
    llm.script("hopeless", [], then=Fault.non_json_text())
    _batch(sessions, documents=1, targets=[Target("openai", "sloppy")])
    _batch(sessions, documents=1, targets=[Target("openai", "hopeless")])

    _run_until_idle(_worker(sessions, provider_env))

    with unit_of_work(sessions) as session:
        states = dict(session.execute(sa.select(WorkItem.model, WorkItem.state)).all())
        assert states == {"sloppy": "completed", "hopeless": "failed"}
        hopeless = session.scalars(sa.select(WorkItem).where(WorkItem.model == "hopeless")).one()
        assert "even after a repair request" in hopeless.last_error
        failure = session.scalars(
            sa.select(GradeResult).where(GradeResult.model == "hopeless")
        ).one()
        assert failure.status == "failed" and "repair answer" in failure.raw_response
    assert llm.count("sloppy") == 2 and llm.count("hopeless") == 2


def test_single_model_results_fill_the_legacy_grade(sessions, llm, provider_env):
    _, job_id = _batch(sessions, documents=2)
    _run_until_idle(_worker(sessions, provider_env))
    with unit_of_work(sessions) as session:
        for submission in session.scalars(sa.select(Submission)):
            expected = expected_grade("fake-grader", submission.extracted_text)
            assert submission.grade.startswith(
                f"Score: {expected['overall_score']}/{expected['max_score']}"
            )
            assert submission.grade_metadata["overall_score"] == expected["overall_score"]
        job = session.get(GradingJob, job_id)
        assert job.processed_submissions == 2 and job.status == "completed"


def test_pause_stops_new_provider_calls_within_two_seconds(sessions, llm, provider_env):
    llm.latency = 0.3
    batch_id, _ = _batch(sessions, documents=40)
    worker = _worker(sessions, provider_env, concurrency=4)
    stop = threading.Event()
    thread = threading.Thread(target=worker.run, args=(stop,))
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while llm.count("fake-grader") < 6 and time.monotonic() < deadline:
            time.sleep(0.05)
        with unit_of_work(sessions) as session:
            batches.pause_batch(session, batch_id=batch_id)
        paused_at = time.monotonic()
        time.sleep(2.0)
        calls_two_seconds_after_pause = llm.count("fake-grader")
        time.sleep(1.5)
        assert llm.count("fake-grader") == calls_two_seconds_after_pause
        assert time.monotonic() - paused_at >= 3.5
        with unit_of_work(sessions) as session:
            states = dict(
                session.execute(
                    sa.select(WorkItem.state, sa.func.count()).group_by(WorkItem.state)
                ).all()
            )
            assert states.get("running", 0) == 0 and states["queued"] > 0
            batches.resume_batch(session, batch_id=batch_id)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with unit_of_work(sessions) as session:
                if session.get(JobBatch, batch_id).status == "completed":
                    break
            time.sleep(0.1)
    finally:
        stop.set()
        thread.join(15)
    with unit_of_work(sessions) as session:
        assert session.get(JobBatch, batch_id).status == "completed"
        assert session.scalar(sa.select(sa.func.count()).select_from(GradeResult)) == 40
