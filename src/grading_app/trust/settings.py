"""The batch settings the trust checks obey, read leniently from stored settings (rows
of earlier releases may hold anything) with safe defaults."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

DEFAULT_DISAGREEMENT = 10.0  # percentage points of the maximum between two models
DEFAULT_BOUNDARY_MARGIN = 2.0  # percentage points either side of a grade boundary
HIDDEN_INSTRUCTION_ACTIONS = ("flag", "hold", "strip")
# How a held document's error begins: it waits for a person, who may grade it anyway.
HELD_FOR_REVIEW = "Held for review: hidden instructions found"


@dataclass(frozen=True)
class TrustSettings:
    redact_pii: bool = False
    hidden_instructions: str = "flag"
    disagreement_threshold: float = DEFAULT_DISAGREEMENT
    grade_boundaries: tuple[float, ...] = ()
    boundary_margin: float = DEFAULT_BOUNDARY_MARGIN
    student_number_patterns: tuple[str, ...] | None = None
    roster: tuple[str, ...] = ()

    def holds(self, findings: Sequence[object]) -> bool:
        """Whether a document with these hidden-instruction findings waits for a person
        (never sent) instead of being graded: at upload, and in the estimate."""
        return bool(findings) and self.hidden_instructions == "hold"


def trust_settings(batch_settings: Any) -> TrustSettings:
    settings = batch_settings if isinstance(batch_settings, dict) else {}
    action = settings.get("hidden_instructions")
    patterns = settings.get("student_number_patterns")
    return TrustSettings(
        redact_pii=settings.get("redact_pii") is True,
        hidden_instructions=action if action in HIDDEN_INSTRUCTION_ACTIONS else "flag",
        disagreement_threshold=_number(
            settings.get("disagreement_threshold"), DEFAULT_DISAGREEMENT, low=0, high=100
        ),
        grade_boundaries=tuple(
            sorted(
                float(b)
                for b in _list(settings.get("grade_boundaries"))
                if _is_number(b) and 0 <= b <= 100
            )
        ),
        boundary_margin=_number(
            settings.get("boundary_margin"), DEFAULT_BOUNDARY_MARGIN, low=0, high=50
        ),
        student_number_patterns=tuple(p for p in _list(patterns) if isinstance(p, str))
        if isinstance(patterns, list)
        else None,
        roster=tuple(n for n in _list(settings.get("roster")) if isinstance(n, str) and n.strip()),
    )


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _number(value: Any, default: float, *, low: float, high: float) -> float:
    return float(value) if _is_number(value) and low <= value <= high else default
