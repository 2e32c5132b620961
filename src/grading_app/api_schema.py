"""The OpenAPI document as the API behaves. Every error leaves in one shape
(`ErrorOut`, `{"detail": "..."}`), 422 included: the validation handler in `app.py`
writes one sentence, not FastAPI's list (`HTTPValidationError`), so the document says
that. Which errors an operation can give follows from what it takes, so routes added
later are documented without a line of their own."""

from __future__ import annotations

import json
from typing import Any

from fastapi import FastAPI

from grading_app.deps import ErrorOut

ERROR_DESCRIPTIONS = {
    400: "The request cannot be carried out as sent; the message says why",
    401: "No credentials, or not valid ones: send `Authorization: Bearer <token>` or sign in",
    403: "Signed in, but not allowed: an administrator's action, a view-only share, a "
    "write with the session cookie but without its X-CSRF-Token, or a cross-site request",
    404: "No such item (or an item the request names does not exist)",
    409: "The item's state does not allow this now; the message names the state",
    413: "The request body is over the size limit; the message gives it",
    422: "A parameter or field is invalid (text holding a NUL character or an unpaired "
    "surrogate included); the message names it and says why",
    503: "The database is unreachable or busy; nothing was saved, try again",
}
_ERROR_REF = {"$ref": f"#/components/schemas/{ErrorOut.__name__}"}
_FASTAPI_VALIDATION_SCHEMAS = ("HTTPValidationError", "ValidationError")
_FORM_MEDIA = {"multipart/form-data", "application/x-www-form-urlencoded"}
_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}


# Operations open without an account (everything else needs one).
PUBLIC_PATHS = frozenset({"/api/auth/setup", "/api/auth/sign-in", "/health"})
SECURITY_SCHEMES = {
    "accessToken": {
        "type": "http",
        "scheme": "bearer",
        "description": "A personal access token (POST /api/tokens, or `grading-app tokens "
        "create USERNAME`)",
    },
    "sessionCookie": {
        "type": "apiKey",
        "in": "cookie",
        "name": "grading_session",
        "description": "Set by POST /api/auth/sign-in; writes also need the X-CSRF-Token "
        "header it answers",
    },
}


def error_codes(path: str, method: str, operation: dict[str, Any]) -> list[int]:
    # 400, 422 (the request guard checks every query) and 503 can come from anywhere.
    codes = {400, 422, 503}
    if path not in PUBLIC_PATHS:
        codes.update({401, 403})
    takes_body = "requestBody" in operation
    if "{" in path or takes_body:  # an id in the path, or one named in the body
        codes.add(404)
    if method != "get":
        codes.add(409)
    if takes_body:
        codes.add(413)
    return sorted(codes)


def _without_null(field: dict[str, Any]) -> dict[str, Any]:
    options = [o for o in field.get("anyOf", []) if o.get("type") != "null"]
    if len(options) != 1 or len(field["anyOf"]) != 2:
        return field
    return {**options[0], **{k: v for k, v in field.items() if k != "anyOf"}}


def no_null_outside_json(schema: dict[str, Any]) -> None:
    """A query parameter or a form field is sent or left out, never null: FastAPI
    writes an optional one as `anyOf: [X, null]`, which tells a client it may send the
    text "null"."""
    components = schema.get("components", {}).get("schemas", {})
    for item in schema.get("paths", {}).values():
        for operation in item.values():
            if not isinstance(operation, dict):
                continue
            for parameter in operation.get("parameters", []):
                parameter["schema"] = _without_null(parameter.get("schema", {}))
            content = (operation.get("requestBody") or {}).get("content", {})
            for media, body in content.items():
                if media not in _FORM_MEDIA:
                    continue
                ref = body.get("schema", {}).get("$ref", "")
                form = components.get(ref.rsplit("/", 1)[-1], body.get("schema", {}))
                for name, field in form.get("properties", {}).items():
                    form["properties"][name] = _without_null(field)


def document_errors(schema: dict[str, Any]) -> dict[str, Any]:
    schema.setdefault("components", {})["securitySchemes"] = SECURITY_SCHEMES
    components = schema["components"].setdefault("schemas", {})
    components[ErrorOut.__name__] = ErrorOut.model_json_schema(
        ref_template="#/components/schemas/{model}"
    )
    for path, item in schema.get("paths", {}).items():
        for method, operation in item.items():
            if method not in _METHODS:
                continue
            if path not in PUBLIC_PATHS:
                operation["security"] = [{"accessToken": []}, {"sessionCookie": []}]
            responses = operation.setdefault("responses", {})
            for code in error_codes(path, method, operation):
                existing = responses.get(str(code))
                if existing and code != 422 and existing.get("content"):
                    continue  # a route that documents its own body for this status
                responses[str(code)] = {
                    "description": ERROR_DESCRIPTIONS[code],
                    "content": {"application/json": {"schema": dict(_ERROR_REF)}},
                }
    text = json.dumps(schema.get("paths", {}))
    for name in _FASTAPI_VALIDATION_SCHEMAS:
        if f'"#/components/schemas/{name}"' not in text:
            components.pop(name, None)
    return schema


def install(application: FastAPI) -> None:
    """Have `application.openapi()` (and so /openapi.json and /docs) document errors."""
    build = application.openapi

    def openapi() -> dict[str, Any]:
        if application.openapi_schema is None:
            schema = document_errors(build())
            no_null_outside_json(schema)
            application.openapi_schema = schema
        return application.openapi_schema

    application.openapi = openapi  # type: ignore[method-assign]
