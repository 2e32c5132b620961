"""The structured grade a model is asked for, and its validation.

Nothing is clamped: a score above its maximum (overall or for a criterion) is an invalid
answer that gets one repair attempt, not a quiet correction. Criteria need not add up to
the overall maximum: marking schemes weight them as they like.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field, field_validator, model_validator

MAX_QUOTES = 5
MAX_QUOTE_CHARS = 400


class CriterionScore(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    score: float = Field(ge=0)
    max_score: float = Field(gt=0)
    justification: str = ""
    # Short verbatim quotes from the document supporting the score; each is checked
    # against the document's text (trust.evidence) and flagged when not found. An
    # answer without them is still a grade, with no evidence to show.
    evidence: list[str] = Field(default_factory=list)

    @field_validator("evidence")
    @classmethod
    def _quotes(cls, quotes: list[str]) -> list[str]:
        """The first few quotes, each capped: evidence is for checking, not a copy."""
        kept = [quote.strip()[:MAX_QUOTE_CHARS] for quote in quotes if quote.strip()]
        return kept[:MAX_QUOTES]

    @model_validator(mode="after")
    def _within_maximum(self) -> CriterionScore:
        if self.score > self.max_score:
            raise ValueError(
                f"criterion '{self.name}' scores {self.score:g} above its maximum "
                f"{self.max_score:g}"
            )
        return self


class StructuredGrade(BaseModel):
    overall_score: float = Field(ge=0)
    max_score: float = Field(gt=0)
    criteria: list[CriterionScore] = Field(default_factory=list)
    feedback: str = ""

    @field_validator("feedback")
    @classmethod
    def _strip(cls, value: str) -> str:
        return value.strip()

    @model_validator(mode="after")
    def _consistent(self) -> StructuredGrade:
        if self.overall_score > self.max_score:
            raise ValueError(
                f"overall_score {self.overall_score:g} is above max_score {self.max_score:g}"
            )
        return self

    def summary(self) -> str:
        """The legacy `grade` text: readable by the earlier release's pages."""
        lines = [f"Score: {self.overall_score:g}/{self.max_score:g}"]
        for criterion in self.criteria:
            line = f"- {criterion.name}: {criterion.score:g}/{criterion.max_score:g}"
            if criterion.justification:
                line += f" — {criterion.justification}"
            lines.append(line)
        if self.feedback:
            lines.extend(["", self.feedback])
        return "\n".join(lines)


# Written out rather than generated, so it stays within the subset that OpenAI's strict
# structured outputs accept (every property required, no additional properties).
GRADE_JSON_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "overall_score": {"type": "number", "description": "Total score awarded"},
        "max_score": {"type": "number", "description": "Maximum possible total score"},
        "criteria": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "name": {"type": "string"},
                    "score": {"type": "number"},
                    "max_score": {"type": "number"},
                    "justification": {"type": "string"},
                    "evidence": {
                        "type": "array",
                        "items": {"type": "string"},
                        "description": (
                            "One to three short quotes copied word for word from the "
                            "document that support this score"
                        ),
                    },
                },
                "required": ["name", "score", "max_score", "justification", "evidence"],
                "additionalProperties": False,
            },
        },
        "feedback": {"type": "string", "description": "Feedback to the author"},
    },
    "required": ["overall_score", "max_score", "criteria", "feedback"],
    "additionalProperties": False,
}
