"""The document text cut at the checked quotes' offsets: verified and near quotes
marked with their criteria, overlapping ones merged, unverified and out-of-range ones
left out; the criteria a reviewer may override."""

from __future__ import annotations

from types import SimpleNamespace

from grading_app.trust.document_view import Segment, marked_segments, review_criteria

TEXT = "<b>Bea</b> compares two poems with care and skill."


def check(criterion: str, status: str, quote: str, *, shift: int = 0) -> SimpleNamespace:
    start = TEXT.index(quote) + shift
    return SimpleNamespace(criterion=criterion, status=status, start=start, end=start + len(quote))


def test_quotes_split_the_text_and_overlapping_ones_merge():
    segments = marked_segments(
        TEXT,
        [
            check("Style", "near", "with care"),
            check("Content", "verified", "compares two poems"),
            check("Style", "verified", "two poems with"),
            check("Content", "unverified", "skill"),
        ],
    )

    assert segments == [
        Segment("<b>Bea</b> "),
        Segment("compares two poems with care", ("Content", "Style"), "near"),
        Segment(" and skill."),
    ]
    assert "".join(s.text for s in segments) == TEXT


def test_offsets_outside_the_text_are_ignored():
    bad = SimpleNamespace(criterion="X", status="verified", start=40, end=400)
    none = SimpleNamespace(criterion="X", status="verified", start=None, end=None)
    assert marked_segments(TEXT, [bad, none]) == [Segment(TEXT)]
    assert marked_segments("", []) == []


def test_the_criteria_come_from_every_grade_once():
    grades = [
        SimpleNamespace(criteria=[{"name": "Argument", "max_score": 50}, {"name": "Style"}]),
        SimpleNamespace(criteria=[{"name": " argument ", "max_score": 40}, {"name": "Use"}]),
        SimpleNamespace(criteria=None),
    ]
    assert review_criteria(grades) == [("Argument", 50.0), ("Style", None), ("Use", None)]
