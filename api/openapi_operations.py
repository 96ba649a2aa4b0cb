"""The parts of the OpenAPI document's operations: answers, parameters and request bodies.

Every error answer carries the one error body (components/schemas/Error). The webhook's
headers, answer and refusals are here too; api/openapi_paths.py puts the parts together.
"""

from __future__ import annotations

from agents.knowledge import FORMATS, MAX_SOURCE_BYTES
from agents.signatures import GITHUB_HEADER, TIMESTAMP_TOLERANCE_S
from api.ingress import IDEMPOTENCY_HEADERS, MAX_KEY_CHARS
from api.openapi_agent_schemas import agent_fields
from api.openapi_schemas import (
    INDEXABLE_TEXT,
    SOURCE_NAME,
    TASK_STATUS_FIELDS,
    UUID,
    Schema,
    closed_object,
    ref,
)
from tasks.store import STATUSES

# -- answers -----------------------------------------------------------------------------


def json_response(schema: Schema, description: str) -> Schema:
    """An answer whose body is JSON of this schema."""
    return {"description": description, "content": {"application/json": {"schema": schema}}}


_ERROR_MEANING = {
    "400": "The request is malformed; the message says how. (A request line or header over 8 KB is"
    " refused as plain text by the HTTP parser.)",
    "401": "No valid `Authorization: Bearer <admin key>`.",
    "404": "Nothing has this id or token.",
    "409": "The request clashes with the current state.",
    "408": "The body did not arrive within HOOKD_BODY_TIMEOUT_S; nothing was stored.",
    "413": "The body is larger than HOOKD_MAX_BODY_BYTES.",
    "422": "The idempotency key was used with a different body in the last 24 hours; nothing was stored.",
    "429": "Too many webhooks; nothing was stored. Send it again after Retry-After seconds.",
    "503": "The database cannot take writes (disk full, a read-only file, busy past its timeout, or"
    " hookd is stopping); nothing was stored. Send it again later.",
}
_ERROR_HEADERS = {
    "401": {"WWW-Authenticate": {"schema": {"const": "Bearer"}, "required": True}},
    "429": {"Retry-After": {"schema": {"type": "string", "pattern": "^[0-9]+$"}, "required": True}},
}


def responses(ok_status: str, ok: Schema, *errors: str, **meanings: str) -> dict[str, Schema]:
    """The success answer and the error answers, every error with the one error body.

    An error's usual meaning is replaced by a keyword argument named after it: e409="…".
    """
    answers = {ok_status: ok}
    for status in errors:
        answer = json_response(ref("Error"), meanings.get(f"e{status}", _ERROR_MEANING[status]))
        if status == "400":
            # aiohttp's HTTP parser refuses a request line or header over 8 KB before any
            # handler runs, in plain text.
            answer["content"]["text/plain"] = {"schema": {"type": "string"}}
        if status in _ERROR_HEADERS:
            answer["headers"] = _ERROR_HEADERS[status]
        answers[status] = answer
    return answers


def linked(answer: Schema, to: tuple[str, ...], **parameters: str) -> Schema:
    """The answer with OpenAPI links: the operations `to` take these parameters from it."""
    links = {operation: {"operationId": operation, "parameters": parameters} for operation in to}
    return answer | {"links": links}


# What an agent's id leads to, and a task's.
AGENT_OPERATIONS = (
    "getAgent", "updateAgent", "deleteAgent", "rotateWebhook", "rotateCallbackSecret", "addSource",
    "listSources",
)  # fmt: skip
TASK_OPERATIONS = ("taskStatus", "taskEvents", "getTask", "listDeliveries", "cancelTask")

# -- parameters --------------------------------------------------------------------------


def _path_id(name: str, what: str) -> Schema:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": f"The {what}'s id; anything else is 404.",
        "schema": {"type": "string", "format": "uuid"},
    }


AGENT_ID = _path_id("agent_id", "agent")
TASK_ID = _path_id("task_id", "task")
SOURCE_ID = _path_id("source_id", "source")
UUID_OR_EMPTY: Schema = {"type": "string", "anyOf": [{"format": "uuid"}, {"maxLength": 0}]}
_ANY_STATUS = "|".join("".join(f"[{c}{c.lower()}]" for c in status) for status in STATUSES)
STATUS_LIST = f"^\\s*({_ANY_STATUS})?\\s*(,\\s*({_ANY_STATUS})?\\s*)*$"

# -- the webhook -------------------------------------------------------------------------

TOKEN: Schema = {
    "name": "token",
    "in": "path",
    "required": True,
    "description": "The agent's webhook token: its secret.",
    "schema": {"type": "string", "pattern": "^[A-Za-z0-9_-]{43}$"},
}
PREFER: Schema = {
    "name": "Prefer",
    "in": "header",
    "description": "RFC 7240. wait=N (0 to 60; bare wait is 60): answer with the final status if the"
    " run ends within N seconds. Other preferences are ignored.",
    "schema": {"type": "string"},
}


def _header(name: str, description: str, schema: Schema | None = None) -> Schema:
    return {
        "name": name,
        "in": "header",
        "required": False,
        "description": description,
        "schema": schema or {"type": "string"},
    }


_KEY_SCHEMA: Schema = {"type": "string", "pattern": f"^[\\x20-\\x7e]{{1,{MAX_KEY_CHARS}}}$"}
_KEY_RULES = (
    "Repeated for the same agent within 24 hours, the answer is the first request's task_id with"
    " Idempotent-Replayed: true, and nothing is stored; with another body (compared by the SHA-256"
    " of the raw body; of a GET, of its query string; of a multipart form, of its fields as"
    " stored) it is refused with 422."
)
# Each is checked whenever it is present, the one that counts or not: a malformed key is a
# sender's bug, and ignoring it would silently lose the idempotency the sender asked for.
_KEY_CHECKED = f" 1 to {MAX_KEY_CHARS} printable ASCII characters whenever present, else 400."
IDEMPOTENCY_PARAMETERS = [
    _header(
        IDEMPOTENCY_HEADERS[0], f"The request's idempotency key. {_KEY_RULES}{_KEY_CHECKED}", _KEY_SCHEMA
    ),
    _header(
        IDEMPOTENCY_HEADERS[1],
        "Standard Webhooks' message id (covered by its signature): the idempotency key when there"
        f" is no {IDEMPOTENCY_HEADERS[0]}, and the only one for an agent that requires Standard"
        f" Webhooks signatures.{_KEY_CHECKED}",
        _KEY_SCHEMA,
    ),
    _header(
        IDEMPOTENCY_HEADERS[2],
        "GitHub's delivery id (a redelivery keeps it): the idempotency key when neither header"
        f" above is present.{_KEY_CHECKED}",
        _KEY_SCHEMA,
    ),
]
SIGNATURE_PARAMETERS = [
    _header(
        "webhook-timestamp",
        "Standard Webhooks (for an agent that requires them): Unix seconds, at most"
        f" {TIMESTAMP_TOLERANCE_S} s from the server's clock either way.",
    ),
    _header(
        "webhook-signature",
        "Standard Webhooks: space-separated 'v1,<base64 HMAC-SHA256>' signatures of"
        " '{webhook-id}.{webhook-timestamp}.{raw body}'; any one valid signature is enough.",
    ),
    _header(
        GITHUB_HEADER, "GitHub (for an agent that requires it): 'sha256=<hex HMAC-SHA256 of the raw body>'."
    ),
]
WEBHOOK_ACCEPTED = json_response(
    {
        "anyOf": [
            closed_object({"success": {"const": True}, "task_id": UUID}),
            closed_object(
                TASK_STATUS_FIELDS | {"success": {"const": True}, "status": {"enum": ["SUCCESS", "FAILURE"]}}
            ),
        ]
    },
    "The task is committed; poll GET /api/task_status?task_id=…. Sent with Prefer: wait=N and"
    " the run ended within N seconds: its final status instead, as task_status gives it. With"
    " Idempotent-Replayed: the task an earlier request with the same idempotency key made;"
    " nothing new was stored.",
)
WEBHOOK_ACCEPTED["headers"] = {
    "Preference-Applied": {
        "description": "wait=N when the request's Prefer: wait=N was honoured.",
        "schema": {"type": "string", "pattern": "^wait=[0-9]+$"},
    },
    "Idempotent-Replayed": {
        "description": "Present on a repeat of an earlier request's idempotency key.",
        "schema": {"const": "true"},
    },
}
WEBHOOK_REFUSALS = {
    "e400": "The body or query is malformed, an idempotency header is unusable, Prefer: wait=N is"
    " not 0 to 60, or the agent requires signatures and the body is multipart/form-data (a"
    " signature covers the raw body, which hookd does not keep for a multipart form); the"
    " message says how, and nothing was stored.",
    "e401": "The agent requires a signature, and this one is missing, wrong or too old (the"
    " message names the header). Nothing was stored.",
    "e404": "No agent has this token (unknown, or rotated away).",
    "e409": "The agent is paused.",
}


# -- request bodies ----------------------------------------------------------------------

SOURCE_FORMAT: Schema = {
    "enum": [*FORMATS, "", None],
    "description": "Left out, empty or null: from the extension (.txt, .md, .html, …) of the file's"
    " name or the source's name, else from the file's content type, else text.",
}
_SOMETHING_TO_INDEX = "Not only whitespace (nor HTML whose visible text is), and no NUL characters; else 400."
SOURCE_TEXT: Schema = {
    "type": "string",
    "pattern": INDEXABLE_TEXT,
    "description": f"Text, Markdown or HTML. {_SOMETHING_TO_INDEX}",
}
# hookd indexes text: a file part is UTF-8 text (a binary file, a PDF or an image, is a 400),
# so it is described as text, not as format: binary (OpenAPI 3.1: contentMediaType). The part's
# own Content-Type is not pinned by an `encoding`: any is taken, and these name a format.
SOURCE_FILE_TYPES = "text/plain, text/markdown, text/html or application/xhtml+xml"
SOURCE_UPLOAD: Schema = {
    "required": True,
    "description": "A source as JSON, or a file as multipart/form-data; at most"
    f" {MAX_SOURCE_BYTES // 2**20} MiB of UTF-8 text.",
    "content": {
        "application/json": {
            "schema": closed_object(
                {"name": SOURCE_NAME, "content": SOURCE_TEXT, "format": SOURCE_FORMAT},
                required=("name", "content"),
            )
        },
        "multipart/form-data": {
            "schema": closed_object(
                {
                    "file": SOURCE_TEXT
                    | {
                        "contentMediaType": "text/plain",
                        "description": "The file (or a plain field): UTF-8 text, Markdown or HTML;"
                        f" a binary file (a PDF, an image) is a 400. {_SOMETHING_TO_INDEX} A file"
                        f" part's Content-Type {SOURCE_FILE_TYPES} names its format when neither"
                        " `format` nor a name's extension does.",
                    },
                    "name": SOURCE_NAME
                    | {
                        "description": SOURCE_NAME["description"] + " May be left out when the file"
                        " part has a filename: the source is then called that."
                    },
                    "format": SOURCE_FORMAT | {"enum": [*FORMATS, ""]},
                },
                # `name` may be left out of a file part with a filename, which a schema cannot
                # say; required here, the document says what any upload may do.
                required=("file", "name"),
            ),
        },
    },
}


def agent_body(*, creating: bool) -> Schema:
    """The request body creating an agent (name required) or changing one (every field optional)."""
    body = closed_object(agent_fields(), required=("name",) if creating else ())
    return {"required": creating, "content": {"application/json": {"schema": body}}}
