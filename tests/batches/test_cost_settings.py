"""The cost settings `delivery` and `budget`: refused with a 400 that names the field and
what it may be, on create, edit, duplicate and templates; the batch API only for the
vendors that have one."""

from __future__ import annotations

import pytest

from tests.batches.helpers import ESSAYS, add_job, new_batch


@pytest.fixture
def openrouter(monkeypatch):
    monkeypatch.setenv("OPENROUTER_API_KEY", "sk-test-openrouter")


def test_delivery_and_budget_are_kept_with_the_batch(client):
    batch = new_batch(client, settings={"delivery": "batch_api", "budget": 5})

    assert batch["batch_settings"]["delivery"] == "batch_api"
    assert batch["batch_settings"]["budget"] == 5.0
    changed = client.patch(
        f"/api/batches/{batch['id']}", json={"settings": {"delivery": "auto", "budget": 12.5}}
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["batch_settings"]["delivery"] == "auto"
    assert changed.json()["batch_settings"]["budget"] == 12.5
    cleared = client.patch(f"/api/batches/{batch['id']}", json={"settings": {"budget": None}})
    assert "budget" not in cleared.json()["batch_settings"]


@pytest.mark.parametrize(
    ("settings", "words"),
    [
        ({"delivery": "cheap"}, ["settings.delivery", "live, batch_api, auto", "'cheap'"]),
        ({"delivery": 1}, ["settings.delivery", "live, batch_api, auto"]),
        ({"budget": 0}, ["settings.budget", "greater than 0", "null for no budget"]),
        ({"budget": -3}, ["settings.budget", "greater than 0"]),
        ({"budget": "5 dollars"}, ["settings.budget", "amount in USD"]),
        ({"budget": True}, ["settings.budget", "amount in USD"]),
    ],
)
def test_a_bad_delivery_or_budget_is_a_400_naming_the_field(client, settings, words):
    created = client.post(
        "/api/batches", json={"name": "Essays", "models": ["openai:m1"], "settings": settings}
    )
    batch = new_batch(client)
    edited = client.patch(f"/api/batches/{batch['id']}", json={"settings": settings})

    for response in (created, edited):
        assert response.status_code == 400, response.text
        for word in words:
            assert word in response.json()["detail"]


def test_the_batch_api_only_with_vendors_that_have_one(client, openrouter):
    refused = client.post(
        "/api/batches",
        json={
            "name": "Essays",
            "models": ["openai:m1", "openrouter:openai/gpt-4o"],
            "settings": {"delivery": "batch_api"},
        },
    )
    assert refused.status_code == 400
    detail = refused.json()["detail"]
    assert "settings.delivery batch_api" in detail and "openrouter has none" in detail
    assert "choose delivery live" in detail

    batch = new_batch(client, models=["openrouter:openai/gpt-4o"])
    edited = client.patch(f"/api/batches/{batch['id']}", json={"settings": {"delivery": "auto"}})
    assert edited.status_code == 400 and "openrouter has none" in edited.json()["detail"]

    openai_batch = new_batch(client, models=["claude:c1"], settings={"delivery": "auto"})
    moved = client.patch(
        f"/api/batches/{openai_batch['id']}", json={"models": ["openrouter:openai/gpt-4o"]}
    )
    assert moved.status_code == 400 and "openrouter has none" in moved.json()["detail"]
    assert client.get(f"/api/batches/{openai_batch['id']}").json()["models_to_compare"] == [
        "claude:c1"
    ]


def test_a_duplicate_for_other_models_keeps_to_the_rule(client, openrouter):
    batch = new_batch(client, settings={"delivery": "batch_api"})
    add_job(client, batch["id"])

    refused = client.post(
        f"/api/batches/{batch['id']}/duplicate",
        json={"include_documents": True, "models": ["openrouter:openai/gpt-4o"]},
    )
    assert refused.status_code == 400 and "openrouter has none" in refused.json()["detail"]
    copied = client.post(f"/api/batches/{batch['id']}/duplicate", json={"models": ["claude:c1"]})
    assert copied.status_code == 201
    assert copied.json()["batch_settings"]["delivery"] == "batch_api"


def test_templates_check_delivery_and_budget(client, openrouter):
    refused = client.post(
        "/api/templates", json={"name": "Cheap", "processing_rules": {"budget": -1}}
    )
    assert refused.status_code == 400 and "processing_rules.budget" in refused.json()["detail"]
    no_batch_api = client.post(
        "/api/templates",
        json={
            "name": "Cheap",
            "default_settings": {"models": ["openrouter:openai/gpt-4o"]},
            "processing_rules": {"delivery": "batch_api"},
        },
    )
    assert no_batch_api.status_code == 400
    assert "openrouter has none" in no_batch_api.json()["detail"]
    template = client.post(
        "/api/templates",
        json={
            "name": "Cheap",
            "default_settings": {"models": ["openai:m1"]},
            "processing_rules": {"delivery": "batch_api", "budget": 20},
        },
    )
    assert template.status_code == 201, template.text

    batch = new_batch(client, template="Cheap")
    assert batch["batch_settings"]["delivery"] == "batch_api"
    assert batch["batch_settings"]["budget"] == 20


def test_a_job_of_its_own_models_keeps_to_the_rule(client, openrouter):
    batch = new_batch(client, settings={"delivery": "batch_api"})

    refused = client.post(
        f"/api/batches/{batch['id']}/jobs",
        files=ESSAYS,
        data={"models": ["openrouter:openai/gpt-4o"]},
    )

    assert refused.status_code == 400 and "openrouter has none" in refused.json()["detail"]
    add_job(client, batch["id"], models=["claude:c1"])
