"""The four default batch templates, as revision 0002 first created them.

Frozen data: later releases that improve a template do it in a revision of their own,
so a database upgraded today and one upgraded next year hold the same rows.
"""

from typing import Any

COMMON_RULES: dict[str, Any] = {
    "max_retries": 3,
    "retry_backoff_seconds": 10,
    "timeout_seconds": 120,
    "concurrency": 4,
    "on_failure": "continue",
    "require_structured_output": True,
}


def _rules(**overrides: Any) -> dict[str, Any]:
    return {**COMMON_RULES, **overrides}


DEFAULT_TEMPLATES: list[dict[str, Any]] = [
    {
        "name": "Academic Essay Grading",
        "category": "academic",
        "description": (
            "Grade undergraduate and secondary-school essays on thesis, argument, use of "
            "evidence, structure and style, with feedback a student can act on."
        ),
        "default_settings": {
            "priority": 5,
            "temperature": 0.2,
            "max_tokens": 2000,
            "max_score": 100,
            "tags": ["essay", "academic"],
        },
        "job_structure": {
            "prompt": (
                "You are an experienced university lecturer grading an essay. Assess it "
                "against the marking criteria. For each criterion give a score and a "
                "one- or two-sentence justification that quotes or points to the essay. "
                "Then give an overall score out of the maximum and feedback: two "
                "strengths, two specific improvements, written to the student."
            ),
            "criteria": [
                {"name": "Thesis and focus", "max_score": 20},
                {"name": "Argument and analysis", "max_score": 30},
                {"name": "Use of evidence and sources", "max_score": 20},
                {"name": "Structure and organisation", "max_score": 15},
                {"name": "Style, clarity and mechanics", "max_score": 15},
            ],
            "file_types": ["docx", "pdf", "txt", "md"],
        },
        "processing_rules": _rules(),
    },
    {
        "name": "Business Report Review",
        "category": "business",
        "description": (
            "Review business reports and case-study answers for problem framing, "
            "analysis, recommendations and professional communication."
        ),
        "default_settings": {
            "priority": 5,
            "temperature": 0.2,
            "max_tokens": 2000,
            "max_score": 100,
            "tags": ["business", "report"],
        },
        "job_structure": {
            "prompt": (
                "You are a business school examiner reviewing a business report. Judge "
                "whether it frames the problem, analyses it with appropriate evidence and "
                "frameworks, and makes feasible, prioritised recommendations. Score each "
                "criterion with a short justification, then an overall score and concise "
                "feedback on what would make the report decision-ready."
            ),
            "criteria": [
                {"name": "Executive summary and problem framing", "max_score": 20},
                {"name": "Analysis and use of data", "max_score": 30},
                {"name": "Recommendations and feasibility", "max_score": 30},
                {"name": "Professional presentation", "max_score": 20},
            ],
            "file_types": ["docx", "pdf", "txt", "md"],
        },
        "processing_rules": _rules(),
    },
    {
        "name": "Research Paper Analysis",
        "category": "research",
        "description": (
            "Assess research papers and theses on research question, method, results, "
            "discussion and scholarly writing; suited to long documents."
        ),
        "default_settings": {
            "priority": 4,
            "temperature": 0.1,
            "max_tokens": 3000,
            "max_score": 100,
            "tags": ["research", "paper"],
        },
        "job_structure": {
            "prompt": (
                "You are a peer reviewer assessing a research paper. Evaluate the clarity "
                "and significance of the research question, the soundness of the method, "
                "whether the results support the conclusions, the engagement with prior "
                "work and the quality of the writing. Score each criterion with a "
                "justification, give an overall score, and list the most important "
                "revisions the authors should make."
            ),
            "criteria": [
                {"name": "Research question and contribution", "max_score": 20},
                {"name": "Methodology", "max_score": 25},
                {"name": "Results and evidence", "max_score": 25},
                {"name": "Discussion and literature", "max_score": 15},
                {"name": "Scholarly writing and referencing", "max_score": 15},
            ],
            "file_types": ["pdf", "docx", "txt", "md"],
        },
        "processing_rules": _rules(timeout_seconds=300, concurrency=2),
    },
    {
        "name": "Creative Writing Assessment",
        "category": "creative",
        "description": (
            "Assess stories, poems and creative pieces on voice, imagery, structure and "
            "technique, with encouraging, specific feedback."
        ),
        "default_settings": {
            "priority": 5,
            "temperature": 0.4,
            "max_tokens": 2000,
            "max_score": 100,
            "tags": ["creative", "writing"],
        },
        "job_structure": {
            "prompt": (
                "You are a creative writing tutor. Assess the piece for originality and "
                "voice, imagery and language, structure and pacing, and control of "
                "technique for its form. Score each criterion with a justification that "
                "cites the text, give an overall score, and write encouraging feedback "
                "with two concrete suggestions for the next draft."
            ),
            "criteria": [
                {"name": "Originality and voice", "max_score": 30},
                {"name": "Imagery and language", "max_score": 25},
                {"name": "Structure and pacing", "max_score": 25},
                {"name": "Technique and mechanics", "max_score": 20},
            ],
            "file_types": ["docx", "pdf", "txt", "md"],
        },
        "processing_rules": _rules(),
    },
]
