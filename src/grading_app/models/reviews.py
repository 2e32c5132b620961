"""What a teacher needs to trust a document's grades: why it may need a look (the
checks made when it was uploaded and graded), and a person's review of it.

One row per document that has either: a document without a row is "not reviewed" with
nothing found. Kept apart from `submissions` so the legacy table keeps its shape.
"""

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Float, ForeignKey, Index, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from grading_app.models.base import Base, utcnow


class ReviewState(StrEnum):
    UNREVIEWED = "unreviewed"
    ACCEPTED = "accepted"
    OVERRIDDEN = "overridden"


class DocumentReview(Base):
    __tablename__ = "document_reviews"
    __table_args__ = (
        # A batch's (or job's) review queue: unreviewed documents, most doubtful first.
        Index("ix_document_reviews_batch_id_state_doubt", "batch_id", "state", "doubt"),
        Index("ix_document_reviews_job_id_state_doubt", "job_id", "state", "doubt"),
    )

    submission_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("submissions.id", ondelete="CASCADE"), primary_key=True
    )
    job_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("grading_jobs.id", ondelete="CASCADE")
    )
    batch_id: Mapped[str | None] = mapped_column(
        String(36), ForeignKey("job_batches.id", ondelete="CASCADE")
    )
    # Hidden-instruction scan of the uploaded file (trust.hidden_text.Finding.to_dict()).
    findings: Mapped[list[Any] | None] = mapped_column()
    # Why the document needs a person's look ({"code", "detail", "weight"}), and how
    # doubtful it is overall (the queue's order); NULL doubt: nothing to look at.
    reasons: Mapped[list[Any] | None] = mapped_column()
    doubt: Mapped[float | None] = mapped_column(Float)
    state: Mapped[str] = mapped_column(
        String(20), default=ReviewState.UNREVIEWED, server_default=text("'unreviewed'")
    )
    # A person's grade: it wins over every model's in the gradebook and the analytics.
    score: Mapped[float | None] = mapped_column(Float)
    max_score: Mapped[float | None] = mapped_column(Float)
    criteria: Mapped[dict[str, Any] | None] = mapped_column()
    comment: Mapped[str | None] = mapped_column(Text)
    reviewed_by: Mapped[str | None] = mapped_column(
        String(36), ForeignKey("users.id", ondelete="SET NULL")
    )
    reviewed_at: Mapped[datetime | None] = mapped_column()
    updated_at: Mapped[datetime | None] = mapped_column(default=utcnow, onupdate=utcnow)
