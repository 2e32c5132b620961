"""Fakes of what is outside our control: only the LLM vendor."""

from tests.fakes.llm_server import (
    Behaviour,
    FakeLLMServer,
    Fault,
    RecordedRequest,
    document_of,
    expected_grade,
)

__all__ = [
    "Behaviour",
    "FakeLLMServer",
    "Fault",
    "RecordedRequest",
    "document_of",
    "expected_grade",
]
