"""Benchmark: what grading costs, live and through the vendors' batch APIs.

One batch of 300 documents (essays of 250 to 1,000 words) graded with two models,
OpenAI's gpt-4.1-mini and Claude 3.5 Haiku, with a marking scheme long enough for the
vendors to cache the shared prompt prefix (>= 1,024 tokens). The vendor is the fake of
`tests/fakes/` over real HTTP on 127.0.0.1: it counts tokens at about four characters
each, reports cached input as the real vendors do, and implements OpenAI's Files and
Batch API and Anthropic's Message Batches. Everything of ours is real: the database
(SQLite), the worker, the provider batch manager, the prices (the dated defaults).

The batch is graded twice, once with `delivery` live and once batch_api. For each run
the script prints the billed input, cached input, cache-write and output tokens and
the cost per model (summed from the cost stored with every grading), and then:
  - the ratio batch API / live cost (target <= 0.55, prompt caching included);
  - the estimate made before the batch started (`GET /api/batches/{id}/estimate`'s
    figures) against what was billed (target within 15%).

    python benchmarks/cost.py [--documents 300]

Exit status: 0 when both targets are met, 1 when one is missed.
"""

from __future__ import annotations

import argparse
import platform
import random
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from tests.fakes.llm_server import FakeLLMServer  # noqa: E402

from grading_app.batches.estimate import estimate_batch  # noqa: E402
from grading_app.batches.service import create_batch  # noqa: E402
from grading_app.db import make_engine, make_sessionmaker, unit_of_work  # noqa: E402
from grading_app.jobs.service import add_submission, create_job, queue_job  # noqa: E402
from grading_app.models import GradeResult, JobBatch, MarkingScheme, WorkItem  # noqa: E402
from grading_app.processing.runtime import provider_resolver  # noqa: E402
from grading_app.processing.worker import LocalWorker  # noqa: E402
from grading_app.providers.targets import Target  # noqa: E402
from grading_app.upgrade.schema import upgrade_schema  # noqa: E402

RATIO_TARGET = 0.55
ESTIMATE_TARGET = 0.15
MODELS = (Target("openai", "gpt-4.1-mini"), Target("claude", "claude-3-5-haiku-20241022"))

INSTRUCTIONS = """\
Grade this Year 11 persuasive essay on the question "Should our town invest in a
renewable energy cooperative?". Follow the marking scheme strictly: score each criterion
on its own, using the level descriptors to place the work, then add up the criteria for
the overall score out of 40. Justify every criterion with reference to the text. Write
feedback addressed to the student: two strengths, two targets, and one concrete next step.
Do not penalise spelling unless it obscures meaning; do penalise unsupported claims."""

LEVELS = (
    ("Level 4 (9-10)", "sophisticated, sustained and precise throughout; original insight"),
    ("Level 3 (6-8)", "clear and consistent, with minor lapses; relevant and developed"),
    ("Level 2 (3-5)", "some success, uneven; points are stated more than developed"),
    ("Level 1 (0-2)", "limited; points are asserted, unclear, or off the question"),
)
CRITERIA = (
    (
        "Argument",
        "a clear position on the question, sustained across the essay, with each "
        "paragraph advancing the case and counter-arguments acknowledged and answered",
    ),
    (
        "Evidence",
        "relevant facts, figures, examples and expert views, accurately used and "
        "explained, with their sources named where they are cited",
    ),
    (
        "Organisation",
        "a purposeful introduction and conclusion, paragraphs with topic sentences, "
        "and cohesive devices that guide the reader through the reasoning",
    ),
    (
        "Style and audience",
        "persuasive techniques chosen for a town audience: rhetorical questions, "
        "direct address, triads and emotive language used with restraint",
    ),
)


def marking_scheme() -> str:
    lines = ["Marking scheme: persuasive essay (40 marks, four criteria of 10)", ""]
    for name, aim in CRITERIA:
        lines.append(f"{name} (10 marks): the essay shows {aim}.")
        for level, descriptor in LEVELS:
            lines.append(f"  - {level}: {name.lower()} is {descriptor}.")
        lines.append("")
    lines.append(
        "Moderation notes: award the level that best fits overall, then the mark within "
        "the level by how securely the descriptor is met. Essays under 200 words cannot "
        "score above Level 2 on Argument or Evidence. Quotations longer than two lines do "
        "not count as the student's own writing."
    )
    return "\n".join(lines)


SENTENCES = (
    "A community energy cooperative would let residents own the turbines that power "
    "their homes, keeping the profits in the town rather than sending them elsewhere.",
    "Critics argue that the upfront cost is too high, but the council's own report shows "
    "the loan would be repaid within eleven years at current electricity prices.",
    "In Denmark, more than a hundred such cooperatives supply a fifth of the country's "
    "wind power, and local support for new projects is highest where people share in them.",
    "Some neighbours worry about noise and the view from the ridge, which is why the "
    "proposal places the turbines beside the motorway, away from houses.",
    "Surely a town that prides itself on looking after its own should look after its energy too?",
    "The school could use the site for science lessons, and apprenticeships in "
    "maintenance would give young people a reason to stay.",
    "Prices for solar panels have fallen by almost ninety percent in a decade, so waiting "
    "longer only means paying more for electricity in the meantime.",
    "We must also think of the pensioners on fixed incomes, who feel every rise in the "
    "price of heating more than anyone.",
)


def essay(number: int) -> str:
    """A deterministic essay of 250 to 1,000 words."""
    chooser = random.Random(number)
    words = chooser.randint(250, 1000)
    paragraphs, count = [], 0
    while count < words:
        paragraph = " ".join(chooser.choice(SENTENCES) for _ in range(chooser.randint(3, 6)))
        paragraphs.append(paragraph)
        count += len(paragraph.split())
    return f"Essay {number}: Power to the people\n\n" + "\n\n".join(paragraphs)


def provider_environment(base_url: str) -> dict[str, str]:
    return {
        "OPENAI_API_KEY": "sk-bench",
        "OPENAI_BASE_URL": f"{base_url}/v1",
        "ANTHROPIC_API_KEY": "sk-ant-bench",
        "ANTHROPIC_BASE_URL": base_url,
    }


@dataclass
class Billed:
    input_tokens: int = 0
    cached_tokens: int = 0
    cache_write_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    gradings: int = 0


@dataclass
class Run:
    delivery: str
    billed: dict[str, Billed]
    estimated_usd: float
    seconds: float
    provider_batches: int

    @property
    def cost_usd(self) -> float:
        return sum(b.cost_usd for b in self.billed.values())

    @property
    def estimate_error(self) -> float:
        return abs(self.estimated_usd - self.cost_usd) / self.cost_usd


def build(url: str, documents: int, delivery: str) -> str:
    upgrade_schema(url, write=lambda _: None)
    engine = make_engine(url)
    try:
        with unit_of_work(make_sessionmaker(engine)) as session:
            batch = create_batch(
                session, name=f"Cost benchmark ({delivery})", settings={"delivery": delivery}
            )
            batch.status = "pending"
            scheme = MarkingScheme(
                name="Persuasive essay",
                filename="persuasive.txt",
                original_filename="persuasive.txt",
                content=marking_scheme(),
            )
            session.add(scheme)
            session.flush()  # its id, for the job
            job = create_job(
                session,
                name="Year 11 persuasive essays",
                prompt=INSTRUCTIONS,
                targets=list(MODELS),
                batch=batch,
                marking_scheme=scheme,
            )
            for number in range(documents):
                text = essay(number)
                add_submission(
                    session,
                    job=job,
                    original_filename=f"essay_{number:03d}.docx",
                    stored_filename=f"stored_{number:03d}.docx",
                    file_type="docx",
                    file_size=len(text) * 2,
                    extracted_text=text,
                )
            queue_job(session, job=job)
            return batch.id
    finally:
        engine.dispose()


def grade(url: str, vendor: FakeLLMServer, batch_id: str) -> tuple[float, float, int]:
    """The estimate before starting, then grading to the end; returns the estimate (USD
    for the batch's delivery), the seconds grading took and the provider batches used."""
    engine = make_engine(url)
    sessions = make_sessionmaker(engine)
    try:
        with unit_of_work(sessions, read_only=True) as session:
            estimate = estimate_batch(session, batch_id=batch_id)
        expected = estimate.totals.expected_cost_usd
        if expected is None:
            raise RuntimeError("the estimate has no cost: a model without a price")
        resolve, _ = provider_resolver(provider_environment(vendor.base_url))
        worker = LocalWorker(
            sessions,
            resolve_provider=resolve,
            concurrency=16,
            request_timeout=30,
            poll_interval=0.05,
            provider_batch_interval=0.2,
        )
        started = time.perf_counter()
        worker.run(threading.Event(), until_idle=True)
        seconds = time.perf_counter() - started
        with unit_of_work(sessions, read_only=True) as session:
            states = dict(
                session.execute(
                    sa.select(WorkItem.state, sa.func.count()).group_by(WorkItem.state)
                ).all()
            )
            status = session.scalar(sa.select(JobBatch.status).where(JobBatch.id == batch_id))
            used = session.scalar(sa.text("SELECT COUNT(*) FROM provider_batches")) or 0
        if set(states) != {"completed"}:
            raise RuntimeError(f"not every item was graded: {states} (batch {status})")
        return expected, seconds, used
    finally:
        engine.dispose()


def billed(url: str) -> dict[str, Billed]:
    engine = make_engine(url)
    try:
        with unit_of_work(make_sessionmaker(engine), read_only=True) as session:
            rows = session.execute(
                sa.select(
                    GradeResult.provider,
                    GradeResult.model,
                    sa.func.count(),
                    sa.func.sum(GradeResult.prompt_tokens),
                    sa.func.sum(GradeResult.cached_tokens),
                    sa.func.sum(GradeResult.cache_write_tokens),
                    sa.func.sum(GradeResult.completion_tokens),
                    sa.func.sum(GradeResult.cost_usd),
                ).group_by(GradeResult.provider, GradeResult.model)
            ).all()
    finally:
        engine.dispose()
    return {
        f"{provider}:{model}": Billed(
            gradings=count,
            input_tokens=int(prompt or 0),
            cached_tokens=int(cached or 0),
            cache_write_tokens=int(written or 0),
            output_tokens=int(output or 0),
            cost_usd=float(cost or 0.0),
        )
        for provider, model, count, prompt, cached, written, output, cost in rows
    }


def run(delivery: str, documents: int) -> Run:
    with tempfile.TemporaryDirectory(prefix="ga-cost-") as folder, FakeLLMServer() as vendor:
        vendor.recording = False
        vendor.batches.polls_until_done = 2  # in progress for two looks, as a real one is
        url = f"sqlite:///{Path(folder) / 'grading_app.db'}"
        batch_id = build(url, documents, delivery)
        estimated, seconds, used = grade(url, vendor, batch_id)
        return Run(delivery, billed(url), estimated, seconds, used)


def report(result: Run) -> None:
    print(
        f"\n{result.delivery}: {result.seconds:.1f} s, {result.provider_batches} provider batches"
    )
    header = (
        f"  {'model':38} {'gradings':>8} {'input':>10} {'cached':>10} {'cache write':>11} "
        f"{'output':>9} {'cost USD':>10}"
    )
    print(header)
    for name, figures in sorted(result.billed.items()):
        print(
            f"  {name:38} {figures.gradings:>8,} {figures.input_tokens:>10,} "
            f"{figures.cached_tokens:>10,} {figures.cache_write_tokens:>11,} "
            f"{figures.output_tokens:>9,} {figures.cost_usd:>10.4f}"
        )
    print(f"  {'total':38} {'':>8} {'':>10} {'':>10} {'':>11} {'':>9} {result.cost_usd:>10.4f}")
    print(
        f"  estimate before starting: {result.estimated_usd:.4f} USD, "
        f"error {result.estimate_error:.1%} (target <= {ESTIMATE_TARGET:.0%})"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--documents", type=int, default=300)
    options = parser.parse_args()
    print(
        f"Cost: {platform.node()}, {platform.processor() or platform.machine()}, "
        f"Python {platform.python_version()}; {options.documents} documents x "
        f"{len(MODELS)} models ({', '.join(f'{t.provider}:{t.model}' for t in MODELS)})"
    )
    live = run("live", options.documents)
    report(live)
    batch = run("batch_api", options.documents)
    report(batch)
    ratio = batch.cost_usd / live.cost_usd
    worst_error = max(live.estimate_error, batch.estimate_error)
    print(
        f"\nbatch API / live: {ratio:.3f} (target <= {RATIO_TARGET}) "
        f"{'met' if ratio <= RATIO_TARGET else 'MISSED'}"
    )
    print(
        f"estimate error: live {live.estimate_error:.1%}, batch API "
        f"{batch.estimate_error:.1%} (target <= {ESTIMATE_TARGET:.0%}) "
        f"{'met' if worst_error <= ESTIMATE_TARGET else 'MISSED'}"
    )
    return 0 if ratio <= RATIO_TARGET and worst_error <= ESTIMATE_TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
