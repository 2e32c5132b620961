"""The "Trust" fieldset of the new batch and batch edit forms: redaction, what a
hidden-instruction finding does, and when a document goes to the review queue. Read
from the form into the batch settings the batch services check (`BatchSettings`); only
the values that differ from what the batch has (or, for a new batch, from the
defaults) are sent, so a template's own trust settings and a processing batch's
unchanged settings are left alone."""

from __future__ import annotations

from typing import Any

from grading_app.trust.settings import TrustSettings, trust_settings

TRUST_FIELDS = (
    "redact_pii",
    "hidden_instructions",
    "disagreement_threshold",
    "grade_boundaries",
    "boundary_margin",
)
HIDDEN_INSTRUCTION_CHOICES = (
    ("flag", "Flag", "grade the document and put it in the review queue with the finding"),
    ("hold", "Hold", "do not send it to any model until a person chooses to grade it anyway"),
    ("strip", "Strip", "remove the hidden text, grade what a reader sees, and flag it"),
)


def trust_form_of(batch_settings: Any) -> dict[str, Any]:
    """The fieldset's values as a batch's stored settings have them."""
    current = trust_settings(batch_settings)
    return {
        "redact_pii": current.redact_pii,
        "hidden_instructions": current.hidden_instructions,
        "disagreement_threshold": f"{current.disagreement_threshold:g}",
        "grade_boundaries": ", ".join(f"{b:g}" for b in current.grade_boundaries),
        "boundary_margin": f"{current.boundary_margin:g}",
    }


def trust_changes(
    form: dict[str, Any], errors: dict[str, str], current: TrustSettings
) -> dict[str, Any]:
    """The settings the fieldset changes against `current`; a value that is not a
    number is an error beside its field (ranges are the batch service's to check)."""
    wanted: dict[str, Any] = {
        "redact_pii": bool(form.get("redact_pii")),
        "hidden_instructions": form.get("hidden_instructions") or current.hidden_instructions,
    }
    for name in ("disagreement_threshold", "boundary_margin"):
        typed = str(form.get(name) or "").strip()
        if typed:
            number = _number(typed)
            if number is None:
                errors[name] = f"'{typed}' is not a number"
            else:
                wanted[name] = number
    boundaries: list[float] = []
    for part in str(form.get("grade_boundaries") or "").split(","):
        typed = part.strip().removesuffix("%").strip()
        if not typed:
            continue
        number = _number(typed)
        if number is None:
            errors["grade_boundaries"] = (
                f"'{part.strip()}' is not a percentage: write numbers such as 50, 70"
            )
        else:
            boundaries.append(number)
    wanted["grade_boundaries"] = sorted(boundaries)
    stored = {
        "redact_pii": current.redact_pii,
        "hidden_instructions": current.hidden_instructions,
        "disagreement_threshold": current.disagreement_threshold,
        "grade_boundaries": list(current.grade_boundaries),
        "boundary_margin": current.boundary_margin,
    }
    return {name: value for name, value in wanted.items() if value != stored[name]}


def _number(typed: str) -> float | None:
    try:
        number = float(typed)
    except ValueError:
        return None
    return number if number == number and abs(number) != float("inf") else None
