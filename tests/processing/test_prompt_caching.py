"""A batch graded through the fake vendor sends one shared prefix, byte for byte, with the
document last, and stores the cached tokens each call reports."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

from grading_app.db import unit_of_work
from grading_app.jobs.service import add_submission, create_job, queue_job
from grading_app.models import GradeResult
from grading_app.providers.targets import Target
from tests.factories import make_batch
from tests.fakes import Fault, RecordedRequest
from tests.processing.helpers import grade_everything

# Long enough that the shared prefix passes the vendors' 1024-token caching minimum.
INSTRUCTIONS = "Grade the essay for its argument, its evidence and its clarity. " * 70
EPHEMERAL = {"type": "ephemeral"}
ESSAYS = {
    f"essay_{index}.txt": f"Essay number {index} argues that rivers shape the land. " * (index + 1)
    for index in range(4)
}
STUDENTS = {
    "jane_smith.txt": "Name: Jane Smith\nCandidate number: 4821\n\nJane Smith argues "
    "that solar panels keep getting cheaper.",
    "tom_okafor.txt": "By Tom Okafor (tom.okafor@school.example)\n\nTom Okafor argues "
    "that rivers carry soil to the sea.",
}


def _batch(sessions, documents: dict[str, str], target: Target, settings=None) -> None:
    with unit_of_work(sessions) as session:
        job = create_job(
            session,
            name="Essays",
            prompt=INSTRUCTIONS,
            targets=[target],
            batch=make_batch(session, settings=settings),
        )
        for name, text in documents.items():
            add_submission(
                session,
                job=job,
                original_filename=name,
                stored_filename=name,
                file_type="txt",
                file_size=len(text),
                extracted_text=text,
            )
        queue_job(session, job=job)


def _openai_parts(request: RecordedRequest) -> tuple[str, str]:
    """(the shared prefix: system and user text up to the document, what follows)."""
    system, user = request.body["messages"]
    assert (system["role"], user["role"]) == ("system", "user")
    split = user["content"].index("<document")
    return system["content"] + user["content"][:split], user["content"][split:]


def _claude_parts(request: RecordedRequest) -> tuple[str, str]:
    [system] = request.body["system"]
    [message] = request.body["messages"]
    prefix, document = message["content"]
    assert system["cache_control"] == EPHEMERAL and prefix["cache_control"] == EPHEMERAL
    assert "cache_control" not in document
    return system["text"] + prefix["text"], document["text"]


PARTS = {"openai": _openai_parts, "claude": _claude_parts}


def _calls(llm) -> list[RecordedRequest]:
    return [r for r in llm.requests if r.path.endswith(("/chat/completions", "/messages"))]


def _results(sessions) -> list[GradeResult]:
    with unit_of_work(sessions, read_only=True) as session:
        return list(session.scalars(sa.select(GradeResult)))


@pytest.mark.parametrize("provider", ["openai", "claude"])
def test_the_prefix_is_byte_identical_and_the_document_last(
    sessions, llm, provider_env, provider
) -> None:
    _batch(sessions, ESSAYS, Target(provider, "fake-model"))

    grade_everything(sessions, provider_env)

    calls = _calls(llm)
    assert len(calls) == len(ESSAYS)
    parts = [PARTS[provider](call) for call in calls]
    assert len({prefix for prefix, _ in parts}) == 1
    assert INSTRUCTIONS.strip() in parts[0][0]
    documents = sorted(document for _, document in parts)
    assert documents == sorted(
        f'<document name="{name}">\n{text}\n</document>' for name, text in ESSAYS.items()
    )


def test_openai_cached_tokens_are_stored_per_call(sessions, llm, provider_env) -> None:
    _batch(sessions, ESSAYS, Target("openai", "gpt-fake"))

    grade_everything(sessions, provider_env)

    results = _results(sessions)
    cached = sorted(r.cached_tokens for r in results)
    # The first call fills the cache; the others read the prefix from it, in 128s.
    assert cached[0] == 0 and len(set(cached[1:])) == 1
    assert cached[1] >= 1024 and cached[1] % 128 == 0
    assert all(r.cache_write_tokens is None for r in results)  # OpenAI does not say
    assert all(r.prompt_tokens > (r.cached_tokens or 0) for r in results)


def test_claude_cache_writes_and_reads_are_stored_per_call(sessions, llm, provider_env) -> None:
    _batch(sessions, ESSAYS, Target("claude", "claude-fake"))

    grade_everything(sessions, provider_env)

    results = _results(sessions)
    by_write = sorted(results, key=lambda r: -r.cache_write_tokens)
    written = by_write[0].cache_write_tokens
    assert written >= 1024 and by_write[0].cached_tokens == 0
    assert {(r.cache_write_tokens, r.cached_tokens) for r in by_write[1:]} == {(0, written)}
    # prompt_tokens counts every input token, the cached ones included.
    assert all(r.prompt_tokens > written for r in results)


def test_the_api_shows_each_grades_cached_tokens(client, sessions, llm, provider_env) -> None:
    _batch(sessions, ESSAYS, Target("claude", "claude-fake"))
    grade_everything(sessions, provider_env)

    shown = []
    for result in _results(sessions):
        [grade] = client.get(f"/api/submissions/{result.submission_id}").json()["grades"]
        shown.append((grade["cached_tokens"], grade["cache_write_tokens"]))
        assert shown[-1] == (result.cached_tokens, result.cache_write_tokens)
    # One document wrote the cache, the others read from it.
    assert sorted(shown)[0] == (0, max(w for _, w in shown)) and max(c for c, _ in shown) > 0


@pytest.mark.parametrize("provider", ["openai", "claude"])
def test_a_redacted_batch_shares_a_prefix_without_student_data(
    sessions, llm, provider_env, provider
) -> None:
    _batch(sessions, STUDENTS, Target(provider, "fake-model"), settings={"redact_pii": True})

    grade_everything(sessions, provider_env)

    parts = [PARTS[provider](call) for call in _calls(llm)]
    assert len(parts) == 2 and len({prefix for prefix, _ in parts}) == 1
    prefix = parts[0][0]
    for value in ("Jane", "Smith", "jane_smith", "Tom", "Okafor", "4821", "[STUDENT_"):
        assert value not in prefix
    assert all(document.startswith('<document name="document">\n') for _, document in parts)


@pytest.mark.parametrize("provider", ["openai", "claude"])
def test_the_repair_request_keeps_the_prefix(sessions, llm, provider_env, provider) -> None:
    llm.script("fake-model", [Fault.malformed_json()])
    _batch(sessions, dict(list(ESSAYS.items())[:2]), Target(provider, "fake-model"))

    grade_everything(sessions, provider_env, concurrency=1)

    calls = _calls(llm)
    assert len(calls) == 3
    repairs = [c for c in calls if "## Your previous answer" in _user_text(c.body)]
    assert len(repairs) == 1
    first_prefix = PARTS[provider](calls[0])[0]
    prefix, rest = PARTS[provider](repairs[0])
    assert prefix == first_prefix and rest.startswith("<document name=")
    results = _results(sessions)
    repaired = next(r for r in results if r.raw_response and "repair answer" in r.raw_response)
    assert repaired.cached_tokens  # the repair read the prefix from the cache


def _user_text(body: dict[str, Any]) -> str:
    content = body["messages"][-1]["content"]
    return content if isinstance(content, str) else "".join(b["text"] for b in content)
