"""The prices in force (an administrator's over GRADING_APP_PRICES over the dated
defaults), kept for the grading path, and the API that lists and changes them."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from grading_app.accounts import credentials, users
from grading_app.accounts.principal import Role
from grading_app.db import unit_of_work
from grading_app.models import AuditEvent
from grading_app.reports import price_book
from grading_app.reports.price_book import Figures
from grading_app.reports.prices import DEFAULT_PRICES, PRICES_AS_OF, PriceTable

ADMIN_GPT = Figures(
    input_per_million=1.0,
    output_per_million=4.0,
    cached_input_per_million=0.25,
    cache_write_per_million=None,
    batch_discount=0.4,
)


def test_defaults_carry_the_vendors_cache_and_batch_prices():
    gpt = DEFAULT_PRICES["openai:gpt-4o"]
    assert (gpt.cached_input_per_million, gpt.batch_discount) == (1.25, 0.5)
    assert DEFAULT_PRICES["openai:gpt-4.1"].cached_input_per_million == 0.5  # 25%
    sonnet = DEFAULT_PRICES["claude:claude-sonnet-4"]
    assert sonnet.cached_input_per_million == pytest.approx(0.3)  # 0.1x input
    assert sonnet.cache_write_per_million == pytest.approx(3.75)  # 1.25x input
    assert sonnet.batch_discount == 0.5
    assert DEFAULT_PRICES["openrouter:openai/gpt-4o"].batch_discount == 0  # no batch API
    # 1M tokens of which 600k read from the cache and 100k written to it, 100k out,
    # through the batch API: half of (300k x 3 + 600k x 0.3 + 100k x 3.75 + 100k x 15).
    cost = sonnet.cost(1_000_000, 100_000, cached_tokens=600_000, cache_write_tokens=100_000)
    assert cost == pytest.approx(0.9 + 0.18 + 0.375 + 1.5)
    assert sonnet.cost(
        1_000_000, 100_000, cached_tokens=600_000, cache_write_tokens=100_000, batch=True
    ) == pytest.approx(cost / 2)


def test_an_override_of_four_figures_prices_cached_input_and_keeps_the_batch_discount():
    table = PriceTable.of({"openai:gpt-4o": (2.0, 8.0, 0.5, 2.0), "ollama": (0.0, 0.0)})
    gpt = table.price("openai", "gpt-4o-2024-08-06")
    assert gpt is not None and gpt.source == "GRADING_APP_PRICES"
    assert (gpt.cached_input_per_million, gpt.cache_write_per_million) == (0.5, 2.0)
    assert gpt.batch_discount == 0.5  # the vendor's batch API discount
    local = table.price("ollama", "llama3")
    assert (
        local is not None and local.batch_discount == 0 and local.cached_input_per_million is None
    )


def test_an_administrators_price_wins_over_the_settings_and_the_defaults(sessions):
    overrides = {"openai:gpt-4o": (2.0, 8.0), "openai:gpt-4o-mini": (0.1, 0.2)}
    with unit_of_work(sessions) as session:
        price_book.set_price(
            session, provider="openai", model="gpt-4o", figures=ADMIN_GPT, user_id=None
        )
        price_book.set_price(
            session,
            provider="ollama",
            model="*",
            figures=Figures(input_per_million=0, output_per_million=0),
            user_id=None,
        )
    with unit_of_work(sessions, read_only=True) as session:
        table = price_book.load_table(session, overrides=overrides)
        listed = {(p.provider, p.model): p for p in price_book.list_prices(session)}

    gpt = table.price("openai", "gpt-4o-2024-11-20")
    assert gpt is not None and gpt.source == "administrator"
    assert (gpt.input_per_million, gpt.cached_input_per_million, gpt.batch_discount) == (
        1.0,
        0.25,
        0.4,
    )
    mini = table.price("openai", "gpt-4o-mini")
    assert mini is not None and mini.source == "GRADING_APP_PRICES"
    nano = table.price("openai", "gpt-4.1-nano")
    assert nano is not None and nano.source == "default"
    local = table.price("ollama", "llama3:8b")  # the provider's price for every model
    assert local is not None and local.source == "administrator" and local.cost(10, 10) == 0
    assert table.price("lm_studio", "local-model") is None  # none known: no cost, not 0

    assert listed[("openai", "gpt-4o")].source == "administrator"
    assert listed[("openai", "gpt-4o")].as_of is not None
    assert listed[("ollama", "*")].source == "administrator"
    assert listed[("openai", "gpt-4.1")].as_of == PRICES_AS_OF


def test_the_kept_prices_change_at_once_after_an_administrators_change_commits(sessions):
    with unit_of_work(sessions, read_only=True) as session:
        before = price_book.price_for(session, "openai", "gpt-4o")
        assert before is not None and before.source in ("default", "GRADING_APP_PRICES")
    with unit_of_work(sessions) as session:
        price_book.set_price(
            session, provider="openai", model="gpt-4o", figures=ADMIN_GPT, user_id=None
        )
    with unit_of_work(sessions, read_only=True) as session:
        after = price_book.price_for(session, "openai", "gpt-4o")
        assert after is not None and after.source == "administrator"
    with unit_of_work(sessions) as session:
        price_book.delete_price(session, provider="openai", model="gpt-4o")
    with unit_of_work(sessions, read_only=True) as session:
        assert price_book.price_for(session, "openai", "gpt-4o") == before


def test_a_change_rolled_back_leaves_the_kept_prices_alone(sessions):
    with unit_of_work(sessions, read_only=True) as session:
        before = price_book.price_for(session, "openai", "gpt-4o")
    with pytest.raises(RuntimeError), unit_of_work(sessions) as session:
        price_book.set_price(
            session, provider="openai", model="gpt-4o", figures=ADMIN_GPT, user_id=None
        )
        raise RuntimeError("the request failed after the change")
    with unit_of_work(sessions, read_only=True) as session:
        assert price_book.price_for(session, "openai", "gpt-4o") == before


# --- the API ---------------------------------------------------------------------------


def _teacher(client) -> dict[str, str]:
    with unit_of_work(client.app.state.sessionmaker) as session:
        user = users.create_user(
            session, username="tess", password="a teacher's password", role=Role.TEACHER
        )
        token = credentials.create_token(session, user, name="tests").token
    return {"Authorization": f"Bearer {token}"}


def test_everyone_signed_in_sees_the_prices_with_source_and_date(client):
    response = client.get("/api/prices", headers=_teacher(client))
    assert response.status_code == 200
    prices = {(p["provider"], p["model"]): p for p in response.json()}
    gpt = prices[("openai", "gpt-4o")]
    assert gpt["source"] == "default" and gpt["as_of"] == PRICES_AS_OF.isoformat()
    assert (gpt["input_per_million"], gpt["cached_input_per_million"]) == (2.5, 1.25)
    assert gpt["batch_discount"] == 0.5
    assert prices[("openrouter", "openai/gpt-4o")]["batch_discount"] == 0


def test_an_administrator_sets_and_removes_a_price_and_both_are_audited(client, sessions):
    body = {"input_per_million": 1, "output_per_million": 4, "cached_input_per_million": 0.25}
    response = client.put("/api/prices/OpenAI/gpt-4o", json=body)
    assert response.status_code == 200, response.text
    set_price = response.json()
    assert set_price["provider"] == "openai" and set_price["source"] == "administrator"
    assert set_price["batch_discount"] == 0.5  # the provider's, when not given
    listed = {(p["provider"], p["model"]): p for p in client.get("/api/prices").json()}
    assert listed[("openai", "gpt-4o")]["input_per_million"] == 1
    # A model name with a slash (OpenRouter's) is one path parameter.
    routed = client.put("/api/prices/openrouter/meta-llama/llama-3-70b", json=body)
    assert routed.status_code == 200 and routed.json()["model"] == "meta-llama/llama-3-70b"

    assert client.delete("/api/prices/openai/gpt-4o").status_code == 204
    listed = {(p["provider"], p["model"]): p for p in client.get("/api/prices").json()}
    assert listed[("openai", "gpt-4o")]["source"] == "default"
    again = client.delete("/api/prices/openai/gpt-4o")
    assert again.status_code == 404 and "No administrator's price" in again.json()["detail"]

    with unit_of_work(sessions, read_only=True) as session:
        actions = session.scalars(
            sa.select(AuditEvent.action).where(AuditEvent.target_type == "price")
        ).all()
    assert sorted(actions) == ["delete_price", "set_price", "set_price"]


@pytest.mark.parametrize(
    ("path", "body", "named"),
    [
        ("/api/prices/openai/gpt-4o", {"input_per_million": -1, "output_per_million": 1}, "input"),
        (
            "/api/prices/openai/gpt-4o",
            {"input_per_million": 1, "output_per_million": 1, "batch_discount": 1.5},
            "batch_discount",
        ),
        (
            "/api/prices/openai/gpt-4o",
            {"input_per_million": 1, "output_per_million": 1, "cache_write_per_million": -0.1},
            "cache_write",
        ),
        ("/api/prices/nowhere/x", {"input_per_million": 1, "output_per_million": 1}, "provider"),
    ],
)
def test_a_price_out_of_range_or_for_an_unknown_provider_is_a_400_saying_why(
    client, path, body, named
):
    response = client.put(path, json=body)
    assert response.status_code == 400, response.text
    assert named in response.json()["detail"]


def test_a_teacher_may_not_change_prices(client):
    teacher = _teacher(client)
    body = {"input_per_million": 0, "output_per_million": 0}
    assert client.put("/api/prices/openai/gpt-4o", json=body, headers=teacher).status_code == 403
    assert client.delete("/api/prices/openai/gpt-4o", headers=teacher).status_code == 403
