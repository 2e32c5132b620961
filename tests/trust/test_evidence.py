"""Quotes a model gives as evidence are found in the document's text, or flagged."""

from __future__ import annotations

import random
import time

import pytest

from grading_app.trust.evidence import (
    NEAR,
    UNVERIFIED,
    VERIFIED,
    QuoteCheck,
    allowed_edits,
    check_quotes,
    normalise,
    verified_share,
)

ESSAY = (
    "The Causes of the First World War\n\n"
    "Historians  have long argued that the alliance system made a\n"
    "general war almost inevi-\ntable. As A. J. P. Taylor put it, the war was \u201cimposed on "
    "the statesmen of Europe by railway timetables\u201d \u2014 a view that later writers "
    "challenged.\n"
    "Germany\u2019s \u2018blank cheque\u2019 to Austria-Hungary in July 1914 turned a local "
    "crisis into a continental one.\u00a0Nationalism, militarism and imperial rivalry all "
    "played their part.\n"
    "In conclusion, no single cause explains the outbreak; the war\u2019s origins were "
    "many-sided."
)


def one(text: str, quote: str) -> QuoteCheck:
    (check,) = check_quotes(text, [quote])
    return check


def highlighted(text: str, check: QuoteCheck) -> str:
    assert check.start is not None and check.end is not None
    return text[check.start : check.end]


def test_an_exact_quote_is_verified_and_its_span_is_the_original_text() -> None:
    check = one(ESSAY, "Nationalism, militarism and imperial rivalry")
    assert check.status == VERIFIED
    assert check.similarity == 1.0
    assert highlighted(ESSAY, check) == "Nationalism, militarism and imperial rivalry"


def test_whitespace_and_line_breaks_do_not_matter() -> None:
    check = one(ESSAY, "Historians have long argued that the alliance system made a general war")
    assert check.status == VERIFIED
    assert highlighted(ESSAY, check) == (
        "Historians  have long argued that the alliance system made a\ngeneral war"
    )


def test_hyphenation_at_a_line_break_is_undone() -> None:
    check = one(ESSAY, "made a general war almost inevitable")
    assert check.status == VERIFIED
    assert highlighted(ESSAY, check) == "made a\ngeneral war almost inevi-\ntable"


def test_curly_and_straight_quote_marks_are_the_same() -> None:
    check = one(ESSAY, "Germany's 'blank cheque' to Austria-Hungary")
    assert check.status == VERIFIED
    assert highlighted(ESSAY, check) == "Germany\u2019s \u2018blank cheque\u2019 to Austria-Hungary"


def test_a_quote_that_drops_nested_quote_marks_is_verified() -> None:
    check = one(ESSAY, 'the war was "imposed on the statesmen of Europe by railway timetables"')
    assert check.status == VERIFIED
    assert highlighted(ESSAY, check).endswith("railway timetables")


def test_dashes_and_spaced_hyphens_are_the_same() -> None:
    check = one(ESSAY, "railway timetables - a view that later writers challenged")
    assert check.status == VERIFIED
    assert "\u2014 a view" in highlighted(ESSAY, check)


def test_case_is_ignored() -> None:
    check = one(ESSAY, "IN CONCLUSION, NO SINGLE CAUSE EXPLAINS THE OUTBREAK")
    assert check.status == VERIFIED
    assert highlighted(ESSAY, check) == "In conclusion, no single cause explains the outbreak"


def test_a_non_breaking_space_counts_as_a_space() -> None:
    check = one(ESSAY, "continental one. Nationalism")
    assert check.status == VERIFIED
    assert highlighted(ESSAY, check) == "continental one.\u00a0Nationalism"


def test_surrounding_quote_marks_and_cut_off_punctuation_are_ignored() -> None:
    check = one(ESSAY, "\u201cno single cause explains the outbreak.\u201d")
    assert check.status == VERIFIED
    assert highlighted(ESSAY, check) == "no single cause explains the outbreak"


def test_unicode_compatibility_forms_match() -> None:
    text = "The \ufb01nal \ufb01gure was 42\u2026 or so \u2460."
    check = one(text, "final figure was 42... or so 1")
    assert check.status == VERIFIED
    assert highlighted(text, check) == "\ufb01nal \ufb01gure was 42\u2026 or so \u2460"


def test_combining_accents_match_precomposed_letters() -> None:
    text = "Le caf\u00e9 \u00e9tait plein."
    check = one(text, "cafe\u0301 e\u0301tait")
    assert check.status == VERIFIED
    assert highlighted(text, check) == "caf\u00e9 \u00e9tait"


def test_zero_width_and_soft_hyphen_characters_are_ignored() -> None:
    text = "An impor\u00adtant argu\u200bment about trade."
    check = one(text, "important argument")
    assert check.status == VERIFIED
    assert highlighted(text, check) == "impor\u00adtant argu\u200bment"


def test_a_quote_with_a_typo_is_a_near_match_that_says_so() -> None:
    check = one(ESSAY, "Nationalism, militarsm and imperial rivalry all played their part")
    assert check.status == NEAR
    assert 0.9 <= check.similarity < 1.0
    assert highlighted(ESSAY, check) == (
        "Nationalism, militarism and imperial rivalry all played their part"
    )


def test_a_near_match_with_a_changed_word_highlights_the_original_words() -> None:
    check = one(ESSAY, "turned a local crisis in to a continental one")
    assert check.status == NEAR
    assert highlighted(ESSAY, check) == "turned a local crisis into a continental one"


def test_a_quote_cut_with_an_ellipsis_is_found_part_by_part() -> None:
    check = one(ESSAY, "Historians have long argued ... almost inevitable")
    assert check.status == VERIFIED
    assert highlighted(ESSAY, check).startswith("Historians  have long argued")
    assert highlighted(ESSAY, check).endswith("almost inevi-\ntable")
    check = one(ESSAY, "the alliance system […] imperal rivalry all played their part")
    assert check.status == NEAR
    assert highlighted(ESSAY, check).endswith("imperial rivalry all played their part")


def test_a_cut_quote_needs_every_part_in_order() -> None:
    assert one(ESSAY, "almost inevitable ... Historians have long argued").status == UNVERIFIED
    assert one(ESSAY, "July 1914 ... and then the invented part").status == UNVERIFIED
    assert one(ESSAY, "the ... of ... and").status == UNVERIFIED


def test_a_text_that_has_an_ellipsis_itself_matches_directly() -> None:
    text = "He paused... and then the whole class laughed at once."
    check = one(text, "He paused... and then the whole class")
    assert check.status == VERIFIED
    assert highlighted(text, check) == "He paused... and then the whole class"


def test_letters_that_fold_to_two_letters_highlight_the_original() -> None:
    text = "Die Straße war lang."
    check = one(text, "STRASSE WAR")
    assert check.status == VERIFIED
    assert highlighted(text, check) == "Straße war"


def test_a_paraphrase_is_unverified() -> None:
    check = one(ESSAY, "The alliances made a general war very likely to happen")
    assert check.status == UNVERIFIED
    assert (check.start, check.end, check.similarity) == (None, None, 0.0)


def test_an_invented_sentence_is_unverified() -> None:
    check = one(ESSAY, "Economic collapse in Britain was the decisive factor.")
    assert check.status == UNVERIFIED


@pytest.mark.parametrize("quote", ["", "   ", "\n\t", "\u201c\u201d", "...", "\u2014", "(-)"])
def test_empty_quotes_are_unverified(quote: str) -> None:
    assert one(ESSAY, quote).status == UNVERIFIED


def test_a_short_quote_must_match_exactly() -> None:
    assert one(ESSAY, "July 1914").status == VERIFIED
    assert one(ESSAY, "July 1915").status == UNVERIFIED
    assert one(ESSAY, "militarsm").status == UNVERIFIED


def test_too_many_edits_are_unverified() -> None:
    # Five edits in a quote of about fifty characters.
    check = one(ESSAY, "Nationalizm, militarizm and imperiel rivalri all playd")
    assert check.status == UNVERIFIED


def test_allowed_edits_grow_with_the_quote_but_stay_few() -> None:
    assert allowed_edits(8) == 0
    assert allowed_edits(12) == 1
    assert allowed_edits(45) == 3
    assert allowed_edits(1000) == 8


def test_an_empty_document_verifies_nothing() -> None:
    assert one("", "anything at all here").status == UNVERIFIED
    assert one("   \n ", "anything at all here").status == UNVERIFIED


def test_results_keep_the_order_and_the_quote_as_given() -> None:
    quotes = ["July 1914", "not in the essay at all, surely", "  Germany\u2019s  "]
    checks = check_quotes(ESSAY, quotes)
    assert [c.quote for c in checks] == quotes
    assert [c.status for c in checks] == [VERIFIED, UNVERIFIED, VERIFIED]


def test_the_first_of_several_occurrences_is_reported() -> None:
    text = "The war began. Later, the war began again."
    check = one(text, "the war began")
    assert (check.start, check.end) == (0, 13)


def test_to_dict_is_plain_data() -> None:
    check = one(ESSAY, "July 1914")
    assert check.to_dict() == {
        "quote": "July 1914",
        "status": "verified",
        "start": check.start,
        "end": check.end,
        "similarity": 1.0,
    }


def test_verified_share_counts_near_matches_as_found() -> None:
    checks = check_quotes(
        ESSAY,
        [
            "July 1914",
            "Nationalism, militarsm and imperial rivalry all played their part",
            "invented words that are nowhere",
            "",
        ],
    )
    assert [c.status for c in checks] == [VERIFIED, NEAR, UNVERIFIED, UNVERIFIED]
    assert verified_share(checks) == 0.5
    assert verified_share([]) is None


def test_normalised_offsets_map_back_to_original_characters() -> None:
    text = "A\u00a0 \u201cB\u201d \u2014 exam-\nple\u2019s \ufb01n"
    folded = normalise(text)
    assert folded.text == "a b\u2013example's fin"
    assert len(folded.starts) == len(folded.ends) == len(folded.text)
    for index, char in enumerate(folded.text):
        original = text[folded.starts[index] : folded.ends[index]]
        assert original, (index, char)
    start, end = folded.original_span(folded.text.index("example"), len(folded.text) - 4)
    assert text[start:end] == "exam-\nple\u2019s"


def test_a_long_document_with_twenty_quotes_is_fast() -> None:
    rng = random.Random(7)
    sentence = (
        "the economy of europe grew while nations armed themselves and alliances formed "
        "across the continent as empires competed for colonies markets and prestige"
    )
    words = sentence.split(" ")
    text = " ".join(rng.choice(words) for _ in range(20000))[:100_000]
    quotes: list[str] = []
    for index in range(20):
        start = rng.randrange(0, 99_000)
        quote = text[start : start + rng.randint(40, 200)]
        if index % 3 == 1:
            quote = quote[:20] + "x" + quote[21:]  # one typo
        if index % 3 == 2:
            quote = "Completely invented: " + quote[:30] + " and nothing like the text " * 2
        quotes.append(quote)
    began = time.perf_counter()
    checks = check_quotes(text, quotes)
    elapsed = time.perf_counter() - began
    assert elapsed < 0.5, elapsed
    assert [c.status for c in checks[:3]] == [VERIFIED, NEAR, UNVERIFIED]


def test_a_very_repetitive_document_stays_fast() -> None:
    text = "the cat sat on the mat. " * 4200
    quote = "the cat sat on the mat. the dog sat on the rug. the cat sat on the hat. the cat"
    began = time.perf_counter()
    checks = check_quotes(text, [quote] * 20)
    assert time.perf_counter() - began < 2
    assert {check.status for check in checks} == {UNVERIFIED}
