"""What a document's page shows of its evidence and review: the text cut into plain and
quoted pieces (each verified or near quote's span marked with the criteria it supports,
overlapping spans merged), and the criteria a reviewer may override."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from grading_app.grading.rubric import name_key

SHOWN_STATUSES = ("verified", "near")  # an unverified quote has no place in the text


@dataclass(frozen=True)
class Segment:
    """A piece of the text; `criteria` names the criteria whose quotes cover it (none
    for plain text), `status` is "near" when any of those quotes only nearly matched."""

    text: str
    criteria: tuple[str, ...] = ()
    status: str = ""


@dataclass
class _Span:
    start: int
    end: int
    criteria: list[str]
    near: bool


def marked_segments(text: str, checks: Iterable[Any]) -> list[Segment]:
    """`text` split at the quote checks' start/end offsets (checks as the API shows
    them: criterion, status, start, end); offsets outside the text are ignored."""
    spans: list[_Span] = []
    usable = sorted((c for c in checks if _usable(c, len(text))), key=lambda c: (c.start, -c.end))
    for check in usable:
        last = spans[-1] if spans else None
        if last is not None and check.start < last.end:
            last.end = max(last.end, check.end)
            if check.criterion not in last.criteria:
                last.criteria.append(check.criterion)
            last.near = last.near or check.status == "near"
        else:
            spans.append(_Span(check.start, check.end, [check.criterion], check.status == "near"))
    segments: list[Segment] = []
    position = 0
    for span in spans:
        if span.start > position:
            segments.append(Segment(text[position : span.start]))
        segments.append(
            Segment(
                text[span.start : span.end],
                tuple(span.criteria),
                "near" if span.near else "verified",
            )
        )
        position = span.end
    if position < len(text):
        segments.append(Segment(text[position:]))
    return segments


def _usable(check: Any, length: int) -> bool:
    start, end = getattr(check, "start", None), getattr(check, "end", None)
    return (
        getattr(check, "status", None) in SHOWN_STATUSES
        and isinstance(start, int)
        and isinstance(end, int)
        and 0 <= start < end <= length
    )


def review_criteria(grades: Iterable[Any]) -> list[tuple[str, float | None]]:
    """(name, maximum) of every criterion the document's grades score, in the order the
    first grade naming each gives them; the same criterion named differently in case or
    spacing is one."""
    seen: dict[str, tuple[str, float | None]] = {}
    for grade in grades:
        for criterion in getattr(grade, "criteria", None) or []:
            name = criterion.get("name") if isinstance(criterion, dict) else None
            if not isinstance(name, str) or not name.strip():
                continue
            maximum = criterion.get("max_score")
            seen.setdefault(
                name_key(name),
                (name, float(maximum) if isinstance(maximum, int | float) else None),
            )
    return list(seen.values())
