"""Turn a model's raw answer into a validated StructuredGrade, or say why not."""

from __future__ import annotations

import json
import re
from typing import Any

from pydantic import ValidationError

from grading_app.grading.rubric import Rubric, in_rubric_order, rubric_mismatch
from grading_app.grading.schema import StructuredGrade

_FENCED = re.compile(r"```(?:json|JSON)?\s*(.*?)```", re.DOTALL)
# Names models use instead of ours, seen with servers that ignore the JSON schema.
_ALIASES = {
    "score": "overall_score",
    "total_score": "overall_score",
    "grade": "overall_score",
    "max": "max_score",
    "maximum_score": "max_score",
    "out_of": "max_score",
    "comments": "feedback",
}


class GradeParseError(ValueError):
    """The answer is not a usable grade; `reason` says why in a sentence."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def parse_grade(text: str, *, rubric: Rubric | None = None) -> StructuredGrade:
    """The grade in `text`; with a rubric, it must score exactly the rubric's criteria
    out of their maxima (returned in the rubric's order and spelling)."""
    grade = _structured_grade(text)
    if rubric is None:
        return grade
    mismatch = rubric_mismatch(grade, rubric)
    if mismatch is not None:
        raise GradeParseError(mismatch)
    return in_rubric_order(grade, rubric)


def _structured_grade(text: str) -> StructuredGrade:
    payload = _find_json_object(text)
    if not isinstance(payload, dict):
        raise GradeParseError("the answer's JSON is not an object")
    payload = {_ALIASES.get(key, key): value for key, value in payload.items()}
    try:
        return StructuredGrade.model_validate(payload)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in error['loc']) or 'grade'}: {error['msg']}"
            for error in exc.errors()[:5]
        )
        raise GradeParseError(f"the grade does not follow the schema ({problems})") from exc


def _find_json_object(text: str) -> Any:
    """The answer itself, else a fenced ```json block, else the first balanced {...}."""
    stripped = text.strip()
    if not stripped:
        raise GradeParseError("the answer is empty")
    candidates = [stripped, *(match.strip() for match in _FENCED.findall(text))]
    candidates.extend(_balanced_objects(text))
    for candidate in candidates:
        try:
            return json.loads(candidate)
        except ValueError:
            continue
    raise GradeParseError("the answer contains no JSON object")


def _balanced_objects(text: str) -> list[str]:
    """Top-level {...} substrings, skipping braces inside strings. An object that never
    closes (a truncated answer) ends the search: the objects nested inside it are
    criteria, not a grade."""
    found: list[str] = []
    start = text.find("{")
    while start != -1 and len(found) < 5:
        end = _matching_brace(text, start)
        if end is None:
            break
        found.append(text[start : end + 1])
        start = text.find("{", end + 1)
    return found


def _matching_brace(text: str, start: int) -> int | None:
    depth, in_string, escaped = 0, False, False
    for index in range(start, len(text)):
        char = text[index]
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
            if depth == 0:
                return index
    return None
