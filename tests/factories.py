"""Small factories with keyword defaults for tests."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from grading_app.batches.service import create_batch
from grading_app.grading.schema import CriterionScore, StructuredGrade
from grading_app.grading.service import GradingOutcome
from grading_app.jobs.service import add_submission, create_job, queue_job
from grading_app.models import GradingJob, JobBatch
from grading_app.providers.targets import Target


def make_batch(
    session: Session,
    *,
    name: str = "Year 10 essays",
    priority: int = 5,
    deadline: datetime | None = None,
    status: str = "pending",
    settings: dict | None = None,
) -> JobBatch:
    batch = create_batch(
        session, name=name, priority=priority, deadline=deadline, settings=settings
    )
    batch.status = status
    session.flush()
    return batch


def make_job(
    session: Session,
    *,
    batch: JobBatch | None = None,
    documents: int = 3,
    targets: list[Target] | None = None,
    prompt: str = "Grade this essay out of 100.",
    queue: bool = True,
    text_prefix: str = "",
) -> GradingJob:
    job = create_job(
        session,
        name="Essay job",
        prompt=prompt,
        targets=targets or [Target("openai", "fake-grader")],
        batch=batch,
    )
    for index in range(documents):
        add_submission(
            session,
            job=job,
            original_filename=f"essay_{index}.txt",
            stored_filename=f"stored_{index}.txt",
            file_type="txt",
            file_size=100,
            extracted_text=f"{text_prefix}Essay number {index}. It argues a point with evidence.",
        )
    if queue:
        queue_job(session, job=job)
    return job


def make_outcome(
    *,
    score: float = 70,
    max_score: float = 100,
    feedback: str = "Solid.",
    latency_ms: int = 12,
    prompt_tokens: int = 100,
    completion_tokens: int = 50,
) -> GradingOutcome:
    grade = StructuredGrade(
        overall_score=score,
        max_score=max_score,
        criteria=[CriterionScore(name="Argument", score=score / 2, max_score=max_score / 2)],
        feedback=feedback,
    )
    return GradingOutcome(
        grade=grade,
        raw_text=grade.model_dump_json(),
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        latency_ms=latency_ms,
        repaired=False,
        structured=True,
    )
