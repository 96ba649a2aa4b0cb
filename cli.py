"""The `hookd` command: `serve`, the admin API's operations on the database file, and `db copy`."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from agents import apply
from agents.agent import Agent, SavePolicy, validate_agent_fields
from agents.knowledge import FORMATS, MAX_SOURCE_BYTES, PreparedSource, prepare_upload
from agents.signatures import SIGNATURE_TYPES, new_secret
from agents.tokens import new_token, webhook_url
from errors import HookdError, InvalidInput, NotFound, PayloadTooLarge
from settings import Settings, SettingsError, add_setting_flags, load_settings, markdown_table
from tasks.backends import is_database_url, open_store, open_store_at
from tasks.copy import Copied, copy_database
from tasks.ids import is_uuid
from tasks.store import STATUSES, Store


def _print_json(value: Any) -> None:
    text = json.dumps(value, ensure_ascii=False, indent=2)
    try:
        text.encode(sys.stdout.encoding or "utf-8")
    except UnicodeEncodeError:  # e.g. a model's answer with an unpaired surrogate: keep it escaped
        text = json.dumps(value, indent=2)
    print(text)


def _public_base(settings: Settings) -> str:
    return settings.public_url or f"http://{settings.host}:{settings.port}"


async def _find_agent(store: Store, ref: str) -> Agent:
    """An agent by id or by name."""
    if is_uuid(ref):
        try:
            return await store.get_agent(ref.lower())
        except NotFound:
            pass
    return await store.get_agent_by_name(ref)


def _agent_fields(args: argparse.Namespace) -> dict[str, Any]:
    data: dict[str, Any] = {}
    for name in (
        "name",
        "description",
        "prompt",
        "input_template",
        "max_attempts",
        "timeout_s",
        "max_concurrency",
        "status",
        "max_steps",
        "callback_url",
        "knowledge_top_k",
    ):
        value = getattr(args, name, None)
        if value is not None:
            data[name] = value
    for name in ("tools", "json_schema"):  # given as JSON text
        text = getattr(args, name, None)
        if text is not None:
            try:
                data[name] = json.loads(text)
            except ValueError as exc:
                raise InvalidInput(
                    f"--{name.replace('_', '-')} must be JSON (null to clear): {exc}."
                ) from None
    if getattr(args, "agent_rate_limit", None) is not None:
        data["rate_limit"] = args.agent_rate_limit
    llm = {
        k: getattr(args, k)
        for k in ("provider", "model", "base_url", "api_key_env")
        if getattr(args, k, None) is not None
    }
    if llm:
        data["llm"] = llm
    kind = getattr(args, "signature", None)
    if getattr(args, "signature_secret_env", None) and kind in (None, "none"):
        raise HookdError("--signature-secret-env goes with --signature github or standard-webhooks.")
    if kind == "none":
        data["signature"] = None
    elif kind is not None:
        data["signature"] = {"type": kind, "secret": _signature_secret(kind, args.signature_secret_env)}
    return data


def _signature_secret(kind: str, env_name: str | None) -> str:
    """The secret from the environment variable named (never a flag: `ps` shows flags), else a new one."""
    if env_name is None:
        return new_secret(kind)
    secret = os.environ.get(env_name)
    if not secret:
        raise HookdError(f"The environment variable {env_name} is not set or empty; put the secret in it.")
    return secret


def _show_generated_secret(args: argparse.Namespace, fields: dict[str, Any]) -> None:
    if getattr(args, "signature", None) in (None, "none") or args.signature_secret_env:
        return
    print(f"Its new {args.signature} signing secret, shown this once (give it to the sender):")
    print(f"  {fields['signature_secret']}")


def _show_webhook(settings: Settings, agent: Agent, token: str, verb: str) -> None:
    print(f"{verb} agent '{agent.name}' ({agent.id}).")
    print("Its webhook URL, shown this once (it is the agent's secret; keep it like a password):")
    print(f"  {webhook_url(_public_base(settings), token)}")


async def agents_create(store: Store, settings: Settings, args: argparse.Namespace) -> None:
    fields = validate_agent_fields(
        _agent_fields(args),
        creating=True,
        policy=SavePolicy.of(settings),
    )
    token, token_hash = new_token()
    agent = await store.create_agent(fields, token_hash)
    _show_webhook(settings, agent, token, "Created")
    _show_generated_secret(args, fields)


async def agents_list(store: Store, settings: Settings, args: argparse.Namespace) -> None:
    agents = await store.list_agents()
    if args.json:
        _print_json([a.to_json() for a in agents])
        return
    if not agents:
        print("No agents yet. Create one: hookd agents create --name NAME --prompt PROMPT")
        return
    print(f"{'ID':36}  {'STATUS':6}  {'PROVIDER':9}  NAME")
    for a in agents:
        print(f"{a.id:36}  {a.status:6}  {a.llm.get('provider', '(default)'):9}  {a.name}")


async def agents_show(store: Store, settings: Settings, args: argparse.Namespace) -> None:
    _print_json((await _find_agent(store, args.agent)).to_json())


async def agents_update(store: Store, settings: Settings, args: argparse.Namespace) -> None:
    agent = await _find_agent(store, args.agent)
    fields = validate_agent_fields(
        _agent_fields(args),
        creating=False,
        policy=SavePolicy.of(settings),
    )
    if "llm" in fields:  # flags change single llm keys; keep the others
        fields["llm"] = agent.llm | fields["llm"]
    _print_json((await store.update_agent(agent.id, fields)).to_json())
    _show_generated_secret(args, fields)


async def agents_delete(store: Store, settings: Settings, args: argparse.Namespace) -> None:
    agent = await _find_agent(store, args.agent)
    cancelled = await store.delete_agent(agent.id)
    print(f"Deleted agent '{agent.name}' ({agent.id}); {len(cancelled)} unfinished tasks cancelled.")


async def agents_rotate_token(store: Store, settings: Settings, args: argparse.Namespace) -> None:
    agent = await _find_agent(store, args.agent)
    token, token_hash = new_token()
    agent = await store.set_agent_token(agent.id, token_hash)
    _show_webhook(settings, agent, token, "New token for")
    print("The old webhook URL no longer works.")


async def agents_apply(store: Store, settings: Settings, args: argparse.Namespace) -> None:
    declared = apply.read_agents_file(Path(args.file), args.file)
    steps = apply.plan(
        args.file,
        declared,
        await store.list_agents(),
        policy=SavePolicy.of(settings),
        environ=os.environ,
    )
    outcomes = None if args.dry_run else await apply.apply(store, steps)
    base = _public_base(settings)
    print("\n".join(apply.report(args.file, steps, outcomes, lambda token: webhook_url(base, token))))


def _prepare_file(args: argparse.Namespace) -> PreparedSource:
    path = Path(args.file).expanduser()
    try:
        if path.stat().st_size > MAX_SOURCE_BYTES:
            raise PayloadTooLarge(f"{path} is larger than a source may be ({MAX_SOURCE_BYTES} bytes).")
        raw = path.read_bytes()
    except OSError as exc:
        raise InvalidInput(f"Cannot read {path}: {exc.strerror or exc}.") from None
    return prepare_upload(raw, name=args.name, filename=path.name, format_=args.format, content_type=None)


async def sources_add(store: Store, settings: Settings, args: argparse.Namespace) -> None:
    agent = await _find_agent(store, args.agent)
    prepared = await asyncio.to_thread(_prepare_file, args)
    source = await store.add_source(agent.id, prepared)
    print(
        f"Added source '{source.name}' ({source.id}) to agent '{agent.name}':"
        f" {source.format}, {source.bytes} bytes, {source.chunks} chunk{'' if source.chunks == 1 else 's'}."
    )


async def sources_list(store: Store, settings: Settings, args: argparse.Namespace) -> None:
    agent = await _find_agent(store, args.agent)
    sources = await store.list_sources(agent.id)
    if args.json:
        _print_json([s.to_json() for s in sources])
        return
    if not sources:
        print(f"Agent '{agent.name}' has no sources. Add one: hookd agents sources add AGENT FILE")
        return
    print(f"{'ID':36}  {'FORMAT':8}  {'CHUNKS':>6}  {'BYTES':>9}  NAME")
    for s in sources:
        print(f"{s.id:36}  {s.format:8}  {s.chunks:>6}  {s.bytes:>9}  {s.name}")


async def sources_delete(store: Store, settings: Settings, args: argparse.Namespace) -> None:
    agent = await _find_agent(store, args.agent)
    if not is_uuid(args.source_id):
        raise NotFound("No source has this id.")
    await store.delete_source(agent.id, args.source_id.lower())
    print(f"Deleted source {args.source_id.lower()} of agent '{agent.name}', with its chunks.")


async def tasks_list(store: Store, settings: Settings, args: argparse.Namespace) -> None:
    agent_id = (await _find_agent(store, args.agent)).id if args.agent else None
    statuses = [s.strip().upper() for s in args.status.split(",")] if args.status else []
    unknown = [s for s in statuses if s not in STATUSES]
    if unknown:
        raise HookdError(f"Unknown status {unknown[0]}; use {', '.join(STATUSES)}.")
    tasks = await store.list_tasks(agent_id=agent_id, statuses=statuses, limit=args.limit)
    if args.json:
        _print_json([t.admin_json(with_payload=False) for t in tasks])
        return
    print(f"{'ID':36}  {'STATUS':7}  {'TRIES':5}  CREATED")
    for t in tasks:
        created = t.status_json()["created_at"]
        print(f"{t.id:36}  {t.status:7}  {t.attempts}/{t.max_attempts:<3}  {created}")


async def tasks_show(store: Store, settings: Settings, args: argparse.Namespace) -> None:
    task = await store.get_task(args.task_id.lower()) if is_uuid(args.task_id) else None
    if task is None:
        raise NotFound("No task has this id.")
    _print_json(task.admin_json(with_payload=True))


async def tasks_cancel(store: Store, settings: Settings, args: argparse.Namespace) -> None:
    if not is_uuid(args.task_id):
        raise NotFound("No task has this id.")
    task = await store.cancel(args.task_id.lower())
    print(f"Task {task.id} cancelled. (A run of it in a running hookd stops within a second or two.)")


def db_copy(settings: Settings, args: argparse.Namespace) -> None:
    # Opening a SQLite file that is not there would create it, and copy an empty database.
    if not settings.database_url and not Path(settings.db).expanduser().exists():
        raise NotFound(f"{settings.db} does not exist: there is nothing to copy. Name the file with --db.")
    source = open_store(settings.database_url, settings.db, settings.sync)
    copied = asyncio.run(copy_database(source, open_store_at(args.to, settings.sync)))
    print("\n".join(_copy_report(settings, copied, to_url=is_database_url(args.to))))


def _copy_report(settings: Settings, copied: Copied, *, to_url: bool) -> list[str]:
    """What was copied, and how to serve from the copy. Places as Store.where shows them: a
    URL's password never."""
    width = max(len(table) for table in copied.rows)
    lines = [f"Copied {copied.source} into {copied.destination}, in one transaction:"]
    lines += [f"  {table:<{width}}  {count:>12,}" for table, count in copied.rows.items()]
    lines.append(
        f"Every table holds as many rows as in the source (checked before the commit); {copied.source} is unchanged."
    )
    if not to_url:
        lines += [
            "Next, to serve from the SQLite file: stop hookd, unset HOOKD_DATABASE_URL, set",
            f"  HOOKD_DB={copied.destination}",
            "and start hookd again (hookd serve).",
        ]
        return lines
    from server import admin_key_path  # only here: the CLI's other commands never need the server

    if settings.admin_key:
        admin_key = "  HOOKD_ADMIN_KEY: keep the one set now"
    elif not settings.database_url and admin_key_path(settings).exists():
        admin_key = f"  HOOKD_ADMIN_KEY=<the key in {admin_key_path(settings).resolve()}, to keep it>"
    else:
        admin_key = "  HOOKD_ADMIN_KEY=<a key of 16 characters or more>"
    return [
        *lines,
        "Next, to serve from PostgreSQL: stop hookd, set",
        f"  HOOKD_DATABASE_URL={copied.destination}  (with its password, or put that in PGPASSWORD)",
        f"{admin_key}  (PostgreSQL requires it: there is no file to keep a generated one in)",
        "and start hookd again (hookd serve).",
    ]


Command = Callable[[Store, Settings, argparse.Namespace], Awaitable[None]]


def _add_agent_flags(parser: argparse.ArgumentParser, *, creating: bool) -> None:
    parser.add_argument("--name", required=creating, help="unique name")
    parser.add_argument("--description")
    parser.add_argument("--prompt", help="the system prompt")
    parser.add_argument("--input-template", help="e.g. 'Summarise: {{payload.text}}'")
    parser.add_argument("--provider", choices=("openai", "anthropic", "echo"))
    parser.add_argument("--model")
    parser.add_argument("--base-url", help="API root, e.g. http://127.0.0.1:11434/v1")
    parser.add_argument("--api-key-env", help="environment variable holding the API key")
    parser.add_argument("--max-attempts", type=int)
    parser.add_argument("--timeout-s", type=float)
    parser.add_argument("--max-concurrency", type=int)
    # dest differs from the name: `rate_limit` is also a setting, read from the same namespace.
    parser.add_argument("--rate-limit", dest="agent_rate_limit", help="e.g. 60/min; '' for the default")
    parser.add_argument(
        "--signature",
        choices=(*SIGNATURE_TYPES, "none"),
        help="require webhooks signed this way (none: stop requiring it); the secret is generated"
        " and shown once, unless --signature-secret-env names a variable holding it",
    )
    parser.add_argument(
        "--signature-secret-env", metavar="VAR", help="environment variable holding the secret"
    )
    parser.add_argument("--max-steps", type=int, help="model turns per run (default 8)")
    parser.add_argument("--tools", help='JSON, e.g. \'[{"type": "read_webpage"}]\'')
    parser.add_argument("--json-schema", help="JSON Schema of the answer (JSON text; null to clear)")
    parser.add_argument(
        "--callback-url", help="POST each final result here, signed (see the README); '' for none"
    )
    parser.add_argument("--knowledge-top-k", type=int, help="chunks of its sources per run; 0: none")
    if creating:
        parser.add_argument("--paused", dest="status", action="store_const", const="paused")
    else:
        parser.add_argument("--status", choices=("active", "paused"))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hookd", description="Trigger LLM agents from webhooks.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="run the server")
    add_setting_flags(serve)

    commands.add_parser("settings", help="print the configuration table (Markdown)")

    def db_command(
        group: argparse._SubParsersAction[argparse.ArgumentParser], name: str, run: Command, help: str
    ) -> argparse.ArgumentParser:
        sub = group.add_parser(name, help=help)
        sub.add_argument("--db", help="database file [env HOOKD_DB, default ./hookd.db]")
        sub.set_defaults(run=run)
        return sub

    agents = commands.add_parser("agents", help="manage agents").add_subparsers(dest="action", required=True)
    _add_agent_flags(
        db_command(agents, "create", agents_create, "create an agent; prints its webhook URL"), creating=True
    )
    db_command(agents, "list", agents_list, "list agents").add_argument("--json", action="store_true")
    db_command(agents, "show", agents_show, "show an agent").add_argument("agent", help="id or name")
    update = db_command(agents, "update", agents_update, "change an agent")
    update.add_argument("agent", help="id or name")
    _add_agent_flags(update, creating=False)
    db_command(agents, "delete", agents_delete, "delete an agent").add_argument("agent", help="id or name")
    db_command(
        agents, "rotate-token", agents_rotate_token, "issue a new webhook URL; the old one stops working"
    ).add_argument("agent", help="id or name")
    applying = db_command(
        agents, "apply", agents_apply, "create or update agents, matched by name, from a TOML file"
    )
    applying.add_argument("file", help="a TOML file of [[agent]] tables (see README: Agents as code)")
    applying.add_argument("--dry-run", action="store_true", help="show what would change; write nothing")

    sources = agents.add_parser("sources", help="manage an agent's knowledge").add_subparsers(
        dest="sources_action", required=True
    )
    adding = db_command(sources, "add", sources_add, "add a text, Markdown or HTML file to an agent")
    adding.add_argument("agent", help="id or name")
    adding.add_argument("file", help="the file to add")
    adding.add_argument("--name", help="what the model sees it called [default: the file name]")
    adding.add_argument(
        "--format", metavar="{" + ",".join(FORMATS) + "}", help="[default: from the file name]"
    )
    listing = db_command(sources, "list", sources_list, "list an agent's sources")
    listing.add_argument("agent", help="id or name")
    listing.add_argument("--json", action="store_true")
    deleting = db_command(sources, "delete", sources_delete, "delete a source and its chunks")
    deleting.add_argument("agent", help="id or name")
    deleting.add_argument("source_id")

    tasks = commands.add_parser("tasks", help="inspect and cancel tasks").add_subparsers(
        dest="action", required=True
    )
    listing = db_command(tasks, "list", tasks_list, "list tasks, newest first")
    listing.add_argument("--agent", help="id or name")
    listing.add_argument("--status", help="e.g. PENDING,RETRY")
    listing.add_argument("--limit", type=int, default=50)
    listing.add_argument("--json", action="store_true")
    db_command(tasks, "show", tasks_show, "show a task with its payload and result").add_argument("task_id")
    db_command(tasks, "cancel", tasks_cancel, "cancel an unfinished task").add_argument("task_id")

    database = commands.add_parser("db", help="move hookd's data to another database").add_subparsers(
        dest="action", required=True
    )
    copying = database.add_parser(
        "copy",
        help="copy every agent, task, journal entry, delivery and source into an empty database",
        description="Copy the configured database (HOOKD_DATABASE_URL, else --db / HOOKD_DB) into an"
        " empty one, in one transaction, and check that every table holds as many rows in both."
        " Stop the hookd servers of the source first: what they write during the copy would not be in"
        " it (a server holding a SQLite file makes the copy refuse).",
    )
    copying.add_argument("--db", help="the SQLite database file to copy [env HOOKD_DB, default ./hookd.db]")
    copying.add_argument(
        "--to",
        required=True,
        metavar="URL_OR_FILE",
        help="postgresql://user@host/database, or a SQLite file to copy a PostgreSQL database into."
        " A password in the URL is visible to `ps` while the copy runs: PGPASSWORD or ~/.pgpass keep it out",
    )
    return parser


async def _run_on_store(run: Command, settings: Settings, args: argparse.Namespace) -> None:
    store = open_store(settings.database_url, settings.db, settings.sync)
    await store.open()
    try:
        await run(store, settings, args)
    finally:
        await store.close()


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings(args=args)
    except SettingsError as exc:
        sys.exit(f"hookd: {exc}")
    if args.command == "serve":
        from server import serve

        try:
            serve(settings)
        except (HookdError, SettingsError) as exc:  # e.g. a --db path that cannot hold a database
            sys.exit(f"hookd: {exc}")
    elif args.command == "settings":
        print(markdown_table())
    elif args.command == "db":
        try:
            db_copy(settings, args)
        except HookdError as exc:
            sys.exit(f"hookd: {exc}")
    else:
        try:
            asyncio.run(_run_on_store(args.run, settings, args))
        except HookdError as exc:
            sys.exit(f"hookd: {exc}")


if __name__ == "__main__":
    main()
