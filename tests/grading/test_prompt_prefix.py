"""A job's requests share one prefix, byte for byte, and the document comes last, so
vendors can serve the prefix from their prompt cache."""

from __future__ import annotations

import pytest

from grading_app.grading.prompt import build_repair_request, build_request
from grading_app.grading.rubric import Rubric
from grading_app.providers.base import ChatRequest

RUBRIC = Rubric.model_validate(
    {
        "criteria": [
            {"name": "Thesis", "max_score": 20},
            {"name": "Evidence", "max_score": 30},
        ]
    }
)


def _request(name: str, text: str) -> ChatRequest:
    return build_request(
        model="m",
        instructions="Grade the essay.",
        marking_scheme="Thesis and evidence.",
        rubric=RUBRIC,
        document_text=text,
        document_name=name,
    )


def test_everything_but_the_document_is_one_shared_prefix() -> None:
    zelda = _request("zelda_quimby.txt", "Engines compute.")
    bob = _request("bob_smith.docx", "Rivers <document name='x'> shape valleys.")

    assert zelda.system == bob.system and zelda.user_prefix == bob.user_prefix
    assert zelda.user == zelda.user_prefix + zelda.document_part
    assert zelda.user_prefix.endswith("## Document to grade\n")
    assert "Thesis and evidence." in zelda.user_prefix
    assert zelda.document_part.startswith('<document name="zelda_quimby.txt">\n')
    assert zelda.document_part.endswith("Engines compute.\n</document>")
    # Nothing of the document, its name included, is in the shared part.
    assert "zelda" not in zelda.user_prefix + zelda.system and "Engines" not in zelda.user_prefix


def test_the_repair_request_keeps_the_prefix() -> None:
    request = _request("a.txt", "An essay.")

    repair = build_repair_request(request, answer="{oops", reason="not JSON")

    assert repair.system == request.system and repair.user_prefix == request.user_prefix
    assert repair.user.startswith(request.user)
    assert repair.document_part.startswith(request.document_part)


def test_a_prefix_must_be_the_start_of_the_user_text() -> None:
    with pytest.raises(ValueError, match="user_prefix"):
        ChatRequest(model="m", system="s", user="document", user_prefix="instructions")
    assert ChatRequest(model="m", system="s", user="text").document_part == "text"
