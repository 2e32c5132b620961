"""API shapes of the batch-API work: a job batch's provider batches."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from grading_app.fields import UtcDateTime


class ProviderBatchOut(BaseModel):
    """One batch of calls sent to a vendor's batch API for the job batch."""

    model_config = ConfigDict(from_attributes=True)

    id: str
    provider: str
    model: str
    # preparing, submitted, cancelling, ended, collected or failed
    state: str
    # The vendor's own word for it ("in_progress", "ended", "expired", ...).
    vendor_status: str | None
    external_id: str | None
    request_count: int
    succeeded_count: int
    failed_count: int
    requeued_count: int
    cost_usd: float | None
    error: str | None
    created_at: UtcDateTime | None
    submitted_at: UtcDateTime | None
    ended_at: UtcDateTime | None
    collected_at: UtcDateTime | None
    expires_at: UtcDateTime | None


class ProviderBatchTotalsOut(BaseModel):
    """What is still at the vendor, and what was answered (and so paid for) already: a
    pause or cancel stops what is open, and keeps what was answered."""

    model_config = ConfigDict(from_attributes=True)

    total: int
    open: int
    answered: int
    cost_usd: float


class ProviderBatchesOut(BaseModel):
    totals: ProviderBatchTotalsOut
    items: list[ProviderBatchOut]
