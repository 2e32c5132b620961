"""Schemathesis over the whole OpenAPI document, whatever routes it lists when it runs:
every operation gets generated requests, valid and invalid, in-process against the ASGI
app on SQLite and on PostgreSQL (providers pointed at the fake vendor), and every
response is checked with all of schemathesis' checks: no 5xx, the status, content type,
headers and body as documented, invalid input refused and valid input accepted.

Half of the generated ids are swapped for those of batches and jobs in the database, so
operations get past their 404 to the code behind it; one database is upgraded from a
legacy release, with its rows. The budget (examples per operation) is small
enough to keep the run within a few minutes on two loaded cores."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import schemathesis
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.config import SchemathesisConfig

from grading_app.accounts import credentials, users
from grading_app.app import create_app
from grading_app.config import Settings
from grading_app.db import make_engine, make_sessionmaker, unit_of_work
from grading_app.models import GradingJob, JobBatch
from grading_app.upgrade.schema import upgrade_schema
from tests.conftest import fresh_postgres_database
from tests.factories import make_batch, make_job
from tests.fakes.llm_server import FakeLLMServer
from tests.processing.helpers import grade_everything
from tests.upgrade.helpers import build_legacy, upgrade

# About this many examples per database in all, shared by the operations (10 to 50
# each): the run stays within a couple of minutes on two cores as routes are added.
# GRADING_APP_FUZZ_EXAMPLES sets the number per operation instead (e.g. 500 locally).
EXAMPLES_PER_DATABASE = 1_000
FUZZ_PASSWORD = "fuzzing administrator password"


@dataclass(frozen=True)
class Seeded:
    batch_ids: list[str]
    job_ids: list[str]


@pytest.fixture(scope="module", params=["sqlite", "postgresql", "sqlite-from-legacy-G6"])
def fuzz_database(request, tmp_path_factory) -> Iterator[str]:
    """A new database at head, or one upgraded from a legacy release with its rows
    (odd ones included: legacy-schema.md), whose answers must fit the schema too."""
    if request.param == "postgresql":
        with fresh_postgres_database() as url:
            yield url
        return
    folder = tmp_path_factory.mktemp("fuzz")
    url = f"sqlite:///{folder / 'grading_app.db'}"
    if request.param == "sqlite":
        upgrade_schema(url, write=lambda _: None)
    else:
        build_legacy(url, "G6")
        upgrade(url, folder)  # raises if it cannot
    yield url


@pytest.fixture(scope="module")
def fuzz_app(fuzz_database, tmp_path_factory):
    """The app on its database with one more graded batch, providers at the fake
    vendor."""
    upgrade_schema(fuzz_database, write=lambda _: None)
    with FakeLLMServer() as llm, pytest.MonkeyPatch.context() as env:
        provider_env = {
            "OPENAI_API_KEY": "sk-test-openai",
            "OPENAI_BASE_URL": llm.openai_base_url,
            "ANTHROPIC_API_KEY": "sk-test-anthropic",
            "ANTHROPIC_BASE_URL": llm.anthropic_base_url,
        }
        for key in ("OPENROUTER_API_KEY", "CLAUDE_API_KEY"):
            env.delenv(key, raising=False)
        for key, value in provider_env.items():
            env.setenv(key, value)
        engine = make_engine(fuzz_database)
        sessions = make_sessionmaker(engine)
        with unit_of_work(sessions) as session:
            batch = make_batch(session, status="processing")
            make_job(session, batch=batch, documents=2)
        grade_everything(sessions, provider_env)
        with unit_of_work(sessions, read_only=True) as session:
            seeded = Seeded(
                batch_ids=list(session.scalars(sa.select(JobBatch.id).order_by(JobBatch.id))),
                job_ids=list(session.scalars(sa.select(GradingJob.id).order_by(GradingJob.id))),
            )
        with unit_of_work(sessions) as session:
            admin = users.create_first_admin(session, username="fuzz", password=FUZZ_PASSWORD)
            token = credentials.create_token(session, admin, name="fuzz").token
        engine.dispose()
        settings_ = Settings(
            database_url=fuzz_database,
            upload_dir=tmp_path_factory.mktemp("uploads"),
            max_upload_mb=1,
            # Schemathesis calls the app as Starlette's TestClient does, as "testserver".
            trusted_hosts="testserver",
        )
        application = create_app(settings_)
        application.state.seeded = seeded
        application.state.fuzz_token = token
        yield application
        application.state.engine.dispose()


def _operation_labels() -> list[str]:
    """Every documented operation, read from the app itself at collection time (an app
    on a database it never opens), so new routes are fuzzed without a line here."""
    paths = create_app(Settings(database_url="sqlite://")).openapi()["paths"]
    return [
        f"{method.upper()} {path}"
        for path, item in paths.items()
        for method in item
        if method in {"get", "put", "post", "patch", "delete"}
    ]


# A 400 answers a request the schema cannot judge: one that names a provider this server
# has no key for, or leaves out a prompt the batch does not have either. A field the
# schema could have described (a range, a format, a required part) is refused with a
# 422, and a schema-valid request that gets one fails this test. NUL is refused in
# every text (the 422 description says so; test_api_robustness.py tests it), so valid
# examples hold none.
CONFIG = SchemathesisConfig.from_dict(
    {
        "generation": {"allow-x00": False},
        "checks": {
            # A body over MAX_BODY_KB is refused before it is read (413).
            "negative_data_rejection": {
                "expected-statuses": [
                    *("400", "401", "403", "404", "405", "406", "409", "413", "415"),
                    *("422", "428", "429"),
                ]
            },
            "positive_data_acceptance": {
                "expected-statuses": ["2xx", "3xx", "400", "401", "403", "404", "409", "429"]
            },
        },
    }
)


@pytest.fixture(scope="module")
def api_schema(fuzz_app):
    return schemathesis.openapi.from_asgi("/openapi.json", fuzz_app, config=CONFIG)


def _known_ids(case, seeded: Seeded) -> None:
    """Swap about half of the generated ids for those of batches and jobs in the
    database (picked by the generated id itself, so a failing example replays the
    same)."""
    known = {"batch_id": seeded.batch_ids, "job_id": seeded.job_ids}
    for name, value in list((case.path_parameters or {}).items()):
        digest = hashlib.sha256(str(value).encode("utf-8", "replace")).digest()
        if known.get(name) and digest[0] % 2:
            case.path_parameters[name] = known[name][digest[1] % len(known[name])]


OPERATIONS = _operation_labels()
EXAMPLES_PER_OPERATION = int(
    os.environ.get("GRADING_APP_FUZZ_EXAMPLES")
    or max(10, min(50, EXAMPLES_PER_DATABASE // max(len(OPERATIONS), 1)))
)


# Schemathesis' own pytest plugin does not run under pytest 9, so each operation is a
# test of its own, driven by the operation's Hypothesis strategies.
@pytest.mark.parametrize("label", OPERATIONS)
def test_every_operation_answers_as_documented(label, api_schema, fuzz_app):
    operation = api_schema.find_operation_by_label(label)
    assert operation is not None, f"{label} is not in the schema schemathesis read"
    cases = st.one_of(
        operation.as_strategy(GenerationMode.POSITIVE),
        operation.as_strategy(GenerationMode.NEGATIVE),
    )

    @given(case=cases)
    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def answers_as_documented(case) -> None:
        _known_ids(case, fuzz_app.state.seeded)
        case.call_and_validate(headers={"Authorization": f"Bearer {fuzz_app.state.fuzz_token}"})

    answers_as_documented()
