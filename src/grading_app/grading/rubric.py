"""A structured rubric: the marking scheme's criteria, each with its maximum and level
descriptors. When a job's marking scheme has one, the grade's JSON schema names its
criteria and maxima, and an answer that scores other criteria, or out of other maxima,
is refused (and gets the one repair attempt) instead of being stored as it came.

Stored as JSON in `marking_schemes.rubric` and `saved_marking_schemes.rubric`; templates
keep the same criteria shape in `job_structure.criteria` (maximum in `default_settings`).
"""

from __future__ import annotations

import copy
import json
import logging
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from grading_app.grading.schema import GRADE_JSON_SCHEMA, CriterionScore, StructuredGrade

log = logging.getLogger(__name__)

MAX_CRITERIA = 50
MAX_LEVELS = 10
# Scores are compared as numbers a person wrote (20, 12.5): anything closer is equal.
_TOLERANCE = 1e-6


class RubricLevel(BaseModel):
    """One performance level of a criterion: "Excellent (18-20): a precise thesis..."."""

    model_config = ConfigDict(extra="forbid")

    label: str = Field(default="", max_length=100, description='e.g. "Excellent"')
    points: float | None = Field(
        default=None, ge=0, description="The points this level is worth, if it names them"
    )
    descriptor: str = Field(
        min_length=1, max_length=2000, description="What work at this level shows"
    )


class RubricCriterion(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    max_score: float = Field(gt=0, le=100_000, description="The most points it can earn")
    description: str = Field(default="", max_length=2000)
    levels: list[RubricLevel] = Field(default_factory=list, max_length=MAX_LEVELS)

    @field_validator("name", "description")
    @classmethod
    def _stripped(cls, value: str) -> str:
        return " ".join(value.split())

    @model_validator(mode="after")
    def _levels_within_maximum(self) -> RubricCriterion:
        if not self.name:
            raise ValueError("a criterion needs a name")
        for level in self.levels:
            if level.points is not None and level.points > self.max_score + _TOLERANCE:
                raise ValueError(
                    f"level '{level.label or level.descriptor[:30]}' of '{self.name}' is worth "
                    f"{level.points:g}, above the criterion's maximum {self.max_score:g}"
                )
        return self


class Rubric(BaseModel):
    """Criteria in the order they are scored; `max_score` is the overall maximum (by
    default the criteria's maxima added up; a scheme may weight them otherwise)."""

    model_config = ConfigDict(extra="forbid")

    criteria: list[RubricCriterion] = Field(min_length=1, max_length=MAX_CRITERIA)
    max_score: float | None = Field(
        default=None, gt=0, le=1_000_000, description="Overall maximum; default the sum"
    )

    @model_validator(mode="after")
    def _distinct_names(self) -> Rubric:
        seen: set[str] = set()
        for criterion in self.criteria:
            key = name_key(criterion.name)
            if key in seen:
                raise ValueError(f"criterion '{criterion.name}' appears twice")
            seen.add(key)
        return self

    @property
    def total(self) -> float:
        if self.max_score is not None:
            return self.max_score
        return sum(criterion.max_score for criterion in self.criteria)

    def describe(self) -> str:
        """The rubric as marking-scheme text, for the prompt and for legacy readers."""
        lines = []
        for criterion in self.criteria:
            line = f"- {criterion.name}: up to {criterion.max_score:g} marks"
            if criterion.description:
                line += f". {criterion.description}"
            lines.append(line)
            for level in criterion.levels:
                label = level.label or "Level"
                if level.points is not None:
                    label += f" ({level.points:g})"
                lines.append(f"    - {label}: {level.descriptor}")
        lines.append(f"Total: {self.total:g} marks")
        return "\n".join(lines)

    def stored(self) -> dict[str, Any]:
        """The JSON kept in a `rubric` column."""
        return self.model_dump(mode="json", exclude_defaults=True)


def name_key(name: str) -> str:
    """Criterion names match whatever their case and spacing."""
    return " ".join(name.split()).casefold()


def stored_rubric(value: Any) -> Rubric | None:
    """A `rubric` column's rubric; None for none, or for a value that is not one (a row
    edited by hand is graded as free text rather than not at all)."""
    if isinstance(value, str):  # SQLite hands back JSON text on raw reads
        try:
            value = json.loads(value)
        except ValueError:
            return None
    if not isinstance(value, dict):
        return None
    try:
        return Rubric.model_validate(value)
    except ValidationError as exc:
        log.warning("a stored rubric is not valid and is ignored: %s", exc.errors()[:1])
        return None


def rubric_from_criteria(criteria: Any, *, max_score: Any = None) -> Rubric | None:
    """A template's `job_structure.criteria` (and `default_settings.max_score`) as a
    rubric; None if it has none or they are not usable."""
    if not isinstance(criteria, list) or not criteria:
        return None
    total = (
        max_score
        if isinstance(max_score, int | float) and not isinstance(max_score, bool)
        else None
    )
    return stored_rubric({"criteria": criteria, "max_score": total})


# --- the grade's JSON schema ------------------------------------------------------------


def grade_json_schema(rubric: Rubric | None) -> dict[str, Any]:
    """The schema a model is asked to follow: the generic one, or one that names the
    rubric's criteria and maxima. Only `enum` and descriptions are added, which every
    vendor's structured output accepts (OpenAI strict mode included); the pairing of
    each name with its maximum is in the criteria's description, and is checked here."""
    if rubric is None:
        return GRADE_JSON_SCHEMA
    schema = copy.deepcopy(GRADE_JSON_SCHEMA)
    properties = schema["properties"]
    listing = "; ".join(
        f"{json.dumps(c.name, ensure_ascii=False)} out of {c.max_score:g}" for c in rubric.criteria
    )
    properties["max_score"] = {
        "type": "number",
        "enum": [rubric.total],
        "description": f"Maximum possible total score: {rubric.total:g}",
    }
    criteria = properties["criteria"]
    criteria["description"] = (
        f"Exactly {len(rubric.criteria)} entries, one per criterion of the marking scheme, "
        f"in this order: {listing}"
    )
    item = criteria["items"]["properties"]
    item["name"] = {"type": "string", "enum": [c.name for c in rubric.criteria]}
    item["max_score"] = {
        "type": "number",
        "enum": sorted({c.max_score for c in rubric.criteria}),
        "description": "The criterion's maximum as the marking scheme gives it",
    }
    return schema


# --- checking a grade against the rubric ------------------------------------------------


def rubric_mismatch(grade: StructuredGrade, rubric: Rubric) -> str | None:
    """Why the grade does not follow the rubric (names, count, maxima, overall maximum),
    or None if it does."""
    wanted = {name_key(c.name): c for c in rubric.criteria}
    given: dict[str, CriterionScore] = {}
    problems: list[str] = []
    for criterion in grade.criteria:
        key = name_key(criterion.name)
        if key in given:
            problems.append(f"'{criterion.name}' is scored twice")
        given[key] = criterion
    if len(grade.criteria) != len(rubric.criteria):
        problems.insert(
            0,
            f"it scores {len(grade.criteria)} criteria where the marking scheme has "
            f"{len(rubric.criteria)}",
        )
    missing = [c.name for key, c in wanted.items() if key not in given]
    unknown = [c.name for key, c in given.items() if key not in wanted]
    if missing:
        problems.append("missing: " + ", ".join(f"'{name}'" for name in missing))
    if unknown:
        problems.append("not in the scheme: " + ", ".join(f"'{name}'" for name in unknown))
    for key, expected in wanted.items():
        answered = given.get(key)
        if answered is not None and abs(answered.max_score - expected.max_score) > _TOLERANCE:
            problems.append(
                f"'{expected.name}' is out of {answered.max_score:g}, the scheme gives "
                f"{expected.max_score:g}"
            )
    if abs(grade.max_score - rubric.total) > _TOLERANCE:
        problems.append(
            f"max_score is {grade.max_score:g} where the scheme's total is {rubric.total:g}"
        )
    if not problems:
        return None
    return "the grade does not follow the marking scheme: " + "; ".join(problems)


def in_rubric_order(grade: StructuredGrade, rubric: Rubric) -> StructuredGrade:
    """A grade that follows the rubric, its criteria named and ordered as the rubric's."""
    given = {name_key(c.name): c for c in grade.criteria}
    criteria = [
        given[name_key(c.name)].model_copy(update={"name": c.name}) for c in rubric.criteria
    ]
    return grade.model_copy(update={"criteria": criteria})
