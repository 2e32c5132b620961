"""What grading costs: the price table an administrator keeps, and the batches of calls
sent through a vendor's batch API (half price, answered within the vendor's window).

A provider batch row is written before anything is sent, so a worker that restarts
finds every batch in flight, polls it again and collects its results exactly once."""

from datetime import datetime
from enum import StrEnum

from sqlalchemy import Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from grading_app.models.base import Base, new_id, utcnow


class ProviderBatchState(StrEnum):
    PREPARING = "preparing"  # items assigned, nothing sent yet (or not known to be)
    SUBMITTED = "submitted"  # the vendor has it: polled until it ends
    CANCELLING = "cancelling"  # cancel asked of the vendor; polled until it ends
    ENDED = "ended"  # the vendor finished (completed, expired or cancelled): to collect
    COLLECTED = "collected"  # results applied, the rest sent back to the queue
    FAILED = "failed"  # the vendor refused it; its items went back to the queue


OPEN_PROVIDER_BATCH_STATES = frozenset(
    {
        ProviderBatchState.PREPARING,
        ProviderBatchState.SUBMITTED,
        ProviderBatchState.CANCELLING,
        ProviderBatchState.ENDED,
    }
)


class ProviderBatch(Base):
    """One batch of calls sent to a vendor's batch API (OpenAI Batch, Anthropic Message
    Batches). Its work items point at it (`work_items.provider_batch_id`) while it is
    open; each request's custom id is the work item's id."""

    __tablename__ = "provider_batches"
    __table_args__ = (
        # The poller's question: which open batches are due a look?
        Index("ix_provider_batches_state_next_poll_at", "state", "next_poll_at"),
        Index("ix_provider_batches_batch_id", "batch_id"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    # The job batch it grades for; kept (SET NULL) when that is deleted: it was paid.
    batch_id: Mapped[str | None] = mapped_column(
        String(36), ForeignKey("job_batches.id", ondelete="SET NULL")
    )
    provider: Mapped[str] = mapped_column(String(50))
    model: Mapped[str] = mapped_column(String(100))
    state: Mapped[str] = mapped_column(
        String(20), default=ProviderBatchState.PREPARING, server_default=text("'preparing'")
    )
    # The vendor's ids: its batch, and (OpenAI) the uploaded input and the result files.
    external_id: Mapped[str | None] = mapped_column(String(255))
    input_file_id: Mapped[str | None] = mapped_column(String(255))
    output_file_id: Mapped[str | None] = mapped_column(String(255))
    error_file_id: Mapped[str | None] = mapped_column(String(255))
    # The vendor's own word for its state ("in_progress", "finalizing", "ended", ...).
    vendor_status: Mapped[str | None] = mapped_column(String(50))
    request_count: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    succeeded_count: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    failed_count: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    requeued_count: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    # What its answered requests cost, at the batch price.
    cost_usd: Mapped[float | None] = mapped_column(Float)
    # Why it ended without every answer (expired, cancelled, refused), for a person.
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    submitted_at: Mapped[datetime | None] = mapped_column()
    ended_at: Mapped[datetime | None] = mapped_column()
    collected_at: Mapped[datetime | None] = mapped_column()
    # When the vendor gives up on it (its completion window).
    expires_at: Mapped[datetime | None] = mapped_column()
    next_poll_at: Mapped[datetime | None] = mapped_column()
    polls: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    # The worker polling or collecting it now: one at a time, as for work items.
    lease_owner: Mapped[str | None] = mapped_column(String(255))
    lease_expires_at: Mapped[datetime | None] = mapped_column()


class ModelPrice(Base):
    """An administrator's price for a model (or, with model "*", every model of a
    provider), in USD per million tokens; it wins over the dated defaults."""

    __tablename__ = "model_prices"
    __table_args__ = (UniqueConstraint("provider", "model"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    provider: Mapped[str] = mapped_column(String(50))
    model: Mapped[str] = mapped_column(String(100))
    input_per_million: Mapped[float] = mapped_column(Float)
    output_per_million: Mapped[float] = mapped_column(Float)
    # NULL: cached input costs what input does (no caching discount known).
    cached_input_per_million: Mapped[float | None] = mapped_column(Float)
    # Writing the cache (Anthropic bills it above plain input); NULL: as input.
    cache_write_per_million: Mapped[float | None] = mapped_column(Float)
    # The share taken off every figure for calls through the batch API (0.5: half).
    batch_discount: Mapped[float] = mapped_column(Float, default=0.0, server_default=text("0"))
    updated_at: Mapped[datetime | None] = mapped_column(default=utcnow, onupdate=utcnow)
    updated_by: Mapped[str | None] = mapped_column(
        String(36), ForeignKey("users.id", ondelete="SET NULL")
    )
