"""What the trust settings do to one grading call: the text that leaves the machine
(hidden text stripped when the batch says so, personal data replaced by placeholders
when it redacts), and what comes back (placeholders restored in the grade, each
criterion's quotes checked against the text the teacher sees)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from grading_app.grading.schema import StructuredGrade
from grading_app.trust.evidence import check_quotes
from grading_app.trust.findings import Finding
from grading_app.trust.hidden_text import strip_hidden
from grading_app.trust.redaction import DEFAULT_PATTERNS, Redaction, RedactionRules, redact
from grading_app.trust.settings import TrustSettings

# The name a redacted document is sent under: its file name often names the student.
REDACTED_DOCUMENT_NAME = "document"


@dataclass(frozen=True)
class Outgoing:
    """The document as a provider is sent it, and how to read the answer back."""

    text: str
    name: str
    redaction: Redaction | None

    def restore(self, grade: StructuredGrade) -> StructuredGrade:
        """The grade with the real names wherever the model wrote a placeholder."""
        if self.redaction is None or not self.redaction.replacements:
            return grade
        restore = self.redaction.restore
        return grade.model_copy(
            update={
                "feedback": restore(grade.feedback),
                "criteria": [
                    c.model_copy(
                        update={
                            "justification": restore(c.justification),
                            "evidence": [restore(q) for q in c.evidence],
                        }
                    )
                    for c in grade.criteria
                ],
            }
        )


def outgoing(
    text: str, *, name: str, settings: TrustSettings, findings: list[dict[str, Any]] | None
) -> Outgoing:
    if settings.hidden_instructions == "strip" and findings:
        text = strip_hidden(text, [Finding(**f) for f in findings])
    if not settings.redact_pii:
        return Outgoing(text, name, None)
    rules = RedactionRules(
        student_number_patterns=settings.student_number_patterns
        if settings.student_number_patterns is not None
        else DEFAULT_PATTERNS,
        roster=settings.roster,
    )
    redaction = redact(text, rules, file_name=name)
    return Outgoing(redaction.text, REDACTED_DOCUMENT_NAME, redaction)


def checked_evidence(grade: StructuredGrade, text: str) -> list[dict[str, Any]]:
    """Every criterion's quotes checked against the document's text, in order."""
    # One pass over the text for all the quotes (normalising it is the costly part).
    named = [
        (criterion.name, quote) for criterion in grade.criteria for quote in criterion.evidence
    ]
    if not named:
        return []
    checked = check_quotes(text, [quote for _, quote in named])
    return [
        {"criterion": name, **check.to_dict()}
        for (name, _), check in zip(named, checked, strict=True)
    ]


def with_evidence(outcome: Any, outgoing_: Outgoing, text: str) -> Any:
    """The grading outcome with the real names restored and its quotes checked."""
    grade = outgoing_.restore(outcome.grade)
    return replace(outcome, grade=grade, evidence=tuple(checked_evidence(grade, text)))
