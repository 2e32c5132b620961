"""The cell-level steps the exports take for every document: XLSX text (the plain-text
shortcut and the texts a sheet remembers), CSV neutralising, and a grade's criteria
read from the column's text."""

from __future__ import annotations

import math

import pytest

from grading_app.reports.documents import _criteria_list
from grading_app.reports.writers import csv_chunks, safe_text
from grading_app.reports.xlsx import CELL_CHARACTERS, REMEMBERED_TEXTS, text_xml, write_sheet


@pytest.mark.parametrize(
    ("text", "xml"),
    [
        ("plain", "<t>plain</t>"),
        ("", "<t></t>"),
        ("quote \" and ' stay", "<t>quote \" and ' stay</t>"),
        ("a&b<c>d", "<t>a&amp;b&lt;c&gt;d</t>"),
        (" leading", '<t xml:space="preserve"> leading</t>'),
        ("trailing\n", '<t xml:space="preserve">trailing\n</t>'),
        ("tab\tand\nnewline inside", "<t>tab\tand\nnewline inside</t>"),
        ("bell\x07", "<t>bell_x0007_</t>"),
        ("carriage\rreturn", "<t>carriage_x000D_return</t>"),
        ("_x0041_ literal", "<t>_x005F_x0041_ literal</t>"),
        ("_x00 short", "<t>_x00 short</t>"),
        ("lone \ud800 surrogate", "<t>lone \ufffd surrogate</t>"),
        ("é ü 中文", "<t>é ü 中文</t>"),
    ],
)
def test_text_xml_escapes_only_what_needs_it(text, xml):
    assert text_xml(text) == xml


def test_text_xml_cuts_at_excels_limit():
    assert text_xml("x" * (CELL_CHARACTERS + 10)) == f"<t>{'x' * CELL_CHARACTERS}</t>"
    assert text_xml("&" * (CELL_CHARACTERS + 1)) == f"<t>{'&amp;' * CELL_CHARACTERS}</t>"


def test_a_sheet_writes_repeated_texts_as_it_writes_them_once(tmp_path):
    # More distinct texts than a sheet remembers, each twice: the second of each (and
    # those past the limit) come out as the first did.
    texts = [f"=text {n} & more" for n in range(REMEMBERED_TEXTS + 5)]
    rows = [[text, text] for text in texts]
    path = tmp_path / "sheet.xml"
    write_sheet(path, rows, text=safe_text)
    xml = path.read_text(encoding="utf-8")
    for number, text in enumerate(texts, start=1):
        shown = text_xml(safe_text(text))
        for column in "AB":
            assert f'<c r="{column}{number}" t="inlineStr"><is>{shown}</is></c>' in xml


def test_csv_neutralises_text_and_keeps_numbers():
    rows = [["=1+1", "+x", "-y", "@z", "\tt", "\rr", "plain", 7, 1.5, None]]
    [chunk] = list(csv_chunks(rows))
    assert chunk == "'=1+1,'+x,'-y,'@z,'\tt,\"'\rr\",plain,7,1.5,\r\n"


def test_criteria_read_from_their_text():
    assert _criteria_list('[{"name": "Argument", "score": 7.5, "max_score": 10}]') == [
        {"name": "Argument", "score": 7.5, "max_score": 10}
    ]
    assert _criteria_list(None) is None
    assert _criteria_list('{"name": "not a list"}') is None
    assert _criteria_list("not JSON at all") is None  # a legacy row's text
    # What only the json module reads is still read.
    [criterion] = _criteria_list('[{"name": "A", "score": NaN}]') or []
    assert math.isnan(criterion["score"])
