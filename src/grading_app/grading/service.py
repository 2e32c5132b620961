"""Grade one document with one model: call, parse, repair once, report."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from grading_app.grading.parse import GradeParseError, parse_grade
from grading_app.grading.prompt import build_repair_request
from grading_app.grading.rubric import Rubric
from grading_app.grading.schema import StructuredGrade
from grading_app.providers.base import ChatRequest, ChatResponse, Provider, ProviderError


@dataclass(frozen=True)
class GradingOutcome:
    grade: StructuredGrade
    raw_text: str  # every answer received, repair included, so nothing is lost
    prompt_tokens: int | None
    completion_tokens: int | None
    latency_ms: int
    repaired: bool
    structured: bool
    # Each criterion's quotes checked against the document (trust.pipeline), stored
    # with the grade.
    evidence: tuple[dict[str, Any], ...] = ()
    cached_tokens: int | None = None
    cache_write_tokens: int | None = None
    # "live", or "batch_api" (sent in a vendor batch, billed at its price).
    delivery: str = "live"
    # What the calls cost in USD, priced by the worker; None: no known price.
    cost_usd: float | None = None


class GradingFailed(Exception):
    """The model answered, but not with a usable grade, even after one repair attempt."""

    def __init__(self, reason: str, *, answers: list[ChatResponse]) -> None:
        super().__init__(reason)
        self.reason = reason
        self.usage = Usage.of(answers)


@dataclass(frozen=True)
class Usage:
    """What the answers of one grading cost and said, stored with any outcome."""

    raw_text: str  # every answer received, repair included, so nothing is lost
    prompt_tokens: int | None
    completion_tokens: int | None
    latency_ms: int
    cached_tokens: int | None = None
    cache_write_tokens: int | None = None
    delivery: str = "live"
    cost_usd: float | None = None

    @classmethod
    def of(cls, responses: list[ChatResponse]) -> Usage:
        return cls(
            raw_text=_joined(responses),
            prompt_tokens=_sum(r.prompt_tokens for r in responses),
            completion_tokens=_sum(r.completion_tokens for r in responses),
            latency_ms=sum(r.latency_ms for r in responses),
            cached_tokens=_sum(r.cached_tokens for r in responses),
            cache_write_tokens=_sum(r.cache_write_tokens for r in responses),
        )


def grade_document(
    provider: Provider, request: ChatRequest, *, rubric: Rubric | None = None
) -> GradingOutcome:
    """ProviderError propagates (the pipeline decides on retries); a bad answer (one that
    does not follow the rubric included) gets one repair request, then GradingFailed
    with the reason."""
    return grade_answer(provider, request, provider.complete(request), rubric=rubric)


def grade_answer(
    provider: Provider, request: ChatRequest, first: ChatResponse, *, rubric: Rubric | None
) -> GradingOutcome:
    """`first`, the answer to `request` (live, or from a vendor's batch), made a grade:
    a bad answer gets its one repair request through `provider`, as in grade_document."""
    try:
        return _outcome(parse_grade(first.text, rubric=rubric), [first], repaired=False)
    except GradeParseError as first_error:
        repair = build_repair_request(request, answer=first.text, reason=first_error.reason)
        try:
            second = provider.complete(repair)
        except ProviderError as exc:
            exc.answers = [first]
            raise
        try:
            return _outcome(parse_grade(second.text, rubric=rubric), [first, second], repaired=True)
        except GradeParseError as second_error:
            raise GradingFailed(
                f"the model's answer was not a valid grade, even after a repair request: "
                f"{second_error.reason}",
                answers=[first, second],
            ) from second_error


def _outcome(
    grade: StructuredGrade, responses: list[ChatResponse], *, repaired: bool
) -> GradingOutcome:
    return GradingOutcome(
        grade=grade,
        raw_text=_joined(responses),
        prompt_tokens=_sum(r.prompt_tokens for r in responses),
        completion_tokens=_sum(r.completion_tokens for r in responses),
        latency_ms=sum(r.latency_ms for r in responses),
        cached_tokens=_sum(r.cached_tokens for r in responses),
        cache_write_tokens=_sum(r.cache_write_tokens for r in responses),
        repaired=repaired,
        structured=responses[-1].structured,
    )


def _joined(responses: list[ChatResponse]) -> str:
    if len(responses) == 1:
        return responses[0].text
    return "\n\n--- repair answer ---\n\n".join(r.text for r in responses)


def _sum(values: object) -> int | None:
    numbers = [v for v in values if v is not None]  # type: ignore[attr-defined]
    return sum(numbers) if numbers else None
