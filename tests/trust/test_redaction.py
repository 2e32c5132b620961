"""Personal data is replaced before text leaves the machine and restored in feedback."""

from __future__ import annotations

import time

import pytest

from grading_app.trust.redaction import (
    DEFAULT_PATTERNS,
    Redaction,
    RedactionRules,
    parse_roster,
    redact,
)

ROSTER = ("Jane Smith", "Tom Baker", "Priya Patel", "Jack Thompson", "Martin Jones")
RULES = RedactionRules(roster=ROSTER)
NO_ROSTER = RedactionRules()

COVER_SHEET = """Name: Jane Smith
Candidate number: 4821
Student ID: S1234567
Email: jane.smith@example-school.org.uk
Phone: 07911 123456

The Role of Martin Luther King in the Civil Rights Movement

Dr. Martin Luther King Jr. led the Montgomery bus boycott in 1955-56. In 1963, some
250,000 people marched on Washington; King's speech there is remembered as 85/100 of
historians' favourite. Jane's argument is that non-violence was a strategy.
Tom Baker, my classmate, disagreed. Contact jane.smith@example-school.org.uk.
"""


def assert_absent(redaction: Redaction, *values: str) -> None:
    lowered = redaction.text.casefold()
    for value in values:
        assert value.casefold() not in lowered, (value, redaction.text)


# --- e-mail -----------------------------------------------------------------------


def test_email_addresses_are_replaced_and_the_same_address_shares_a_placeholder() -> None:
    result = redact("Write to J.Smith+essays@school.ac.uk or j.smith+essays@SCHOOL.ac.uk.", RULES)
    assert result.text == "Write to [EMAIL_1] or [EMAIL_1]."
    assert result.replacements == {"[EMAIL_1]": "J.Smith+essays@school.ac.uk"}
    assert result.counts() == {"email": 2}


def test_an_email_holding_a_roster_name_is_one_email() -> None:
    result = redact("Jane Smith (jane.smith@school.org)", RULES)
    assert result.text == "[STUDENT_1] ([EMAIL_1])"


def test_an_at_sign_without_a_domain_is_not_an_email() -> None:
    text = "We met @ the library at 5pm; follow @history_club."
    assert redact(text, NO_ROSTER).text == text


# --- phone numbers ----------------------------------------------------------------


@pytest.mark.parametrize(
    "number",
    [
        "07911 123456",  # UK mobile
        "020 7946 0018",  # UK London
        "+44 20 7946 0018",  # UK international
        "(212) 555-0147",  # US
        "+1 415 555 0132",  # US international
        "030 12345678",  # Germany
        "+49 30 901820",  # Germany international
        "01 42 68 53 00",  # France
        "+33 6 12 34 56 78",  # France mobile
        "0412 345 678",  # Australia mobile
        "(02) 9374 4000",  # Australia landline
    ],
)
def test_phone_numbers_in_common_formats_are_replaced(number: str) -> None:
    result = redact(f"Call me on {number} after school.", NO_ROSTER)
    assert result.text == "Call me on [PHONE_1] after school.", result.text
    assert result.replacements == {"[PHONE_1]": number}


def test_one_number_written_two_ways_shares_a_placeholder() -> None:
    result = redact("Home: 020 7946 0018. From abroad: +44 20 7946 0018.", NO_ROSTER)
    assert result.text == "Home: [PHONE_1]. From abroad: [PHONE_1]."


STATISTICS_ESSAY = """Between 1914-1918 and 1939-1945 the population fell from 67,081,234 to
65,000,000. In 1999, 85/100 students scored above 70%; the mean was 45.67 (sd 12.3, n=2048,
p=0.0234). See page 123, pages 45-67 and table 3.2. On 12/03/2021 and 2023-11-20 the index
stood at 2134567890 units; GDP was $1234567890 and 1 800 000 people voted. ISBN
978-0-14-143951-8. The ratio 3:2, scores of 9/10 and 18/20, the years 1066, 1215 and 2024.
Values 0.0001234 and 3.14159265358979 were rounded; 12 345 678 readers; grid ref 4821 1234.
"""


def test_numbers_in_an_essay_about_statistics_are_left_alone() -> None:
    result = redact(STATISTICS_ESSAY, NO_ROSTER)
    assert result.text == STATISTICS_ESSAY
    assert result.counts() == {}


# --- student numbers --------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected", "original"),
    [
        ("Candidate number: 1234", "Candidate number: [STUDENT_NUMBER_1]", "1234"),
        ("Candidate No. 4821", "Candidate No. [STUDENT_NUMBER_1]", "4821"),
        ("Student ID: S1234567", "Student ID: [STUDENT_NUMBER_1]", "S1234567"),
        ("student id #20231234", "student id #[STUDENT_NUMBER_1]", "20231234"),
        ("Enrolment number - AB123456", "Enrolment number - [STUDENT_NUMBER_1]", "AB123456"),
        ("ULN: 1234567890", "ULN: [STUDENT_NUMBER_1]", "1234567890"),
        ("Exam number #4321", "Exam number #[STUDENT_NUMBER_1]", "4321"),
        ("Submitted by s7654321 on time", "Submitted by [STUDENT_NUMBER_1] on time", "s7654321"),
    ],
)
def test_student_numbers_are_replaced_keeping_their_label(
    text: str, expected: str, original: str
) -> None:
    result = redact(text, NO_ROSTER)
    assert result.text == expected
    assert result.replacements == {"[STUDENT_NUMBER_1]": original}


def test_a_student_number_and_its_bare_repeat_share_a_placeholder() -> None:
    result = redact("Student ID: S1234567\n...\nfooter s1234567", NO_ROSTER)
    assert result.text == "Student ID: [STUDENT_NUMBER_1]\n...\nfooter [STUDENT_NUMBER_1]"


def test_numbers_without_a_label_or_the_bare_shape_stay() -> None:
    text = "Question 4821 asks about 1234567 tonnes; room B12, form 10B, model T1000."
    assert redact(text, NO_ROSTER).text == text


def test_student_number_patterns_are_configurable() -> None:
    rules = RedactionRules(student_number_patterns=(r"\bUP\d{6}\b",))
    result = redact("Number UP123456; Student ID: S1234567", rules)
    assert result.text == "Number [STUDENT_NUMBER_1]; Student ID: S1234567"


def test_the_default_patterns_are_documented_and_compile() -> None:
    import re

    assert len(DEFAULT_PATTERNS) == 3
    for pattern in DEFAULT_PATTERNS:
        re.compile(pattern)


# --- roster names -----------------------------------------------------------------


def test_roster_full_names_are_replaced_case_insensitively() -> None:
    result = redact("JANE SMITH wrote this with priya patel.", RULES)
    assert result.text == "[STUDENT_1] wrote this with [STUDENT_2]."
    assert result.replacements == {"[STUDENT_1]": "Jane Smith", "[STUDENT_2]": "Priya Patel"}


def test_first_name_surname_and_possessive_share_the_full_names_placeholder() -> None:
    text = "Jane Smith argues... Jane's second point, and Smith\u2019s last, and jane again."
    result = redact(text, RULES)
    assert result.text == (
        "[STUDENT_1] argues... [STUDENT_1]'s second point, and [STUDENT_1]\u2019s last, "
        "and [STUDENT_1] again."
    )
    assert result.counts() == {"name": 4}


def test_a_full_name_across_a_line_break_or_surname_first_is_found() -> None:
    result = redact("By Jane\nSmith. Register: Smith, Jane. SMITH Jane.", RULES)
    assert result.text == "By [STUDENT_1]. Register: [STUDENT_1]. [STUDENT_1]."


def test_a_classmates_first_name_alone_is_kept_unless_they_appear_in_the_document() -> None:
    # An essay on Lord of the Flies: Jack is a character, not the classmate Jack Thompson.
    text = "Jack leads the hunters. Jack Thompson helped me with this essay."
    assert (
        redact(text, RULES).text
        == "[STUDENT_1] leads the hunters. [STUDENT_1] helped me with this essay."
    )
    novel = "Jack leads the hunters while Ralph keeps the fire."
    assert redact(novel, RULES).text == novel
    always = RedactionRules(roster=ROSTER, roster_partial_names="always")
    assert redact(novel, always).text == "[STUDENT_1] leads the hunters while Ralph keeps the fire."


def test_names_inside_other_words_stay() -> None:
    text = "Smithson and Janet met Tomas near Bakerloo; Smith-Jones was there. Jane Smith."
    result = redact(text, RULES)
    assert result.text == (
        "Smithson and Janet met Tomas near Bakerloo; Smith-Jones was there. [STUDENT_1]."
    )


def test_a_famous_name_that_shares_a_students_first_name_or_surname_stays() -> None:
    text = (
        "Martin Jones writes: Dr. Martin Luther King spoke in 1963. Martin thinks Mr Jones "
        "agreed; Tom Jones sang."
    )
    result = redact(text, RULES)
    assert result.text == (
        "[STUDENT_1] writes: Dr. Martin Luther King spoke in 1963. [STUDENT_1] thinks Mr "
        "[STUDENT_1] agreed; Tom Jones sang."
    )


def test_an_initial_beside_a_first_name_is_the_same_person() -> None:
    result = redact("Jane Smith. Signed: Jane S. and J. Smith", RULES)
    assert result.text == "[STUDENT_1]. Signed: [STUDENT_1] S. and J. [STUDENT_1]"


def test_an_essay_that_mentions_nobody_on_the_roster_is_unchanged() -> None:
    roster = RedactionRules(
        roster=("Jack Brown", "Mark Evans", "Grace Hill", "Ralph Green", "Hope Young")
    )
    text = (
        "Lord of the Flies\n\nJack and Ralph quarrel over the fire. Golding marks the "
        "change: by God's grace the boys are rescued, yet hope is lost. Will Jack lead? "
        "Young readers may find Piggy's death the turning point; Green Island, 1954."
    )
    result = redact(text, roster)
    assert result.text == text
    assert result.counts() == {}


def test_names_that_are_ordinary_words_only_count_when_capitalised() -> None:
    rules = RedactionRules(roster=("Will Baker", "Rose King"))
    text = (
        "Will Baker: I will argue that the baker and the king rose early. Will it rain? "
        "As Will said, King was right."
    )
    result = redact(text, rules)
    assert result.text == (
        "[STUDENT_1]: I will argue that the baker and the king rose early. Will it rain? "
        "As [STUDENT_1] said, King was right."
    )


# --- names the document declares ---------------------------------------------------


@pytest.mark.parametrize(
    "header",
    [
        "Name: Alice Morgan",
        "Student name: Alice Morgan",
        "STUDENT: Alice Morgan",
        "Author: Alice Morgan",
        "By Alice Morgan",
        "Written by Alice Morgan",
        "Class: 10B\tName: Alice Morgan\tDate: 3 May",
        "Class: 10B | Name: Alice Morgan | Date: 3 May",
    ],
)
def test_a_declared_name_and_its_uses_elsewhere_are_replaced(header: str) -> None:
    text = f"{header}\n\nIn this essay I, Alice Morgan, argue... As Morgan noted, Alice's view."
    result = redact(text, NO_ROSTER)
    assert_absent(result, "Alice", "Morgan")
    assert result.replacements == {"[STUDENT_1]": "Alice Morgan"}


def test_a_name_after_a_label_may_be_in_lower_case() -> None:
    result = redact("name: jane doe\n\nI, jane, think Doe's plan failed.", NO_ROSTER)
    assert result.text == "name: [STUDENT_1]\n\nI, [STUDENT_1], think [STUDENT_1]'s plan failed."
    assert result.replacements == {"[STUDENT_1]": "jane doe"}


def test_lower_case_words_after_by_or_my_name_is_are_not_names() -> None:
    text = "By the end\nMy name is not important here.\nStudent: see cover sheet\nby jane doe"
    assert redact(text, NO_ROSTER).text == text


def test_my_name_is_declares_a_name() -> None:
    result = redact("Hello, my name is Oliver Grant and I like history. Oliver out.", NO_ROSTER)
    assert result.text == "Hello, my name is [STUDENT_1] and I like history. [STUDENT_1] out."


def test_a_declared_name_stops_at_the_next_label() -> None:
    result = redact("Name: Alice Morgan Class 10B Date 3 May\nAlice wrote this.", NO_ROSTER)
    assert result.text == "Name: [STUDENT_1] Class 10B Date 3 May\n[STUDENT_1] wrote this."


def test_a_declared_name_with_a_particle_or_an_apostrophe() -> None:
    text = "Name: Sean O'Brien-Murphy\nO'Brien-Murphy argues.\nName: Ana de la Cruz\nAna agrees."
    result = redact(text, NO_ROSTER)
    assert result.text == (
        "Name: [STUDENT_1]\n[STUDENT_1] argues.\nName: [STUDENT_2]\n[STUDENT_2] agrees."
    )


def test_a_declared_single_first_name_is_hidden_where_declared() -> None:
    result = redact("Name: Will\nI will show that Will's plan worked.", NO_ROSTER)
    assert result.text == "Name: [STUDENT_1]\nI will show that [STUDENT_1]'s plan worked."


def test_a_declared_name_on_the_roster_uses_the_roster_person() -> None:
    result = redact("Name: Priya\n\nPriya Patel's essay. Patel argues.", RULES)
    assert result.text == "Name: [STUDENT_1]\n\n[STUDENT_1]'s essay. [STUDENT_1] argues."
    assert result.replacements == {"[STUDENT_1]": "Priya Patel"}


def test_by_inside_a_sentence_is_not_a_declaration() -> None:
    text = "Great Expectations was written by Charles Dickens. It is read by Many Students."
    assert redact(text, NO_ROSTER).text == text


def test_a_famous_name_in_an_essay_stays_when_nobody_declares_it() -> None:
    text = "Dr. Martin Luther King said \u201cI have a dream\u201d. King inspired millions."
    result = redact(text, NO_ROSTER)
    assert result.text == text
    assert result.counts() == {}


# --- file names --------------------------------------------------------------------


@pytest.mark.parametrize(
    "file_name",
    [
        "smith_jane_essay.docx",
        "Jane Smith - Essay 3.pdf",
        "JANE-SMITH_history_final_v2.docx",
        "uploads/2024/jane.smith.txt",
    ],
)
def test_a_name_in_the_file_name_is_hidden_when_the_text_has_it(file_name: str) -> None:
    text = "Essay 3 by Jane\nSmith\n\nJane Smith thinks the treaty failed. Smith is sure."
    result = redact(text, NO_ROSTER, file_name=file_name)
    assert_absent(result, "Jane", "Smith")
    assert result.replacements == {"[STUDENT_1]": "Jane Smith"}


def test_a_file_name_that_is_not_in_the_text_changes_nothing() -> None:
    text = "The treaty failed because of reparations."
    assert redact(text, NO_ROSTER, file_name="smith_jane_essay.docx").text == text


def test_subject_words_in_a_file_name_are_not_a_name() -> None:
    text = "English Literature Essay: History Essay on Romeo and Juliet."
    result = redact(text, NO_ROSTER, file_name="english_literature_history_essay.docx")
    assert result.text == text


# --- everything together -----------------------------------------------------------


def test_a_cover_sheet_loses_every_planted_value_but_keeps_the_essay() -> None:
    result = redact(COVER_SHEET, RULES, file_name="smith_jane_essay.docx")
    assert_absent(
        result,
        "Jane",
        "Smith",
        "4821",
        "S1234567",
        "example-school",
        "07911",
        "Tom Baker",
    )
    for kept in ("Martin Luther King", "King's speech", "1955-56", "250,000", "85/100"):
        assert kept in result.text
    # Names: "Name: Jane Smith", "Jane's", "Tom Baker" (the e-mail address holds the rest).
    assert result.counts() == {"name": 3, "student_number": 2, "email": 2, "phone": 1}
    assert set(result.replacements.values()) == {
        "Jane Smith",
        "Tom Baker",
        "4821",
        "S1234567",
        "jane.smith@example-school.org.uk",
        "07911 123456",
    }


def test_placeholders_are_numbered_in_order_of_appearance_and_stable() -> None:
    text = "Tom Baker and Jane Smith; later Jane, then Tom, then Priya Patel."
    first = redact(text, RULES)
    assert (
        first.text
        == "[STUDENT_1] and [STUDENT_2]; later [STUDENT_2], then [STUDENT_1], then [STUDENT_3]."
    )
    assert redact(text, RULES) == first


def test_text_without_personal_data_is_unchanged() -> None:
    text = "The Treaty of Versailles (1919) imposed reparations of 132 billion gold marks."
    result = redact(text, RULES)
    assert result.text == text
    assert result.replacements == {}
    assert result.restore("Good analysis.") == "Good analysis."


def test_windows_line_endings_do_not_hide_a_declaration() -> None:
    result = redact("Essay 2\r\nBy Jane Doe\r\n\r\nDoe argues.", NO_ROSTER)
    assert result.text == "Essay 2\r\nBy [STUDENT_1]\r\n\r\n[STUDENT_1] argues."


# --- restoring ---------------------------------------------------------------------


def test_round_trip_restores_real_names_in_model_feedback() -> None:
    result = redact(COVER_SHEET, RULES, file_name="smith_jane_essay.docx")
    feedback = (
        "[STUDENT_1] makes a clear argument. STUDENT_1's use of evidence is good, and the "
        "reply to [student_2] is fair. Candidate [STUDENT_NUMBER_1] should cite more; "
        "contact via [EMAIL_1] or {PHONE_1}."
    )
    assert result.restore(feedback) == (
        "Jane Smith makes a clear argument. Jane Smith's use of evidence is good, and the "
        "reply to Tom Baker is fair. Candidate 4821 should cite more; contact via "
        "jane.smith@example-school.org.uk or 07911 123456."
    )


def test_restore_leaves_anything_that_is_not_one_of_its_placeholders() -> None:
    result = redact("Name: Jane Smith", RULES)
    text = (
        "[STUDENT_2] [STUDENT_10] STUDENT_11 MY_STUDENT_1 STUDENT_1X [STUDENT] "
        "Student 1 did well; [EMAIL_1]"
    )
    assert result.restore(text) == text


def test_a_placeholder_already_in_the_document_is_never_handed_out() -> None:
    text = "Fill in [STUDENT_1] and STUDENT_2 here.\nName: Jane Doe"
    result = redact(text, NO_ROSTER)
    assert result.text == "Fill in [STUDENT_1] and STUDENT_2 here.\nName: [STUDENT_3]"
    assert result.restore(result.text) == "Fill in [STUDENT_1] and STUDENT_2 here.\nName: Jane Doe"


def test_restore_accepts_spaces_and_case_in_brackets() -> None:
    result = redact("Name: Jane Smith", RULES)
    assert result.restore("[ student 1 ] and <Student_1> and (STUDENT_1)") == (
        "Jane Smith and Jane Smith and (Jane Smith)"
    )


def test_restore_of_the_redacted_text_gives_back_the_names() -> None:
    text = "Name: Jane Smith\nJane's essay. Call 07911 123456."
    result = redact(text, RULES)
    assert result.restore(result.text) == "Name: Jane Smith\nJane Smith's essay. Call 07911 123456."


def test_counts_never_hold_the_values() -> None:
    result = redact(COVER_SHEET, RULES)
    assert all(isinstance(value, int) for value in result.counts().values())
    assert "Jane" not in repr(result.counts())


def test_a_long_document_is_redacted_quickly() -> None:
    text = (COVER_SHEET + STATISTICS_ESSAY) * 60  # about 100,000 characters
    began = time.perf_counter()
    result = redact(text, RedactionRules(roster=ROSTER * 6), file_name="smith_jane.docx")
    elapsed = time.perf_counter() - began
    assert elapsed < 5, elapsed
    assert_absent(result, "Jane Smith", "S1234567")


# --- roster files ------------------------------------------------------------------


def test_a_text_roster_has_one_name_per_line() -> None:
    data = "\ufeffJane Smith\n\n# Set 2\n  Tom   Baker  \nSmith, Jane\nPatel, Priya\n".encode()
    assert parse_roster(data, "class.txt") == ["Jane Smith", "Tom Baker", "Priya Patel"]


def test_a_csv_roster_with_a_name_column() -> None:
    data = b'Student ID,Name,Form\nS1,Jane Smith,10B\nS2,"Baker, Tom",10B\n'
    assert parse_roster(data, "Roster.CSV") == ["Jane Smith", "Tom Baker"]


def test_a_csv_roster_with_first_and_last_name_columns_and_semicolons() -> None:
    data = "Surname;Forename;Email\nSmith;Jane;j@x.org\nM\u00fcller;J\u00fcrgen;m@x.org\n"
    assert parse_roster(data.encode("cp1252"), "list.csv") == [
        "Jane Smith",
        "J\u00fcrgen M\u00fcller",
    ]


def test_a_single_column_csv_without_a_header() -> None:
    assert parse_roster(b"Jane Smith\nTom Baker\n", "names.csv") == ["Jane Smith", "Tom Baker"]


@pytest.mark.parametrize(
    ("data", "filename", "message"),
    [
        (b"Jane Smith", "roster.xlsx", "not a .csv or .txt"),
        (b"PK\x03\x04\x00\x00", "roster.csv", "not a text file"),
        (b"", "roster.txt", "no names"),
        (b"\n# only a comment\n", "roster.txt", "no names"),
        (b"ID,Form,Score\n1,10B,55\n2,10C,60\n", "roster.csv", "no name column"),
        (b"Name\n" + b"x" * 200 + b"\n", "roster.csv", "longer than"),
        (b"a\n" * (600 * 1024), "roster.txt", "larger than 1 MB"),
    ],
)
def test_bad_roster_files_say_what_is_wrong(data: bytes, filename: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_roster(data, filename)


def test_a_parsed_roster_feeds_the_rules() -> None:
    names = parse_roster(b"First name,Last name\nJane,Smith\n", "r.csv")
    result = redact("Jane Smith's essay.", RedactionRules(roster=tuple(names)))
    assert result.text == "[STUDENT_1]'s essay."
