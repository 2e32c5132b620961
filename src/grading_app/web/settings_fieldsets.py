"""The Trust and Cost fieldsets of the new batch and batch edit forms, read from the
posted form by one dependency, so both forms take the same fields with the same limits.
What the values mean and what they change is `trust_fields.py`'s and `cost_fields.py`'s.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Form


def settings_fieldsets(
    redact_pii: Annotated[str, Form(max_length=5)] = "",
    hidden_instructions: Annotated[str, Form(max_length=10)] = "",
    disagreement_threshold: Annotated[str, Form(max_length=20)] = "",
    grade_boundaries: Annotated[str, Form(max_length=500)] = "",
    boundary_margin: Annotated[str, Form(max_length=20)] = "",
    delivery: Annotated[str, Form(max_length=20)] = "",
    budget: Annotated[str, Form(max_length=20)] = "",
) -> dict[str, Any]:
    """The fieldsets' values as typed, named as the form (and `trust_changes`,
    `cost_changes`) name them; a checkbox as a bool."""
    return {
        "redact_pii": bool(redact_pii),
        "hidden_instructions": hidden_instructions,
        "disagreement_threshold": disagreement_threshold,
        "grade_boundaries": grade_boundaries,
        "boundary_margin": boundary_margin,
        "delivery": delivery,
        "budget": budget,
    }


SettingsFieldsets = Annotated[dict[str, Any], Depends(settings_fieldsets)]
