"""Analytics API shapes. Percentiles are nearest-rank; scores are percentages of their
maximum, so jobs marked out of different totals compare."""

from __future__ import annotations

from datetime import date
from typing import Literal

from pydantic import BaseModel, Field

from grading_app.fields import UtcDateTime
from grading_app.trust.schemas import ReviewFiguresOut


class Distribution(BaseModel):
    """Percentages of the maximum score."""

    count: int
    mean: float | None
    min: float | None
    p25: float | None
    median: float | None
    p75: float | None
    max: float | None
    histogram: list[int] = Field(
        description="How many fall in each tenth: 0-10, 10-20, ..., 90-100 (100 included)"
    )


class CriterionDistribution(Distribution):
    name: str


class Latency(BaseModel):
    """Time a model took to answer (a repair call included), per grading."""

    count: int
    mean_ms: float | None
    p50_ms: float | None
    p95_ms: float | None


PriceSourceName = Literal["administrator", "GRADING_APP_PRICES", "default"]


class Cost(BaseModel):
    """What a model's calls cost: the costs stored with each grading (priced as it was
    made, cached input and the batch API's discount included), plus an estimate at
    today's price for gradings stored without one (made by an earlier release)."""

    total_usd: float = Field(description="recorded_usd + estimated_usd")
    recorded_usd: float = Field(description="The sum of the costs stored with the calls")
    estimated_usd: float = Field(description="Calls stored without a cost, priced at today's price")
    estimated: bool = Field(
        description="Whether part of the total is an estimate (calls stored without a cost)"
    )
    unpriced_calls: int = Field(
        default=0, description="Calls without a stored cost that no price covers (left out)"
    )
    input_usd_per_million: float | None = Field(description="Today's price; None: none known")
    output_usd_per_million: float | None
    cached_input_usd_per_million: float | None = None
    price_source: PriceSourceName | None
    prices_as_of: date | None = Field(description="When the default prices were read")


class JobCost(BaseModel):
    job_id: str
    job_name: str
    total_usd: float
    estimated: bool = Field(description="Whether part of the total is an estimate")
    unpriced_calls: int = Field(description="Calls no stored cost or price covers (left out)")


class ScopeCost(BaseModel):
    """What the scope's calls cost, every model together."""

    total_usd: float
    estimated: bool = Field(description="Whether part of the total is an estimate")
    unpriced_calls: int = Field(description="Calls no stored cost or price covers (left out)")
    jobs: list[JobCost] = Field(description="Per job (a batch's), in the order they were made")


class ModelAnalytics(BaseModel):
    provider: str
    model: str
    label: str
    items: dict[str, int] = Field(description="Work items by state")
    calls: int = Field(description="Attempts made (a repair call counts with its call)")
    failures: dict[str, int] = Field(
        description="Failed or cancelled items by cause: auth_or_credit, rate_limit, "
        "timeout, invalid_answer, cancelled, provider_error, other"
    )
    retrying: int = Field(description="Items waiting to be tried again after an error")
    latency: Latency
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int = Field(default=0, description="Input tokens read from the prompt cache")
    cache_write_tokens: int = Field(default=0, description="Input tokens written to the cache")
    cached_share: float | None = Field(
        default=None, description="Share of the input tokens read from the prompt cache"
    )
    cost: Cost | None = Field(description="None when no cost is stored and no price known")
    quotes_checked: int = Field(
        default=0, description="Quotes the model gave as evidence, each checked in the text"
    )
    quotes_verified_share: float | None = Field(
        default=None, description="Share of them found in the document (a near match counts)"
    )
    scores: Distribution
    criteria: list[CriterionDistribution]


class PairAgreement(BaseModel):
    models: list[str]
    documents: int = Field(description="Documents both models graded")
    mean_absolute_difference: float | None = Field(description="In percentage points")
    correlation: float | None = Field(description="Pearson r; None below 3 documents")
    share_within_10_points: float | None


class Agreement(BaseModel):
    documents_compared: int = Field(description="Documents graded by two models or more")
    mean_spread_points: float | None = Field(
        description="Highest minus lowest model's percentage, averaged over documents"
    )
    max_spread_points: float | None
    mean_absolute_difference_points: float | None = Field(description="Over every pair")
    mean_pairwise_correlation: float | None
    share_within_10_points: float | None = Field(
        description="Share of model pairs' grades of a document within 10 points"
    )
    pairs: list[PairAgreement]


class Counts(BaseModel):
    jobs: dict[str, int]
    documents: dict[str, int]
    items: dict[str, int]


class SuccessRate(BaseModel):
    items: float | None = Field(description="Completed items of those finished")
    documents: float | None = Field(description="Graded documents of those settled")


class Throughput(BaseModel):
    finished_items: int
    items_per_minute_overall: float | None
    items_per_minute_recent: float | None
    window_minutes: float = Field(description="The recent window")
    first_started_at: UtcDateTime | None
    last_finished_at: UtcDateTime | None


class ProcessingTime(BaseModel):
    """Per completed item, from its first claim to its result (retries included)."""

    count: int
    mean_seconds: float | None
    p50_seconds: float | None
    p95_seconds: float | None


class Eta(BaseModel):
    remaining_items: int
    items_per_minute: float | None = Field(description="The rate the estimate uses")
    rate_basis: Literal["recent", "overall"] | None
    estimated_completion: UtcDateTime | None
    deadline: UtcDateTime | None
    on_track: bool | None = Field(
        description="Whether the deadline is met at the current rate (for finished "
        "work: whether it was); None without a deadline or a rate"
    )


class ScopeAnalytics(BaseModel):
    scope: Literal["batch", "job"]
    id: str
    name: str
    status: str | None
    generated_at: UtcDateTime
    counts: Counts
    success_rate: SuccessRate
    throughput: Throughput
    processing_time: ProcessingTime
    eta: Eta
    models: list[ModelAnalytics]
    cost: ScopeCost = Field(description="Every model's cost together, and each job's")
    agreement: Agreement
    final_scores: Distribution = Field(
        description="The grades that count, one per graded document: a reviewer's "
        "(accepted or overridden) where there is one, else the mean of its models'"
    )
    review: ReviewFiguresOut = Field(
        description="Reviews: waiting, accepted, overridden, release, and each model's "
        "agreement with the reviewers (a reviewer's grade wins over the models')"
    )


# --- dashboard --------------------------------------------------------------------------


class Totals(BaseModel):
    batches: int
    jobs: int
    documents: int
    graded_documents: int
    failed_documents: int
    items: int
    completed_items: int
    failed_items: int


class BatchProgress(BaseModel):
    id: str
    name: str
    status: str | None
    priority: int
    progress: float
    total_items: int
    completed_items: int
    failed_items: int
    started_at: UtcDateTime | None
    estimated_completion: UtcDateTime | None
    deadline: UtcDateTime | None


class DeadlineRisk(BaseModel):
    id: str
    name: str
    status: str | None
    deadline: UtcDateTime
    estimated_completion: UtcDateTime | None
    reason: str


class RecentFailure(BaseModel):
    item_id: str
    batch_id: str | None
    batch_name: str | None
    job_id: str
    job_name: str
    document: str
    provider: str
    model: str
    cause: str
    error: str | None
    failed_at: UtcDateTime | None


class RefusedDocument(BaseModel):
    """A file refused at upload (unreadable, empty, too large...): kept as a failed
    document with the reason, never graded."""

    submission_id: str
    batch_id: str | None
    batch_name: str | None
    job_id: str
    job_name: str
    document: str
    error: str | None
    uploaded_at: UtcDateTime | None


class FinishedBatch(BaseModel):
    id: str
    name: str
    status: str | None
    completed_at: UtcDateTime | None
    total_items: int
    completed_items: int
    failed_items: int


class OwnerCost(BaseModel):
    """What an owner's batches have spent (the costs stored with their calls)."""

    owner_id: str | None
    owner: str | None = Field(description="The username; None for batches without owner")
    batches: int
    spent_usd: float


class WaitingForReview(BaseModel):
    batch_id: str
    batch_name: str
    waiting: int


class Dashboard(BaseModel):
    generated_at: UtcDateTime
    totals: Totals
    batches_by_status: dict[str, int]
    in_progress: list[BatchProgress]
    recently_finished: list[FinishedBatch] = Field(
        default_factory=list, description="Completed, failed or cancelled, latest first"
    )
    deadlines_at_risk: list[DeadlineRisk]
    recent_failures: list[RecentFailure]
    waiting_for_review: list[WaitingForReview] = Field(
        default_factory=list,
        description="Batches with documents in their review queue, most waiting first "
        "(GET /api/batches/{id}/review-queue lists them)",
    )
    cost_by_owner: list[OwnerCost] = Field(
        default_factory=list,
        description="Spending per batch owner, most first (administrators: every owner; "
        "others: their own)",
    )
    refused_documents: list[RefusedDocument] = Field(
        default_factory=list,
        description="Files refused at upload, latest first (GET /api/jobs/{id}/submissions"
        "?status=failed lists a job's)",
    )


# --- prices -----------------------------------------------------------------------------


class PriceIn(BaseModel):
    """An administrator's price, USD per million tokens."""

    input_per_million: float
    output_per_million: float
    cached_input_per_million: float | None = Field(
        default=None, description="Input read from the prompt cache; None: as input"
    )
    cache_write_per_million: float | None = Field(
        default=None, description="Input written to the prompt cache; None: as input"
    )
    batch_discount: float | None = Field(
        default=None,
        description="The share the batch API takes off every figure, 0 to 1 (0.5: half "
        "price); None: the provider's (0.5 for OpenAI and Anthropic, else 0)",
    )


class PriceOut(BaseModel):
    provider: str
    model: str = Field(description='"*": every model of the provider without its own price')
    input_per_million: float
    output_per_million: float
    cached_input_per_million: float | None
    cache_write_per_million: float | None
    batch_discount: float
    source: PriceSourceName = Field(
        description="An administrator's price wins over GRADING_APP_PRICES, which wins over "
        "the dated defaults"
    )
    as_of: date | None = Field(
        description="When the default was read from the vendor's list, or the administrator set it"
    )
