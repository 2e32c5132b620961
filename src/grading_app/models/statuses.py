"""Every status vocabulary, and the named sets of them that the code asks about.

Batches and jobs share their running and finished statuses (a batch also has draft
and archived); submissions keep the four legacy statuses (legacy-schema.md); work items
have their own. The members are `StrEnum`s, equal to the strings stored, so the sets
work in Python comparisons and in SQL `IN (...)` alike.
"""

from enum import StrEnum


class BatchStatus(StrEnum):
    DRAFT = "draft"
    PENDING = "pending"
    PROCESSING = "processing"
    PAUSED = "paused"
    COMPLETED = "completed"
    COMPLETED_WITH_ERRORS = "completed_with_errors"
    FAILED = "failed"
    CANCELLED = "cancelled"
    ARCHIVED = "archived"


class JobStatus(StrEnum):
    PENDING = "pending"
    PROCESSING = "processing"
    PAUSED = "paused"
    COMPLETED = "completed"
    COMPLETED_WITH_ERRORS = "completed_with_errors"
    FAILED = "failed"
    CANCELLED = "cancelled"


class SubmissionStatus(StrEnum):
    PENDING = "pending"
    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"


class WorkItemState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


# Batches and jobs whose items workers may claim.
RUNNABLE: frozenset[str] = frozenset({JobStatus.PENDING, JobStatus.PROCESSING})
# Batches and jobs with work still ahead of them (a paused one too).
UNFINISHED: frozenset[str] = RUNNABLE | {JobStatus.PAUSED}
# How a batch or job ends once every item has landed.
FINISHED: frozenset[str] = frozenset(
    {JobStatus.COMPLETED, JobStatus.COMPLETED_WITH_ERRORS, JobStatus.FAILED}
)
# A batch that still takes new jobs and documents.
OPEN_BATCH: frozenset[str] = UNFINISHED | {BatchStatus.DRAFT}
# Submissions with grading still to do.
UNSETTLED_SUBMISSION: frozenset[str] = frozenset(
    {SubmissionStatus.PENDING, SubmissionStatus.PROCESSING}
)
# Work items not yet landed.
OPEN_ITEM: frozenset[str] = frozenset({WorkItemState.QUEUED, WorkItemState.RUNNING})


def sql_list(statuses: frozenset[str]) -> str:
    """`('a', 'b')` for hand-written SQL; the values are our own constants, never input."""
    return "(" + ", ".join(f"'{status}'" for status in sorted(statuses)) + ")"
