"""Finding people's names in a document: a roster, the names it declares, its file name.

No statistical name recogniser is used (those need a model download): a name is caught
when it is on the roster, when the document declares it ("Name: Jane Smith", "By Jane
Smith", "My name is Jane Smith"), or when the file name holds it and the text has it
too. Once a person is known, their full name, and their first name or surname alone,
are found everywhere in the text, with guards so that a famous "Martin Luther King" or
a word like "will" is not taken for a student called Martin or Will.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


# Lowercase words inside a name: "Ludwig van Beethoven", "Ana de la Cruz".
_PARTICLES = _words("van von de da del della der den di du la le bin binti al el ten ter dos das")
# Words that end a declared name: "Name: Jane Smith Class: 10B".
_NAME_STOP = _words(
    """class date form year group teacher tutor subject candidate student pupil learner
    number no id course module essay assignment word words count centre center school
    grade set title period section unit topic question task submitted due score mark marks
    total page the and or of"""
)
# Names that are also ordinary words: alone, they count as a name only when capitalised
# (and not written all in capitals) ...
COMMON_WORD_NAMES = _words(
    """will may mark rose grace hope faith joy bill pat sue rob art sky summer dawn april
    june august king young white black brown green gray grey wood hill bell long little
    park rich hunt cook page ward hall lane field bishop baker carter mason miller
    turner walker fisher hunter porter butler cooper parker price stone winter frank
    earnest honor honour ivy iris holly heather jade amber ruby pearl crystal victory
    major case sterling wolf fox lamb moss reed rush brook chase drew gene grant guy lance
    ray rod"""
)
# ... and these, which often open a sentence ("Will it rain?"), not as a sentence's
# first word either.
SENTENCE_START_WORDS = _words(
    """will may mark hope art rose bill pat frank long little rich young white black
    brown green grant chase drew case major guy ray april june august summer winter joy
    faith grace dawn sky"""
)
TITLES = _words("mr mrs ms miss mx dr prof professor sir dame lady lord madam madame")
# Words in a file name that are not a name: "smith_jane_english_essay_final.docx".
_FILE_STOP = _NAME_STOP | _words(
    """essay assignment final draft copy version new old my coursework homework hw report
    paper submission response answer answers exam test quiz lab project part chapter
    term english literature history geography science biology chemistry physics math
    maths mathematics art music french spanish german latin religious studies economics
    business psychology sociology computer computing philosophy politics law media drama
    design technology docx pdf txt doc md"""
)

_TOKEN = r"[^\W\d_][\w'\u2019\-]*"
_NAME = rf"(?P<name>{_TOKEN}(?:[ \t]+{_TOKEN}){{0,5}})"
_LABELS = (
    r"student(?:'s)?[ \t]+name|full[ \t]+name|candidate[ \t]+name|pupil[ \t]+name|"
    r"learner[ \t]+name|name|student|author|candidate|pupil|learner|"
    r"written[ \t]+by|submitted[ \t]+by|prepared[ \t]+by|by"
)
_DECLARATIONS = (
    # "Name: Jane Smith", also after a tab or a table bar: "Class: 10B | Name: Jane Smith"
    re.compile(
        rf"(?:^|[\t|]|[ ]{{2,}})[ \t]*(?P<label>{_LABELS})[ \t]*[:\uff1a][ \t]*{_NAME}",
        re.IGNORECASE | re.MULTILINE,
    ),
    # A line "By Jane Smith" (not "written by Charles Dickens" inside a sentence).
    re.compile(
        rf"^[ \t]*(?:by|written[ \t]+by|submitted[ \t]+by|author)[ \t]+{_NAME}[ \t\r]*$",
        re.IGNORECASE | re.MULTILINE,
    ),
    re.compile(rf"\b(?:my[ \t]+name[ \t]+is|i[ \t]+am[ \t]+called)[ \t]+{_NAME}", re.IGNORECASE),
)
_WORD_BEFORE = re.compile(rf"({_TOKEN})\.?[ \t]+$")
_WORD_AFTER = re.compile(rf"[ \t]+({_TOKEN})")


@dataclass
class Person:
    """One person to hide; ``present`` when the document itself shows them."""

    tokens: tuple[str, ...]
    present: bool = False
    # folded form -> "full", "first", "last" or "single" (a one-word name)
    variants: dict[str, str] = field(default_factory=dict)
    # where the document declares this person's name: always hidden
    declared_spans: list[tuple[int, int]] = field(default_factory=list)

    @property
    def full(self) -> str:
        return " ".join(self.tokens)

    @property
    def folded_tokens(self) -> set[str]:
        return {fold(token) for token in self.tokens}


@dataclass(frozen=True)
class NameSpan:
    start: int
    end: int
    person: int  # index into the person list


def fold(text: str) -> str:
    return " ".join(text.replace("\u2019", "'").casefold().split())


def name_tokens(name: str) -> tuple[str, ...]:
    return tuple(name.replace(",", " ").split())


def declared_names(text: str) -> list[tuple[tuple[str, ...], tuple[int, int]]]:
    """Names the document gives for its author, each with where it stands, in order."""
    found: list[tuple[tuple[str, ...], tuple[int, int]]] = []
    for number, pattern in enumerate(_DECLARATIONS):
        for match in pattern.finditer(text):
            # "Name: jane smith" on a line or in a cell of its own is a name even in lower
            # case; elsewhere a name must be capitalised ("Student: see cover sheet").
            lowercase_ok = (
                number == 0
                and "name" in match.group("label").casefold()
                and _ends_a_cell(text, match.end("name"))
            )
            tokens = _clean_declared(match.group("name"), lowercase_ok=lowercase_ok)
            if tokens:
                start = match.start("name")
                end = text.index(tokens[-1], start) + len(tokens[-1])
                found.append((tokens, (start, end)))
    return found


def _ends_a_cell(text: str, end: int) -> bool:
    rest = text[end : end + 3]
    return rest == "" or rest[0] in "\r\n\t|" or rest.startswith("  ")


def _clean_declared(raw: str, *, lowercase_ok: bool) -> tuple[str, ...]:
    tokens: list[str] = []
    for token in raw.split():
        word = token.strip("'\u2019-")
        lowered = word.casefold()
        if lowered in _NAME_STOP or not word:
            break
        if lowered in _PARTICLES and tokens:
            tokens.append(word)
            continue
        if not (word[0].isupper() or lowercase_ok):
            break
        tokens.append(word)
    while tokens and tokens[-1].casefold() in _PARTICLES:
        tokens.pop()
    return tuple(tokens[:4])


def file_name_tokens(file_name: str, text: str) -> tuple[tuple[str, ...], tuple[int, int]] | None:
    """A two-word name in the file name that the text also has, as the text writes it."""
    stem = re.split(r"[\\/]", file_name)[-1]
    words = [
        word
        for word in re.split(r"[\W_\d]+", stem)
        if len(word) >= 2 and word.casefold() not in _FILE_STOP
    ]
    for first, second in zip(words, words[1:], strict=False):
        for a, b in ((first, second), (second, first)):
            pattern = (
                rf"(?<![\w'\u2019-])({re.escape(a)})(?:[ \t]*,?[ \t]+|[ \t]*\n[ \t]*)"
                rf"({re.escape(b)})(?![\w-])"
            )
            for match in re.finditer(pattern, text, re.IGNORECASE):
                if match.group(1)[0].isupper() and match.group(2)[0].isupper():
                    span = (match.start(), match.end())
                    if "," in text[match.start() : match.end()]:
                        return (match.group(2), match.group(1)), span  # "Smith, Jane"
                    return (match.group(1), match.group(2)), span
    return None


def build_variants(person: Person, *, partial: bool) -> None:
    """Fill the forms of a name to look for: full forms, and first or last name alone."""
    tokens = person.tokens
    if len(tokens) == 1:
        person.variants = {fold(tokens[0]): "single"}
        return
    first, last = tokens[0], tokens[-1]
    variants = dict.fromkeys((fold(" ".join(tokens)), fold(f"{first} {last}")), "full")
    # "Smith, Jane" and "SMITH Jane" (registers, exam papers); capitalised only, so "the
    # king rose" is not Rose King.
    variants.setdefault(fold(f"{last}, {first}"), "reversed")
    variants.setdefault(fold(f"{last} {first}"), "reversed")
    if partial:
        if len(first) >= 2:
            variants.setdefault(fold(first), "first")
        if len(last) >= 2:
            variants.setdefault(fold(last), "last")
    person.variants = variants


def find_name_spans(text: str, persons: list[Person]) -> list[NameSpan]:
    """Every place a person's name stands in ``text``, guards applied."""
    lookup: dict[str, list[tuple[int, str]]] = {}
    for index, person in enumerate(persons):
        for variant, role in person.variants.items():
            lookup.setdefault(variant, []).append((index, role))
    if not lookup:
        return []
    alternatives = sorted(lookup, key=len, reverse=True)
    body = "|".join(_variant_regex(variant) for variant in alternatives)
    pattern = re.compile(rf"(?<![\w'\u2019-])(?:{body})(?![\w-])", re.IGNORECASE)
    spans: list[NameSpan] = []
    for match in pattern.finditer(text):
        owners = lookup.get(fold(match.group(0)), [])
        for index, role in owners:
            if _is_name(text, match.start(), match.end(), persons[index], role):
                spans.append(NameSpan(match.start(), match.end(), index))
                break
    return spans


def _variant_regex(variant: str) -> str:
    parts = [re.escape(part).replace("'", "['\u2019]") for part in variant.split(" ")]
    return r"\s+".join(parts)


def _is_name(text: str, start: int, end: int, person: Person, role: str) -> bool:
    """Is the variant found at ``[start, end)`` this person, not words or someone else?"""
    word = text[start:end]
    if role in ("full", "reversed"):
        words = word.replace(",", " ").split()
        if role == "reversed":
            return all(part[0].isupper() for part in words)
        # "will baker" in lower case is a sentence, not Will Baker.
        return not (word.islower() and any(p in COMMON_WORD_NAMES for p in words))
    lowered = word.casefold()
    if lowered in COMMON_WORD_NAMES and (
        not word[0].isupper()
        or (word.isupper() and len(word) > 1)
        or (lowered in SENTENCE_START_WORDS and _sentence_initial(text, start))
    ):
        return False
    # "Jane Austen", "Martin Luther King": a capitalised word beside a first name or a
    # surname that is not this person's other name makes it someone else's name
    # (titles such as "Dr" do not).
    if role in ("first", "single"):
        after = _WORD_AFTER.match(text, end, min(len(text), end + 40))
        if after and _someone_elses(after.group(1), person):
            return False
    if role == "last":
        before = _WORD_BEFORE.search(text, max(0, start - 40), start)
        if (
            before
            and _someone_elses(before.group(1), person)
            and not _sentence_initial(text, before.start(1))
        ):
            return False
    return True


def _someone_elses(neighbour: str, person: Person) -> bool:
    """Does a capitalised neighbour make a name someone else's ("Jane Austen")? The
    person's own names, their initials ("Jane S.") and titles ("Dr") do not."""
    if not neighbour[0].isupper():
        return False
    folded = neighbour.casefold()
    own = person.folded_tokens
    if folded in own or folded in TITLES:
        return False
    return not (len(folded) == 1 and any(token.startswith(folded) for token in own))


def _sentence_initial(text: str, start: int) -> bool:
    index = start - 1
    while index >= 0 and text[index] in " \t":
        index -= 1
    return index < 0 or text[index] in ".!?:\n\r\"'\u201c\u2018([{-\u2013\u2014|"
