"""Which templates are the four defaults, kept read-only by the API.

The upgrade puts a default template back whenever none has its name (revision 0002's
recheck), so a default deleted or renamed through the API would only return; and a
user's template under a default's name would stop it returning. A default is known by
its name together with the system's mark in `created_by`, which revision 0002 writes
and 0006 adds to copies an earlier release made; the API gives neither the name nor the
mark to any other template.
"""

from __future__ import annotations

from grading_app.migrations.default_templates import DEFAULT_TEMPLATES

SYSTEM_CREATOR = "system"
DEFAULT_TEMPLATE_NAMES = frozenset(str(t["name"]).casefold() for t in DEFAULT_TEMPLATES)


def is_default_name(name: str | None) -> bool:
    return " ".join((name or "").split()).casefold() in DEFAULT_TEMPLATE_NAMES


def is_default_template(name: str | None, created_by: str | None) -> bool:
    return is_default_name(name) and (created_by or "").strip().casefold() == SYSTEM_CREATOR
