"""A marking scheme's table read as a rubric: from a real .docx and from Markdown."""

from __future__ import annotations

from grading_app.documents.extract import docx_tables
from grading_app.library.rubric_tables import markdown_tables, read_rubric
from grading_app.library.scheme_files import scheme_rubric
from tests.documents.factories import make_docx


def test_a_docx_table_of_criterion_points_and_descriptor_is_a_rubric():
    table = (
        ("Criterion", "Max marks", "Description", "Excellent (18-20)", "Weak"),
        ("Thesis", "20", "A clear claim", "Precise and arguable", "No claim"),
        ("Evidence", "40 marks", "", "Well chosen, cited", ""),
        ("Style", "12,5 pts", "", "", ""),
        ("Total", "72.5", "", "", ""),
    )
    data = make_docx(paragraphs=["Marking scheme for the essay."], table=table)

    reading = scheme_rubric(data, file_type="docx", text="")

    rubric = reading.rubric
    assert rubric is not None and reading.warnings == ()
    assert [(c.name, c.max_score) for c in rubric.criteria] == [
        ("Thesis", 20),
        ("Evidence", 40),
        ("Style", 12.5),
    ]
    assert rubric.total == 72.5  # the "Total" row, not a criterion
    thesis = rubric.criteria[0]
    assert thesis.description == "A clear claim"
    assert [(level.label, level.descriptor) for level in thesis.levels] == [
        ("Excellent (18-20)", "Precise and arguable"),
        ("Weak", "No claim"),
    ]
    assert all(level.points is None for level in thesis.levels)  # a range names no points


def test_level_columns_headed_with_points_give_the_maximum():
    table = [
        ["Aspect", "Excellent (4)", "Good (3)", "Poor (1)"],
        ["Argument", "Compelling", "Sound", "Missing"],
        ["Sources", "Many, cited", "Some", "None"],
    ]
    rubric = read_rubric([table]).rubric
    assert rubric is not None
    assert [(c.name, c.max_score) for c in rubric.criteria] == [("Argument", 4), ("Sources", 4)]
    assert [(lv.label, lv.points) for lv in rubric.criteria[0].levels] == [
        ("Excellent (4)", 4),
        ("Good (3)", 3),
        ("Poor (1)", 1),
    ]


def test_tables_that_are_not_rubrics_stay_text():
    # The default table of the test documents: a score "8/10" is no maximum.
    document = make_docx()
    assert docx_tables(document) == [[["Criterion", "Score"], ["Argument", "8/10"]]]
    reading = scheme_rubric(document, file_type="docx", text="")
    assert reading.rubric is None
    assert "not read as a rubric" in reading.warnings[0]
    assert "'Criterion | Score'" in reading.warnings[0]
    # No criterion column, or a header only: not a rubric, and nothing to say about it.
    assert read_rubric([[["Student", "Mark"], ["Ada", "17"]], [["Criterion", "Points"]]]) == (
        read_rubric([])
    )
    duplicated = [["Criterion", "Points"], ["Style", "5"], ["style", "5"]]
    assert "appears twice" in read_rubric([duplicated]).warnings[0]


def test_the_first_table_that_reads_as_a_rubric_is_used():
    roster = [["Student", "Mark"], ["Ada", "17"]]
    rubric_table = [["Criteria", "Points"], ["Content", "6"], ["Form", "4"]]
    second = [["Criteria", "Points"], ["Other", "1"]]
    rubric = read_rubric([roster, rubric_table, second]).rubric
    assert rubric is not None and [c.name for c in rubric.criteria] == ["Content", "Form"]


def test_a_markdown_table_in_a_text_scheme():
    text = (
        "Mark the essay as follows.\n\n"
        "| Criterion | Points | Descriptor |\n"
        "|-----------|-------:|------------|\n"
        "| Thesis    | 10     | States a claim \\| and keeps to it |\n"
        "| Evidence  | 15     | Quotes the sources |\n"
        "\nNothing else counts.\n"
    )
    assert markdown_tables(text)[0][0] == ["Criterion", "Points", "Descriptor"]
    rubric = scheme_rubric(text.encode(), file_type="md", text=text).rubric
    assert rubric is not None
    assert [(c.name, c.max_score) for c in rubric.criteria] == [("Thesis", 10), ("Evidence", 15)]
    # One descriptor column describes the criterion; level columns are headed by levels.
    assert rubric.criteria[0].description == "States a claim | and keeps to it"
    assert scheme_rubric(b"%PDF", file_type="pdf", text=text).rubric is None
