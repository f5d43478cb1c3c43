"""OpenAPI path items for /jobs (via `jacscale_openapi_paths`).

Scheduled walkers and functions have no paths of their own: the DYNAMIC ones
appear here, as the values `walker_or_function` accepts.
"""

from __future__ import annotations

from typing import Any

from jacscale_core.program import Endpoint

TAG = "Scheduler"
RESPONSES = "#/components/responses/"
SCHEMAS = "#/components/schemas/"
BEARER: list[dict[str, list[str]]] = [{"bearerAuth": []}]
_STR = {"type": "string"}
_NUM_OR_NULL = {"type": ["number", "null"]}
_STR_OR_NULL = {"type": ["string", "null"]}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": RESPONSES + name}


def _error(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": SCHEMAS + "ErrorEnvelope"}}},
    }


JOB_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "job_id": _STR,
        "walker_or_function": _STR,
        "kind": {"enum": ["walker", "function"]},
        "static": {"type": "boolean"},
        "name": {"type": "string", "description": "= walker_or_function (jac-scale's name)"},
        "is_walker": {"type": "boolean"},
        "created_by": {"type": "string", "description": "The owner's user id"},
        "trigger": {"enum": ["interval", "cron", "date"]},
        "interval": _NUM_OR_NULL,
        "cron": _STR_OR_NULL,
        "date": _STR_OR_NULL,
        "args": {"type": "object"},
        "status": {"enum": ["active", "completed"]},
        "created_at": _STR_OR_NULL,
        "updated_at": _STR_OR_NULL,
        "next_run_at": _STR_OR_NULL,
        "last_run_at": _STR_OR_NULL,
        "last_status": {"type": ["string", "null"], "enum": ["succeeded", "failed", None]},
        "last_error": _STR_OR_NULL,
        "run_count": {"type": "integer"},
    },
}


def _envelope(data: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {
            "ok": {"const": True},
            "type": {"const": "response"},
            "data": data,
            "error": {"type": "null"},
            "meta": {"$ref": SCHEMAS + "Meta"},
        },
    }


def _ok(description: str, data: dict[str, Any]) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": _envelope(data)}},
    }


def _trigger_properties() -> dict[str, Any]:
    return {
        "trigger": {"enum": ["interval", "cron", "date"],
                    "description": "Every `interval` seconds, on a 5-field `cron` (UTC), "
                                   "or once at `date`."},
        "interval": {"type": "number", "exclusiveMinimum": 0,
                     "description": "Seconds between fires (trigger `interval`)."},
        "cron": {"type": "string", "description": "5-field cron expression in UTC, e.g. `0 9 * * *`."},
        "date": {"type": "string", "format": "date-time",
                 "description": "ISO-8601 date-time in the future; no zone means UTC."},
        "args": {"type": "object",
                 "description": "Walker fields or function arguments passed on every fire."},
    }  # fmt: skip


def _body(names: list[str], create: bool) -> dict[str, Any]:
    props = _trigger_properties()
    required = ["trigger"]
    if create:
        target: dict[str, Any] = {"type": "string", "description": "A walker or function marked "
                                  "@schedule(trigger=ScheduleTrigger.DYNAMIC)."}  # fmt: skip
        if names:
            target["enum"] = names
        props = {"walker_or_function": target, **props}
        required = ["walker_or_function", "trigger"]
    return {
        "required": True,
        "content": {"application/json": {"schema": {
            "type": "object", "properties": props, "required": required,
            "additionalProperties": False,
        }}},
    }  # fmt: skip


_JOB_ID = {"name": "job_id", "in": "path", "required": True, "schema": _STR}
_NOT_FOUND = _error("NOT_FOUND: no such job among yours")


def job_paths(dynamic: list[Endpoint]) -> dict[str, Any]:
    """The /jobs path items; `dynamic` are the targets POST /jobs accepts."""
    names = sorted(e.name for e in dynamic)
    common = {"401": _ref("Unauthorized"), "422": _ref("ValidationError")}
    return {
        "/jobs": {
            "post": {
                "tags": [TAG], "summary": "Schedule a walker or function",
                "description": "Runs it as you, on your root, on the trigger given.",
                "operationId": "jobs_create", "security": BEARER,
                "requestBody": _body(names, create=True),
                "responses": {
                    "201": _ok("The new job", JOB_SCHEMA),
                    "400": _error("BAD_REQUEST: the target is not a DYNAMIC scheduled one"),
                    "404": _error("NOT_FOUND: no walker or function of that name"),
                    "409": _error("CONFLICT: you have the most jobs allowed"),
                    "415": _ref("UnsupportedMediaType"), **common,
                },
            },
            "get": {
                "tags": [TAG], "summary": "List your jobs", "operationId": "jobs_list",
                "security": BEARER,
                "parameters": [
                    {"name": "limit", "in": "query", "required": False,
                     "schema": {"type": "integer", "minimum": 1, "maximum": 500, "default": 50}},
                    {"name": "offset", "in": "query", "required": False,
                     "schema": {"type": "integer", "minimum": 0, "default": 0}},
                ],
                "responses": {
                    "200": _ok("A page of your jobs", {"type": "object", "properties": {
                        "jobs": {"type": "array", "items": JOB_SCHEMA},
                        "count": {"type": "integer"}, "total": {"type": "integer"},
                        "limit": {"type": "integer"}, "offset": {"type": "integer"},
                    }}),
                    **common,
                },
            },
        },
        "/jobs/{job_id}": {
            "get": {
                "tags": [TAG], "summary": "One of your jobs", "operationId": "jobs_get",
                "security": BEARER, "parameters": [_JOB_ID],
                "responses": {"200": _ok("The job", JOB_SCHEMA),
                              "401": _ref("Unauthorized"), "404": _NOT_FOUND},
            },
            "put": {
                "tags": [TAG], "summary": "Change a job's trigger (and arguments)",
                "operationId": "jobs_update", "security": BEARER, "parameters": [_JOB_ID],
                "requestBody": _body(names, create=False),
                "responses": {"200": _ok("The changed job", JOB_SCHEMA),
                              "404": _NOT_FOUND, "415": _ref("UnsupportedMediaType"), **common},
            },
            "delete": {
                "tags": [TAG], "summary": "Delete a job", "operationId": "jobs_delete",
                "security": BEARER, "parameters": [_JOB_ID],
                "responses": {
                    "200": _ok("Deleted", {"type": "object", "properties": {
                        "deleted": {"const": True}, "job_id": _STR}}),
                    "401": _ref("Unauthorized"), "404": _NOT_FOUND,
                },
            },
        },
    }  # fmt: skip
