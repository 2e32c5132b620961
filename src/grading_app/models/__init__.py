"""Every ORM table, importable from one place so the whole schema reads together."""

from grading_app.models.base import NAMING_CONVENTION, Base, new_id, utcnow
from grading_app.models.batches import BatchStatus, BatchTemplate, JobBatch
from grading_app.models.jobs import (
    GradeResult,
    GradingJob,
    JobStatus,
    Submission,
    WorkItem,
    WorkItemState,
)
from grading_app.models.library import MarkingScheme, SavedMarkingScheme, SavedPrompt

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
