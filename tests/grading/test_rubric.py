"""A structured rubric shapes the grade's JSON schema, and an answer that does not follow
it is repaired once, then failed with the reason; a free-text scheme is as before."""

from __future__ import annotations

import json

import pytest

from grading_app.grading.parse import GradeParseError, parse_grade
from grading_app.grading.prompt import RUBRIC_RULE, build_request
from grading_app.grading.rubric import Rubric, grade_json_schema, stored_rubric
from grading_app.grading.schema import GRADE_JSON_SCHEMA
from grading_app.grading.service import GradingFailed, grade_document
from grading_app.providers.anthropic_provider import AnthropicProvider
from grading_app.providers.openai_compat import OpenAICompatProvider, strict_compatible
from tests.fakes import FakeLLMServer, Fault

# A scheme of 4 criteria out of 100.
RUBRIC = Rubric.model_validate(
    {
        "criteria": [
            {
                "name": "Thesis",
                "max_score": 20,
                "levels": [
                    {
                        "label": "Excellent",
                        "points": 20,
                        "descriptor": "A precise, arguable thesis",
                    },
                    {"label": "Weak", "points": 5, "descriptor": "No clear claim"},
                ],
            },
            {"name": "Evidence", "max_score": 40},
            {"name": "Structure", "max_score": 25},
            {"name": "Style", "max_score": 15},
        ]
    }
)


def _criterion(name: str, score: float, maximum: float) -> dict:
    return {"name": name, "score": score, "max_score": maximum, "justification": "Because."}


def _answer(criteria: list[dict], *, overall: float, maximum: float) -> str:
    return json.dumps(
        {"overall_score": overall, "max_score": maximum, "criteria": criteria, "feedback": "ok"}
    )


# 3 criteria out of 30: the answer the issue saw accepted for a scheme of 4 out of 100.
THREE_OUT_OF_THIRTY = _answer(
    [_criterion("Content", 8, 10), _criterion("Structure", 7, 10), _criterion("Clarity", 6, 10)],
    overall=21,
    maximum=30,
)
FOLLOWS_THE_RUBRIC = _answer(
    [
        _criterion("style", 12, 15),  # any case, any order
        _criterion("Thesis", 16, 20),
        _criterion("Evidence", 30, 40),
        _criterion("  Structure ", 20, 25),
    ],
    overall=78,
    maximum=100,
)


def test_schema_names_the_criteria_and_their_maxima():
    schema = grade_json_schema(RUBRIC)

    criteria = schema["properties"]["criteria"]
    assert criteria["items"]["properties"]["name"]["enum"] == [
        "Thesis",
        "Evidence",
        "Structure",
        "Style",
    ]
    assert criteria["items"]["properties"]["max_score"]["enum"] == [15, 20, 25, 40]
    assert '"Thesis" out of 20; "Evidence" out of 40' in criteria["description"]
    assert schema["properties"]["max_score"]["enum"] == [100]
    # Still within what OpenAI's strict structured outputs accept.
    assert strict_compatible(schema)
    assert grade_json_schema(None) is GRADE_JSON_SCHEMA


def test_request_for_a_rubric_carries_its_schema_and_its_levels():
    request = build_request(
        model="m", instructions="Grade it.", document_text="Text.", document_name="a.txt",
        rubric=RUBRIC,
    )  # fmt: skip
    assert request.json_schema == grade_json_schema(RUBRIC)
    assert RUBRIC_RULE.strip() in request.system
    # Without a scheme text of its own, the model reads the rubric written out.
    assert "- Thesis: up to 20 marks" in request.user
    assert "Excellent (20): A precise, arguable thesis" in request.user
    plain = build_request(
        model="m", instructions="Grade it.", document_text="Text.", document_name="a.txt"
    )
    assert plain.json_schema == GRADE_JSON_SCHEMA and RUBRIC_RULE.strip() not in plain.system


def test_an_answer_that_follows_the_rubric_is_kept_in_its_order_and_spelling():
    grade = parse_grade(FOLLOWS_THE_RUBRIC, rubric=RUBRIC)
    assert [c.name for c in grade.criteria] == ["Thesis", "Evidence", "Structure", "Style"]
    assert [c.score for c in grade.criteria] == [16, 30, 20, 12]
    assert grade.overall_score == 78 and grade.max_score == 100


@pytest.mark.parametrize(
    ("answer", "reasons"),
    [
        (
            THREE_OUT_OF_THIRTY,
            [
                "scores 3 criteria where the marking scheme has 4",
                "missing: 'Thesis', 'Evidence', 'Style'",
                "not in the scheme: 'Content', 'Clarity'",
                "'Structure' is out of 10, the scheme gives 25",
                "max_score is 30 where the scheme's total is 100",
            ],
        ),
        (
            _answer(
                [
                    _criterion("Thesis", 16, 20),
                    _criterion("Evidence", 30, 50),
                    _criterion("Structure", 20, 25),
                    _criterion("Style", 12, 15),
                ],
                overall=78,
                maximum=110,
            ),
            ["'Evidence' is out of 50, the scheme gives 40", "scheme's total is 100"],
        ),
        (
            _answer(
                [
                    _criterion("Thesis", 16, 20),
                    _criterion("Thesis", 16, 20),
                    _criterion("Structure", 20, 25),
                    _criterion("Style", 12, 15),
                ],
                overall=64,
                maximum=100,
            ),
            ["'Thesis' is scored twice", "missing: 'Evidence'"],
        ),
    ],
)
def test_an_answer_that_does_not_follow_the_rubric_is_refused_saying_why(answer, reasons):
    with pytest.raises(GradeParseError) as caught:
        parse_grade(answer, rubric=RUBRIC)
    assert caught.value.reason.startswith("the grade does not follow the marking scheme")
    for reason in reasons:
        assert reason in caught.value.reason


def test_a_free_text_scheme_keeps_accepting_any_criteria():
    grade = parse_grade(THREE_OUT_OF_THIRTY)
    assert len(grade.criteria) == 3 and grade.max_score == 30


def test_rubrics_are_checked_when_written_and_read_leniently_when_stored():
    with pytest.raises(ValueError, match="appears twice"):
        Rubric.model_validate(
            {"criteria": [{"name": "A", "max_score": 5}, {"name": " a ", "max_score": 5}]}
        )
    with pytest.raises(ValueError, match="above the criterion's maximum"):
        Rubric.model_validate(
            {
                "criteria": [
                    {"name": "A", "max_score": 5, "levels": [{"points": 6, "descriptor": "x"}]}
                ]
            }
        )
    assert stored_rubric(RUBRIC.stored()) == RUBRIC
    assert stored_rubric(json.dumps(RUBRIC.stored())) == RUBRIC  # SQLite's raw JSON text
    for broken in (None, "null", "{broken", [], {"criteria": []}, {"criteria": "x"}):
        assert stored_rubric(broken) is None
    weighted = Rubric.model_validate({"criteria": [{"name": "A", "max_score": 5}], "max_score": 50})
    assert weighted.total == 50 and "Total: 50 marks" in weighted.describe()


# --- through the fake vendor, over real HTTP --------------------------------------------


@pytest.fixture
def server():
    with FakeLLMServer() as fake:
        yield fake


def _openai(server: FakeLLMServer) -> OpenAICompatProvider:
    return OpenAICompatProvider(
        name="openai", base_url=server.openai_base_url, api_key="sk-test", label="OpenAI"
    )


def _anthropic(server: FakeLLMServer) -> AnthropicProvider:
    return AnthropicProvider(
        name="claude", base_url=server.anthropic_base_url, api_key="sk-test", label="Claude"
    )


def _rubric_request(model: str):
    return build_request(
        model=model,
        instructions="Grade this essay.",
        document_text="An essay about rivers.",
        document_name="essay.txt",
        rubric=RUBRIC,
        timeout_seconds=10,
    )


@pytest.mark.parametrize("make_provider", [_openai, _anthropic], ids=["openai", "anthropic"])
def test_a_model_following_the_schema_scores_the_rubric(server, make_provider):
    outcome = grade_document(make_provider(server), _rubric_request("m1"), rubric=RUBRIC)

    assert not outcome.repaired
    assert [c.name for c in outcome.grade.criteria] == ["Thesis", "Evidence", "Structure", "Style"]
    assert [c.max_score for c in outcome.grade.criteria] == [20, 40, 25, 15]
    assert outcome.grade.max_score == 100


def test_a_mismatching_answer_gets_the_repair_request_saying_why(server):
    server.script("m1", [Fault.content(THREE_OUT_OF_THIRTY)])  # then a good answer

    outcome = grade_document(_openai(server), _rubric_request("m1"), rubric=RUBRIC)

    assert outcome.repaired and outcome.grade.max_score == 100
    assert len(outcome.grade.criteria) == 4
    repair = server.requests[-1].body["messages"][-1]["content"]
    assert "That answer could not be used: the grade does not follow the marking scheme" in repair
    assert "scores 3 criteria where the marking scheme has 4" in repair
    assert THREE_OUT_OF_THIRTY in outcome.raw_text  # the first answer is kept too


def test_a_second_mismatching_answer_fails_with_the_reason(server):
    server.script(
        "m1", [Fault.content(THREE_OUT_OF_THIRTY)], then=Fault.content(THREE_OUT_OF_THIRTY)
    )

    with pytest.raises(GradingFailed) as caught:
        grade_document(_openai(server), _rubric_request("m1"), rubric=RUBRIC)

    assert server.count("m1") == 2  # one repair attempt, no more
    assert "even after a repair request" in caught.value.reason
    assert "max_score is 30 where the scheme's total is 100" in caught.value.reason
    assert THREE_OUT_OF_THIRTY in caught.value.usage.raw_text


def test_without_a_rubric_the_same_answer_is_a_grade(server):
    server.script("m1", [Fault.content(THREE_OUT_OF_THIRTY)])
    request = build_request(
        model="m1", instructions="Grade.", document_text="An essay.", document_name="e.txt",
        marking_scheme="Thesis 20, Evidence 40, Structure 25, Style 15", timeout_seconds=10,
    )  # fmt: skip

    outcome = grade_document(_openai(server), request)

    assert not outcome.repaired and outcome.grade.max_score == 30
