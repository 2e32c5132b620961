"""Batches graded with known grades, for the analytics and export tests."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa

from grading_app.db import unit_of_work
from grading_app.grading.service import GradingOutcome
from grading_app.jobs.service import add_submission, create_job, queue_job
from grading_app.models import GradingJob, Submission, WorkItem, utcnow
from grading_app.processing import service
from grading_app.processing.claim import claim
from grading_app.providers.targets import Target
from tests.factories import make_batch, make_outcome

GPT = Target("openai", "gpt-4o")
CLAUDE = Target("claude", "claude-sonnet-4")
MYSTERY = Target("openai", "mystery-model")  # no price known
RATE_LIMITED = (
    "Anthropic rate limit reached for model 'claude-sonnet-4' (429) (gave up after 4 attempts)"
)
INVALID = "the model's answer was not a valid grade, even after a repair request: no score"


@dataclass(frozen=True)
class Item:
    id: str
    provider: str
    model: str
    document: str
    job_name: str


Decision = GradingOutcome | str  # an outcome completes the item; text fails it


def add_job(session, *, batch, name: str, targets: list[Target], documents: list[str]) -> str:
    job = create_job(
        session, name=name, prompt="Grade it out of 100.", targets=targets, batch=batch
    )
    for index, filename in enumerate(documents):
        add_submission(
            session,
            job=job,
            original_filename=filename,
            stored_filename=f"stored_{name}_{index}.txt",
            file_type="txt",
            file_size=100,
            extracted_text=f"Essay {index}.",
        )
    queue_job(session, job=job)
    return job.id


def grade_all(sessions, decide: Callable[[Item], Decision], *, at_most: int | None = None) -> None:
    """Claim every runnable item (or `at_most` of them) and finish each as `decide`
    says, one transaction each (as a worker does)."""
    while True:
        with unit_of_work(sessions) as session:
            limit = 100 if at_most is None else at_most
            claimed = claim(session, owner="w1", limit=limit, lease_seconds=300, now=utcnow())
            ids = [c.id for c in claimed]
            rows = session.execute(
                sa.select(
                    WorkItem.id,
                    WorkItem.provider,
                    WorkItem.model,
                    Submission.original_filename,
                    GradingJob.job_name,
                    GradingJob.models_to_compare,
                )
                .join(Submission, Submission.id == WorkItem.submission_id)
                .join(GradingJob, GradingJob.id == WorkItem.job_id)
                .where(WorkItem.id.in_(ids))
            ).all()
        if not rows:
            return
        for row in rows:
            decision = decide(
                Item(row.id, row.provider, row.model, row.original_filename, row.job_name)
            )
            with unit_of_work(sessions) as session:
                if isinstance(decision, str):
                    assert service.fail_item(session, item_id=row.id, owner="w1", error=decision)
                else:
                    single = not (row.models_to_compare and len(row.models_to_compare) > 1)
                    assert service.complete_item(
                        session, item_id=row.id, owner="w1", outcome=decision, single_model=single
                    )
        if at_most is not None:
            return


# The known grades of `graded_batch`, in percent.
GPT_PERCENTS = {"essay_0.txt": 40, "essay_1.txt": 60, "essay_2.txt": 80, "essay_3.txt": 100}
CLAUDE_PERCENTS = {"essay_0.txt": 50, "essay_1.txt": 60, "essay_2.txt": 90}
GPT_LATENCIES = {"essay_0.txt": 100, "essay_1.txt": 200, "essay_2.txt": 300, "essay_3.txt": 400}


@dataclass(frozen=True)
class GradedBatch:
    batch_id: str
    compared_job_id: str  # GPT and CLAUDE on essay_0..3; CLAUDE fails essay_3 (rate limit)
    single_job_id: str  # MYSTERY on essay_0 (10/20) and essay_1 (invalid answer)
    started: datetime  # when every item started; item k of the completed took 10*(k+1) s


def graded_batch(sessions, *, deadline: datetime | None = None) -> GradedBatch:
    with unit_of_work(sessions) as session:
        batch = make_batch(session, name="Term 2 essays", deadline=deadline)
        compared = add_job(
            session,
            batch=batch,
            name="Compared",
            targets=[GPT, CLAUDE],
            documents=[f"essay_{i}.txt" for i in range(4)],
        )
        single = add_job(
            session,
            batch=batch,
            name="Single",
            targets=[MYSTERY],
            documents=["essay_0.txt", "essay_1.txt"],
        )
        batch_id = batch.id

    def decide(item: Item) -> Decision:
        if item.model == GPT.model:
            return make_outcome(
                score=GPT_PERCENTS[item.document],
                feedback=f"GPT on {item.document}",
                latency_ms=GPT_LATENCIES[item.document],
            )
        if item.model == CLAUDE.model:
            if item.document == "essay_3.txt":
                return RATE_LIMITED
            return make_outcome(score=CLAUDE_PERCENTS[item.document], feedback="Claude says ok")
        if item.document == "essay_0.txt":
            return make_outcome(score=10, max_score=20, feedback="Half marks.")
        return INVALID

    grade_all(sessions, decide)
    started = utcnow() - timedelta(hours=1)
    with unit_of_work(sessions) as session:
        items = session.execute(
            sa.select(WorkItem.id, WorkItem.state)
            .where(WorkItem.batch_id == batch_id)
            .order_by(WorkItem.id)
        ).all()
        completed = [i.id for i in items if i.state == "completed"]
        failed = [i.id for i in items if i.state == "failed"]
        for index, item_id in enumerate(completed):
            _times(session, item_id, started, started + timedelta(seconds=10 * (index + 1)))
        for index, item_id in enumerate(failed):
            _times(session, item_id, started, started + timedelta(seconds=90 + 10 * index))
    return GradedBatch(batch_id, compared, single, started)


def _times(session, item_id: str, started: datetime, finished: datetime) -> None:
    session.execute(
        sa.update(WorkItem)
        .where(WorkItem.id == item_id)
        .values(started_at=started, completed_at=finished)
    )
