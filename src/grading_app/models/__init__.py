"""Every ORM table, importable from one place so the whole schema reads together."""

from grading_app.models.accounts import (
    AccessToken,
    AuditEvent,
    BatchShare,
    InstanceSecret,
    SignInThrottle,
    User,
    UserSession,
)
from grading_app.models.base import NAMING_CONVENTION, Base, new_id, utcnow
from grading_app.models.batches import BatchTemplate, JobBatch
from grading_app.models.costs import (
    OPEN_PROVIDER_BATCH_STATES,
    ModelPrice,
    ProviderBatch,
    ProviderBatchState,
)
from grading_app.models.jobs import GradeResult, GradingJob, Submission, WorkItem
from grading_app.models.library import MarkingScheme, SavedMarkingScheme, SavedPrompt
from grading_app.models.reviews import DocumentReview, ReviewState
from grading_app.models.statuses import (
    FINISHED,
    OPEN_BATCH,
    OPEN_ITEM,
    RUNNABLE,
    UNFINISHED,
    UNSETTLED_SUBMISSION,
    BatchStatus,
    JobStatus,
    SubmissionStatus,
    WorkItemState,
)

LEGACY_TABLES = (
    "job_batches",
    "grading_jobs",
    "submissions",
    "grade_results",
    "marking_schemes",
    "saved_prompts",
    "saved_marking_schemes",
)

__all__ = [
    "OPEN_PROVIDER_BATCH_STATES",
    "ModelPrice",
    "ProviderBatch",
    "ProviderBatchState",
    "AccessToken",
    "DocumentReview",
    "ReviewState",
    "AuditEvent",
    "BatchShare",
    "InstanceSecret",
    "SignInThrottle",
    "User",
    "UserSession",
    "FINISHED",
    "OPEN_BATCH",
    "OPEN_ITEM",
    "RUNNABLE",
    "UNFINISHED",
    "UNSETTLED_SUBMISSION",
    "SubmissionStatus",
    "LEGACY_TABLES",
    "NAMING_CONVENTION",
    "Base",
    "BatchStatus",
    "BatchTemplate",
    "GradeResult",
    "GradingJob",
    "JobBatch",
    "JobStatus",
    "MarkingScheme",
    "SavedMarkingScheme",
    "SavedPrompt",
    "Submission",
    "WorkItem",
    "WorkItemState",
    "new_id",
    "utcnow",
]
