"""Batch API shapes."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict


class BatchOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    batch_name: str
    description: str | None
    status: str | None
    priority: int
    tags: list[str] | None = None
    deadline: datetime | None
    created_at: datetime | None
    started_at: datetime | None
    completed_at: datetime | None
    estimated_completion: datetime | None
    total_jobs: int
    completed_jobs: int
    failed_jobs: int
    total_items: int
    completed_items: int
    failed_items: int

    @property
    def progress(self) -> float:
        done = self.completed_items + self.failed_items
        return done / self.total_items if self.total_items else 0.0


class RetryOut(BaseModel):
    batch: BatchOut
    requeued: int
