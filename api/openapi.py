"""The API described as an OpenAPI 3.1 document, served at GET /api/openapi.json.

Written by hand from the handlers, so it says what hookd really answers: tests/test_openapi.py
checks that it lists exactly the app's routes, and runs Schemathesis against it.

This module assembles the document and serves it. Its parts: the path items in
api/openapi_paths.py, built from api/openapi_operations.py (answers, parameters, request
bodies); the schemas in api/openapi_schemas.py, api/openapi_agent_schemas.py and
api/openapi_tool_schemas.py.
"""

from __future__ import annotations

import json

from aiohttp import web

from api.openapi_agent_schemas import AGENT, AGENT_WITH_WEBHOOK
from api.openapi_paths import PATHS as PATHS  # re-exported: the tests read the path items here
from api.openapi_schemas import (
    DELIVERY,
    ERROR,
    LAST_ERROR,
    RESULT,
    RESULT_PREVIEW,
    SOURCE,
    SOURCE_USED,
    TASK,
    TASK_STATUS,
    TASK_WITH_PAYLOAD,
    TOOL_CALL,
    Schema,
)

routes = web.RouteTableDef()

# The order of keys is the order in the served JSON.
DOCUMENT: Schema = {
    "openapi": "3.1.0",
    "info": {
        "title": "hookd",
        "version": "0.1.0",
        "description": "Trigger LLM agents from webhooks. Every refusal is"
        ' {"success": false, "message": "…"}; the admin API needs Authorization: Bearer <admin key>.',
    },
    "paths": PATHS,
    "components": {
        "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer"}},
        "schemas": {
            "Agent": AGENT,
            "AgentWithWebhook": AGENT_WITH_WEBHOOK,
            "Result": RESULT,
            "ResultPreview": RESULT_PREVIEW,
            "LastError": LAST_ERROR,
            "TaskStatus": TASK_STATUS,
            "Task": TASK,
            "TaskWithPayload": TASK_WITH_PAYLOAD,
            "Delivery": DELIVERY,
            "Source": SOURCE,
            "SourceUsed": SOURCE_USED,
            "Error": ERROR,
            "ToolCall": TOOL_CALL,
        },
    },
}

_DOCUMENT_JSON = json.dumps(DOCUMENT, ensure_ascii=False, indent=1).encode()


@routes.get("/api/openapi.json")
async def openapi_document(request: web.Request) -> web.Response:
    return web.Response(body=_DOCUMENT_JSON, content_type="application/json", charset="utf-8")
