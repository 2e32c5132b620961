"""The batch-API work of a job batch, over HTTP (read only: pause, resume and cancel of
the batch act on it)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from grading_app.deps import ReadSessionDep
from grading_app.lifecycle import service as lifecycle
from grading_app.processing import provider_batches
from grading_app.processing.schemas import ProviderBatchesOut

router = APIRouter(prefix="/api/batches", tags=["batches"])


@router.get("/{batch_id}/provider-batches", response_model=ProviderBatchesOut)
def list_provider_batches(batch_id: str, session: ReadSessionDep) -> Any:
    """The batch's provider batches (delivery `batch_api` or `auto`), oldest first, with
    their state at the vendor, counts, cost and times; and the totals: how many are
    still open, how many calls were answered (paid for) and what they cost."""
    lifecycle.get_batch(session, batch_id=batch_id)  # 404 for an unknown batch
    return {
        "totals": provider_batches.totals(session, batch_id=batch_id),
        "items": provider_batches.list_for_batch(session, batch_id=batch_id),
    }
