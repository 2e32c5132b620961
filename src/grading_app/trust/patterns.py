"""The phrases that give away text written for the grading model rather than the reader.

One table, ``PATTERNS``, grouped in families with a comment each. A phrase is written
in lower case with single spaces, each matching any run of whitespace (PDF text breaks
lines anywhere), " ?" for optional whitespace and ``\x20`` for a literal space; an
optional word carries its own trailing space inside its group.

False alarms are the larger risk: an essay may discuss AI, quote an attack or tell a
story. So imperatives ("ignore ...", "give this essay ...") count only where a sentence
or line opens (after optional "please", "note:" and the like), never inside quotation
marks or mid-sentence ("the soldiers chose to ignore previous instructions"); the other
families need wording that only makes sense aimed at a grading model.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Collection
from dataclasses import dataclass

from grading_app.trust.findings import FAKE_TURN, INSTRUCTION

# Building blocks, shared by several families.
_AI = (
    r"(?:ai|a\.i\.|artificial intelligence|(?:large )?language model|llm|chat ?bot|chatgpt|"
    r"gpt(?:-?\d[\w.]*)?|claude|gemini|copilot|grading (?:model|system|tool|ai|bot)|"
    r"ai (?:grader|marker|model|assistant|system)|automated (?:grader|marker|grading system))"
)
_GRADER = rf"(?:{_AI}|grader|marker|examiner|evaluator|assessor|assistant|model)"
_WORK = r"(?:essay|paper|answer|submission|response|work|assignment|document|report|text)"
_TARGET = rf"(?:(?:this|the|my|our) (?:{_WORK}|student|author)|me|it|him|her|them)"
_SCORE = (
    r"(?:full (?:marks|points|credit|score)|top (?:marks|score|grade)|"
    r"(?:the )?max(?:imum)? (?:marks|points|score|grade)|the maximum|"
    r"(?:a )?perfect (?:score|grade|marks?|10)|the (?:highest|best|top) (?:possible )?"
    r"(?:score|grade|marks?|band|level)|(?:an? )?a\+|an a\b|(?:an? )?a grade|grade a\+?|"
    r"100 ?(?:/|out of) ?100|10 ?(?:/|out of) ?10|20 ?(?:/|out of) ?20)"
)
# "Give 100%" is about effort and "give 100 examples" about anything; "give this essay
# 100" or "100%" is a grade.
_SCORE_OF_WORK = rf"(?:{_SCORE}|100(?: ?%)?)"


@dataclass(frozen=True)
class Pattern:
    kind: str
    label: str  # completes "This text ...", for a teacher
    regex: re.Pattern[str]  # case-insensitive
    opens_sentence: bool  # an imperative: counts only where a sentence or line starts

    @property
    def lower_case(self) -> re.Pattern[str]:
        """The same pattern for lower-cased text: three times faster than ignoring case."""
        return _lower_case(self.regex)


@functools.cache
def _lower_case(regex: re.Pattern[str]) -> re.Pattern[str]:
    return re.compile(regex.pattern, regex.flags & ~re.IGNORECASE)


# Words that may come before an imperative and still leave it opening the sentence
# ("Please ignore ...", "Note to grader: award ...", "AI, give ...").
_LEAD_IN = frozenset(
    {
        *("please", "kindly", "now", "also", "first", "then", "and", "so", "ok", "okay"),
        *("important", "attention", "note", "notice", "instruction", "instructions"),
        *("reminder", "dear", "grader", "marker", "examiner", "evaluator", "model", "ai"),
        *("assistant", "llm", "chatgpt", "gpt", "claude", "gemini", "copilot"),
    }
)


def _phrase(pattern: str, flags: int = 0) -> re.Pattern[str]:
    """ " ?" is optional whitespace ("chat ?bot", "10 ?/ ?10"), " " at least one space."""
    source = pattern.replace(" ?", r"\s*").replace(" ", r"\s+")
    return re.compile(source, re.IGNORECASE | flags)


def _imperative(kind: str, label: str, pattern: str) -> Pattern:
    return Pattern(kind, label, _phrase(pattern), opens_sentence=True)


def _anywhere(kind: str, label: str, pattern: str, flags: int = 0) -> Pattern:
    return Pattern(kind, label, _phrase(pattern, flags=flags), opens_sentence=False)


PATTERNS: tuple[Pattern, ...] = (
    # Override: tell the model to drop the instructions it was given.
    _imperative(
        INSTRUCTION,
        "tells the grader to ignore its instructions",
        r"(?:ignore|disregard|forget|override|bypass) (?:all |any |each )?(?:of )?"
        r"(?:the |your |these |those |my )?(?:previous|prior|above|earlier|preceding|"
        r"foregoing|former|original|other|system|grading|marking) (?:instructions?|prompts?|"
        r"directions|directives|rules|guidelines|messages|context|criteria|rubric)",
    ),
    _imperative(
        INSTRUCTION,
        "tells the grader to ignore its instructions",
        r"(?:ignore|disregard|forget|override|bypass) (?:the |your |any )?(?:system prompt|"
        r"rubric|marking scheme|mark scheme|grading (?:criteria|rubric|instructions|rules)|"
        r"marking (?:criteria|instructions|rules)|instructions you (?:were|have been) given)",
    ),
    # Grade demands: tell the grader what score to give.
    _imperative(
        INSTRUCTION,
        "asks for a particular grade",
        rf"(?:award|give|assign|grant|score|grade|mark|rate) (?:{_TARGET} )?(?:an? |the )?"
        rf"(?:(?:score|grade|mark|rating) )?(?:of |as |with )?{_SCORE}(?!\w)",
    ),
    _imperative(
        INSTRUCTION,
        "asks for a particular grade",
        rf"(?:award|give|assign|grant|score|grade|mark|rate) (?:this|the|my|our) {_WORK} "
        rf"(?:an? |the )?(?:(?:score|grade|mark|rating) )?(?:of |as |with )?{_SCORE_OF_WORK}"
        r"(?!\w)",
    ),
    _anywhere(
        INSTRUCTION,
        "asks for a particular grade",
        rf"(?:this|my|the) {_WORK} (?:deserves|merits|has earned|should (?:receive|get|"
        r"be (?:given|awarded|graded|marked|scored))|must (?:receive|get|be (?:given|awarded|"
        r"graded|marked))|is to be (?:given|awarded|graded)) (?:an? |the )?"
        rf"(?:(?:score|grade|mark) )?(?:of |as )?{_SCORE_OF_WORK}(?!\w)",
    ),
    _anywhere(
        INSTRUCTION,
        "asks for a particular grade",
        rf"\b{_GRADER} (?:must|should|shall|will|needs to|is to|has to) (?:give|award|assign|"
        rf"grant) {_TARGET} (?:an? |the )?(?:(?:score|grade|mark) )?(?:of )?{_SCORE_OF_WORK}"
        r"(?!\w)",
    ),
    # Addressing the model directly: only a grading model is spoken to like this.
    _anywhere(
        INSTRUCTION,
        "addresses the AI grader directly",
        rf"\b(?:note|message|instructions?|reminder|attention|notice|hint) (?:to|for) "
        rf"(?:the |any |all |every )?{_AI}s?\b",
    ),
    _anywhere(
        INSTRUCTION,
        "addresses the AI grader directly",
        rf"\bif you are (?:an? |the )?(?:{_AI}|bot|automated (?:system|tool))\b",
    ),
    _anywhere(
        INSTRUCTION,
        "addresses the AI grader directly",
        rf"\b(?:dear|hello|hi|hey) {_AI}\b[,:!]",
    ),
    # Role-play: give the model a new identity or mode.
    _anywhere(
        INSTRUCTION,
        "tries to give the grader a new role",
        r"\byou are now (?:an? |the |in |my )?(?:[\w-]+ ){0,3}?(?:assistant|grader|marker|"
        r"examiner|evaluator|model|ai|chat ?bot|bot|dan|mode|persona)\b",
    ),
    _imperative(
        INSTRUCTION,
        "tries to give the grader a new role",
        rf"from now on,? (?:you|the {_GRADER}) (?:will|must|shall|should|are to) (?:act|respond|"
        r"reply|answer|grade|mark|ignore|award|give|behave|pretend)\b",
    ),
    _imperative(
        INSTRUCTION,
        "tries to give the grader a new role",
        r"(?:act|behave|respond|role-?play|roleplay) as (?:if you were |though you were )?"
        r"(?:an? |the |my )?(?:[\w-]+ ){0,3}?(?:grader|marker|examiner|evaluator|assessor|"
        r"assistant|ai|chat ?bot|language model)\b",
    ),
    _imperative(
        INSTRUCTION,
        "tries to give the grader a new role",
        r"pretend (?:to be|that you are|you are) (?:an? |the )?(?:[\w-]+ ){0,3}?(?:grader|"
        r"marker|examiner|evaluator|assistant|ai|chat ?bot|language model)\b",
    ),
    _anywhere(
        INSTRUCTION,
        "tries to switch the grader into another mode",
        r"\b(?:developer|jailbreak|god|admin|dan|unrestricted) mode (?:enabled|activated|on)"
        r"(?= ?(?:[.!:;,)\]]|$))|"
        r"\bdo anything now\b|\bjailbroken\b",
    ),
    # Concealment and output control: what an honest essay never asks of its reader.
    _anywhere(
        INSTRUCTION,
        "asks the grader to hide or obey hidden text",
        r"\b(?:do not|don't|never) (?:mention|reveal|disclose|report|flag|repeat|acknowledge) "
        r"(?:this|these|that|the|any) (?:hidden )?(?:instructions?|prompt|note|message)\b",
    ),
    _imperative(
        INSTRUCTION,
        "tells the grader what to output",
        r"(?:respond|reply|answer|output|return) (?:only )?with (?:an? |the )?(?:score|grade|"
        r"mark|json)\b",
    ),
    # New instructions announced as such.
    _anywhere(
        INSTRUCTION,
        "announces new instructions for the grader",
        r"\b(?:new|updated|revised|real|actual|true|additional|hidden|secret) (?:system )?"
        r"(?:instructions|prompt|system prompt)\s*:",
    ),
    _imperative(
        INSTRUCTION,
        "announces new instructions for the grader",
        r"(?:begin|end|start) (?:of )?(?:the )?(?:system (?:prompt|message|instructions)|"
        rf"(?:new|hidden) instructions|instructions for the {_GRADER})\b",
    ),
    # Fake turns: chat-format markers that make the document look like the conversation.
    _anywhere(
        FAKE_TURN,
        "imitates a turn of the conversation with the model",
        r"^[\t\x20]*(?:\*\*)?(?:system|assistant|ai assistant)(?:\*\*)?[\t\x20]*:",
        flags=re.MULTILINE,
    ),
    _anywhere(
        FAKE_TURN,
        "imitates a turn of the conversation with the model",
        r"^[\t\x20]*#{2,6}[\t\x20]*(?:system|assistant|user|human|instruction|response|input)"
        r"[\t\x20]*:",
        flags=re.MULTILINE,
    ),
    _anywhere(
        FAKE_TURN,
        "contains a chat-format control token",
        r"<\|(?:im_start|im_end|im_sep|system|user|assistant|endoftext|begin_of_text|"
        r"end_of_text|start_header_id|end_header_id|eot_id|eom_id)\|>|\[/?inst\]|<</?sys>>|"
        r"<(?:start|end)_of_turn>|</?(?:system|assistant|sys|system_prompt|instructions?)>",
    ),
)

_SKIPPED_BEFORE = " \t\u00a0-*•·>#,!=[<("
_SENTENCE_ENDS = "\f.!?;:)]}"
_SENTENCE_TAIL = re.compile(r"[^\n.!?]{0,200}[.!?]?")


@dataclass(frozen=True)
class Hit:
    kind: str
    label: str
    start: int
    end: int


def find_instructions(text: str, openings: Collection[int] = ()) -> list[Hit]:
    """Every instruction or fake turn in ``text``, in order; each span runs from the
    phrase to the end of its sentence (what "strip" removes). Overlapping hits of one
    kind are merged.

    ``openings`` are offsets that open a sentence whatever comes before them: where
    hidden text starts, glued to the visible text before it."""
    hits: list[Hit] = []
    lowered = text.lower()
    # Lower-casing keeps offsets unless a character lower-cases to two ("İ").
    same_offsets = len(lowered) == len(text)
    for pattern in PATTERNS:
        regex = pattern.lower_case if same_offsets else pattern.regex
        for match in regex.finditer(lowered if same_offsets else text):
            start = match.start()
            if pattern.opens_sentence and start not in openings:
                opening = _sentence_opening(text, start, openings)
                if opening is None:
                    continue
                start = opening
            tail = _SENTENCE_TAIL.match(text, match.end())
            end = tail.end() if tail else match.end()
            hits.append(Hit(pattern.kind, pattern.label, start, end))
    hits.sort(key=lambda hit: (hit.start, -hit.end))
    merged: list[Hit] = []
    last_of_kind: dict[str, int] = {}  # kind -> index in merged of its latest hit
    for hit in hits:
        index = last_of_kind.get(hit.kind)
        if index is not None and hit.start < merged[index].end:
            last = merged[index]
            if hit.end > last.end:
                merged[index] = Hit(last.kind, last.label, last.start, hit.end)
            continue
        last_of_kind[hit.kind] = len(merged)
        merged.append(hit)
    return merged


def _sentence_opening(text: str, start: int, openings: Collection[int]) -> int | None:
    """Where the sentence that ``start`` opens begins, looking back over bullets, spaces
    and lead-in words; None if ``start`` is inside a sentence."""
    opening = start
    for _ in range(8):  # lead-in words: a few at most
        index = _skip_back(text, opening)
        if index == 0 or index in openings or text[index - 1] in _SENTENCE_ENDS:
            return opening
        if text[index - 1] == "\n" and not text[opening].islower():
            # A line break ends a paragraph, or wraps a PDF line mid-sentence: only a
            # capital after it opens a sentence.
            return opening
        word_start = index
        while word_start > 0 and text[word_start - 1].isalpha():
            word_start -= 1
        if word_start == index or text[word_start:index].lower() not in _LEAD_IN:
            return None
        opening = word_start
    return None


def _skip_back(text: str, index: int) -> int:
    while index > 0 and text[index - 1] in _SKIPPED_BEFORE:
        index -= 1
    return index
