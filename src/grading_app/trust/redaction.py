"""Student data stays home: personal data is replaced with placeholders before text
leaves the machine, and put back into what the model writes.

What is replaced, in this order when two overlap: e-mail addresses, student or
candidate numbers (configurable regular expressions), phone numbers (Google's
libphonenumber rules, through the ``phonenumbers`` package), and people's names (a
roster, names the document declares, a name in its file name; see ``names``). Each
entity gets one placeholder per document ("[STUDENT_1]", "[EMAIL_1]", "[PHONE_1]",
"[STUDENT_NUMBER_1]"), whichever way it is written, so the model can still say
"[STUDENT_1] argues..." and the teacher reads the real name.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterator
from dataclasses import dataclass, field

import phonenumbers

from grading_app.trust.names import (
    Person,
    build_variants,
    declared_names,
    file_name_tokens,
    find_name_spans,
    fold,
    name_tokens,
)
from grading_app.trust.roster import parse_roster

__all__ = [
    "DEFAULT_PATTERNS",
    "Redaction",
    "RedactionRules",
    "parse_roster",
    "redact",
]

# Student and candidate numbers. A pattern with a group named "id" replaces only that
# group (the label stays, so the model still reads "Candidate number: [STUDENT_NUMBER_1]");
# one without replaces its whole match.
DEFAULT_PATTERNS: tuple[str, ...] = (
    # "Candidate number: 1234", "Student ID: S1234567", "Student no. 20231234",
    # "Enrolment number - AB123456", "Exam number #4321"
    r"(?i:\b(?:candidate|student|learner|pupil|exam(?:ination)?|enrol(?:l)?ment|"
    r"matriculation|registration|admission|roll)[ \t]*(?:number|num|nr|no\.?|id|#|code)"
    r"[ \t]*[:#.\-\u2013]?[ \t]*)(?P<id>[A-Za-z]{0,3}\d{3,12}[A-Za-z]?)\b",
    # England's unique learner number: "ULN: 1234567890"
    r"(?i:\bULN[ \t]*[:#]?[ \t]*)(?P<id>\d{10})\b",
    # A bare student number: one letter and seven digits, "S1234567"
    r"\b[A-Za-z]\d{7}\b",
)

# Regions whose national formats are tried; a number in international format (+..) is
# found whatever its country.
PHONE_REGIONS = ("GB", "US", "DE", "FR", "AU")

_EMAIL = re.compile(r"(?<![\w.%+'-])[\w.%+'-]+@[\w-]+(?:\.[\w-]+)*\.[^\W\d_]{2,}\b")

# kind -> placeholder word; the order is the priority when two findings overlap.
_LABELS = {
    "email": "EMAIL",
    "student_number": "STUDENT_NUMBER",
    "phone": "PHONE",
    "name": "STUDENT",
}
_KIND_OF_LABEL = {label: kind for kind, label in _LABELS.items()}
_LABEL_WORDS = "STUDENT_NUMBER|STUDENT|EMAIL|PHONE"
# "[STUDENT_1]", "[student 1]", "{STUDENT_1}", "<STUDENT_1>" or a bare "STUDENT_1"
# (not inside a longer word such as "MY_STUDENT_1" or "STUDENT_12").
_PLACEHOLDER = re.compile(
    rf"[\[{{<][ \t]*(?P<a>{_LABEL_WORDS})[ _](?P<an>\d+)[ \t]*[\]}}>]"
    rf"|(?<![\w\[{{<])(?P<b>{_LABEL_WORDS})_(?P<bn>\d+)(?![\w\]}}>])",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class RedactionRules:
    """What to look for in one batch's documents."""

    student_number_patterns: tuple[str, ...] = DEFAULT_PATTERNS
    roster: tuple[str, ...] = ()  # full names, e.g. from parse_roster
    # A roster name's first name or surname alone is hidden in a document that shows
    # that person (full name, declared name or file name) - "present" - or in every
    # document - "always" (a classmate called Jack hides every Jack in a novel).
    roster_partial_names: str = "present"


@dataclass
class Redaction:
    """A redacted text and what each placeholder stands for."""

    text: str
    replacements: dict[str, str]  # placeholder -> original, "[STUDENT_1]" -> "Jane Smith"
    occurrences: dict[str, int] = field(default_factory=dict)  # kind -> places replaced

    def restore(self, text: str) -> str:
        """Put the originals back wherever the model wrote one of this text's placeholders."""
        if not self.replacements or not text:
            return text

        def original(match: re.Match[str]) -> str:
            return self.replacements.get(_canonical(match), match.group(0))

        return _PLACEHOLDER.sub(original, text)

    def counts(self) -> dict[str, int]:
        """How many places of each kind were replaced (never the values)."""
        return dict(self.occurrences)


def _canonical(match: re.Match[str]) -> str:
    """The placeholder a match of ``_PLACEHOLDER`` stands for: "[STUDENT_1]"."""
    label = match.group("a") or match.group("b")
    number = match.group("an") or match.group("bn")
    return f"[{label.upper()}_{int(number)}]"


@dataclass(frozen=True)
class _Finding:
    start: int
    end: int
    kind: str
    key: str  # same key, same placeholder
    original: str  # what the placeholder restores to


def redact(text: str, rules: RedactionRules, *, file_name: str | None = None) -> Redaction:
    """Replace personal data in ``text`` with placeholders."""
    findings = [
        *_emails(text),
        *_student_numbers(text, rules.student_number_patterns),
        *_phones(text),
        *_names(text, rules, file_name),
    ]
    kept = _without_overlaps(findings)
    # A placeholder the document already contains is never handed out, so restoring
    # cannot turn the student's own "[STUDENT_1]" into someone's name.
    taken = {_canonical(match) for match in _PLACEHOLDER.finditer(text)}
    numbers: dict[tuple[str, str], str] = {}
    per_kind: dict[str, int] = {}
    replacements: dict[str, str] = {}
    occurrences: dict[str, int] = {}
    pieces: list[str] = []
    position = 0
    for finding in kept:
        entity = (finding.kind, finding.key)
        if entity not in numbers:
            placeholder = ""
            while not placeholder or placeholder in taken:
                per_kind[finding.kind] = per_kind.get(finding.kind, 0) + 1
                placeholder = f"[{_LABELS[finding.kind]}_{per_kind[finding.kind]}]"
            numbers[entity] = placeholder
            replacements[placeholder] = finding.original
        occurrences[finding.kind] = occurrences.get(finding.kind, 0) + 1
        pieces.append(text[position : finding.start])
        pieces.append(numbers[entity])
        position = finding.end
    pieces.append(text[position:])
    return Redaction("".join(pieces), replacements, occurrences)


def _without_overlaps(findings: list[_Finding]) -> list[_Finding]:
    """Keep the higher-priority, then longer, finding where two overlap; in text order."""
    priority = {kind: rank for rank, kind in enumerate(_LABELS)}
    ordered = sorted(findings, key=lambda f: (priority[f.kind], f.start - f.end, f.start))
    starts: list[int] = []
    kept: list[_Finding] = []  # sorted by start, none overlapping
    for finding in ordered:
        index = bisect.bisect_left(starts, finding.start)
        if index > 0 and kept[index - 1].end > finding.start:
            continue
        if index < len(kept) and kept[index].start < finding.end:
            continue
        starts.insert(index, finding.start)
        kept.insert(index, finding)
    return kept


def _emails(text: str) -> Iterator[_Finding]:
    for match in _EMAIL.finditer(text):
        value = match.group(0)
        yield _Finding(match.start(), match.end(), "email", value.casefold(), value)


def _student_numbers(text: str, patterns: tuple[str, ...]) -> Iterator[_Finding]:
    for source in patterns:
        pattern = re.compile(source)
        group: int | str = "id" if "id" in pattern.groupindex else 0
        for match in pattern.finditer(text):
            start, end = match.span(group)
            if start >= end:
                continue
            value = match.group(group)
            key = re.sub(r"[\s-]", "", value).upper()
            yield _Finding(start, end, "student_number", key, value)


def _phones(text: str) -> Iterator[_Finding]:
    seen: dict[tuple[int, int], str] = {}  # span -> E.164 under the first region that read it
    for region in PHONE_REGIONS:
        matcher = phonenumbers.PhoneNumberMatcher(
            text, region, leniency=phonenumbers.Leniency.VALID
        )
        for match in matcher:
            span = (match.start, match.end)
            if span in seen or not _looks_like_phone(text, match.start, match.end):
                continue
            seen[span] = phonenumbers.format_number(
                match.number, phonenumbers.PhoneNumberFormat.E164
            )
    for (start, end), e164 in seen.items():
        yield _Finding(start, end, "phone", e164, text[start:end])


def _looks_like_phone(text: str, start: int, end: int) -> bool:
    """Leave out numbers in an essay that only happen to be valid phone numbers."""
    raw = text[start:end]
    # "2134567890 dollars": ten bare digits are a figure unless they start with a
    # trunk prefix ("07911123456") or a "+".
    if raw.isdigit() and not raw.startswith("0"):
        return False
    before = text[max(0, start - 2) : start].strip()
    after = text[end : end + 2].strip()
    return not (before[-1:] in "$£€¥#" and before) and not after.startswith("%")


def _names(text: str, rules: RedactionRules, file_name: str | None) -> Iterator[_Finding]:
    persons: list[Person] = []
    by_name: dict[str, Person] = {}
    for entry in rules.roster:
        tokens = name_tokens(entry)
        if tokens and fold(" ".join(tokens)) not in by_name:
            person = Person(tokens)
            persons.append(person)
            by_name[fold(" ".join(tokens))] = person
    shown = [*declared_names(text)]
    if file_name:
        from_file = file_name_tokens(file_name, text)
        if from_file:
            shown.append(from_file)
    for tokens, span in shown:
        known = _match_person(tokens, persons, by_name)
        if known is None:
            known = Person(tokens)
            persons.append(known)
            by_name[fold(" ".join(tokens))] = known
        known.present = True
        known.declared_spans.append(span)
    for person in persons:
        build_variants(person, partial=True)
    _mark_present(text, persons)
    for person in persons:
        if not person.present and rules.roster_partial_names != "always":
            build_variants(person, partial=False)
    spans = [(span.start, span.end, span.person) for span in find_name_spans(text, persons)]
    for index, person in enumerate(persons):
        spans.extend((start, end, index) for start, end in person.declared_spans)
    for start, end, index in spans:
        person = persons[index]
        yield _Finding(start, end, "name", str(index), person.full)


def _match_person(
    tokens: tuple[str, ...], persons: list[Person], by_name: dict[str, Person]
) -> Person | None:
    """The known person a declared name stands for: same full name, or first and last,
    or a lone first name that only one known person has."""
    folded = [fold(token) for token in tokens]
    exact = by_name.get(" ".join(folded))
    if exact is not None:
        return exact
    for person in persons:
        own = [fold(token) for token in person.tokens]
        if len(folded) >= 2 and len(own) >= 2 and (own[0], own[-1]) == (folded[0], folded[-1]):
            return person
    if len(folded) == 1:
        owners = [p for p in persons if len(p.tokens) >= 2 and fold(p.tokens[0]) == folded[0]]
        if len(owners) == 1:
            return owners[0]
    return None


def _mark_present(text: str, persons: list[Person]) -> None:
    """A roster person whose full name the text has is shown by this document."""
    full_only = [
        Person(
            p.tokens, variants={v: r for v, r in p.variants.items() if r in ("full", "reversed")}
        )
        for p in persons
    ]
    for span in find_name_spans(text, full_only):
        persons[span.person].present = True
