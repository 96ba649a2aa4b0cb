"""One agent run: resolve the model, render the messages, then turns with the model — its
tool calls run between them — until a final answer (in the agent's json_schema, if it has one)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from agents.agent import Agent
from agents.anthropic_chat import AnthropicChat
from agents.chat import Chat, ToolSpec
from agents.env_names import secret_from_env
from agents.knowledge import Passage, Search, find_passages, with_sources
from agents.mcp import open_mcp_tools
from agents.openai_chat import OpenAIChat
from agents.prompt import Budget, PromptTooLarge, user_message
from agents.providers import VENDOR_BASE_URLS, ModelConfig, ModelError, echo_answer
from agents.structured import answer_problem
from agents.tools.calls import ToolJournal, ToolRunner
from agents.tools.registry import open_tools


@dataclass(frozen=True)
class LLMDefaults:
    """The model for agents that name none (HOOKD_LLM_*)."""

    provider: str
    base_url: str
    model: str
    api_key: str = field(default="", repr=False)


def resolve_model(agent: Agent, defaults: LLMDefaults) -> ModelConfig:
    """The agent's `llm` over the defaults.

    The default API key goes only to the default API root: an agent that names its own
    base_url (or another vendor) brings its own key through `api_key_env`, so a key is
    never sent to a server its owner did not choose.
    """
    llm = agent.llm
    provider = llm.get("provider", defaults.provider)
    if "base_url" in llm:
        base_url = llm["base_url"]
    elif provider == defaults.provider:
        base_url = defaults.base_url
    else:
        base_url = VENDOR_BASE_URLS.get(provider, defaults.base_url)
    if "api_key_env" in llm:
        name = llm["api_key_env"]
        api_key = secret_from_env(name)
        if not api_key:
            raise ModelError(
                "config_error",
                f"The agent's llm.api_key_env names {name}, which is not set in hookd's environment.",
                transient=False,
            )
    else:
        api_key = defaults.api_key if base_url == defaults.base_url else ""
    return ModelConfig(
        provider=provider,
        model=llm.get("model", defaults.model),
        base_url=base_url,
        api_key=api_key,
    )


@dataclass(frozen=True)
class RunContext:
    """The task a run is for, and the tool calls the run made (kept here, not in the result,
    so that a run that fails, times out or is cut off still shows what it did)."""

    task_id: str
    payload_json: str  # as accepted
    attempt: int  # 1 for the first run, counting this one
    has_sources: bool = True  # False: the agent had no knowledge sources at the claim; no search
    tool_calls: list[dict[str, Any]] = field(default_factory=list)  # result.tool_calls, as made


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _add_usage(total: dict[str, Any], usage: dict[str, Any]) -> None:
    """Token counts over the run's turns: numbers add up, anything else is the last turn's."""
    for key, value in usage.items():
        earlier = total.get(key)
        if _is_number(value) and _is_number(earlier):
            total[key] = earlier + value
        else:
            total[key] = value


# A user message up to this size renders on the event loop (in about a millisecond, less than the
# hop to a thread and back); one that grows past it is rendered again in a thread, where the
# indented encoder (Python code) gives the event loop its turn every few milliseconds.
INLINE_RENDER_BYTES = 32_768


def _prompt_too_large(max_prompt_bytes: int, what: str) -> ModelError:
    return ModelError(
        "prompt_too_large",
        f"The prompt for this task ({what}) is over {max_prompt_bytes} bytes, the limit of"
        " HOOKD_MAX_PROMPT_BYTES; nothing was sent to the model. Send a smaller payload, or pick"
        " the fields the model needs with the agent's input_template.",
        transient=False,
    )


def render_user(agent: Agent, payload_json: str, max_bytes: int, *, final: bool = True) -> tuple[str, int]:
    """The user message and its size in bytes, if it fits in `max_bytes`; PromptTooLarge if not.
    Not `final`: a first try, in which a payload too large indented fails instead of going compact."""
    budget = Budget(max_bytes, may_compact=final)
    return user_message(json.loads(payload_json), agent.input_template, budget), budget.spent_bytes


async def render_user_bounded(agent: Agent, payload_json: str, max_prompt_bytes: int) -> tuple[str, int]:
    """The user message within what the agent's prompt leaves of HOOKD_MAX_PROMPT_BYTES, and its
    size in bytes; ModelError prompt_too_large past it."""
    prompt_bytes = len(agent.prompt.encode("utf-8", "surrogatepass"))
    if prompt_bytes > max_prompt_bytes:
        raise ModelError(
            "prompt_too_large",
            f"The agent's prompt alone is {prompt_bytes} bytes, over the limit of {max_prompt_bytes}"
            " (HOOKD_MAX_PROMPT_BYTES); shorten it, or raise the limit.",
            transient=False,
        )
    max_bytes = max_prompt_bytes - prompt_bytes
    try:
        if len(payload_json) <= INLINE_RENDER_BYTES:
            with contextlib.suppress(PromptTooLarge):  # too large for the loop, maybe not for the limit
                return render_user(agent, payload_json, min(max_bytes, INLINE_RENDER_BYTES), final=False)
        return await asyncio.to_thread(render_user, agent, payload_json, max_bytes)
    except PromptTooLarge:
        raise _prompt_too_large(max_prompt_bytes, "the agent's prompt and the rendered payload") from None


def new_chat(
    config: ModelConfig, system: str, user: str, tools: list[ToolSpec], answer_schema: dict[str, Any] | None
) -> Chat:
    chat_class = AnthropicChat if config.provider == "anthropic" else OpenAIChat
    return chat_class(config, system, user, tools, answer_schema)


async def run_agent(
    agent: Agent,
    run: RunContext,
    *,
    session: aiohttp.ClientSession,
    defaults: LLMDefaults,
    journal: ToolJournal,
    search: Search | None = None,
    mcp_commands: Sequence[str] = (),
    max_prompt_bytes: int,
) -> dict[str, Any]:
    """Run `agent` on its task's payload once: the SUCCESS result, or a ModelError.
    `mcp_commands` is HOOKD_MCP_COMMANDS, the programs its MCP servers may start;
    `max_prompt_bytes` is HOOKD_MAX_PROMPT_BYTES, what the system and user messages may hold."""
    config = resolve_model(agent, defaults)
    user, user_bytes = await render_user_bounded(agent, run.payload_json, max_prompt_bytes)
    passages = await find_passages(agent.id, agent.knowledge_top_k, user, search if run.has_sources else None)
    system = with_sources(agent.prompt, passages)
    if passages and len(system.encode("utf-8", "surrogatepass")) + user_bytes > max_prompt_bytes:
        raise _prompt_too_large(max_prompt_bytes, "the agent's prompt, its sources and the rendered payload")
    if config.provider == "echo":  # no model, so no tools and no schema either
        result: dict[str, Any] = {"answer": echo_answer(system, user), "model": "echo", "usage": {}}
        return _with_sources(result, passages)
    async with AsyncExitStack() as stack:  # what the tools hold open, closed when the run ends
        tools = await open_tools(agent.tools, stack) + await open_mcp_tools(
            agent.mcp_servers, stack, mcp_commands
        )
        runner = ToolRunner(tools, journal, run.task_id, run.attempt, records=run.tool_calls)
        specs = [ToolSpec(tool.name, tool.description, tool.parameters) for tool in tools]
        chat = new_chat(config, system, user, specs, agent.json_schema)
        result = await _converse(agent, chat, runner, session)
    if agent.tools or agent.mcp_servers:
        result["tool_calls"] = runner.records
    return _with_sources(result, passages)


def _with_sources(result: dict[str, Any], passages: list[Passage] | None) -> dict[str, Any]:
    if passages is not None:  # the agent has sources: say which chunks the model was given
        result["sources"] = [p.to_json() for p in passages]
    return result


async def _converse(
    agent: Agent, chat: Chat, runner: ToolRunner, session: aiohttp.ClientSession
) -> dict[str, Any]:
    """Turns until a final answer: tool calls are run and answered, a structured answer that
    does not fit the schema is sent back once with what is wrong (a turn beyond max_steps)."""
    usage: dict[str, Any] = {}
    corrected = False
    step = 0
    while True:
        if step == agent.max_steps + (1 if corrected else 0):
            raise ModelError(
                "max_steps_exceeded",
                f"The model was still calling tools after {step} turns (the agent's max_steps is"
                f" {agent.max_steps}) and gave no final answer.",
                transient=False,
            )
        step += 1
        reply = await chat.send(session)
        _add_usage(usage, reply.usage)
        if reply.tool_calls:
            chat.add_tool_results([await runner.call(step, call) for call in reply.tool_calls])
            continue
        result: dict[str, Any] = {"answer": reply.text, "model": reply.model, "usage": usage}
        if agent.json_schema is None:
            return result
        problem = reply.structured_problem or answer_problem(agent.json_schema, reply.structured)
        if problem is None:
            answer = json.dumps(reply.structured, ensure_ascii=False)
            return result | {"answer": answer, "structured": reply.structured}
        if corrected:
            raise ModelError(
                "schema_mismatch",
                f"The model's answer did not match the agent's json_schema, also when asked again: {problem}.",
                transient=False,
            )
        corrected = True
        chat.correct(problem)
