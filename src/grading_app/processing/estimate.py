"""Rules for guessing what a call will use and cost before it is made: its tokens from
the prompt as `grading/prompt.build_request` builds it, its answer's length from the
rubric, and the price of a model. The batch estimate (batches/estimate.py) and the
budget check (processing/budget.py) share them, so both say the same."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

from sqlalchemy.orm import Session

from grading_app.grading.prompt import build_request
from grading_app.grading.rubric import Rubric
from grading_app.reports import price_book
from grading_app.reports.prices import Price

# About four characters of English text per token: close to OpenAI's and Anthropic's
# tokenizers for prose, and the rule the fake vendor counts by.
CHARS_PER_TOKEN = 4
# The shortest prefix the vendors cache (OpenAI's automatic caching and Anthropic's
# cache_control both start at 1,024 tokens for the models we use).
MIN_CACHED_PREFIX_TOKENS = 1024
# A grade's answer: overall score and feedback (a paragraph, about 100 tokens, with the
# JSON around it) and, per criterion, a score, a sentence or two of justification (about
# 40 tokens) and one to three short quotes (about 25), with their keys (about 25).
ANSWER_BASE_TOKENS = 120
ANSWER_TOKENS_PER_CRITERION = 90
# Without a rubric the model picks its own criteria; graders mostly give about four.
CRITERIA_WITHOUT_RUBRIC = 4


def tokens_of(characters: int) -> int:
    return math.ceil(characters / CHARS_PER_TOKEN)


@dataclass(frozen=True)
class PromptFrame:
    """A job's prompt around its documents, in characters: `frame` is everything a
    call sends but the document's text and name; `shared` is the start every call of
    the job sends identically (what a vendor can cache)."""

    frame: int
    shared: int

    def call_characters(self, document_characters: int, name_characters: int) -> int:
        return self.frame + document_characters + name_characters


def prompt_frame(
    *,
    model: str,
    instructions: str,
    marking_scheme: str | None,
    rubric: Rubric | None,
) -> PromptFrame:
    """Built as a call is, for two different documents: what they share from the start
    is the shared prefix, whatever order `build_request` puts the parts in."""
    calls = [
        build_request(
            model=model,
            instructions=instructions,
            document_text=text,
            document_name=name,
            marking_scheme=marking_scheme,
            rubric=rubric,
        )
        for text, name in (("", ""), ("\x01", "\x02"))
    ]
    texts = [call.system + call.user for call in calls]
    return PromptFrame(frame=len(texts[0]), shared=len(os.path.commonprefix(texts)))


def answer_tokens(rubric: Rubric | None, max_tokens: int | None) -> int:
    """The guess for an answer's length, before any grade of the batch says better."""
    criteria = len(rubric.criteria) if rubric is not None else CRITERIA_WITHOUT_RUBRIC
    guess = ANSWER_BASE_TOKENS + ANSWER_TOKENS_PER_CRITERION * criteria
    return min(guess, max_tokens) if max_tokens else guess


def price_for(session: Session, provider: str, model: str) -> Price | None:
    """The price in force for a model, as gradings are priced (reports/price_book.py):
    an administrator's, else GRADING_APP_PRICES, else the dated default. None: unknown,
    and no cost is claimed."""
    return price_book.price_for(session, provider, model)
