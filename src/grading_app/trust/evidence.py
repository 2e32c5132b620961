"""Checked evidence: find each quote a model gives for a criterion in the document's text.

A model asked for verbatim quotes sometimes paraphrases, mends a typo or invents a
sentence. Each quote is looked up in the extracted text after both are normalised the
same way (Unicode NFKC, case, whitespace, quote marks, dashes, hyphenation at line
breaks, invisible characters), so a faithful quote is found however the document was
typed. A quote within a few edits of some passage is a "near" match and says so; any
other quote is "unverified" and is never silently kept as evidence.

Every normalised character remembers the span of original characters it came from, so a
match is reported as offsets in the original extracted text, ready for highlighting.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from rapidfuzz.distance import Levenshtein

VERIFIED = "verified"
NEAR = "near"
UNVERIFIED = "unverified"

# Quotes shorter than this (after normalising) must match exactly: two edits in a
# ten-character quote already change what it says.
MIN_NEAR_LENGTH = 12
# A near match needs at least this similarity (1 - edits / length) ...
MIN_NEAR_SIMILARITY = 0.9
# ... and at most this many edits, however long the quote.
MAX_NEAR_EDITS = 8
# One edit allowed per this many characters of quote (at least one).
CHARS_PER_EDIT = 15
# Anchors found for one quote beyond this many are not examined (a quote made of very
# common pieces in a very long text); the best window among the first ones wins.
MAX_CANDIDATES = 200

_SINGLE_QUOTES = "\u2018\u2019\u201a\u201b\u2032\u2035\u0060\u00b4\u2039\u203a\uff07"
_DOUBLE_QUOTES = "\u201c\u201d\u201e\u201f\u2033\u2036\u00ab\u00bb\u301d\u301e\uff02"
# Hyphens join the two halves of a word; dashes separate clauses.
_HYPHENS = "-\u2010\u2011\u2043"
_DASHES = "\u2012\u2013\u2014\u2015\u2212\ufe58\ufe63\uff0d"
# Characters nobody sees: soft hyphen, zero-width space and joiners, word joiner, BOM,
# bidirectional marks.
_INVISIBLE = "\u00ad\u200b\u200c\u200d\u2060\ufeff\u200e\u200f\u202a\u202b\u202c\u202d\u202e"

_FOLD: dict[str, str] = {}
_FOLD.update(dict.fromkeys(_SINGLE_QUOTES, "'"))
_FOLD.update(dict.fromkeys(_DOUBLE_QUOTES, '"'))
_FOLD.update(dict.fromkeys(_HYPHENS, "-"))
_FOLD.update(dict.fromkeys(_DASHES, "\u2013"))
_FOLD.update(dict.fromkeys(_INVISIBLE, ""))
_DASH = "\u2013"

# A quote cut short in the middle: "the war ... was many-sided", "[...]".
_ELISION = re.compile(r" ?(?:\[ ?\.{3,} ?\]|\.{3,}) ?")
# Parts of a cut quote must be this close (normalised characters) to the part before.
MAX_ELISION_GAP = 2000
# Places of the first part of a cut quote tried before giving up.
MAX_ELISION_TRIES = 20

# Stripped from both ends of a quote: the punctuation or ellipsis a model cuts a
# sentence off with (quote marks are already gone).
_QUOTE_TRIM = ".,;:!? "


@dataclass(frozen=True)
class QuoteCheck:
    """Where one quote was found in the original extracted text, if anywhere."""

    quote: str
    status: str  # "verified", "near" or "unverified"
    start: int | None
    end: int | None
    similarity: float

    def to_dict(self) -> dict[str, object]:
        return {
            "quote": self.quote,
            "status": self.status,
            "start": self.start,
            "end": self.end,
            "similarity": self.similarity,
        }


@dataclass(frozen=True)
class NormalisedText:
    """Normalised text with, per character, the original span it came from."""

    text: str
    starts: list[int]
    ends: list[int]

    def original_span(self, start: int, end: int) -> tuple[int, int]:
        """Original offsets of the normalised span ``[start, end)`` (non-empty)."""
        return self.starts[start], self.ends[end - 1]


def normalise(text: str) -> NormalisedText:
    """Fold ``text`` for matching, keeping a map back to the original offsets."""
    out: list[str] = []
    starts: list[int] = []
    ends: list[int] = []
    space_start = -1  # original span of whitespace not yet written
    space_end = -1
    space_has_newline = False
    length = len(text)
    i = 0
    while i < length:
        # A base character and its combining marks compose together under NFKC.
        j = i + 1
        while j < length and unicodedata.combining(text[j]):
            j += 1
        cluster = text[i:j]
        folded = cluster if cluster.isascii() else unicodedata.normalize("NFKC", cluster)
        for ch in folded.casefold():
            ch = _FOLD.get(ch, ch)
            if not ch:
                continue
            if ch.isspace():
                if space_start < 0:
                    space_start = i
                space_end = j
                space_has_newline = space_has_newline or ch in "\n\r\u2028\u2029\x0b\x0c"
                continue
            if ch == '"' or (
                ch == "'"
                and not (
                    space_start < 0
                    and out
                    and out[-1].isalnum()
                    and j < length
                    and text[j].isalnum()
                )
            ):
                # Quote marks are dropped: models re-quote nested quotations freely. An
                # apostrophe inside a word ("Britain's") stays.
                continue
            if ch == "-" and space_start >= 0:
                ch = _DASH  # a spaced hyphen is a dash: "a - b"
            if (
                ch.isalnum()
                and len(out) >= 2
                and out[-1] == "-"
                and out[-2].isalnum()
                and (space_start < 0 or space_has_newline)
            ):
                # "exam-\nple" and "exam-ple" read as "example": a hyphen inside a word,
                # or at a line break, is dropped with the break.
                out.pop()
                starts.pop()
                ends.pop()
                space_start = -1
                space_has_newline = False
            if space_start >= 0:
                # Spaces around a dash are typography, not text ("a - b" == "a—b").
                if out and ch != _DASH and out[-1] != _DASH:
                    out.append(" ")
                    starts.append(space_start)
                    ends.append(space_end)
                space_start = -1
                space_has_newline = False
            out.append(ch)
            starts.append(i)
            ends.append(j)
        i = j
    return NormalisedText("".join(out), starts, ends)


def normalise_quote(quote: str) -> str:
    return normalise(quote).text.strip(_QUOTE_TRIM)


def allowed_edits(quote_length: int) -> int:
    """How many edits a near match of a normalised quote this long may have."""
    if quote_length < MIN_NEAR_LENGTH:
        return 0
    return min(MAX_NEAR_EDITS, max(1, quote_length // CHARS_PER_EDIT))


def check_quotes(text: str, quotes: list[str]) -> list[QuoteCheck]:
    """Check each quote against ``text``; one result per quote, in the same order.
    A quote that stands in the text exactly as given is found without normalising the
    text (most are, and normalising costs a few milliseconds per page, per grade)."""
    exact = [_verbatim(text, quote) for quote in quotes]
    if all(check is not None for check in exact):
        return [check for check in exact if check is not None]
    document = normalise(text)
    return [
        check if check is not None else _check_one(document, quote)
        for check, quote in zip(exact, quotes, strict=True)
    ]


def _verbatim(text: str, quote: str) -> QuoteCheck | None:
    """The quote found letter for letter but for case (without the punctuation it ends
    on), or None."""
    if not isinstance(quote, str):
        return None
    needle = quote.strip().strip(_QUOTE_TRIM)
    if len(needle) < 2 or not any(ch.isalnum() for ch in needle):
        return None
    lowered = text.lower()
    if len(lowered) != len(text):  # a letter whose lower case is longer: the slow path
        return None
    start = lowered.find(needle.lower())  # the first occurrence, in any case
    if start < 0:
        return None
    return QuoteCheck(quote, VERIFIED, start, start + len(needle), 1.0)


def verified_share(checks: list[QuoteCheck]) -> float | None:
    """Share of quotes found (verified or near); None when there were no quotes."""
    if not checks:
        return None
    found = sum(1 for check in checks if check.status in (VERIFIED, NEAR))
    return found / len(checks)


def _check_one(document: NormalisedText, quote: str) -> QuoteCheck:
    needle = normalise_quote(quote) if isinstance(quote, str) else ""
    if not any(ch.isalnum() for ch in needle) or not document.text:
        return QuoteCheck(quote, UNVERIFIED, None, None, 0.0)
    found = _find(document.text, needle, 0)
    if found is None and _ELISION.search(needle):
        found = _find_elided(document.text, needle)
    if found is None:
        return QuoteCheck(quote, UNVERIFIED, None, None, 0.0)
    window_start, window_end, similarity = found
    start, end = document.original_span(window_start, window_end)
    if similarity == 1.0:
        return QuoteCheck(quote, VERIFIED, start, end, 1.0)
    return QuoteCheck(quote, NEAR, start, end, round(similarity, 3))


def _find(haystack: str, needle: str, lower: int) -> tuple[int, int, float] | None:
    """The first exact place of ``needle`` at or after ``lower``, else the best near one."""
    position = haystack.find(needle, lower)
    if position >= 0:
        return position, position + len(needle), 1.0
    return _best_near_window(haystack, needle, lower)


def _find_elided(haystack: str, needle: str) -> tuple[int, int, float] | None:
    """A quote cut with "..." is found when its parts are, in order, close together; the
    span runs from the first part to the last."""
    parts = [part.strip(_QUOTE_TRIM) for part in _ELISION.split(needle)]
    parts = [part for part in parts if part]
    # "the ... of" proves nothing: one part at least must be a real quote by itself.
    if len(parts) < 2 or max(len(part) for part in parts) < MIN_NEAR_LENGTH:
        return None
    first = parts[0]
    tries = 0
    lower = 0
    while tries < MAX_ELISION_TRIES:
        tries += 1
        head = _find(haystack, first, lower)
        if head is None:
            return None
        start, end, similarity = head
        for part in parts[1:]:
            found = _find(haystack, part, end)
            if found is None or found[0] - end > MAX_ELISION_GAP:
                break
            end = found[1]
            similarity = min(similarity, found[2])
        else:
            return start, end, similarity
        lower = start + 1
    return None


def _best_near_window(haystack: str, needle: str, lower: int = 0) -> tuple[int, int, float] | None:
    """The window of ``haystack`` closest to ``needle`` within the allowed edits.

    A window within k edits of the needle leaves at least one of k + 1 disjoint pieces
    of the needle untouched (pigeonhole), so exact finds of the pieces locate every
    candidate; each is then aligned with Levenshtein distance over start and end
    offsets within k of where the piece puts it. Far faster than aligning the needle
    against the whole text, and it misses no window within the limit.
    """
    length = len(needle)
    edits = allowed_edits(length)
    if edits == 0:
        return None
    piece_length = length // (edits + 1)
    candidates: set[int] = set()
    for piece_index in range(edits + 1):
        offset = piece_index * piece_length
        piece = needle[offset : offset + piece_length]
        found = haystack.find(piece, max(0, lower + offset - edits))
        while found >= 0 and len(candidates) < MAX_CANDIDATES:
            candidates.add(found - offset)
            found = haystack.find(piece, found + 1)
    best: tuple[int, int, int] | None = None  # distance, start, end
    for implied in sorted(candidates):
        # The window the piece implies is within 4k edits of any window within k edits
        # whose start is at most k, and end at most 2k, away: a cheap test first.
        rough = haystack[max(0, implied) : implied + length]
        if Levenshtein.distance(needle, rough, score_cutoff=4 * edits) > 4 * edits:
            continue
        for start in range(max(lower, implied - edits), implied + edits + 1):
            for end in range(start + length - edits, start + length + edits + 1):
                if end > len(haystack) or end <= start:
                    continue
                distance = Levenshtein.distance(needle, haystack[start:end], score_cutoff=edits)
                if distance > edits:
                    continue
                key = (distance, abs(end - start - length), start)
                if best is None or key < (best[0], abs(best[2] - best[1] - length), best[1]):
                    best = (distance, start, end)
    if best is None:
        return None
    distance, start, end = best
    # An edit at either end may be a space; the highlight starts and ends on text.
    while start < end and haystack[start] == " ":
        start += 1
    while end > start and haystack[end - 1] == " ":
        end -= 1
    similarity = 1 - distance / max(length, end - start)
    if similarity < MIN_NEAR_SIMILARITY:
        return None
    return start, end, similarity
