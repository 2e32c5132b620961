"""Findings in a piece of text: instructions, fake turns and invisible characters."""

from __future__ import annotations

from collections.abc import Callable, Collection

from grading_app.trust.characters import invisible_findings
from grading_app.trust.findings import FAKE_TURN, Finding, excerpt_of, where
from grading_app.trust.patterns import find_instructions


def findings_in_text(
    text: str, location_of: Callable[[int], str], openings: Collection[int] = ()
) -> list[Finding]:
    """Findings in the extracted text, with offsets; ``location_of`` names where an
    offset lies ("body", "footer", "pdf page 2"); ``openings`` are where hidden text
    starts (see ``find_instructions``)."""
    findings = [
        _instruction_finding(
            text[hit.start : hit.end],
            hit.kind,
            hit.label,
            location_of(hit.start),
            hit.start,
            hit.end,
        )
        for hit in find_instructions(text, openings)
    ]
    return findings + invisible_findings(text, location_of, in_text=True)


def findings_outside_text(piece: str, location: str) -> list[Finding]:
    """Findings in text the model is not sent (metadata, comments, ...): no offsets."""
    findings = [
        _instruction_finding(piece[hit.start : hit.end], hit.kind, hit.label, location)
        for hit in find_instructions(piece)
    ]
    return findings + invisible_findings(piece, lambda _offset: location, in_text=False)


def _instruction_finding(
    span: str,
    kind: str,
    label: str,
    location: str,
    start: int | None = None,
    end: int | None = None,
) -> Finding:
    noun = "Text" if kind != FAKE_TURN else "A line"
    return Finding(
        kind=kind,
        detail=f"{noun} {where(location)} {label}.",
        excerpt=excerpt_of(span.strip()),
        location=location,
        start=start,
        end=end,
    )
