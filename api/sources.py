"""The admin API for an agent's knowledge: upload, list and delete its sources."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from agents.knowledge import MAX_SOURCE_BYTES, PreparedSource, prepare_upload
from api.app_keys import store_key
from api.edge import body_deadline, parse_json_object, require_admin
from errors import InvalidInput, NotFound, PayloadTooLarge
from tasks.ids import is_uuid

routes = web.RouteTableDef()

# The request may be larger than the text it carries: JSON escapes, multipart headers.
MAX_UPLOAD_BYTES = 2 * MAX_SOURCE_BYTES
JSON_FIELDS = ("name", "content", "format")
FORM_FIELDS = ("file", "name", "format")


@dataclass(frozen=True)
class Upload:
    name: str | None
    filename: str | None
    format: str | None
    content_type: str | None
    content: bytes | str


def _id(request: web.Request, key: str, what: str) -> str:
    value = request.match_info[key]
    if not is_uuid(value):
        raise NotFound(f"No {what} has this id.")
    return value.lower()


def _optional_text(fields: dict[str, Any], key: str) -> str | None:
    value = fields.get(key)
    if value is not None and not isinstance(value, str):
        raise InvalidInput(f"'{key}' must be a string.")
    return value or None


def _too_large() -> PayloadTooLarge:
    return PayloadTooLarge(
        f"The upload is larger than {MAX_UPLOAD_BYTES} bytes; a source is at most"
        f" {MAX_SOURCE_BYTES} bytes of text. Split it into several sources."
    )


async def _read_form(request: web.Request) -> Upload:
    """multipart/form-data: a `file` part, and optional `name` and `format` fields."""
    try:
        form = await request.post()
    except (ValueError, LookupError, HttpProcessingError, web.RequestPayloadError) as exc:
        raise InvalidInput(f"The multipart form could not be read: {exc}.") from None
    try:
        unknown = sorted(set(form) - set(FORM_FIELDS))
        if unknown:
            raise InvalidInput(f"Unknown form field '{unknown[0][:100]}'; send {', '.join(FORM_FIELDS)}.")
        if len(form.getall("file", [])) != 1:
            raise InvalidInput("Send exactly one 'file' part: the source's text, Markdown or HTML.")
        file = form["file"]
        texts = {key: form.get(key) for key in ("name", "format")}
        if any(not isinstance(v, str | None) for v in texts.values()):
            raise InvalidInput("'name' and 'format' must be plain form fields, not files.")
        filename: str | None = None
        content_type: str | None = None
        if isinstance(file, web.FileField):
            content: bytes | str = await asyncio.to_thread(file.file.read)
            filename, content_type = file.filename, file.content_type
        else:  # a plain field rather than a file: its text (str), or bytes of another type
            content = file if isinstance(file, str) else bytes(file)
        return Upload(
            _optional_text(texts, "name"), filename, _optional_text(texts, "format"), content_type, content
        )
    finally:
        for value in form.values():
            if isinstance(value, web.FileField):
                value.file.close()


async def _read_upload(request: web.Request) -> Upload:
    if request.content_length is not None and request.content_length > MAX_UPLOAD_BYTES:
        raise _too_large()
    # Sources may be larger than a webhook body (HOOKD_MAX_BODY_BYTES): their own limit.
    large = request.clone(client_max_size=MAX_UPLOAD_BYTES)
    try:
        async with body_deadline(request):
            if request.content_type == "multipart/form-data":
                return await _read_form(large)
            raw = await large.read()
    except web.HTTPRequestEntityTooLarge:
        raise _too_large() from None
    except web.RequestPayloadError:  # e.g. Content-Encoding: gzip on a body that is not gzip
        raise InvalidInput("The body could not be decoded; check its Content-Encoding.") from None
    fields = parse_json_object(raw) if raw.strip() else {}
    unknown = sorted(set(fields) - set(JSON_FIELDS))
    if unknown:
        raise InvalidInput(f"Unknown field '{unknown[0][:100]}'; a source has {', '.join(JSON_FIELDS)}.")
    content = fields.get("content")
    if not isinstance(content, str):
        raise InvalidInput("'content' is required: the source's text, Markdown or HTML, as a string.")
    name = _optional_text(fields, "name")
    return Upload(name, None, _optional_text(fields, "format"), None, content)


def _prepare(upload: Upload) -> PreparedSource:
    """Check and chunk an upload (CPU-bound: run in a thread)."""
    return prepare_upload(
        upload.content,
        name=upload.name,
        filename=upload.filename,
        format_=upload.format,
        content_type=upload.content_type,
    )


@routes.post("/api/agents/{agent_id}/sources")
@require_admin
async def add_source(request: web.Request) -> web.Response:
    agent_id = _id(request, "agent_id", "agent")
    upload = await _read_upload(request)
    prepared = await asyncio.to_thread(_prepare, upload)
    source = await request.app[store_key].add_source(agent_id, prepared)
    return web.json_response(source.to_json(), status=201)


@routes.get("/api/agents/{agent_id}/sources")
@require_admin
async def list_sources(request: web.Request) -> web.Response:
    store = request.app[store_key]
    agent = await store.get_agent(_id(request, "agent_id", "agent"))
    return web.json_response({"sources": [s.to_json() for s in await store.list_sources(agent.id)]})


@routes.delete("/api/agents/{agent_id}/sources/{source_id}")
@require_admin
async def delete_source(request: web.Request) -> web.Response:
    agent_id = _id(request, "agent_id", "agent")
    source_id = _id(request, "source_id", "source")
    await request.app[store_key].delete_source(agent_id, source_id)
    return web.json_response({"deleted": True, "id": source_id})
