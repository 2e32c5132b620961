"""Batches and batch templates: the Enhanced Batch System of the migration guide."""

from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, Float, ForeignKey, Index, Integer, String, Text, false, text, true
from sqlalchemy.orm import Mapped, mapped_column

from grading_app.models.base import Base, new_id, utcnow
from grading_app.models.statuses import BatchStatus


class BatchTemplate(Base):
    __tablename__ = "batch_templates"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(255))
    description: Mapped[str | None] = mapped_column(Text)
    category: Mapped[str | None] = mapped_column(String(100))
    default_settings: Mapped[dict[str, Any] | None] = mapped_column()
    job_structure: Mapped[dict[str, Any] | None] = mapped_column()
    processing_rules: Mapped[dict[str, Any] | None] = mapped_column()
    is_public: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    created_at: Mapped[datetime | None] = mapped_column(default=utcnow)
    created_by: Mapped[str | None] = mapped_column(String(255))
    updated_at: Mapped[datetime | None] = mapped_column(default=utcnow, onupdate=utcnow)
    usage_count: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    last_used: Mapped[datetime | None] = mapped_column()
    # The account that owns it; NULL for the system's default templates.
    owner_id: Mapped[str | None] = mapped_column(String(36), ForeignKey("users.id"), index=True)


class JobBatch(Base):
    """A batch of grading jobs. Legacy columns first, then the enhanced ones."""

    __tablename__ = "job_batches"
    # Every filter and sort of the batch list reads through one of these (migration
    # 0007); each sort key ends with the id, the list's tie-break, so a page is read
    # straight from its index. The default order's index also holds the status, so the
    # default list (archived left out) and its count need not visit the rows.
    __table_args__ = (
        Index("ix_job_batches_status_priority", "status", "priority"),
        Index(
            "ix_job_batches_priority_created_at_id_status",
            "priority",
            "created_at",
            "id",
            "status",
        ),
        Index("ix_job_batches_created_at_id", "created_at", "id"),
        Index("ix_job_batches_updated_at_id", "updated_at", "id"),
        Index("ix_job_batches_deadline_id", "deadline", "id"),
        Index("ix_job_batches_started_at_id", "started_at", "id"),
        Index("ix_job_batches_completed_at_id", "completed_at", "id"),
        Index("ix_job_batches_batch_name_id", "batch_name", "id"),
        Index("ix_job_batches_template_id", "template_id"),
        Index("ix_job_batches_created_by", "created_by"),
        Index("ix_job_batches_owner_id", "owner_id"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    created_at: Mapped[datetime | None] = mapped_column(default=utcnow)
    batch_name: Mapped[str] = mapped_column(String(255))
    description: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str | None] = mapped_column(String(50), default=BatchStatus.DRAFT)
    # NOT NULL in legacy databases; a mixed batch or a draft from a template has none.
    provider: Mapped[str | None] = mapped_column(String(50))
    prompt: Mapped[str | None] = mapped_column(Text)
    model: Mapped[str | None] = mapped_column(String(100))
    temperature: Mapped[float | None] = mapped_column(Float)
    max_tokens: Mapped[int | None] = mapped_column(Integer)

    updated_at: Mapped[datetime | None] = mapped_column(default=utcnow, onupdate=utcnow)
    priority: Mapped[int] = mapped_column(Integer, default=5, server_default=text("5"))
    tags: Mapped[list[Any] | None] = mapped_column()
    models_to_compare: Mapped[list[Any] | None] = mapped_column()
    batch_settings: Mapped[dict[str, Any] | None] = mapped_column()
    auto_assign_jobs: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    total_jobs: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    completed_jobs: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    failed_jobs: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    deadline: Mapped[datetime | None] = mapped_column()
    started_at: Mapped[datetime | None] = mapped_column()
    completed_at: Mapped[datetime | None] = mapped_column()
    estimated_completion: Mapped[datetime | None] = mapped_column()
    template_id: Mapped[str | None] = mapped_column(String(36), ForeignKey("batch_templates.id"))
    created_by: Mapped[str | None] = mapped_column(String(255))
    shared_with: Mapped[list[Any] | None] = mapped_column()
    # The account that owns the batch; shares are in batch_shares. NULL only until the
    # first administrator exists (rows from an earlier release, or the CLI before then).
    owner_id: Mapped[str | None] = mapped_column(String(36), ForeignKey("users.id"))
    # Grades released to students: every document reviewed, or the rest released
    # unreviewed on purpose (`grades_released_unreviewed` of them).
    grades_released_at: Mapped[datetime | None] = mapped_column()
    grades_released_by: Mapped[str | None] = mapped_column(String(36), ForeignKey("users.id"))
    grades_released_unreviewed: Mapped[int | None] = mapped_column(Integer)
    saved_prompt_id: Mapped[str | None] = mapped_column(String(36), ForeignKey("saved_prompts.id"))
    saved_marking_scheme_id: Mapped[str | None] = mapped_column(
        String(36), ForeignKey("saved_marking_schemes.id")
    )
    total_items: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    completed_items: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    failed_items: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    # The sums of its jobs' document counters, kept by triggers on grading_jobs
    # (migration 0014): never written by the application.
    total_submissions: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    processed_submissions: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    failed_submissions: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    # How many jobs it has, kept by the same triggers (the legacy total_jobs counts those
    # an earlier release added, and is left as it was).
    job_count: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    # When a worker last took an item of this batch: waiting time ages its priority.
    last_claimed_at: Mapped[datetime | None] = mapped_column()
    # What its calls have cost so far (USD), kept up to date as items finish, so a
    # budget is checked without summing grades.
    spent_usd: Mapped[float] = mapped_column(Float, default=0.0, server_default=text("0"))
    # Why the batch was paused when not by a person ("budget": the budget would be passed).
    pause_reason: Mapped[str | None] = mapped_column(Text)
