"""Grading jobs, their submissions, per-model results and the work items that grade them."""

from datetime import datetime
from typing import Any

from sqlalchemy import Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from grading_app.models.base import Base, new_id, utcnow
from grading_app.models.statuses import JobStatus, SubmissionStatus, WorkItemState


class GradingJob(Base):
    __tablename__ = "grading_jobs"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    created_at: Mapped[datetime | None] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime | None] = mapped_column(default=utcnow, onupdate=utcnow)
    job_name: Mapped[str] = mapped_column(String(255))
    description: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str | None] = mapped_column(String(50), default=JobStatus.PENDING)
    priority: Mapped[int | None] = mapped_column(Integer, default=5)
    # Progress counters, kept up to date as work items finish (O(1) progress reads).
    total_submissions: Mapped[int | None] = mapped_column(Integer, default=0)
    processed_submissions: Mapped[int | None] = mapped_column(Integer, default=0)
    failed_submissions: Mapped[int | None] = mapped_column(Integer, default=0)
    # Documents some models graded while others failed: counted in processed_submissions
    # (their legacy status is completed), and here as well.
    partly_failed_submissions: Mapped[int] = mapped_column(
        Integer, default=0, server_default=text("0")
    )
    provider: Mapped[str] = mapped_column(String(50))
    prompt: Mapped[str] = mapped_column(Text)
    model: Mapped[str | None] = mapped_column(String(100))
    batch_id: Mapped[str | None] = mapped_column(
        String(36), ForeignKey("job_batches.id"), index=True
    )
    models_to_compare: Mapped[list[Any] | None] = mapped_column()
    marking_scheme_id: Mapped[str | None] = mapped_column(
        String(36), ForeignKey("marking_schemes.id")
    )
    saved_prompt_id: Mapped[str | None] = mapped_column(String(36), ForeignKey("saved_prompts.id"))
    saved_marking_scheme_id: Mapped[str | None] = mapped_column(
        String(36), ForeignKey("saved_marking_schemes.id")
    )
    temperature: Mapped[float | None] = mapped_column(Float)
    max_tokens: Mapped[int | None] = mapped_column(Integer)
    # Work-item counters (one item per submission and model): O(1) progress and ETA.
    total_items: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    completed_items: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    failed_items: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    started_at: Mapped[datetime | None] = mapped_column()
    completed_at: Mapped[datetime | None] = mapped_column()
    estimated_completion: Mapped[datetime | None] = mapped_column()
    # A job in a batch belongs to the batch's owner; this is the owner of a job without
    # a batch (the legacy single-job workflow).
    owner_id: Mapped[str | None] = mapped_column(String(36), ForeignKey("users.id"), index=True)


# A document refused at upload: failed, and no text was ever extracted from it.
REFUSED_SUBMISSION = f"status = '{SubmissionStatus.FAILED.value}' AND extracted_text IS NULL"


class Submission(Base):
    __tablename__ = "submissions"
    __table_args__ = (
        # A job's documents in page order (migration 0008): a page reads its rows only.
        Index("ix_submissions_job_id_created_at_id", "job_id", "created_at", "id"),
        # The dashboard's documents refused at upload (migration 0011): only failed
        # documents without text are in it, a handful among a million.
        Index(
            "ix_submissions_refused_created_at",
            "created_at",
            sqlite_where=text(REFUSED_SUBMISSION),
            postgresql_where=text(REFUSED_SUBMISSION),
        ),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    created_at: Mapped[datetime | None] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime | None] = mapped_column(default=utcnow, onupdate=utcnow)
    filename: Mapped[str] = mapped_column(String(255))
    original_filename: Mapped[str] = mapped_column(String(255))
    file_size: Mapped[int | None] = mapped_column(Integer)
    file_type: Mapped[str | None] = mapped_column(String(10))
    status: Mapped[str | None] = mapped_column(String(50), default=SubmissionStatus.PENDING)
    error_message: Mapped[str | None] = mapped_column(Text)
    extracted_text: Mapped[str | None] = mapped_column(Text)
    # The single-model grade, still filled for single-model jobs so legacy readers work.
    grade: Mapped[str | None] = mapped_column(Text)
    grade_metadata: Mapped[dict[str, Any] | None] = mapped_column()
    job_id: Mapped[str] = mapped_column(String(36), ForeignKey("grading_jobs.id"), index=True)
    retry_count: Mapped[int | None] = mapped_column(Integer, default=0)


class GradeResult(Base):
    """One model's grade of one submission (legacy G2, multi-model comparison)."""

    __tablename__ = "grade_results"
    __table_args__ = (Index("ix_grade_results_work_item_id", "work_item_id", unique=True),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    created_at: Mapped[datetime | None] = mapped_column(default=utcnow)
    grade: Mapped[str] = mapped_column(Text)
    provider: Mapped[str] = mapped_column(String(50))
    model: Mapped[str] = mapped_column(String(100))
    status: Mapped[str | None] = mapped_column(String(50))
    error_message: Mapped[str | None] = mapped_column(Text)
    grade_metadata: Mapped[dict[str, Any] | None] = mapped_column()
    submission_id: Mapped[str] = mapped_column(String(36), ForeignKey("submissions.id"), index=True)
    # The structured grade; `grade` and `grade_metadata` above keep the legacy shape.
    # A grade outlives the queue row that produced it (SET NULL, not CASCADE).
    work_item_id: Mapped[str | None] = mapped_column(
        String(36), ForeignKey("work_items.id", ondelete="SET NULL")
    )
    # Quotes the model gave as evidence, and how many were found in the document
    # (verified or a near match): per-model analytics without reading every grade.
    quotes_total: Mapped[int | None] = mapped_column(Integer)
    quotes_verified: Mapped[int | None] = mapped_column(Integer)
    score: Mapped[float | None] = mapped_column(Float)
    max_score: Mapped[float | None] = mapped_column(Float)
    criteria: Mapped[list[Any] | None] = mapped_column()
    feedback: Mapped[str | None] = mapped_column(Text)
    raw_response: Mapped[str | None] = mapped_column(Text)
    prompt_tokens: Mapped[int | None] = mapped_column(Integer)
    completion_tokens: Mapped[int | None] = mapped_column(Integer)
    latency_ms: Mapped[int | None] = mapped_column(Integer)
    # Of the prompt tokens: read from the vendor's prompt cache, and written to it.
    cached_tokens: Mapped[int | None] = mapped_column(Integer)
    cache_write_tokens: Mapped[int | None] = mapped_column(Integer)
    # How the calls went ("live", or "batch_api" at the batch price) and what they cost
    # in USD at the price of the time; NULL when the model has no known price.
    delivery: Mapped[str | None] = mapped_column(String(20))
    cost_usd: Mapped[float | None] = mapped_column(Float)


class WorkItem(Base):
    """One (submission, model) grading: the unit that workers claim, lease and retry."""

    __tablename__ = "work_items"
    __table_args__ = (
        UniqueConstraint("submission_id", "provider", "model"),
        # Claiming scans runnable items; reaping scans expired leases.
        Index("ix_work_items_state_next_attempt_at", "state", "next_attempt_at"),
        Index("ix_work_items_batch_id_state", "batch_id", "state"),
        Index("ix_work_items_job_id_state", "job_id", "state"),
        Index("ix_work_items_lease_expires_at", "lease_expires_at"),
        # The dashboard's latest failures, newest first.
        Index("ix_work_items_state_completed_at_id", "state", "completed_at", "id"),
        Index("ix_work_items_provider_batch_id", "provider_batch_id"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    # Queue rows go with their document, job or batch, whoever deletes it: they never
    # block another reader of the database from deleting one (ON DELETE CASCADE).
    submission_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("submissions.id", ondelete="CASCADE")
    )
    job_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("grading_jobs.id", ondelete="CASCADE")
    )
    batch_id: Mapped[str | None] = mapped_column(
        String(36), ForeignKey("job_batches.id", ondelete="CASCADE")
    )
    provider: Mapped[str] = mapped_column(String(50))
    model: Mapped[str] = mapped_column(String(100))
    state: Mapped[str] = mapped_column(
        String(20), default=WorkItemState.QUEUED, server_default=text("'queued'")
    )
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    # Position within its batch: items of equal-priority batches interleave by it.
    sequence: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    next_attempt_at: Mapped[datetime | None] = mapped_column()
    lease_owner: Mapped[str | None] = mapped_column(String(255))
    lease_expires_at: Mapped[datetime | None] = mapped_column()
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    started_at: Mapped[datetime | None] = mapped_column()
    completed_at: Mapped[datetime | None] = mapped_column()
    # The vendor batch it was sent in (batch API delivery), while that is open.
    provider_batch_id: Mapped[str | None] = mapped_column(
        String(36), ForeignKey("provider_batches.id", ondelete="SET NULL")
    )
