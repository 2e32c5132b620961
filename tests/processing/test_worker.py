"""The local worker grades through real providers against the fake vendor over HTTP."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from grading_app.db import unit_of_work
from grading_app.lifecycle import service as lifecycle
from grading_app.models import GradeResult, GradingJob, JobBatch, Submission, WorkItem
from grading_app.processing.runtime import provider_resolver
from grading_app.processing.worker import LocalWorker
from grading_app.providers.targets import Target
from grading_app.reports.analytics import agreement
from grading_app.reports.scope import job_scope
from tests.factories import make_batch, make_job
from tests.fakes.llm_server import Fault, document_of, expected_grade
from tests.processing.helpers import batch_status, wait_for


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
        figures = agreement(session, job_scope(session, job_id=job_id))
        assert figures.documents_compared == 4 and figures.mean_spread_points is not None
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


def _item_states(sessions, **where: str) -> Counter[str]:
    with unit_of_work(sessions, read_only=True) as session:
        query = sa.select(WorkItem.state)
        for column, value in where.items():
            query = query.where(getattr(WorkItem, column) == value)
        return Counter(session.scalars(query))


def _calls_for(llm, prefix: str) -> int:
    return sum(
        1
        for r in llm.requests
        if r.path.endswith("/chat/completions")
        and document_of(r.body["messages"][-1]["content"]).startswith(prefix)
    )


def _job_status(sessions, job_id: str) -> str:
    with unit_of_work(sessions, read_only=True) as session:
        return session.get(GradingJob, job_id).status


def _wait_for_more_graded(sessions, job_id: str, more: int = 4) -> None:
    """Until `more` items of the job have been graded from now: whatever claim was under
    way as a pause committed has landed by then, and later claims were made."""
    graded = _item_states(sessions, job_id=job_id)["completed"]
    wait_for(
        lambda: _item_states(sessions, job_id=job_id)["completed"] >= graded + more,
        f"{more} more items of the other job",
    )


@contextmanager
def _running(worker: LocalWorker) -> Iterator[None]:
    """The worker claiming and grading in a thread until the block ends."""
    stop = threading.Event()
    thread = threading.Thread(target=worker.run, args=(stop,))
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(15)


def _assert_pause_stops_claims(
    sessions, llm, *, pause: Callable[..., object], paused: dict[str, str], other_job_id: str
) -> None:
    """`pause` what `paused` names (a batch_id or a job_id): its calls in flight finish,
    and while the other job is graded to the end, not one more of its items is claimed
    or sent."""
    with unit_of_work(sessions) as session:
        pause(session, **paused)
    # Calls in flight finish; items claimed but not started go back to the queue.
    wait_for(
        lambda: _item_states(sessions, **paused)["running"] == 0,
        "the paused items' calls in flight to finish",
    )
    _wait_for_more_graded(sessions, other_job_id)  # claims made after the pause
    settled, calls = _item_states(sessions, **paused), _calls_for(llm, "Paused.")
    assert _item_states(sessions, job_id=other_job_id)["queued"] > 0  # work goes on
    wait_for(lambda: _job_status(sessions, other_job_id) == "completed", "the other job")

    # Every claim since went to the other job.
    assert _item_states(sessions, **paused) == settled
    assert settled["queued"] > 0 and _calls_for(llm, "Paused.") == calls


def test_pause_stops_new_claims_at_once_and_calls_in_flight_finish(sessions, llm, provider_env):
    """While the worker keeps claiming the items of another batch, not one more item of
    the paused batch is claimed or sent: synchronised on states, not on time."""
    llm.latency = 0.2
    with unit_of_work(sessions) as session:
        paused_batch = make_batch(session, name="Paused")
        make_job(session, batch=paused_batch, documents=40, text_prefix="Paused. ")
        other_batch = make_batch(session, name="Other")
        other = make_job(session, batch=other_batch, documents=40, text_prefix="Other. ")
        batch_id, other_job_id = paused_batch.id, other.id
    with _running(_worker(sessions, provider_env, concurrency=4)):
        wait_for(lambda: _calls_for(llm, "Paused.") >= 3, "the batch to be graded")
        _assert_pause_stops_claims(
            sessions,
            llm,
            pause=lifecycle.pause_batch,
            paused={"batch_id": batch_id},
            other_job_id=other_job_id,
        )
        with unit_of_work(sessions) as session:
            assert session.get(JobBatch, batch_id).status == "paused"
            lifecycle.resume_batch(session, batch_id=batch_id)
        wait_for(lambda: batch_status(sessions, batch_id) == "completed", "the resumed batch")
    with unit_of_work(sessions) as session:
        assert session.scalar(sa.select(sa.func.count()).select_from(GradeResult)) == 80
    assert _calls_for(llm, "Paused.") == 40  # none sent twice


def test_pausing_one_job_stops_its_claims_while_the_other_goes_on(sessions, llm, provider_env):
    llm.latency = 0.2
    with unit_of_work(sessions) as session:
        batch = make_batch(session)
        paused = make_job(session, batch=batch, documents=24, text_prefix="Paused. ")
        other = make_job(session, batch=batch, documents=24, text_prefix="Other. ")
        batch_id, paused_id, other_id = batch.id, paused.id, other.id

    with _running(_worker(sessions, provider_env, concurrency=4)):
        wait_for(lambda: _calls_for(llm, "Paused.") >= 4, "the job to be graded")
        # The other job of the same batch is graded to the end meanwhile.
        _assert_pause_stops_claims(
            sessions,
            llm,
            pause=lifecycle.pause_job,
            paused={"job_id": paused_id},
            other_job_id=other_id,
        )
        with unit_of_work(sessions) as session:
            assert session.get(GradingJob, paused_id).status == "paused"
            assert session.get(JobBatch, batch_id).status == "processing"
            lifecycle.resume_job(session, job_id=paused_id)

        wait_for(lambda: _job_status(sessions, paused_id) == "completed", "the resumed job")
        wait_for(lambda: batch_status(sessions, batch_id) == "completed", "the batch to complete")
    calls = Counter(
        document_of(r.body["messages"][-1]["content"])
        for r in llm.requests
        if r.path.endswith("/chat/completions")
    )
    assert len(calls) == 48 and set(calls.values()) == {1}
    with unit_of_work(sessions) as session:
        assert session.scalar(sa.select(sa.func.count()).select_from(GradeResult)) == 48


def test_a_provider_timeout_is_retried_and_then_succeeds(sessions, llm, provider_env):
    llm.script("slow", [Fault.timeout(5.0)], then="ok")
    batch_id, _ = _batch(sessions, documents=1, targets=[Target("openai", "slow")])

    _run_until_idle(_worker(sessions, provider_env, request_timeout=0.5))

    with unit_of_work(sessions) as session:
        item = session.scalars(sa.select(WorkItem)).one()
        assert item.state == "completed" and item.attempts == 2
        assert session.get(JobBatch, batch_id).status == "completed"
        assert session.scalars(sa.select(GradeResult)).one().status == "completed"
    assert [r.behaviour for r in llm.requests] == ["timeout", "ok"]


def test_a_batch_timeout_shortens_the_servers_but_never_lengthens_it(sessions, llm, provider_env):
    for model, timeout in (("short", 0.5), ("long", 60)):
        llm.script(model, [], then=Fault.timeout(5.0))
        _batch(
            sessions,
            documents=1,
            targets=[Target("openai", model)],
            settings={"timeout_seconds": timeout, "max_retries": 0},
        )

    _run_until_idle(_worker(sessions, provider_env, request_timeout=2))

    with unit_of_work(sessions) as session:
        errors = dict(session.execute(sa.select(WorkItem.model, WorkItem.last_error)).all())
    assert "did not answer within 0.5s" in errors["short"]
    assert "did not answer within 2s" in errors["long"]  # the server's, not the batch's 60 s


def test_retry_after_from_a_429_is_honoured(sessions, llm, provider_env):
    # Longer than the first backoff can be (full jitter up to 2 s), so only honouring
    # Retry-After explains a wait this long.
    llm.script("busy", [Fault.rate_limit(retry_after=2.5)], then="ok")
    batch_id, _ = _batch(sessions, documents=1, targets=[Target("openai", "busy")])

    _run_until_idle(_worker(sessions, provider_env))

    first, second = llm.requests
    assert (first.behaviour, second.behaviour) == ("status", "ok")
    assert second.at - first.at >= 2.5
    with unit_of_work(sessions) as session:
        item = session.scalars(sa.select(WorkItem)).one()
        assert item.state == "completed" and item.attempts == 2
        # The retry was scheduled for Retry-After seconds after the 429 came back.
        rejected_at = datetime.fromtimestamp(first.at, UTC).replace(tzinfo=None)
        assert item.next_attempt_at >= rejected_at + timedelta(seconds=2.5)
        assert session.get(JobBatch, batch_id).status == "completed"


class _SdkBug:
    """A real provider whose SDK has a bug: it raises TypeError before any request, as
    anthropic 1.0 did for the `temperature` argument it dropped."""

    def __init__(self, provider):
        self.provider = provider

    def __getattr__(self, name):
        return getattr(self.provider, name)

    def complete(self, request):
        raise TypeError("Messages.create() got an unexpected keyword argument 'temperature'")


def test_an_unexpected_error_is_retried_then_fails_the_item_with_its_name(
    sessions, llm, provider_env
):
    batch_id, _ = _batch(sessions, documents=2, settings={"max_retries": 1})
    resolve, _ = provider_resolver(provider_env)
    worker = LocalWorker(
        sessions,
        resolve_provider=lambda name: _SdkBug(resolve(name)),
        concurrency=2,
        request_timeout=5,
        poll_interval=0.05,
    )

    # Not left on its lease (300 s here) for the reaper: settled within the backoff.
    _run_until_idle(worker, timeout=30)

    with unit_of_work(sessions) as session:
        items = session.execute(sa.select(WorkItem)).scalars().all()
        assert [i.state for i in items] == ["failed", "failed"]
        for item in items:
            assert item.attempts == 2
            assert item.last_error.startswith("internal error while grading (TypeError: ")
            assert "gave up after 2 attempts" in item.last_error
        batch = session.get(JobBatch, batch_id)
        assert batch.status == "failed" and batch.failed_items == 2
    assert worker.stats.retried == 2 and worker.stats.failed == 2


def test_threads_of_a_starting_worker_share_one_client_per_provider(provider_env):
    # Each client costs tens of milliseconds of CPU to build; 32 threads starting at
    # once used to build 32.
    resolve, _ = provider_resolver(provider_env)
    start = threading.Barrier(16)
    clients = []

    def first_call() -> None:
        start.wait()
        clients.append(resolve("openai"))

    threads = [threading.Thread(target=first_call) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert len(clients) == 16 and len({id(client) for client in clients}) == 1
