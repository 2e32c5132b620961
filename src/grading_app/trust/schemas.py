"""The review API's shapes."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from grading_app.fields import UtcDateTime

Comment = Annotated[str, Field(max_length=4000)]
CriterionName = Annotated[str, Field(min_length=1, max_length=200)]


class ReviewIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    action: Literal["accept", "override"] = Field(
        description="accept: the models' grade stands (their mean when several graded it); "
        "override: `score` (and any `criteria`) replace it in the gradebook and analytics"
    )
    score: float | None = Field(
        default=None, ge=0, description="The overall score (override only), 0 to the maximum"
    )
    criteria: dict[CriterionName, Annotated[float, Field(ge=0)]] | None = Field(
        default=None,
        description="Criterion name -> score (override only); names and maxima as the grade has",
    )
    comment: Comment | None = None


class ReasonOut(BaseModel):
    code: str
    detail: str
    weight: float


class ReviewOut(BaseModel):
    """A document's review: its state, a person's grade if overridden, and why it may
    need a look."""

    submission_id: str
    state: Literal["unreviewed", "accepted", "overridden"]
    score: float | None = None
    max_score: float | None = None
    criteria: dict[str, float] | None = None
    comment: str | None = None
    reviewed_by: str | None = None
    reviewed_at: UtcDateTime | None = None
    doubt: float | None = None
    reasons: list[ReasonOut] = []
    findings: list[dict[str, object]] = []


class QueueItemOut(BaseModel):
    submission_id: str
    job_id: str
    original_filename: str
    doubt: float
    reasons: list[ReasonOut]
    scores: dict[str, float | None] = Field(description="provider:model -> percent of maximum")


class ReleaseIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    release_unreviewed: bool = Field(
        default=False,
        description="Release although some graded documents are not reviewed (they are "
        "counted in the answer); without it such a release is refused (409)",
    )


class ReleaseOut(BaseModel):
    batch_id: str
    released_at: UtcDateTime
    released_by: str
    documents: int
    reviewed: int
    released_unreviewed: int


class ModelVsHumanOut(BaseModel):
    """How far one model's grades are from the reviewers' (accepted or overridden)."""

    label: str
    documents: int
    mean_absolute_difference: float | None = Field(description="In percentage points")
    share_within_5_points: float | None
    share_within_10_points: float | None
    criteria: dict[str, float] = Field(
        description="Criterion -> mean absolute difference in percentage points of its "
        "maximum, over the overrides that scored it"
    )


class ReviewFiguresOut(BaseModel):
    waiting: int = Field(description="Documents in the review queue (unreviewed, doubtful)")
    accepted: int
    overridden: int
    released_at: UtcDateTime | None = None
    model_vs_human: list[ModelVsHumanOut]
