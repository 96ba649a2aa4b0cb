"""The OpenAPI document's schemas for tasks, results, deliveries, knowledge sources and errors.

Also the building blocks every part of the document uses: Schema, ids, times, closed objects
and $refs. The agent's schemas are in api/openapi_agent_schemas.py; api/openapi.py lists them
all under components/schemas.
"""

from __future__ import annotations

from typing import Any

from agents.knowledge import FORMATS, MAX_SOURCE_NAME_CHARS
from agents.tools.calls import OUTPUT_EXCERPT_CHARS
from tasks.store import DELIVERY_STATUSES, STATUSES

Schema = dict[str, Any]

# Ids are UUIDv7, always written in lower case.
UUID: Schema = {
    "type": "string",
    "format": "uuid",
    "pattern": "^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$",
}
TIME: Schema = {"type": "string", "format": "date-time", "description": "UTC, to the millisecond."}
TIME_OR_NULL: Schema = {"type": ["string", "null"], "format": "date-time"}

# Whitespace as Python means it (str.strip(), str.split(), \s in re): a name must hold something else.
WHITESPACE = (
    "\\t\\n\\x0b\\x0c\\r\\x1c-\\x1f \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000"
)
NOT_BLANK = f"[^{WHITESPACE}]"
# A source's text: something to index (not only whitespace), and no NUL (agents/knowledge.py).
INDEXABLE_TEXT = f"^[{WHITESPACE}]*[^\\x00{WHITESPACE}][^\\x00]*$"


def closed_object(properties: dict[str, Schema], required: tuple[str, ...] | None = None) -> Schema:
    """A closed object: these properties, all required unless `required` says otherwise."""
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties if required is None else required),
        "additionalProperties": False,
    }


def ref(name: str) -> Schema:
    """A reference to one of the schemas api/openapi.py names under components/schemas."""
    return {"$ref": f"#/components/schemas/{name}"}


# -- knowledge ---------------------------------------------------------------------------

_CONTROL = "\\x00-\\x08\\x0e-\\x1b\\x7f"  # control characters that are not whitespace
SOURCE_NAME: Schema = {
    "type": "string",
    "maxLength": MAX_SOURCE_NAME_CHARS,
    "pattern": f"^[{WHITESPACE}]*[^{_CONTROL}{WHITESPACE}][^{_CONTROL}]*$",
    "description": "What the model sees the source called: not blank, no control characters other"
    " than whitespace, whose runs become one space.",
}
SOURCE: Schema = closed_object(
    {
        "id": UUID,
        "name": {"type": "string", "minLength": 1, "maxLength": MAX_SOURCE_NAME_CHARS},
        "format": {"enum": list(FORMATS)},
        "chunks": {"type": "integer", "minimum": 1},
        "bytes": {"type": "integer", "minimum": 1, "description": "The uploaded text's size in UTF-8."},
        "created_at": TIME,
    }
)
SOURCE_USED: Schema = closed_object(
    {
        "source": closed_object({"id": UUID, "name": {"type": "string"}}),
        "chunk": {"type": "integer", "minimum": 0, "description": "The chunk's place in its source, from 0."},
        "score": {"type": "number", "description": "BM25 for the user message: higher fits better."},
    }
)

# -- tasks -------------------------------------------------------------------------------

TOOL_CALL: Schema = closed_object(
    {
        "step": {"type": "integer", "minimum": 1, "description": "The model turn that asked for it."},
        "tool": {"type": "string"},
        "arguments": {"type": "object"},
        "output": {
            "type": ["string", "null"],
            "description": f"Its first {OUTPUT_EXCERPT_CHARS} characters; null if the call failed.",
        },
        "error": {"type": ["string", "null"], "description": "What went wrong; the model was told."},
        "duration_s": {"type": "number", "minimum": 0},
        "replayed": {
            "type": "boolean",
            "description": "The output came from an earlier attempt's journal; the tool was not called again.",
        },
    }
)
_ERROR_FIELDS: dict[str, Schema] = {
    "error": {"type": "string", "description": "For a human."},
    "type": {
        "type": "string",
        "description": "llm_http_error, llm_unreachable, llm_bad_response, timeout,"
        " max_steps_exceeded, schema_mismatch, config_error, mcp_unavailable, cancelled, interrupted"
        " or internal_error.",
    },
}
RESULT: Schema = {
    "description": "null until the task is final.",
    "oneOf": [
        {"type": "null"},
        closed_object(
            {
                "answer": {"type": "string", "description": "With a json_schema: the answer as JSON text."},
                "model": {"type": "string"},
                "usage": {"type": "object", "description": "The provider's token counts, summed over turns."},
                "tool_calls": {
                    "type": "array",
                    "items": TOOL_CALL,
                    "description": "Only for an agent with tools: every call, in order.",
                },
                "structured": {"type": "object", "description": "Only for an agent with a json_schema."},
                "sources": {
                    "type": "array",
                    "items": ref("SourceUsed"),
                    "description": "Only for an agent with sources: the chunks put in the prompt,"
                    " best first; the model cites them as [1], [2], ….",
                },
            },
            required=("answer", "model", "usage"),
        ),
        closed_object(
            _ERROR_FIELDS
            | {
                "tool_calls": {
                    "type": "array",
                    "items": TOOL_CALL,
                    "description": "Only when the failed attempt had made tool calls: the ones it"
                    " finished, in order.",
                },
                "tool_calls_dropped": {
                    "type": "integer",
                    "minimum": 1,
                    "description": "Instead of tool_calls, when they would have made the result"
                    " larger than HOOKD_MAX_RESULT_BYTES: how many there were.",
                },
            },
            required=("error", "type"),
        ),
    ],
}
LAST_ERROR: Schema = {
    "description": "The failed attempt behind a RETRY: a failed result's error and type.",
    "oneOf": [{"type": "null"}, closed_object(_ERROR_FIELDS)],
}
TASK_STATUS_FIELDS: dict[str, Schema] = {
    "status": {"enum": list(STATUSES)},
    "result": ref("Result"),
    "task_id": UUID,
    "agent_id": {"oneOf": [UUID, {"type": "null"}], "description": "null once the agent is deleted."},
    "attempts": {"type": "integer", "minimum": 0},
    "max_attempts": {"type": "integer", "minimum": 1},
    "created_at": TIME,
    "started_at": TIME_OR_NULL,
    "finished_at": TIME_OR_NULL,
}
TASK_STATUS: Schema = closed_object(
    TASK_STATUS_FIELDS
    | {
        "last_error": ref("LastError") | {"description": "Only while the status is RETRY."},
        "next_attempt_at": TIME | {"description": "Only while the status is RETRY."},
    },
    required=tuple(TASK_STATUS_FIELDS),
)
RESULT_PREVIEW: Schema = closed_object(
    {
        "type": {"type": "string"},
        "model": {"type": "string"},
        "error": {"type": "string", "description": "Its first 500 characters, then …"},
        "answer": {"type": "string", "description": "Its first 500 characters, then …"},
    }
) | {"description": "A result over 2 KiB as JSON, in a list: what it holds of these fields."}
TASK: Schema = closed_object(
    TASK_STATUS_FIELDS
    | {
        "result": {"anyOf": [ref("Result"), ref("ResultPreview")]},
        "result_truncated": {
            "type": "boolean",
            "description": "In a list, true when `result` is a preview of a result over 2 KiB;"
            " GET /api/tasks/{id} has the whole of it (and says false).",
        },
        "id": UUID,
        "last_error": ref("LastError"),
        "next_attempt_at": TIME,
    },
    required=(*TASK_STATUS_FIELDS, "id", "last_error", "result_truncated"),
)
DELIVERY: Schema = closed_object(
    {
        "id": UUID | {"description": "Sent as webhook-id, the same on every attempt."},
        "task_id": UUID,
        "url": {"type": "string"},
        "status": {"enum": list(DELIVERY_STATUSES)},
        "attempts": {"type": "integer", "minimum": 0},
        "next_attempt_at": TIME_OR_NULL | {"description": "Set while pending."},
        "last_attempt_at": TIME_OR_NULL,
        "last_status_code": {"type": ["integer", "null"]},
        "last_error": {"type": ["string", "null"]},
        "created_at": TIME,
        "delivered_at": TIME_OR_NULL,
    }
)
DELIVERIES: Schema = {"type": "array", "items": ref("Delivery")}
TASK_WITH_PAYLOAD: Schema = TASK | {
    "properties": TASK["properties"]
    | {
        "payload": {
            "type": ["object", "string"],
            "description": "The webhook's payload, as accepted; its JSON text for a payload an"
            " older hookd stored nested deeper than 32 levels.",
        },
        "deliveries": DELIVERIES | {"description": "Its callbacks, oldest first."},
    },
    "required": [*TASK["required"], "payload", "deliveries"],
}

ERROR: Schema = closed_object({"success": {"const": False}, "message": {"type": "string", "minLength": 1}})
